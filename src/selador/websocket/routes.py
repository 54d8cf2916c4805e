"""WebSocket routes: ``$connect``, ``$disconnect``, ``$default``, ``invoke``, ``ping``.

Each route is a small function of (event, context, dependencies). Replies go through
PostToConnection because WebSocket routes are one-way without a route response. Nothing here
imports strands: only :func:`invoke` reaches the orchestrator, and lazily.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from selador.auth import AuthError, authenticate, authorizer_principal
from selador.deps import Dependencies
from selador.limits import LimitExceeded, Limits
from selador.observability import logger
from selador.protocol import (
    ACTIONS,
    ErrorFrame,
    PongFrame,
    ProtocolError,
    QueryRequest,
    StatusFrame,
    _Frame,
    decode_json,
    parse_query,
)
from selador.store.base import ConnectionRecord
from selador.websocket.management import ConnectionGone, PostFailed, resolve_endpoint
from selador.websocket.sender import FrameSender

OK: dict[str, Any] = {"statusCode": 200}
_AUTH_CODES = {401: "unauthorized", 403: "forbidden", 503: "unavailable"}
DEADLINE_MARGIN_S = 5.0
"""Seconds kept back from Lambda's deadline to send the timeout frame and flush."""

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
    """Validate a question, acknowledge it, and stream the answer (here or in a job).

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
                request_id=request.request_id,
            ),
        )
        return OK
    # The duplicate check comes first: a resent running id is a duplicate, not a new query, and
    # must neither count against the limits nor be reported as one.
    running_key = run_key(connection_id, request.request_id)
    if not deps.store.claim(running_key, deps.settings.run_claim_ttl_seconds):
        _reply(
            event,
            deps,
            ErrorFrame(
                code="duplicate_request",
                error=f"request_id {request.request_id!r} is already running on this connection",
                request_id=request.request_id,
            ),
        )
        return OK
    limits = Limits(deps.store, deps.settings)
    try:
        admission = limits.admit(connection_id, principal)
    except Exception:
        deps.store.release(running_key)
        raise
    if isinstance(admission, LimitExceeded):
        deps.store.release(running_key)
        logger.info("query refused by a limit", extra={"limit": admission.limit, "principal": principal})
        _reply(
            event,
            deps,
            ErrorFrame(code="rate_limited", error=admission.message, request_id=request.request_id),
        )
        return OK

    accepted = StatusFrame(
        stage="accepted", message="Processing your query...", request_id=request.request_id, seq=1
    )
    if deps.settings.run_mode == "async":
        from selador.websocket.jobs import hand_off

        try:
            deps.management(endpoint).post(connection_id, accepted.to_json().encode())
        except ConnectionGone:
            deps.store.release(running_key)
            limits.finish(admission)
            logger.info("client gone before the run started")
            return OK
        except PostFailed as exc:
            # The client may well be there (the acknowledgement can even have arrived late): the
            # run goes ahead; its own sender decides, frame by frame, whether anyone listens.
            logger.warning(
                "accepted status not confirmed; starting the run anyway", extra={"reason": str(exc)}
            )
        # From here the job owns the slot and releases it when its run ends.
        if not hand_off(
            deps,
            connection_id=connection_id,
            endpoint=endpoint,
            request=request,
            next_seq=2,
            slot=admission.slot,
        ):
            deps.store.release(running_key)
            limits.finish(admission)
            _reply(
                event,
                deps,
                ErrorFrame(
                    code="internal_error",
                    error="The query could not be started; please try again",
                    request_id=request.request_id,
                    seq=2,
                ),
            )
        return OK
    try:
        stream_query(
            deps,
            context,
            connection_id=connection_id,
            endpoint=endpoint,
            request=request,
            preamble=[accepted.model_copy(update={"request_id": None, "seq": None})],
        )
    finally:
        deps.store.release(running_key)
        limits.finish(admission)
    return OK


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


def run_key(connection_id: str, request_id: str) -> str:
    """The claim that marks a request as running on a connection."""
    return f"run#{connection_id}#{request_id}"


def stream_query(
    deps: Dependencies,
    context: Any,
    *,
    connection_id: str,
    endpoint: str,
    request: QueryRequest,
    preamble: list[_Frame] | None = None,
    first_seq: int = 1,
) -> None:
    """Run one query in this invocation, streaming its frames to a connection.

    Args:
        deps: Container dependencies.
        context: The Lambda context (for the remaining time).
        connection_id: Where the frames go.
        endpoint: The management endpoint of that connection's API.
        request: The validated query.
        preamble: Frames to send before the run's own (the ``accepted`` status when inline).
        first_seq: ``seq`` of the first frame this invocation sends.
    """
    api = deps.management(endpoint)
    settings = deps.settings

    def on_gone() -> None:
        # The stale id is the one we were posting to: never the caller's or another's.
        deps.store.delete_connection(connection_id)

    sender = FrameSender(
        lambda data: api.post(connection_id, data),
        request_id=request.request_id,
        flush_ms=settings.stream_flush_ms,
        flush_max_ms=settings.stream_flush_max_ms,
        max_chars=settings.stream_max_frame_chars,
        on_gone=on_gone,
        first_seq=first_seq,
    )
    for frame in preamble or ():
        sender.send(frame)
    deadline = _deadline(context)
    try:
        from selador.agents.orchestrator import run_query

        run_query(request, sender, settings=settings, deadline=deadline)
    finally:
        stats = sender.close(timeout=max(1.0, _remaining_s(context) - 1.0))
        logger.info(
            "query finished",
            extra={
                "frames_posted": stats.frames_posted,
                "bytes_posted": stats.bytes_posted,
                "frames_dropped": stats.frames_dropped,
                "client_gone": stats.gone,
                "post_failure": stats.failed,
            },
        )


ROUTES: dict[str, Route] = {
    "$connect": connect,
    "$disconnect": disconnect,
    "$default": default,
    "invoke": invoke,
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
    try:
        deps.management(resolve_endpoint(event, deps.settings)).post(connection_id, frame.to_json().encode())
    except ConnectionGone:
        deps.store.delete_connection(connection_id)
        logger.info("client gone before the reply")
    except PostFailed as exc:
        logger.warning("reply not delivered", extra={"reason": str(exc)})


def _remaining_s(context: Any) -> float:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is None:
        return 900.0
    return float(getter()) / 1000


def _deadline(context: Any) -> float:
    """A ``time.monotonic()`` deadline before Lambda would kill the invocation."""
    remaining = _remaining_s(context)
    margin = min(DEADLINE_MARGIN_S, remaining * 0.1)
    return time.monotonic() + remaining - margin
