"""The HTTP API: ``POST /invoke`` (ask and wait), ``/runs`` (durable runs), ``/sessions``, ``GET /health``.

One Powertools ``Router`` holds the routes; an HTTP API (payload v2) resolver and a REST API (v1)
resolver both include it, so either integration works. Domain errors map to status codes in one
place, and no traceback ever reaches a caller. Runs are the same runs the WebSocket API sees
(:mod:`selador.runs`): one started here can be resumed over WebSocket with its token. Nothing
here imports the agent stack; executing a run does, elsewhere.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    CORSConfig,
    Response,
)
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.router import Router

from selador import __version__, metrics
from selador.deps import get_dependencies
from selador.http.budget import answer_deadline, gateway_deadline
from selador.http.common import HttpError, authenticate_caller, error_response, header, json_response
from selador.http.routedocs import ROUTE_DOCS
from selador.http.sessions import delete_session, get_session
from selador.http.sessions import router as sessions_router
from selador.observability import logger
from selador.protocol import (
    MAX_MESSAGE_BYTES,
    ErrorFrame,
    ProtocolError,
    QueryRequest,
    decode_json,
    parse_query,
)
from selador.runs.executor import launch
from selador.runs.model import Refused, Started
from selador.runs.service import STARTED_LATE_TEXT, Runs
from selador.store.base import RunRecord

router = Router()

ROUTE_METHODS: dict[str, tuple[str, ...]] = {
    "/invoke": ("POST",),
    "/runs": ("POST",),
    "/runs/{request_id}": ("GET", "DELETE"),
    "/sessions": ("GET",),
    "/sessions/{session_id}": ("GET", "DELETE"),
    "/health": ("GET",),
}
"""Every path the HTTP API serves and its methods (for 405 answers)."""
_PENDING = frozenset({"pending"})

_ERROR_STATUS = {
    "bad_request": HTTPStatus.BAD_REQUEST,
    "timeout": HTTPStatus.GATEWAY_TIMEOUT,
    "throttled": HTTPStatus.SERVICE_UNAVAILABLE,
    "too_long": HTTPStatus.UNPROCESSABLE_ENTITY,
    "model_error": HTTPStatus.BAD_GATEWAY,
    "knowledge_base_error": HTTPStatus.BAD_GATEWAY,
    "rate_limited": HTTPStatus.TOO_MANY_REQUESTS,
}


@router.get("/health", **ROUTE_DOCS["GET /health"])
def health() -> dict[str, Any]:
    """Liveness: answers without touching the model, the store or the knowledge base."""
    settings = get_dependencies().settings
    return {"status": "ok", "version": __version__, "model_provider": settings.provider}


@router.post("/invoke", **ROUTE_DOCS["POST /invoke"])
def invoke() -> Response[str]:
    """Run a question and answer with the ``result`` frame's data, or 202 if it takes too long.

    The run is executed outside this invocation (an asynchronous job, or a background thread in
    inline mode) and this route waits for it, so a run that cannot finish inside API Gateway's
    29 s is not lost: the caller gets ``202`` with the run's token and polls ``GET /runs/{id}``.
    The wait ends :data:`~selador.http.budget.HTTP_ANSWER_BUDGET_S` after API Gateway received
    the request, cold start and authentication included; a request whose budget is already spent
    before its run would start is answered 504 and starts nothing (API Gateway has given up on
    it, so nobody would ever learn the run's token).
    """
    event = router.current_event.raw_event
    gateway = gateway_deadline(event)
    until = answer_deadline(event, router.lambda_context)
    deps = get_dependencies()
    principal, request = _read_query()
    if gateway is not None and gateway <= time.monotonic():
        raise HttpError(HTTPStatus.GATEWAY_TIMEOUT, "the request timed out before it started", "timeout")
    runs = Runs(deps)
    started = _start(runs, request, principal)
    _launch(runs, started, request)
    run = runs.wait(started.run.run_id, until=until)
    if run is None or run.active:
        return _accepted(started)
    if run.status == "failed":
        failure = json.loads(run.result or "{}")
        code = failure.get("code") or "internal_error"
        message = failure.get("error") or "The query failed"
        raise HttpError(_ERROR_STATUS.get(code, HTTPStatus.INTERNAL_SERVER_ERROR), message, code)
    body = {"data": json.loads(run.result or "{}"), "request_id": request.request_id}
    return json_response(200, body | _session_fields(started))


@router.post("/runs", **ROUTE_DOCS["POST /runs"])
def start_run() -> Response[str]:
    """Start a run and answer at once: ``202 {"request_id", "run_token", "status": "running"}``."""
    deps = get_dependencies()
    principal, request = _read_query()
    runs = Runs(deps)
    started = _start(runs, request, principal)
    _launch(runs, started, request)
    return _accepted(started)


@router.get("/runs/<request_id>", **ROUTE_DOCS["GET /runs/{request_id}"])
def run_status(request_id: str) -> Response[str]:
    """A run's state: ``{"request_id", "status", "frames", "result" | "error"}``."""
    runs, run = _find_run(request_id)
    body: dict[str, Any] = {
        "request_id": run.request_id,
        # Callers see one word for "not finished": whether a job has taken it yet is ours to know.
        "status": "running" if run.active else run.status,
        "frames": runs.frame_count(run),
    }
    if run.status == "failed":
        body["error"] = json.loads(run.result or "{}")
    elif not run.active:
        body["result"] = json.loads(run.result or "{}")
    return json_response(200, body)


@router.delete("/runs/<request_id>", **ROUTE_DOCS["DELETE /runs/{request_id}"])
def cancel_run(request_id: str) -> Response[str]:
    """Cancel a run: ``202 {"request_id", "status": "cancelling"}``; 409 once it has ended."""
    runs, run = _find_run(request_id)
    outcome = runs.cancel(run)
    if outcome == "unknown_run":
        raise _unknown_run(run.request_id)
    if outcome == "not_running":
        raise HttpError(HTTPStatus.CONFLICT, f"run {run.request_id!r} has already ended", "not_running")
    return json_response(202, {"request_id": run.request_id, "status": "cancelling"})


def _read_query() -> tuple[str | None, QueryRequest]:
    """Authenticate and validate a POSTed question (the same body as the ``invoke`` action)."""
    event = router.current_event
    deps = get_dependencies()
    # Before anything else, so an anonymous caller learns nothing about the endpoint.
    principal = authenticate_caller(event.raw_event, deps.settings)
    content_type = header(event.headers, "content-type")
    if not content_type:
        raise HttpError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json", "bad_request"
        )
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HttpError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type must be application/json, not {content_type[:60]}",
            "bad_request",
        )
    raw = _body_bytes(event.body, bool(event.is_base64_encoded))
    if len(raw) > MAX_MESSAGE_BYTES:
        # The HTTP API accepts 10 MB; the WebSocket API's 128 KiB is the protocol's message limit.
        raise HttpError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body must be at most {MAX_MESSAGE_BYTES} bytes (it has {len(raw)})",
            "bad_request",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(
            HTTPStatus.BAD_REQUEST,
            f"the body is not valid UTF-8 JSON: byte 0x{raw[exc.start]:02x} at position {exc.start}",
            "bad_request",
        ) from None
    try:
        payload = decode_json(text)
        session_token = header(event.headers, "x-session-token")
        if isinstance(payload, dict) and session_token and payload.get("session_token") is None:
            # The header is the HTTP way to send it; the body (as on WebSocket) wins when both are there.
            payload = payload | {"session_token": session_token}
        request = parse_query(payload)
    except ProtocolError as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, str(exc), "bad_request") from None
    logger.thread_safe_append_keys(request_id=request.request_id, query_type=request.query_type)
    logger.debug("question", extra={"question": request.question, "context": request.context})
    return principal, request


