"""The local API Gateway: one Starlette app that plays every AWS endpoint the handler talks to.

* WebSocket API at ``/{stage}`` (only: other paths are refused): ``$connect`` runs during the
  handshake and can reject it, every text message becomes a MESSAGE event routed by
  ``$request.body.action``, every close a DISCONNECT event with its code and reason. Events come
  from :mod:`selador.local.events`.
* Management API at ``/{stage}/@connections/{connectionId}``
  (:mod:`selador.local.connections_api`): POST / GET / DELETE with API Gateway's status codes and
  ``x-amzn-ErrorType`` headers, so a real boto3 client raises ``GoneException`` and the others.
* HTTP API routes from the template, as payload-format 2.0 events (:mod:`selador.local.httpapi`).
* Lambda's Invoke API (``RequestResponse``, ``Event``, ``DryRun``), so an asynchronous hand-off
  through boto3 runs here too (:mod:`selador.local.lambda_api`).
* ``GET /_selador/stats``: counters for tests and soak runs (not an AWS endpoint).

This module holds the WebSocket API and what every endpoint shares (options, connections,
counters, the time limits); the others are separate modules that the app mounts.

Limits follow API Gateway's quotas; ``docs/local-gateway.md`` lists every behaviour emulated and
every one that is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from selador.local.connections_api import ConnectionsApi
from selador.local.events import (
    DEFAULT_ACCOUNT,
    DEFAULT_API_ID,
    DEFAULT_REGION,
    DEFAULT_STAGE,
    connect_event,
    disconnect_event,
    is_hop_by_hop,
    message_event,
    new_connection_id,
    select_route,
)
from selador.local.httpapi import HttpApi
from selador.local.lambda_api import LambdaApi
from selador.local.runtime import Invocation, LambdaRuntime
from selador.local.wire import now_ms

if TYPE_CHECKING:
    from selador.local.template import JwtRouteAuth
    from selador.settings import Settings

log = logging.getLogger("selador.gateway")

MAX_MESSAGE_BYTES = 128 * 1024
"""API Gateway's WebSocket message quota (inbound and PostToConnection)."""
MAX_FRAME_BYTES = 32 * 1024
"""API Gateway's WebSocket frame quota (enforced by the server protocol, see ``serve``)."""
RAW_HEADERS_EXTENSION = "selador.raw_headers"
"""ASGI scope extension holding the handshake's headers with their names as sent (see ``serve``);
without it (another server), the scope's lower-cased names are used as they are."""
STATS_PATH = "/_selador/stats"
ROUTE_SELECTION_EXPRESSION = "$request.body.action"
"""The only expression :func:`selador.local.events.select_route` evaluates."""

_CLOSED_KEPT = 10_000
"""Closed connections remembered, so a late POST answers 410 *and* is counted as after-gone."""

UNSUPPORTED_DATA = "Unsupported data"
"""Reason of the 1003 close for a binary frame (RFC 6455's name; AWS documents only the code)."""

# API Gateway's disconnectReason for closes it reports in its own words. 1000 and 1005 are from
# captured events; 1006 and 1009 are the RFC 6455 meaning, worded the same way. A client's 1001 is
# not here: captures show it with an empty reason ("Going away" is the gateway's own idle and
# two-hour close, which ``close`` records). Other codes keep the client's reason.
_DISCONNECT_REASONS = {
    1000: "Connection Closed Normally",
    1005: "Client-side close frame status not set",
    1006: "Connection Closed Abnormally",
    1009: "Message too big",
}


