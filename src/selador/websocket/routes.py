"""WebSocket routes: connect, disconnect, default, ``invoke``, ``resume``, ``cancel``, ``ping``.

Each route is a small function of (event, context, dependencies): parse, authorise, call the run
logic (:mod:`selador.runs`), reply. Replies go through PostToConnection because WebSocket routes
are one-way without a route response. Nothing here imports strands: only executing a run reaches
the orchestrator, and lazily.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from selador import metrics
from selador.auth import AuthError, authenticate, authorizer_principal
from selador.deps import Dependencies
from selador.observability import logger
from selador.protocol import (
    ACTIONS,
    NEW_SESSION,
    ErrorFrame,
    PongFrame,
    ProtocolError,
    RunCommand,
    _Frame,
    decode_json,
    parse_query,
    parse_run_command,
)
from selador.runs.executor import execute, launch
from selador.runs.model import Refused, cancelled_frame
from selador.runs.sender import INTERNAL_ERROR_TEXT
from selador.runs.service import STARTED_LATE_TEXT, Runs
from selador.store.base import ConnectionRecord, RunRecord
from selador.websocket.management import ConnectionGone, PostFailed, resolve_endpoint

OK: dict[str, Any] = {"statusCode": 200}
_AUTH_CODES = {401: "unauthorized", 403: "forbidden", 503: "unavailable"}
_PENDING = frozenset({"pending"})

Route = Callable[[Mapping[str, Any], Any, Dependencies], dict[str, Any]]


def connect(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Authenticate and record the connection; a non-2xx answer rejects the handshake.

    With ``AUTH_MODE=jwt`` a missing token answers 401 and an invalid one 403, before anything is
    stored: no record means no later route can act for the connection.
    """
    ctx = event["requestContext"]
    try:
        principal = authenticate(event, deps.settings, allow_query=True)
    except AuthError as exc:
        logger.warning("connection refused", extra={"status": exc.status.value, "reason": exc.reason})
        metrics.error(_AUTH_CODES.get(exc.status.value, "forbidden"))
        return {
            "statusCode": exc.status.value,
            "body": json.dumps({"error": exc.reason, "code": _AUTH_CODES.get(exc.status.value, "forbidden")}),
        }
    identity = ctx.get("identity") or {}
    connected_at = ctx.get("connectedAt") or int(time.time() * 1000)
    record = ConnectionRecord(
        connection_id=ctx["connectionId"],
        connected_at=connected_at / 1000,
        expires_at=int(time.time()) + deps.settings.connection_ttl_seconds,
        domain_name=ctx.get("domainName", ""),
        stage=ctx.get("stage", ""),
        api_id=ctx.get("apiId", ""),
        source_ip=identity.get("sourceIp") or "",
        user_agent=identity.get("userAgent") or "",
        principal=principal.subject if principal else None,
    )
    deps.store.put_connection(record)
    logger.info("connected", extra={"source_ip": record.source_ip, "principal": record.principal})
    return OK