def _body_bytes(body: object, is_base64: bool) -> bytes:
    """The request body as the client sent it: its bytes, which is what the size limit counts."""
    if body is None or body == "":
        return b""
    if not isinstance(body, str):
        # Only a forged event gets here (API Gateway always sends a string or null).
        raise HttpError(HTTPStatus.BAD_REQUEST, "the event's body must be a string", "bad_request")
    if not is_base64:
        # "surrogatepass": a JSON event may carry lone surrogates; they fail as UTF-8 below.
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise HttpError(
            HTTPStatus.BAD_REQUEST, "the body is marked base64 but is not", "bad_request"
        ) from None


def _start(runs: Runs, request: QueryRequest, principal: str | None) -> Started:
    # No connection on this path: an authenticated principal is the scope of the duplicate check
    # and of every limit; anonymous callers have neither (nothing identifies them between calls).
    outcome = runs.start(
        request,
        principal=principal,
        scope=f"p:{principal}" if principal else None,
        limit_subject=f"user:{principal}" if principal else None,
    )
    if isinstance(outcome, Refused):
        if outcome.code in ("duplicate_request", "session_busy"):
            raise HttpError(HTTPStatus.CONFLICT, outcome.message, outcome.code)
        headers = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after else None
        raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, outcome.message, outcome.code, headers)
    return outcome


