"""The HTTP API for callers that POST a question and wait: ``POST /invoke``, ``GET /health``.

One Powertools ``Router`` holds the routes; an HTTP API (payload v2) resolver and a REST API (v1)
resolver both include it, so either integration works. Domain errors map to status codes in one
place, and no traceback ever reaches a caller. The agent stack is imported only by ``/invoke``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    CORSConfig,
    Response,
)
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.router import Router

from selador import __version__
from selador.auth import AuthError, authenticate, authorizer_principal
from selador.deps import get_dependencies
from selador.limits import LimitExceeded, Limits
from selador.observability import logger
from selador.protocol import MAX_MESSAGE_BYTES, ProtocolError, decode_json, parse_query
from selador.settings import Settings

router = Router()

ROUTE_METHODS: dict[str, tuple[str, ...]] = {"/invoke": ("POST",), "/health": ("GET",)}
"""Every path the HTTP API serves and its methods (for 405 answers)."""

_ERROR_STATUS = {
    "bad_request": HTTPStatus.BAD_REQUEST,
    "timeout": HTTPStatus.GATEWAY_TIMEOUT,
    "throttled": HTTPStatus.SERVICE_UNAVAILABLE,
    "too_long": HTTPStatus.UNPROCESSABLE_ENTITY,
    "model_error": HTTPStatus.BAD_GATEWAY,
    "knowledge_base_error": HTTPStatus.BAD_GATEWAY,
    "cancelled": HTTPStatus.SERVICE_UNAVAILABLE,
    "rate_limited": HTTPStatus.TOO_MANY_REQUESTS,
}


class HttpError(Exception):
    """A client-facing failure with its status, a safe message and optional headers."""

    def __init__(
        self, status: HTTPStatus, message: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers


def _error(
    status: HTTPStatus, message: str, code: str, headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status.value,
        content_type="application/json",
        body=json.dumps({"error": message, "code": code}),
        headers=headers,
    )


@router.get("/health")
def health() -> dict[str, Any]:
    """Liveness: answers without touching the model, the store or the knowledge base."""
    settings = get_dependencies().settings
    return {"status": "ok", "version": __version__, "model_provider": settings.provider}


@router.post("/invoke")
def invoke() -> Response[str]:
    """Run a question to completion and answer with the ``result`` frame's data."""
    event = router.current_event
    deps = get_dependencies()
    # Before anything else, so an anonymous caller learns nothing about the endpoint.
    principal = _authenticate(event.raw_event, deps.settings)
    content_type = (event.headers or {}).get("content-type") or (event.headers or {}).get("Content-Type")
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
    body: str | bytes | None = event.decoded_body if event.is_base64_encoded else event.body
    if body is not None and len(body) > MAX_MESSAGE_BYTES:
        # The HTTP API accepts 10 MB; the WebSocket API's 128 KiB is the protocol's message limit.
        raise HttpError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body must be at most {MAX_MESSAGE_BYTES} bytes",
            "bad_request",
        )
    try:
        request = parse_query(decode_json(body))
    except ProtocolError as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, str(exc), "bad_request") from None
    logger.thread_safe_append_keys(request_id=request.request_id, query_type=request.query_type)
    logger.debug("question", extra={"question": request.question, "context": request.context})

    limits = Limits(deps.store, deps.settings) if principal else None
    admission = None
    if limits is not None and principal is not None:
        # No connection on this path: the principal is the scope of every limit.
        outcome = limits.admit(f"user:{principal}", principal)
        if isinstance(outcome, LimitExceeded):
            logger.info("query refused by a limit", extra={"limit": outcome.limit, "principal": principal})
            headers = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after else None
            raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, outcome.message, "rate_limited", headers)
        admission = outcome

    from selador.agents.orchestrator import run_query
    from selador.sink import CollectingSink

    sink = CollectingSink(request.request_id)
    try:
        result = run_query(request, sink, settings=deps.settings, deadline=_deadline(router.lambda_context))
    finally:
        if limits is not None:
            limits.finish(admission)
    terminal = sink.terminal
    if result is None:
        code = getattr(terminal, "code", None) or "internal_error"
        message = getattr(terminal, "error", None) or "The query failed"
        raise HttpError(_ERROR_STATUS.get(code, HTTPStatus.INTERNAL_SERVER_ERROR), message, code)
    return Response(
        status_code=200,
        content_type="application/json",
        body=json.dumps(
            {"data": result.model_dump(mode="json", exclude_none=True), "request_id": request.request_id}
        ),
    )


def _authenticate(raw_event: Mapping[str, Any], settings: Settings) -> str | None:
    """The caller's principal; with ``AUTH_MODE=jwt`` a valid bearer token is required.

    The template's JWT authorizer already checked the token in AWS; checking again here costs
    microseconds (keys are cached) and is what protects the API behind the local gateway, or behind
    an API deployed without the authorizer.
    """
    try:
        principal = authenticate(raw_event, settings, allow_query=False)
    except AuthError as exc:
        challenge = "Bearer" if exc.status == HTTPStatus.UNAUTHORIZED else 'Bearer error="invalid_token"'
        code = {401: "unauthorized", 403: "forbidden"}.get(exc.status.value, "unavailable")
        raise HttpError(exc.status, exc.reason, code, {"WWW-Authenticate": challenge}) from None
    if principal is not None:
        logger.info("authenticated", extra={"principal": principal.subject})
        return principal.subject
    return authorizer_principal(raw_event)


HTTP_ANSWER_BUDGET_S = 28.0
"""API Gateway stops waiting for an HTTP integration after 30 s; answer 504 ourselves before that."""


def _deadline(context: Any) -> float:
    """A ``time.monotonic()`` deadline: the HTTP budget or the Lambda deadline, whichever is first."""
    budget = HTTP_ANSWER_BUDGET_S
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is not None:
        budget = min(budget, max(0.0, getter() / 1000 - 1.0))
    return time.monotonic() + budget


def _register(app: APIGatewayHttpResolver | APIGatewayRestResolver) -> None:
    app.include_router(router)

    @app.exception_handler(HttpError)
    def _http_error(exc: HttpError) -> Response[str]:
        logger.info("request rejected", extra={"status": exc.status.value, "error": str(exc)})
        return _error(exc.status, str(exc), exc.code, exc.headers)

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response[str]:
        path = _path(app.current_event.raw_event)
        allowed = ROUTE_METHODS.get(path)
        if allowed:
            return _error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method not allowed on {path}: use {', '.join(allowed)}",
                "method_not_allowed",
                {"Allow": ", ".join(allowed)},
            )
        return _error(HTTPStatus.NOT_FOUND, f"no route for {path[:100]}", "not_found")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error in the HTTP API")
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "internal_error")


def _path(event: Mapping[str, Any]) -> str:
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    return str(http.get("path") or event.get("path") or event.get("rawPath") or "")


_CORS = CORSConfig(allow_origin="*", allow_headers=["Content-Type", "Authorization"], max_age=600)


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
