"""The WebSocket API's management endpoint on the local gateway: ``/{stage}/@connections/{id}``.

PostToConnection (POST), GetConnection (GET) and DeleteConnection (DELETE) with API Gateway's
status codes and ``x-amzn-ErrorType`` headers, so a real boto3 ``apigatewaymanagementapi`` client
raises ``GoneException``, ``PayloadTooLargeException``, ``LimitExceededException`` and
``ForbiddenException`` as it does against AWS.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from selador.local.wire import aws_error, is_text

if TYPE_CHECKING:
    from selador.local.gateway import Gateway
    from selador.local.websocket_api import Connection

MANAGEMENT_PATH = "/{stage}/@connections/{connection_id}"


def _iso8601(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms / 1000)) + f".{epoch_ms % 1000:03d}Z"


class ConnectionsApi:
    """The ``@connections`` API of the gateway's WebSocket stage.

    Args:
        gateway: The gateway whose connections it manages.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        """The Starlette route of the API."""
        return [Route(MANAGEMENT_PATH, self.handle, methods=["GET", "POST", "DELETE"])]

    async def handle(self, request: Request) -> Response:
        """Answer one management call."""
        gateway = self.gateway
        if request.path_params["stage"] != gateway.options.stage:
            # The stage is part of the endpoint; a wrong one is API Gateway's 403.
            return aws_error(403, "ForbiddenException", "Forbidden")
        connection_id = unquote(request.path_params["connection_id"])
        conn = gateway.connections.get(connection_id)
        if request.method == "POST":
            return await self._post(conn, await request.body())
        if conn is None or not conn.reachable:
            return self._gone()
        if request.method == "GET":
            identity = {"sourceIp": conn.source_ip, "userAgent": conn.user_agent}
            return JSONResponse(
                {
                    "connectedAt": _iso8601(conn.connected_at),
                    "identity": identity,
                    "lastActiveAt": _iso8601(conn.last_active_at),
                }
            )
        gateway.spawn(gateway.close(conn, 1000, "Connection Closed Normally"))
        return Response(status_code=204)

    async def _post(self, conn: Connection | None, data: bytes) -> Response:
        counters, options = self.gateway.counters, self.gateway.options
        counters["posts"] += 1
        if len(data) > options.max_message_bytes:
            counters["payload_too_large_413"] += 1
            return aws_error(413, "PayloadTooLargeException", "Request entity too large")
        if options.inject_429 and random.random() < options.inject_429:
            counters["injected_429"] += 1
            return aws_error(429, "LimitExceededException", "Too Many Requests")
        if conn is None or not conn.reachable:
            if conn is not None and conn.state != "connecting":  # closed, or being closed
                conn.posts_after_close += 1
                counters["posts_after_gone"] += 1
            return self._gone()
        if conn._queued_bytes + len(data) > options.client_buffer_bytes:
            counters["buffer_full_429"] += 1
            return aws_error(429, "LimitExceededException", "Too Many Requests")
        conn.enqueue(data.decode("utf-8") if is_text(data) else data, len(data))
        counters["posts_delivered"] += 1
        return Response(status_code=200, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    def _gone(self) -> Response:
        # One answer whether the id never existed, is still in $connect, or has closed. The
        # service model's GoneException has no members, so no message: the error type travels
        # in the header botocore reads (SDKs print "GoneException: null").
        self.gateway.counters["gone_410"] += 1
        headers = {"x-amzn-ErrorType": "GoneException", "x-amzn-RequestId": str(uuid.uuid4())}
        return Response(b"{}", status_code=410, media_type="application/json", headers=headers)