def _launch(runs: Runs, started: Started, request: QueryRequest) -> None:
    try:
        launched = launch(runs.deps, started.run.run_id, request)
    except Exception:
        runs.finish(
            started.run, ErrorFrame(code="internal_error", error=STARTED_LATE_TEXT), expect_status=_PENDING
        )
        raise
    # A failed hand-off may still have been queued: end the run only if no job has taken it.
    if not launched and runs.finish(
        started.run, ErrorFrame(code="internal_error", error=STARTED_LATE_TEXT), expect_status=_PENDING
    ):
        raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, STARTED_LATE_TEXT, "internal_error")


def _find_run(request_id: str) -> tuple[Runs, RunRecord]:
    event = router.current_event
    deps = get_dependencies()
    principal = authenticate_caller(event.raw_event, deps.settings)
    # Not unquoted again: HTTP APIs (and the local gateway) hand the parameter over decoded.
    token = header(event.headers, "x-run-token")
    runs = Runs(deps)
    run = runs.lookup(request_id, principal=principal, token=token)
    if run is None:
        raise _unknown_run(request_id)
    return runs, run


def _unknown_run(request_id: str) -> HttpError:
    # One answer for missing, expired and foreign runs.
    return HttpError(
        HTTPStatus.NOT_FOUND,
        f"no run {request_id[:64]!r}: it does not exist, has expired, or needs its X-Run-Token",
        "unknown_run",
    )


def _accepted(started: Started) -> Response[str]:
    request_id = started.run.request_id
    return json_response(
        202,
        {"request_id": request_id, "run_token": started.token, "status": "running"}
        | _session_fields(started),
        {"Location": f"/runs/{quote(request_id, safe='')}"},
    )


def _session_fields(started: Started) -> dict[str, str]:
    """``session_id`` for a query asked in a session, and ``session_token`` for an anonymous owner."""
    fields: dict[str, str] = {}
    if started.run.session_id is not None:
        fields["session_id"] = started.run.session_id
    if started.session_token is not None:
        fields["session_token"] = started.session_token
    return fields


_BY_ID: dict[tuple[str, str], Callable[[str], Response[str]]] = {
    ("GET", "/runs/{request_id}"): run_status,
    ("DELETE", "/runs/{request_id}"): cancel_run,
    ("GET", "/sessions/{session_id}"): get_session,
    ("DELETE", "/sessions/{session_id}"): delete_session,
}
"""The routes with an id in their path, for ids Powertools' path pattern does not match."""


def _register(app: APIGatewayHttpResolver | APIGatewayRestResolver) -> None:
    app.include_router(router)
    app.include_router(sessions_router)

    @app.exception_handler(HttpError)
    def _http_error(exc: HttpError) -> Response[str]:
        logger.info("request rejected", extra={"status": exc.status.value, "error": str(exc)})
        metrics.error(exc.code)
        return error_response(exc.status, str(exc), exc.code, exc.headers)

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response[str]:
        path = _path(app.current_event.raw_event)
        route = _route_of(path)
        by_id = _BY_ID.get((app.current_event.http_method.upper(), route))
        if by_id is not None:
            # The route and method exist: Powertools' path pattern, which knows only some
            # characters, missed an id the protocol allows ('"', "€", an emoji), which API
            # Gateway hands over decoded.
            return by_id(path.split("/")[2])
        allowed = ROUTE_METHODS.get(route)
        metrics.error("method_not_allowed" if allowed else "not_found")
        if allowed:
            return error_response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method not allowed on {path}: use {', '.join(allowed)}",
                "method_not_allowed",
                {"Allow": ", ".join(allowed)},
            )
        return error_response(HTTPStatus.NOT_FOUND, f"no route for {path[:100]}", "not_found")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error in the HTTP API")
        metrics.error("internal_error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "internal_error")


def _route_of(path: str) -> str:
    """The route template a concrete path belongs to (``/runs/q-1`` → ``/runs/{request_id}``)."""
    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "runs" and parts[2]:
        return "/runs/{request_id}"
    if len(parts) == 3 and parts[1] == "sessions" and parts[2]:
        return "/sessions/{session_id}"
    return path


def _path(event: Mapping[str, Any]) -> str:
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    return str(http.get("path") or event.get("path") or event.get("rawPath") or "")


_CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["Content-Type", "Authorization", "X-Run-Token", "X-Session-Token"],
    expose_headers=["Location"],
    max_age=600,
)


@functools.cache
def http_api_app() -> APIGatewayHttpResolver:
    """The resolver for HTTP API (payload v2) events."""
    app = APIGatewayHttpResolver(cors=_CORS)
    _register(app)
    return app


@functools.cache
def rest_api_app() -> APIGatewayRestResolver:
    """The resolver for REST API (payload v1) events."""
    app = APIGatewayRestResolver(cors=_CORS)
    _register(app)
    return app


def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Resolve an HTTP event of either payload version."""
    app = http_api_app() if event.get("version") == "2.0" else rest_api_app()
    return app.resolve(event, context)
