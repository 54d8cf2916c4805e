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
* ``GET /openapi.json``: the HTTP API's OpenAPI document (:mod:`selador.local.apidocs.route`;
  not an AWS endpoint).
* ``GET /``: the playground page (:mod:`selador.local.playground`; not an AWS endpoint).

This module holds what every endpoint shares (options, connections, counters, closing, the time
limits) and mounts the APIs, each a module of its own (the WebSocket API in
:mod:`selador.local.websocket_api`).

Limits follow API Gateway's quotas; ``docs/local-gateway.md`` lists every behaviour emulated and
every one that is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from selador.local.apidocs.route import openapi_routes
from selador.local.connections_api import ConnectionsApi
from selador.local.events import (
    DEFAULT_ACCOUNT,
    DEFAULT_API_ID,
    DEFAULT_REGION,
    DEFAULT_STAGE,
)
from selador.local.guard import HostPolicy, LocalGuard
from selador.local.httpapi import HttpApi
from selador.local.lambda_api import LambdaApi
from selador.local.playground import Playground
from selador.local.runtime import LambdaRuntime
from selador.local.websocket_api import RAW_HEADERS_EXTENSION, Connection, WebSocketApi

if TYPE_CHECKING:
    from selador.local.template import JwtRouteAuth
    from selador.settings import Settings

log = logging.getLogger("selador.gateway")

MAX_MESSAGE_BYTES = 128 * 1024
"""API Gateway's WebSocket message quota (inbound and PostToConnection)."""
MAX_FRAME_BYTES = 32 * 1024
"""API Gateway's WebSocket frame quota (enforced by the server protocol, see ``serve``)."""
STATS_PATH = "/_selador/stats"
ROUTE_SELECTION_EXPRESSION = "$request.body.action"
"""The only expression :func:`selador.local.events.select_route` evaluates."""

_CLOSED_KEPT = 10_000
"""Closed connections remembered, so a late POST answers 410 *and* is counted as after-gone."""


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
        connect_timeout: Seconds before ``$connect`` refuses the handshake with 504 (API Gateway's
            29 s integration quota; ``--integration-timeout`` leaves it alone, so a test can
            time out message routes without refusing every handshake).
        inject_429: Fraction of PostToConnection calls answered 429 without delivering.
        client_buffer_bytes: Bytes posted but not yet written to a client before further posts
            answer 429 ("the client-side buffer is full").
        async_retries: Retries of a failed ``Event`` invocation (Lambda's default: 2).
        async_retry_delay: Seconds before the first retry; the second waits twice as long.
        async_duplicate_rate: Fraction of ``Event`` invocations delivered twice (at-least-once).
        async_on_failure: Hand an ``Event`` invocation that failed every attempt back to the
            function as an SQS event carrying Lambda's on-failure record (the template's
            ``EventInvokeConfig.DestinationConfig.OnFailure`` to an SQS queue read by the function).
        disconnect_drop_rate: Fraction of ``$disconnect`` invocations skipped (best-effort delivery).
        bound_host: The address served, accepted as a ``Host`` (``0.0.0.0``/``::``: any IP literal).
        allowed_hosts: More host names accepted as a ``Host`` and in a browser ``Origin``.
        allowed_origins: Web pages from elsewhere allowed to open the WebSocket API (``*``: any).
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
    connect_timeout: float = 29.0
    inject_429: float = 0.0
    client_buffer_bytes: int = 1024 * 1024
    async_retries: int = 2
    async_retry_delay: float = 1.0
    async_duplicate_rate: float = 0.0
    async_on_failure: bool = False
    disconnect_drop_rate: float = 0.0
    bound_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    http_jwt_routes: Mapping[tuple[str, str], JwtRouteAuth] = field(default_factory=dict)
    auth_settings: Settings | None = None


def _abort_transport(conn: Connection) -> None:
    """Drop a connection's TCP transport (uvicorn's protocol is what receives for the WebSocket)."""
    protocol = getattr(conn.websocket._receive, "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is not None:
        transport.abort()


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
                "async_failures",
            ),
            0,
        )
        self.app = self._build_app()

    # ------------------------------------------------------------------------------ app wiring

    def _build_app(self) -> LocalGuard:
        routes: list[Route | WebSocketRoute] = [
            *WebSocketApi(self).routes(),
            *ConnectionsApi(self).routes(),
            *LambdaApi(self).routes(),
            Route(STATS_PATH, self._stats, methods=["GET"]),
            *HttpApi(self).routes(),
            # After the template's routes: a template route for /openapi.json is the API's, and wins.
            *openapi_routes(),
            # After the template's routes: a template route for "/" is the API's, and wins.
            *Playground(self.options.stage).routes(),
        ]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        # An HTTP API has no redirects: "/health/" is another path, and it has no route.
        app.router.redirect_slashes = False
        policy = HostPolicy(self.options.bound_host, self.options.allowed_hosts, self.options.allowed_origins)
        self.guard = LocalGuard(app, policy, protected=("/2015-03-31/functions/", STATS_PATH))
        return self.guard

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

    def mark_closed(self, conn: Connection) -> None:
        """Record that ``conn`` has closed (closed ids are kept a while, so late posts count)."""
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
        try:
            await asyncio.wait_for(conn.websocket.close(code, reason if tell_client else None), wait)
        except TimeoutError:
            # A client that stopped reading holds the close frame up. API Gateway drops such a
            # connection; so does this: the receive loop then sees the disconnect and $disconnect
            # runs, rather than the connection staying open until the client's socket closes.
            _abort_transport(conn)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass

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
            "requests_refused_403": self.guard.refused,
            "connections": [c.summary() for c in self.connections.values()],
        }

    async def _stats(self, _request: Request) -> Response:
        return JSONResponse(self.stats())


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
