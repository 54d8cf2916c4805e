"""The gateway's server: uvicorn with API Gateway's limits and shutdown, in the foreground or a thread.

``selador serve`` (:mod:`selador.local.serve`) runs :func:`build_server` in the foreground; tests
and embedders use :func:`serve_in_thread`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn

from selador.local.environment import (
    Endpoints,
)
from selador.local.gateway import (
    MAX_FRAME_BYTES,
    Gateway,
)
from selador.local.protocols import RawHeaderH11Protocol, frame_limited_protocol

DEFAULT_HOST = "127.0.0.1"

log = logging.getLogger("selador.gateway")


class GatewayServer(uvicorn.Server):
    """uvicorn's server with API Gateway's shutdown: every connection closed with 1001 first.

    Args:
        config: uvicorn configuration.
        gateway: The gateway whose connections to close.
        on_ready: Called once the socket accepts connections.
    """

    def __init__(self, config: uvicorn.Config, gateway: Gateway, on_ready: Any = None) -> None:
        super().__init__(config)
        self.gateway = gateway
        self._on_ready = on_ready
        self._drained = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start the gateway's timers and listen, then announce readiness."""
        self.gateway.start()
        await super().startup(sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening and the gateway's timers."""
        await super().shutdown(sockets)
        self.gateway.stop()

    async def on_tick(self, counter: int) -> bool:
        """Run one of uvicorn's ticks; on the way out, close connections before uvicorn does (with 1012)."""
        should_exit = await super().on_tick(counter)
        if should_exit and not self._drained:
            self._drained = True
            open_connections = sum(1 for c in self.gateway.connections.values() if c.state == "open")
            if open_connections:
                log.info("closing %d connection(s) with 1001", open_connections)
            await self.gateway.close_all(1001, "Going away", timeout=5.0)
            # Runs still going post into closed connections: let them meet their 410 and end
            # while the server still answers, instead of meeting a refused connection.
            if self.gateway.runtime.running and not self.force_exit:
                log.info("waiting for %d running invocation(s)", self.gateway.runtime.running)
                await self.gateway.drain(timeout=5.0)
        return should_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Begin a graceful stop; a second Ctrl-C forces it.

        The signal is deliberately not recorded: uvicorn re-raises recorded signals after
        shutting down, and a re-raised SIGINT ends in a KeyboardInterrupt traceback.
        """
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen now, so the real port is known (``port=0``) before the handler is loaded.

    Args:
        host: Address to bind.
        port: Port, or 0 for any free one.

    Returns:
        The listening socket.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket says TCP, and without it frames posted close together wait for a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def build_server(
    gateway: Gateway, *, max_frame_bytes: int = MAX_FRAME_BYTES, on_ready: Any = None
) -> GatewayServer:
    """A uvicorn server for the gateway with API Gateway's WebSocket limits.

    Args:
        gateway: The gateway.
        max_frame_bytes: Frame limit (0 disables it).
        on_ready: Called once listening.

    Returns:
        The server; run it with ``server.run(sockets=[bind_socket(...)])``.
    """
    config = uvicorn.Config(
        gateway.app,
        # h11 rather than httptools even when both are installed: see RawHeaderH11Protocol.
        http=RawHeaderH11Protocol,
        ws=frame_limited_protocol(max_frame_bytes),
        ws_max_size=gateway.options.max_message_bytes,
        # API Gateway negotiates no compression and sends no protocol pings of its own.
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        # The gateway's timers start and stop with the server itself (see GatewayServer): a
        # lifespan task would be cancelled by a forced stop and logged with a traceback.
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return GatewayServer(config, gateway, on_ready)


@dataclass
class RunningGateway:
    """A gateway serving on a background thread (see :func:`serve_in_thread`).

    Attributes:
        gateway: The gateway (its ``stats()``, ``connections``, ``runtime``).
        endpoints: Where it answers.
        server: The uvicorn server.
    """

    gateway: Gateway
    endpoints: Endpoints
    server: GatewayServer


@contextlib.contextmanager
def serve_in_thread(
    gateway: Gateway,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    startup_timeout: float = 10.0,
) -> Iterator[RunningGateway]:
    """Serve a gateway on a background thread for the duration of a ``with`` block (tests, embedding).

    The handler runs in this process, so the caller owns its environment. To run the real
    handler against its own environment, start ``selador serve`` as a subprocess instead
    (``tests/e2e/conftest.py`` does).

    Args:
        gateway: The gateway to serve.
        host: Address to bind.
        port: Port (0: a free one).
        max_frame_bytes: Frame limit (0 disables it).
        startup_timeout: Seconds to wait for the server to listen.

    Yields:
        The running gateway.

    Raises:
        RuntimeError: when the server does not start in time.
    """
    sock = bind_socket(host, port)
    ready = threading.Event()
    server = build_server(gateway, max_frame_bytes=max_frame_bytes, on_ready=ready.set)
    endpoints = Endpoints(host, sock.getsockname()[1], gateway.options.stage)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="selador-gateway", daemon=True
    )
    thread.start()
    try:
        if not ready.wait(startup_timeout):
            raise RuntimeError("the gateway did not start")
        yield RunningGateway(gateway, endpoints, server)
    finally:
        server.should_exit = True
        thread.join(startup_timeout + 10)
        sock.close()


__all__ = ["GatewayServer", "RunningGateway", "bind_socket", "build_server", "serve_in_thread"]