def disconnect(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Forget the connection (best effort in AWS, hence the TTL on records)."""
    ctx = event["requestContext"]
    existed = deps.store.delete_connection(ctx["connectionId"])
    logger.info(
        "disconnected",
        extra={
            "disconnect_status_code": ctx.get("disconnectStatusCode"),
            "disconnect_reason": ctx.get("disconnectReason"),
            "record_existed": existed,
        },
    )
    return OK


def default(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Anything no route matched: say what was wrong and which actions exist."""
    try:
        payload = decode_json(_body(event))
    except ProtocolError as exc:
        _reply(event, deps, ErrorFrame(code="bad_request", error=str(exc)))
        return OK
    valid = ", ".join(ACTIONS)
    if not isinstance(payload, dict):
        message = f"message must be a JSON object with an action ({valid})"
    elif "action" not in payload:
        message = f"action is required: one of {valid}"
    elif not isinstance(payload["action"], str):
        message = f"action must be a string: one of {valid}"
    else:
        message = f"unknown action {payload['action'][:64]!r}: valid actions are {valid}"
    request_id = payload.get("request_id") if isinstance(payload, dict) else None
    _reply(
        event,
        deps,
        ErrorFrame(code="unknown_action", error=message, request_id=_safe_id(request_id)),
    )
    return OK


def ping(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Answer a keep-alive: app-level messages reset API Gateway's 10-minute idle timer."""
    request_id = None
    try:
        payload = decode_json(_body(event))
        if isinstance(payload, dict):
            request_id = _safe_id(payload.get("request_id"))
    except ProtocolError:
        pass  # the route only matched because the body was JSON; nothing to report
    _reply(event, deps, PongFrame(request_id=request_id))
    return OK


def invoke(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Validate a question, start its run, acknowledge it, and execute it (here or in a job).

    In ``async`` run mode the run is handed to an asynchronous invocation of this function and
    the route returns in milliseconds, so API Gateway's 29-second integration timeout never fires.
    """
    try:
        request = parse_query(decode_json(_body(event)))
    except ProtocolError as exc:
        _reply(event, deps, ErrorFrame(code="bad_request", error=str(exc), request_id=exc.request_id))
        return OK
    connection_id = event["requestContext"]["connectionId"]
    endpoint = resolve_endpoint(event, deps.settings)
    logger.thread_safe_append_keys(request_id=request.request_id, query_type=request.query_type)
    # The question is user content: DEBUG only, never at INFO.
    logger.debug("question", extra={"question": request.question, "context": request.context})
    principal = _principal_or_refuse(event, deps, request.request_id)
    if principal is _REFUSED:
        return OK
    runs = Runs(deps)
    outcome = runs.start(
        request,
        principal=principal,
        scope=f"p:{principal}" if principal else f"c:{connection_id}",
        limit_subject=connection_id,
        connection_id=connection_id,
        endpoint=endpoint,
    )
    if isinstance(outcome, Refused):
        # A refused question in a session names it (a generated id does not exist yet).
        session_id = request.session_id if request.session_id != NEW_SESSION else None
        _reply(
            event,
            deps,
            ErrorFrame(
                code=outcome.code, error=outcome.message, request_id=request.request_id, session_id=session_id
            ),
        )
        return OK
    run = outcome.run
    try:
        if runs.post(connection_id, endpoint, outcome.accepted) == "gone":
            # Gone before the answer began. Only an authenticated owner can find the run again
            # (an anonymous client never saw its token), and only if it asked the run to go on.
            if principal is None or request.on_disconnect == "cancel":
                runs.finish(run, cancelled_frame(), expect_status=_PENDING)
                return OK
            deps.store.update_run(
                run.run_id,
                {"connection_id": None, "endpoint": None, "listener_id": None},
                expect={"listener_id": run.listener_id},
            )
        if deps.settings.run_mode == "async":
            if not launch(deps, run.run_id, request):
                # Lambda may have queued the job although the call failed: the run ends here
                # only if no job has taken it, and a job that comes later finds it ended.
                runs.finish(
                    run, ErrorFrame(code="internal_error", error=STARTED_LATE_TEXT), expect_status=_PENDING
                )
            return OK
    except Exception:  # noqa: BLE001 - the client holds an accepted run: it must hear how it ended
        logger.exception("could not start the run")
        runs.finish(run, ErrorFrame(code="internal_error", error=INTERNAL_ERROR_TEXT), expect_status=_PENDING)
        return OK
    execute(deps, context, run.run_id, request)
    return OK


def resume(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Replay a run's frames after ``after_seq`` to this connection, then stream the rest here."""
    found = _find_run(event, deps, "resume")
    if found is None:
        return OK
    runs, run, command = found
    runs.resume(
        run,
        after_seq=command.after_seq,
        connection_id=event["requestContext"]["connectionId"],
        endpoint=resolve_endpoint(event, deps.settings),
    )
    return OK


def cancel(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Stop a run; its terminal frame (a cancelled ``result``) comes to this connection."""
    found = _find_run(event, deps, "cancel")
    if found is None:
        return OK
    runs, run, command = found
    outcome = runs.cancel(
        run,
        connection_id=event["requestContext"]["connectionId"],
        endpoint=resolve_endpoint(event, deps.settings),
    )
    if outcome == "not_running":
        _reply(
            event,
            deps,
            ErrorFrame(
                code="not_running",
                error=f"run {command.request_id!r} has already ended; send resume to read how",
                request_id=command.request_id,
            ),
        )
    elif outcome == "unknown_run":
        _reply(event, deps, _unknown_run(command.request_id, "cancel"))
    return OK


def _find_run(
    event: Mapping[str, Any], deps: Dependencies, action: str
) -> tuple[Runs, RunRecord, RunCommand] | None:
    """Parse a run command and find the run this connection may act on (replying when it may not)."""
    try:
        command = parse_run_command(decode_json(_body(event)))
    except ProtocolError as exc:
        _reply(event, deps, ErrorFrame(code="bad_request", error=str(exc), request_id=exc.request_id))
        return None
    logger.thread_safe_append_keys(request_id=command.request_id)
    principal = _principal_or_refuse(event, deps, command.request_id)
    if principal is _REFUSED:
        return None
    runs = Runs(deps)
    run = runs.lookup(command.request_id, principal=principal, token=command.run_token)
    if run is None:
        _reply(event, deps, _unknown_run(command.request_id, action))
        return None
    return runs, run, command


def _unknown_run(request_id: str, action: str) -> ErrorFrame:
    # One answer for missing, expired and foreign runs: nothing tells them apart.
    return ErrorFrame(
        code="unknown_run",
        error=f"no run {request_id!r} to {action}: it does not exist, has expired, or needs its run_token",
        request_id=request_id,
    )


_REFUSED: Any = object()


def _principal_or_refuse(event: Mapping[str, Any], deps: Dependencies, request_id: str) -> str | None:
    """The connection's principal; :data:`_REFUSED` (after replying) when auth is on and none is known."""
    principal = connection_principal(event, deps)
    if deps.settings.auth_mode == "jwt" and principal is None:
        # $connect stores the principal of every authenticated connection; none means the record
        # expired or was never written, so nothing vouches for this connection any more.
        _reply(
            event,
            deps,
            ErrorFrame(
                code="unauthorized",
                error="this connection is not authenticated; reconnect with a token",
                request_id=request_id,
            ),
        )
        return _REFUSED
    return principal


def connection_principal(event: Mapping[str, Any], deps: Dependencies) -> str | None:
    """Who is asking on this connection.

    An API Gateway authorizer's principal when one ran, else the one ``$connect`` stored (read only
    when authentication is on: anonymous records have none, so the store read is skipped).
    """
    principal = authorizer_principal(event)
    if principal is not None or deps.settings.auth_mode != "jwt":
        return principal
    record = deps.store.get_connection(event["requestContext"]["connectionId"])
    return record.principal if record is not None else None


ROUTES: dict[str, Route] = {
    "$connect": connect,
    "$disconnect": disconnect,
    "$default": default,
    "invoke": invoke,
    "resume": resume,
    "cancel": cancel,
    "ping": ping,
}


def handle(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Dispatch a WebSocket event by its route key.

    A route key this code does not know (a route added to the API but not here) is answered
    like ``$default`` so the client still hears what exists.
    """
    route_key = event["requestContext"].get("routeKey", "$default")
    route = ROUTES.get(route_key, default)
    return route(event, context, deps)


# -- helpers --------------------------------------------------------------------------------


def _body(event: Mapping[str, Any]) -> str | bytes | None:
    body = event.get("body")
    if body is None or not event.get("isBase64Encoded"):
        return body
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("message must be JSON: the binary frame is not valid base64") from None


def _safe_id(value: object) -> str | None:
    if isinstance(value, str) and 1 <= len(value) <= 64 and value.isprintable():
        return value
    return None


def _reply(event: Mapping[str, Any], deps: Dependencies, frame: _Frame) -> None:
    """Post one frame outside a query; a vanished client is only logged."""
    connection_id = event["requestContext"]["connectionId"]
    if isinstance(frame, ErrorFrame):
        logger.info("rejected message", extra={"error": frame.error, "code": frame.code})
        metrics.error(frame.code or "error")
    api = deps.management(resolve_endpoint(event, deps.settings))
    try:
        api.post(connection_id, frame.to_json().encode())
    except ConnectionGone:
        deps.store.delete_connection(connection_id)
        logger.info("client gone before the reply")
        metrics.count("ClientGone")
    except PostFailed as exc:
        logger.warning("reply not delivered", extra={"reason": str(exc)})
    finally:
        metrics.count("ThrottledPosts", getattr(api, "throttled", 0))