@dataclass(frozen=True)
class GatewayOptions:
    """How the gateway behaves; ``selador serve`` fills it from the template and the flags.

    Attributes:
        stage: The WebSocket stage (path prefix and ``requestContext.stage``).
        websocket_route_keys: Every WebSocket route key the template defines.
        http_routes: ``(METHOD, path)`` pairs of the HTTP API.
        function_name: The function the Lambda Invoke API answers for.
        api_id: WebSocket API id in events.
        http_api_id: HTTP API id in events.
        region: Region in ids and ARNs.
        account: Account id in ARNs.
        max_message_bytes: Largest inbound message and PostToConnection body.
        idle_timeout: Seconds without a message either way before closing with 1001.
        max_connection_duration: Seconds a connection may last before closing with 1001.
        integration_timeout: Seconds before a MESSAGE route answers "Endpoint request timed out"
            (``None``: never; default 29, API Gateway's maximum and its default).
        inject_429: Fraction of PostToConnection calls answered 429 without delivering.
        client_buffer_bytes: Bytes posted but not yet written to a client before further posts
            answer 429 ("the client-side buffer is full").
        async_retries: Retries of a failed ``Event`` invocation (Lambda's default: 2).
        async_retry_delay: Seconds before the first retry; the second waits twice as long.
        async_duplicate_rate: Fraction of ``Event`` invocations delivered twice (at-least-once).
        disconnect_drop_rate: Fraction of ``$disconnect`` invocations skipped (best-effort delivery).
        http_jwt_routes: HTTP API routes behind a JWT authorizer (from the template).
        auth_settings: The handler's settings when its ``AUTH_MODE`` is ``jwt``: the JWT
            authorizer checks tokens with them. ``None``: the authorizer lets every request in,
            as authentication is off locally.
    """

    stage: str = DEFAULT_STAGE
    websocket_route_keys: tuple[str, ...] = ("$connect", "$disconnect", "$default")
    http_routes: tuple[tuple[str, str], ...] = ()
    function_name: str = "function"
    api_id: str = DEFAULT_API_ID
    http_api_id: str = "sel4d0rhttp"
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    max_message_bytes: int = MAX_MESSAGE_BYTES
    idle_timeout: float = 600.0
    max_connection_duration: float = 7200.0
    integration_timeout: float | None = 29.0
    inject_429: float = 0.0
    client_buffer_bytes: int = 1024 * 1024
    async_retries: int = 2
    async_retry_delay: float = 1.0
    async_duplicate_rate: float = 0.0
    disconnect_drop_rate: float = 0.0
    http_jwt_routes: Mapping[tuple[str, str], JwtRouteAuth] = field(default_factory=dict)
    auth_settings: Settings | None = None


@dataclass
class Connection:
    """One WebSocket connection as the gateway tracks it.

    Attributes:
        connection_id: API Gateway-shaped id.
        websocket: The Starlette WebSocket.
        connected_at: Epoch milliseconds of the handshake.
        source_ip: Client address.
        user_agent: Client User-Agent (empty when the client sent none, in events too).
        path: Request path of the handshake.
        query: Query-string parameters (last value of each name).
        state: ``connecting`` (``$connect`` running), ``open`` or ``closed``.
        last_active_at: Epoch milliseconds of the last message either way.
        frames_delivered: Messages written to the client.
        posts_after_close: PostToConnection calls after the connection closed.
        close_code: Close code once closed.
        close_reason: ``disconnectReason`` once closed.
    """

    connection_id: str
    websocket: WebSocket
    connected_at: int
    source_ip: str
    user_agent: str
    path: str
    query: dict[str, str]
    state: str = "connecting"
    last_active_at: int = 0
    frames_delivered: int = 0
    posts_after_close: int = 0
    close_code: int | None = None
    close_reason: str | None = None
    _last_active: float = field(default_factory=time.monotonic, repr=False)
    _opened: float = field(default_factory=time.monotonic, repr=False)
    _outbox: asyncio.Queue[tuple[str | bytes, int]] = field(default_factory=asyncio.Queue, repr=False)
    _queued_bytes: int = field(default=0, repr=False)
    _close_requested: tuple[int, str] | None = field(default=None, repr=False)
    _finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def enqueue(self, item: str | bytes, size: int) -> None:
        """Queue one outbound message for the connection's writer; ``size`` is its byte count."""
        self._queued_bytes += size
        self._outbox.put_nowait((item, size))
        self.touch()

    def touch(self) -> None:
        """Record a message either way (what the idle timeout counts)."""
        self._last_active = time.monotonic()
        self.last_active_at = now_ms()

    def summary(self) -> dict[str, Any]:
        """The connection as ``/_selador/stats`` lists it."""
        return {
            "connectionId": self.connection_id,
            "state": self.state,
            "path": self.path,
            "query": self.query,
            "connectedAt": self.connected_at,
            "lastActiveAt": self.last_active_at,
            "framesDelivered": self.frames_delivered,
            "postsAfterClose": self.posts_after_close,
            "closeCode": self.close_code,
            "closeReason": self.close_reason,
        }


