"""``lambda_handler``: classify the event and dispatch. Nothing else lives here.

Route modules are imported on first use, so a ``$connect``, ``$disconnect`` or HTTP health
invocation never imports strands, and a container only loads what its traffic needs.

Every invocation's log lines carry Powertools' Lambda context keys (``cold_start``,
``function_request_id``…) and a ``correlation_id``, API Gateway's ``requestContext.requestId``;
its metrics are collected in one :func:`selador.metrics.invocation_scope` and flushed once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from selador import metrics
from selador.invocation import HTTP_ROUTES, WEBSOCKET_ROUTES, complete_context, route_of
from selador.observability import logger

if TYPE_CHECKING:
    # Only a type: importing Powertools' typing package at run time costs a cold start 2 ms.
    from aws_lambda_powertools.utilities.typing import LambdaContext

_WS_EVENT_TYPES = frozenset({"CONNECT", "MESSAGE", "DISCONNECT"})


def _is_ws_event(ctx: Mapping[str, Any]) -> bool:
    event_type, connection_id = ctx.get("eventType"), ctx.get("connectionId")
    # Check types before the set lookup: a list there is unhashable and must not raise.
    return isinstance(event_type, str) and event_type in _WS_EVENT_TYPES and isinstance(connection_id, str)


def classify(event: object) -> str:
    """Name the kind of event: ``websocket``, ``http``, ``job``, ``sqs`` or ``unknown``.

    ``sqs`` is a batch from the queue of failed jobs (Lambda's on-failure destination, read by an
    event source mapping of this function: :mod:`selador.runs.failed`).

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
    if _is_sqs_event(event):
        return "sqs"
    return "unknown"


def _is_sqs_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    # The first record decides: an event source mapping never mixes sources in one batch.
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and records[0].get("eventSource") == "aws:sqs"
    )


def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """The one entry point for every API Gateway event and internal job.

    Args:
        event: A WebSocket, HTTP API v2, REST v1, job or SQS (failed jobs) event.
        context: The Lambda context (a partial one, as some tools pass, is completed).

    Returns:
        The proxy response (``{"statusCode": …}``), ``{"batchItemFailures": […]}`` for an SQS batch,
        or, for unknown events, a 400 naming the problem.
    """
    return _handle(event, complete_context(context))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def _handle(event: Any, context: LambdaContext) -> dict[str, Any]:
    kind = classify(event)
    _keep_invocation_keys(event, context)
    try:
        with metrics.invocation_scope(route_of(kind, event), invocation=context.aws_request_id):
            return _dispatch(kind, event, context)
    finally:
        # A new (empty) mapping, not a removal from the current one: a run started on another
        # thread shares this one through copy_context() and must keep its keys.
        logger.thread_safe_clear_keys()


def _keep_invocation_keys(event: Any, context: LambdaContext) -> None:
    """Copy the decorator's per-invocation keys into this thread's keys.

    ``inject_lambda_context`` appends them to the logger itself, which every thread shares: the
    local gateway runs invocations on threads of one process, and its concurrent invocations would
    log each other's request ids. Thread-local keys win over the shared ones.
    """
    ctx = event.get("requestContext") if isinstance(event, Mapping) else None
    correlation_id = ctx.get("requestId") if isinstance(ctx, Mapping) else None
    logger.thread_safe_append_keys(
        cold_start=logger.get_current_keys().get("cold_start"),
        function_request_id=context.aws_request_id,
        correlation_id=correlation_id,
    )


def _dispatch(kind: str, event: Any, context: LambdaContext) -> dict[str, Any]:
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
        if kind == "sqs":
            from selador.deps import get_dependencies
            from selador.runs.failed import handle_failed_jobs

            return handle_failed_jobs(event, get_dependencies())
    except Exception:  # noqa: BLE001 - last line of defence, logged with the traceback
        # The last line of defence: API Gateway would show the client "Internal server error";
        # log the detail, answer a clean 500, keep the container.
        logger.exception("unhandled error", extra={"event_kind": kind})
        metrics.error("internal_error")
        if kind == "sqs":
            from selador.runs.failed import retry_all

            # A batch answer without batchItemFailures would tell SQS that every record succeeded.
            return retry_all(event)
        return {"statusCode": 500, "body": '{"error": "internal error"}'}
    logger.warning(
        "unrecognised event",
        extra={"event_keys": sorted(event)[:20] if isinstance(event, Mapping) else type(event).__name__},
    )
    metrics.error("unrecognised_event")
    return {
        "statusCode": 400,
        "body": '{"error": "unrecognised event: expected an API Gateway WebSocket or HTTP proxy event"}',
    }


__all__ = ["HTTP_ROUTES", "WEBSOCKET_ROUTES", "classify", "lambda_handler", "route_of"]
