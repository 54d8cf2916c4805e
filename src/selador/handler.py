"""``lambda_handler``: classify the event and dispatch. Nothing else lives here.

Route modules are imported on first use, so a ``$connect``, ``$disconnect`` or HTTP health
invocation never imports strands, and a container only loads what its traffic needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selador.observability import logger

WEBSOCKET_ROUTES: tuple[str, ...] = (
    "$connect",
    "$disconnect",
    "$default",
    "invoke",
    "resume",
    "cancel",
    "ping",
)
"""The WebSocket route keys this handler serves (the template must define exactly these)."""

HTTP_ROUTES: tuple[str, ...] = (
    "POST /invoke",
    "POST /runs",
    "GET /runs/{request_id}",
    "DELETE /runs/{request_id}",
    "GET /health",
)
"""The HTTP routes this handler serves (the template must define exactly these)."""

_WS_EVENT_TYPES = frozenset({"CONNECT", "MESSAGE", "DISCONNECT"})


def _is_ws_event(ctx: Mapping[str, Any]) -> bool:
    event_type, connection_id = ctx.get("eventType"), ctx.get("connectionId")
    # Check types before the set lookup: a list there is unhashable and must not raise.
    return isinstance(event_type, str) and event_type in _WS_EVENT_TYPES and isinstance(connection_id, str)


def classify(event: object) -> str:
    """Name the kind of event: ``websocket``, ``http``, ``job`` or ``unknown``.

    Args:
        event: Whatever Lambda delivered.

    Returns:
        The kind.
    """
    if not isinstance(event, Mapping):
        return "unknown"
    ctx = event.get("requestContext")
    if isinstance(ctx, Mapping) and _is_ws_event(ctx):
        return "websocket"
    if event.get("version") == "2.0" and isinstance(ctx, Mapping) and isinstance(ctx.get("http"), Mapping):
        return "http"
    if isinstance(event.get("httpMethod"), str) and isinstance(ctx, Mapping):
        return "http"
    if isinstance(event.get("selador_job"), Mapping):
        return "job"
    return "unknown"


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """The one entry point for every API Gateway event and internal job.

    Args:
        event: A WebSocket, HTTP API v2, REST v1 or job event.
        context: The Lambda context.

    Returns:
        The proxy response (``{"statusCode": …}``) or, for unknown events, a 400 naming the problem.
    """
    kind = classify(event)
    try:
        if kind == "websocket":
            from selador.deps import get_dependencies
            from selador.websocket.routes import handle as handle_websocket

            ctx = event["requestContext"]
            logger.thread_safe_append_keys(connection_id=ctx["connectionId"], route=ctx.get("routeKey"))
            logger.debug("websocket event", extra={"event_type": ctx.get("eventType")})
            return handle_websocket(event, context, get_dependencies())
        if kind == "http":
            from selador.http.app import handle as handle_http

            return handle_http(event, context)
        if kind == "job":
            from selador.deps import get_dependencies
            from selador.runs.jobs import run_job

            return run_job(event["selador_job"], context, get_dependencies())
    except Exception:  # noqa: BLE001 - last line of defence, logged with the traceback
        # The last line of defence: API Gateway would show the client "Internal server error";
        # log the detail, answer a clean 500, keep the container.
        logger.exception("unhandled error", extra={"event_kind": kind})
        return {"statusCode": 500, "body": '{"error": "internal error"}'}
    finally:
        logger.thread_safe_remove_keys(["connection_id", "route", "request_id", "query_type"])
    logger.warning(
        "unrecognised event",
        extra={"event_keys": sorted(event)[:20] if isinstance(event, Mapping) else type(event).__name__},
    )
    return {
        "statusCode": 400,
        "body": '{"error": "unrecognised event: expected an API Gateway WebSocket or HTTP proxy event"}',
    }
