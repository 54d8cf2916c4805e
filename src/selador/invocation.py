"""What the handler knows about an invocation besides its event kind: routes and the context.

* :data:`WEBSOCKET_ROUTES` and :data:`HTTP_ROUTES`: the routes served (the template must define
  exactly these; ``tests/unit/deploy/test_template.py`` checks it).
* :func:`route_of`: the ``route`` dimension of an invocation's metrics.
* :func:`complete_context`: a Lambda context with every attribute the logger's decorator reads.

Kept out of :mod:`selador.handler`, which only classifies and dispatches; imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    "GET /sessions",
    "GET /sessions/{session_id}",
    "DELETE /sessions/{session_id}",
    "GET /health",
)
"""The HTTP routes this handler serves (the template must define exactly these)."""


def route_of(kind: str, event: Any) -> str:
    """The ``route`` dimension of an invocation's metrics.

    Args:
        kind: What :func:`classify` said.
        event: The event.

    Returns:
        A WebSocket route key, an HTTP route (``POST /invoke``, ``GET /runs/{request_id}``), ``job``,
        ``failed_job`` (the queue of failed jobs) or ``unknown``.
    """
    if kind == "job":
        return "job"
    if kind == "sqs":
        return "failed_job"
    if kind == "websocket":
        route_key = event["requestContext"].get("routeKey")
        # Unknown keys are answered like $default (routes.handle) and counted as it.
        return route_key if route_key in WEBSOCKET_ROUTES else "$default"
    if kind == "http":
        return _http_route(event)
    return "unknown"


_ID_ROUTES = {"runs": "/runs/{request_id}", "sessions": "/sessions/{session_id}"}
"""The routes with an id in their path, by their first segment."""


def _http_route(event: Mapping[str, Any]) -> str:
    """One of :data:`HTTP_ROUTES`, or ``other``: a path must never become a dimension value.

    The HTTP API's ``routeKey`` is the route (``GET /runs/{request_id}``); REST's is ``resource``;
    a gateway that puts the concrete path there (``GET /runs/q-1``) is mapped back to its route.
    """
    method = event.get("httpMethod")
    ctx = event.get("requestContext")
    http = ctx.get("http") if isinstance(ctx, Mapping) else None
    if isinstance(http, Mapping):
        method = http.get("method")
    candidates = [event.get("routeKey"), f"{method} {event.get('resource')}"]
    path = http.get("path") if isinstance(http, Mapping) else event.get("path")
    if isinstance(path, str):
        parts = path.split("/")
        template = path
        if len(parts) == 3 and parts[2] and parts[1] in _ID_ROUTES:
            template = _ID_ROUTES[parts[1]]
        candidates.append(f"{method} {template}")
    for candidate in candidates:
        if candidate in HTTP_ROUTES:
            return str(candidate)
    return "other"


_CONTEXT_DEFAULTS = {
    "function_name": "",
    "function_version": "$LATEST",
    "memory_limit_in_mb": 0,
    "invoked_function_arn": "",
    "aws_request_id": "",
    "log_group_name": "",
    "log_stream_name": "",
}


class _CompletedContext:
    """A context missing some of Lambda's attributes, with neutral values for them.

    Lambda always passes every attribute; test doubles and some local tools do not, and the
    logger's decorator reads them all before the handler's own error handling runs.
    """

    def __init__(self, context: Any) -> None:
        self._context = context
        for name, default in _CONTEXT_DEFAULTS.items():
            setattr(self, name, getattr(context, name, default))

    def get_remaining_time_in_millis(self) -> int:
        getter = getattr(self._context, "get_remaining_time_in_millis", None)
        return int(getter()) if callable(getter) else 900_000


def complete_context(context: Any) -> Any:
    """``context`` itself when it has every attribute Lambda passes, else a completed copy."""
    if all(hasattr(context, name) for name in _CONTEXT_DEFAULTS) and hasattr(
        context, "get_remaining_time_in_millis"
    ):
        return context
    return _CompletedContext(context)


__all__ = ["HTTP_ROUTES", "WEBSOCKET_ROUTES", "complete_context", "route_of"]
