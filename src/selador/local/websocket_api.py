"""The WebSocket API on the local gateway: ``ws://HOST:PORT/{stage}``.

``$connect`` runs during the handshake and can reject it (its status is the HTTP answer); every
text message becomes a MESSAGE event routed by ``$request.body.action``; a binary frame closes the
connection with 1003, as API Gateway takes none; every close becomes a DISCONNECT event with its
code and reason. Each connection has one writer, so frames leave in the order they were accepted.
Events come from :mod:`selador.local.events`; limits, closes and counters are the gateway's
(:class:`selador.local.gateway.Gateway`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from selador.local.events import (
    connect_event,
    disconnect_event,
    is_hop_by_hop,
    message_event,
    new_connection_id,
    select_route,
)
from selador.local.guard import redact_query
from selador.local.runtime import Invocation
from selador.local.wire import now_ms

if TYPE_CHECKING:
    from selador.local.gateway import Gateway

log = logging.getLogger("selador.gateway")

RAW_HEADERS_EXTENSION = "selador.raw_headers"
"""ASGI scope extension holding the handshake's headers with their names as sent (see ``serve``);
without it (another server), the scope's lower-cased names are used as they are."""
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

    @property
    def reachable(self) -> bool:
        """Open and not being closed: what @connections may post to, read or delete.

        Once the gateway has decided to close a connection (DELETE, a limit), API Gateway treats
        it as gone, even while a slow client holds up the close frame.
        """
        return self.state == "open" and self._close_requested is None

    def summary(self) -> dict[str, Any]:
        """The connection as ``/_selador/stats`` lists it."""
        return {
            "connectionId": self.connection_id,
            "state": self.state,
            "path": self.path,
            # A browser's only way to send a credential on a WebSocket is the query string.
            "query": redact_query(self.query),
            "connectedAt": self.connected_at,
            "lastActiveAt": self.last_active_at,
            "framesDelivered": self.frames_delivered,
            "postsAfterClose": self.posts_after_close,
            "closeCode": self.close_code,
            "closeReason": self.close_reason,
        }


class WebSocketApi:
    """The WebSocket API of the gateway's stage.

    Args:
        gateway: The gateway whose options, runtime, connections and counters it uses.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        keys = gateway.options.websocket_route_keys
        self._message_routes = tuple(k for k in keys if not k.startswith("$"))

    def routes(self) -> list[WebSocketRoute]:
        """The stage's route only: API Gateway's URL needs the stage; other paths are refused (403)."""
        return [WebSocketRoute(f"/{self.gateway.options.stage}", self.handle)]

    def _event_identity(self, conn: Connection) -> dict[str, Any]:
        return {
            "connection_id": conn.connection_id,
            "stage": self.gateway.options.stage,
            "api_id": self.gateway.options.api_id,
            "source_ip": conn.source_ip,
            # A client that sent no User-Agent has none in the event's identity, as in captures.
            "user_agent": conn.user_agent or None,
            "connected_at": conn.connected_at,
        }

    async def handle(self, websocket: WebSocket) -> None:
        """Serve one WebSocket connection from its handshake to its ``$disconnect``."""
        if self.gateway.shutting_down:
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
        while connection_id in self.gateway.connections:
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
        self.gateway.connections[connection_id] = conn
        self.gateway.counters["connections_total"] += 1
        try:
            if not await self._connect(conn, raw_headers, query_pairs):
                return
            sender = asyncio.create_task(self._send_loop(conn))
            conn.close_code, conn.close_reason = await self._receive_loop(conn)
            conn.state = "closed"
            sender.cancel()
            await self._disconnect(conn)
        finally:
            self.gateway.mark_closed(conn)
            conn._finished.set()

    async def _connect(
        self, conn: Connection, raw_headers: list[tuple[str, str]], query_pairs: list[tuple[str, str]]
    ) -> bool:
        """Run ``$connect`` and accept or reject the handshake; ``True`` when accepted."""
        websocket = conn.websocket
        accept_headers: dict[str, str] = {}
        if "$connect" in self.gateway.options.websocket_route_keys:
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
            invocation = asyncio.ensure_future(
                self.gateway.runtime.invoke(event, label=f"ws $connect {conn.connection_id}")
            )
            done, _ = await asyncio.wait({invocation}, timeout=self.gateway.options.connect_timeout)
            if not done:
                # The integration quota covers $connect too: API Gateway refuses the handshake
                # (the function runs on; whatever it stores belongs to a connection never opened).
                self.gateway.counters["integration_timeouts"] += 1
                self.gateway.counters["connections_rejected"] += 1
                await _deny(websocket, 504, json.dumps({"message": "Endpoint request timed out"}))
                return False
            status, body, accept_headers = _connect_answer(invocation.result())
            if not 200 <= status < 300:
                self.gateway.counters["connections_rejected"] += 1
                await _deny(websocket, status, body)
                return False
        subprotocol = next(
            (v for k, v in accept_headers.items() if k.lower() == "sec-websocket-protocol"), None
        )
        try:
            await websocket.accept(subprotocol=subprotocol)
        except Exception:  # noqa: BLE001 - uvicorn's ClientDisconnected, or a transport error
            # The client left while $connect ran: $connect succeeded, so in AWS $disconnect
            # follows (1006, no close frame) and the function can clean up what it stored.
            conn.state, conn.close_code = "closed", 1006
            conn.close_reason = _DISCONNECT_REASONS.get(1006, "")
            await self._disconnect(conn)
            return False
        conn.state = "open"
        conn.touch()
        return True

    async def _receive_loop(self, conn: Connection) -> tuple[int, str]:
        """Dispatch inbound messages until the connection closes; returns the close code and reason."""
        limit = self.gateway.options.max_message_bytes
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
                self.gateway.counters["binary_frames_1003"] += 1
                await self.gateway.close(conn, 1003, UNSUPPORTED_DATA, tell_client=True)
                continue
            if len(body.encode()) > limit:
                # The server protocol enforces this already (see serve); kept for any other server.
                await self.gateway.close(conn, 1009, "Message too big")
                continue
            self.gateway.counters["messages_in"] += 1
            conn.touch()
            self.gateway.spawn(self._on_message(conn, body))

    async def _on_message(self, conn: Connection, body: str) -> None:
        route = select_route(body, self._message_routes)
        event = message_event(body, route_key=route, **self._event_identity(conn))
        request_id = event["requestContext"]["requestId"]
        if route not in self.gateway.options.websocket_route_keys:
            self._gateway_frame(conn, "Forbidden", request_id)
            return
        invocation = asyncio.ensure_future(
            self.gateway.runtime.invoke(event, label=f"ws {route} {conn.connection_id}")
        )
        timed_out = False
        if self.gateway.options.integration_timeout is not None:
            done, _ = await asyncio.wait({invocation}, timeout=self.gateway.options.integration_timeout)
            if not done:
                # API Gateway stops waiting; the function goes on and may still post.
                timed_out = True
                self.gateway.counters["integration_timeouts"] += 1
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
        options = self.gateway.options
        if "$disconnect" not in options.websocket_route_keys:
            return
        if options.disconnect_drop_rate and random.random() < options.disconnect_drop_rate:
            log.info("ws $disconnect %s dropped (--drop-disconnect)", conn.connection_id)
            return
        code = conn.close_code if conn.close_code is not None else 1005
        event = disconnect_event(
            status_code=code, reason=conn.close_reason or "", **self._event_identity(conn)
        )
        await self.gateway.runtime.invoke(event, label=f"ws $disconnect {conn.connection_id} ({code})")


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