class Gateway:
    """The gateway's state and its Starlette app.

    Args:
        runtime: Runs the handler.
        options: Behaviour and limits.
    """

    def __init__(self, runtime: LambdaRuntime, options: GatewayOptions | None = None) -> None:
        self.runtime = runtime
        self.options = options or GatewayOptions()
        self.connections: dict[str, Connection] = {}
        self._closed_order: deque[str] = deque()
        self._background: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.shutting_down = False
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "connections_total",
                "connections_rejected",
                "messages_in",
                "posts",
                "posts_delivered",
                "posts_after_gone",
                "gone_410",
                "payload_too_large_413",
                "injected_429",
                "buffer_full_429",
                "integration_timeouts",
                "binary_frames_1003",
                "async_invocations",
                "async_retries",
            ),
            0,
        )
        keys = self.options.websocket_route_keys
        self._message_routes = tuple(k for k in keys if not k.startswith("$"))
        self.app = self._build_app()

    # ------------------------------------------------------------------------------ app wiring

    def _build_app(self) -> Starlette:
        stage = self.options.stage
        routes: list[Route | WebSocketRoute] = [
            # The stage only: API Gateway's URL needs it, and any other path is refused (403).
            WebSocketRoute(f"/{stage}", self._websocket),
            *ConnectionsApi(self).routes(),
            *LambdaApi(self).routes(),
            Route(STATS_PATH, self._stats, methods=["GET"]),
            *HttpApi(self).routes(),
        ]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        # An HTTP API has no redirects: "/health/" is another path, and it has no route.
        app.router.redirect_slashes = False
        return app

    def start(self) -> None:
        """Start enforcing the idle and duration limits; call on the serving event loop."""
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._enforce_time_limits())

    def stop(self) -> None:
        """Stop enforcing the limits."""
        if self._watchdog is not None:
            self._watchdog.cancel()

    async def _http_error(self, _request: Request, exc: Exception) -> Response:
        # An HTTP API answers a path or a method without a route alike: 404 {"message":"Not Found"}
        # (a route is a method and a path, so a wrong method is no route at all).
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status in (404, 405):
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return JSONResponse({"message": "Internal Server Error"}, status_code=status)

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------------------ WebSocket

    def _event_identity(self, conn: Connection) -> dict[str, Any]:
        return {
            "connection_id": conn.connection_id,
            "stage": self.options.stage,
            "api_id": self.options.api_id,
            "source_ip": conn.source_ip,
            "user_agent": conn.user_agent,
            "connected_at": conn.connected_at,
        }

    async def _websocket(self, websocket: WebSocket) -> None:
        if self.shutting_down:
            await websocket.close(code=1001)
            return
        scope = websocket.scope
        sent = scope.get("extensions", {}).get(RAW_HEADERS_EXTENSION) or scope["headers"]
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in sent]
        user_agent = next((v for k, v in raw_headers if k.lower() == "user-agent"), "")
        query_pairs = parse_qsl(
            websocket.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        connection_id = new_connection_id()
        while connection_id in self.connections:
            connection_id = new_connection_id()
        conn = Connection(
            connection_id=connection_id,
            websocket=websocket,
            connected_at=now_ms(),
            source_ip=websocket.client.host if websocket.client else "127.0.0.1",
            user_agent=user_agent,
            path=websocket.scope["path"],
            query=dict(query_pairs),
        )
        conn.last_active_at = conn.connected_at
        self.connections[connection_id] = conn
        self.counters["connections_total"] += 1
        try:
            if not await self._connect(conn, raw_headers, query_pairs):
                return
            sender = asyncio.create_task(self._send_loop(conn))
            conn.close_code, conn.close_reason = await self._receive_loop(conn)
            conn.state = "closed"
            sender.cancel()
            await self._disconnect(conn)
        finally:
            self._mark_closed(conn)
            conn._finished.set()

    async def _connect(
        self, conn: Connection, raw_headers: list[tuple[str, str]], query_pairs: list[tuple[str, str]]
    ) -> bool:
        """Run ``$connect`` and accept or reject the handshake; ``True`` when accepted."""
        websocket = conn.websocket
        accept_headers: dict[str, str] = {}
        if "$connect" in self.options.websocket_route_keys:
            event = connect_event(**self._event_identity(conn), query=conn.query or None)
            added = dict(event["headers"])
            # The port and scheme the client reached this gateway on, as for the HTTP API (and
            # like Host): API Gateway's own would be 443 and https.
            server = websocket.scope.get("server")
            if server:
                added["X-Forwarded-Port"] = str(server[1])
            added["X-Forwarded-Proto"] = "https" if websocket.scope.get("scheme") == "wss" else "http"
            event["headers"], event["multiValueHeaders"] = _connect_headers(added, raw_headers)
            if query_pairs:
                multi: dict[str, list[str]] = {}
                for name, value in query_pairs:
                    multi.setdefault(name, []).append(value)
                event["multiValueQueryStringParameters"] = multi
            outcome = await self.runtime.invoke(event, label=f"ws $connect {conn.connection_id}")
            status, body, accept_headers = _connect_answer(outcome)
            if not 200 <= status < 300:
                self.counters["connections_rejected"] += 1
                await _deny(websocket, status, body)
                return False
        subprotocol = next(
            (v for k, v in accept_headers.items() if k.lower() == "sec-websocket-protocol"), None
        )
        await websocket.accept(subprotocol=subprotocol)
        conn.state = "open"
        conn.touch()
        return True

    async def _receive_loop(self, conn: Connection) -> tuple[int, str]:
        """Dispatch inbound messages until the connection closes; returns the close code and reason."""
        limit = self.options.max_message_bytes
        while True:
            message = await conn.websocket.receive()
            if message["type"] == "websocket.disconnect":
                requested = conn._close_requested
                if requested is not None:
                    # The gateway closed it: $disconnect reports the gateway's code and reason.
                    return requested
                code = int(message.get("code") or 1005)
                return code, _DISCONNECT_REASONS.get(code, message.get("reason") or "")
            body = message.get("text")
            if body is None:
                # WebSocket APIs take no binary frames: API Gateway closes the connection, and the
                # message never reaches a route.
                self.counters["binary_frames_1003"] += 1
                await self.close(conn, 1003, UNSUPPORTED_DATA, tell_client=True)
                continue
            if len(body.encode()) > limit:
                # The server protocol enforces this already (see serve); kept for any other server.
                await self.close(conn, 1009, "Message too big")
                continue
            self.counters["messages_in"] += 1
            conn.touch()
            self.spawn(self._on_message(conn, body))

    async def _on_message(self, conn: Connection, body: str) -> None:
        route = select_route(body, self._message_routes)
        event = message_event(body, route_key=route, **self._event_identity(conn))
        request_id = event["requestContext"]["requestId"]
        if route not in self.options.websocket_route_keys:
            self._gateway_frame(conn, "Forbidden", request_id)
            return
        invocation = asyncio.ensure_future(
            self.runtime.invoke(event, label=f"ws {route} {conn.connection_id}")
        )
        timed_out = False
        if self.options.integration_timeout is not None:
            done, _ = await asyncio.wait({invocation}, timeout=self.options.integration_timeout)
            if not done:
                # API Gateway stops waiting; the function goes on and may still post.
                timed_out = True
                self.counters["integration_timeouts"] += 1
                self._gateway_frame(conn, "Endpoint request timed out", request_id)
        outcome = await invocation
        if not outcome.ok and not timed_out:
            self._gateway_frame(conn, "Internal server error", request_id)

    def _gateway_frame(self, conn: Connection, message: str, request_id: str) -> None:
        """Queue one of API Gateway's own frames (it is a message: it counts as activity)."""
        if conn.state != "open":
            return
        frame = json.dumps({"message": message, "connectionId": conn.connection_id, "requestId": request_id})
        conn.enqueue(frame, len(frame))

    async def _send_loop(self, conn: Connection) -> None:
        """The connection's only writer, so frames leave in the order they were accepted."""
        while True:
            item, size = await conn._outbox.get()
            try:
                if isinstance(item, str):
                    await conn.websocket.send_text(item)
                else:
                    await conn.websocket.send_bytes(item)
            except (WebSocketDisconnect, OSError, RuntimeError):
                return
            conn._queued_bytes -= size
            conn.frames_delivered += 1

    async def _disconnect(self, conn: Connection) -> None:
        if "$disconnect" not in self.options.websocket_route_keys:
            return
        if self.options.disconnect_drop_rate and random.random() < self.options.disconnect_drop_rate:
            log.info("ws $disconnect %s dropped (--drop-disconnect)", conn.connection_id)
            return
        code = conn.close_code if conn.close_code is not None else 1005
        event = disconnect_event(
            status_code=code, reason=conn.close_reason or "", **self._event_identity(conn)
        )
        await self.runtime.invoke(event, label=f"ws $disconnect {conn.connection_id} ({code})")

    def _mark_closed(self, conn: Connection) -> None:
        conn.state = "closed"
        self._closed_order.append(conn.connection_id)
        while len(self._closed_order) > _CLOSED_KEPT:
            self.connections.pop(self._closed_order.popleft(), None)

    async def close(
        self, conn: Connection, code: int, reason: str, *, wait: float = 5.0, tell_client: bool = False
    ) -> None:
        """Close a connection from the server side (DELETE, limits, binary frames, shutdown).

        Args:
            conn: The connection.
            code: Close code sent to the client and reported to ``$disconnect``.
            reason: ``disconnectReason`` for ``$disconnect``.
            wait: Seconds to wait for the close frame to be written (a client that stopped
                reading can hold it up).
            tell_client: Put ``reason`` in the close frame too (otherwise the frame has none).
        """
        if conn.state != "open" or conn._close_requested is not None:
            return
        conn._close_requested = (code, reason)
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
            await asyncio.wait_for(conn.websocket.close(code, reason if tell_client else None), wait)

    async def close_all(self, code: int = 1001, reason: str = "Going away", timeout: float = 5.0) -> None:
        """Close every connection and wait for their ``$disconnect`` invocations (bounded).

        Args:
            code: Close code.
            reason: ``disconnectReason``.
            timeout: Seconds to wait in all.
        """
        self.shutting_down = True
        live = [c for c in self.connections.values() if c.state != "closed"]
        await asyncio.gather(*(self.close(c, code, reason, wait=timeout) for c in live))
        pending = [asyncio.ensure_future(c._finished.wait()) for c in live]
        if pending:
            _, not_done = await asyncio.wait(pending, timeout=timeout)
            for task in not_done:
                task.cancel()

    async def drain(self, timeout: float = 5.0) -> int:
        """Wait, still serving, for running invocations to end (their posts now answer 410).

        Args:
            timeout: Seconds to wait at most.

        Returns:
            How many are still running.
        """
        deadline = time.monotonic() + timeout
        while self.runtime.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.runtime.running

    async def _enforce_time_limits(self) -> None:
        """Close idle and over-age connections with 1001, as API Gateway does."""
        idle, longest = self.options.idle_timeout, self.options.max_connection_duration
        tick = max(0.05, min(1.0, idle / 4, longest / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for conn in list(self.connections.values()):
                if conn.state != "open":
                    continue
                if now - conn._last_active >= idle or now - conn._opened >= longest:
                    self.spawn(self.close(conn, 1001, "Going away"))

    # ------------------------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counters, running invocations and every tracked connection.

        Returns:
            The document ``GET /_selador/stats`` answers.
        """
        return {
            **self.counters,
            "invocations_running": self.runtime.running,
            "invocations_total": self.runtime.total,
            "invocation_errors": self.runtime.errors,
            "connections_open": sum(1 for c in self.connections.values() if c.state == "open"),
            "connections": [c.summary() for c in self.connections.values()],
        }

    async def _stats(self, _request: Request) -> Response:
        return JSONResponse(self.stats())


# ---------------------------------------------------------------------------------- helpers


def _connect_headers(
    defaults: dict[str, str], raw_headers: Iterable[tuple[str, str]]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The client's handshake headers plus the ``X-Forwarded-*``/trace headers API Gateway adds.

    Names keep the casing they arrived with, as API Gateway passes them: uvicorn's websockets
    protocol hands the raw names over (a server that follows ASGI to the letter would hand them
    lower-cased, and they would stay so). Hop-by-hop headers end at API Gateway.
    """
    raw = [(n, v) for n, v in raw_headers if not is_hop_by_hop(n)]
    sent = {name.lower() for name, _ in raw}
    headers = {k: v for k, v in defaults.items() if k.startswith("X-") and k.lower() not in sent}
    multi = {k: [v] for k, v in headers.items()}
    for name, value in raw:
        # A repeated header: the last value in ``headers``, every value in ``multiValueHeaders``.
        headers[name] = value
        multi.setdefault(name, []).append(value)
    return headers, multi


def _connect_answer(outcome: Invocation) -> tuple[int, str, dict[str, str]]:
    """Status, body and headers of a ``$connect`` proxy response (a function error is a 502)."""
    if outcome.error is not None:
        return 502, json.dumps({"message": "Internal server error"}), {}
    payload = outcome.payload
    if not isinstance(payload, dict):
        return 200, "", {}
    status = payload.get("statusCode", 200)
    if not isinstance(status, int) or not 100 <= status <= 599:
        return 502, json.dumps({"message": "Internal server error"}), {}
    headers = payload.get("headers") if isinstance(payload.get("headers"), dict) else {}
    body = payload.get("body")
    return status, body if isinstance(body, str) else "", {str(k): str(v) for k, v in (headers or {}).items()}


async def _deny(websocket: WebSocket, status: int, body: str) -> None:
    try:
        await websocket.send_denial_response(
            Response(body, status_code=status, media_type="application/json")
        )
    except RuntimeError:
        # A server without the denial-response extension can only refuse with 403.
        await websocket.close(code=1008)


__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "RAW_HEADERS_EXTENSION",
    "ROUTE_SELECTION_EXPRESSION",
    "STATS_PATH",
    "Connection",
    "Gateway",
    "GatewayOptions",
]
