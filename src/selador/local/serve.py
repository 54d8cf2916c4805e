"""``selador serve``: the local API Gateway on one port, configured from ``template.yaml``.

The template gives the handler, timeout, memory, environment, WebSocket routes, HTTP routes and
stage, so the gateway cannot drift from what SAM deploys; flags override it. Before the handler is
imported, the environment is set the way Lambda would set it, then pointed at this gateway:
template environment, then the local overrides (offline model, bundled knowledge base, SQLite
store, the management and Lambda endpoints of this gateway), then ``--env``.

Ctrl-C closes every connection with 1001 (API Gateway's "Going away"), runs their
``$disconnect`` invocations and exits without a traceback; a second Ctrl-C forces the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request
from websockets.protocol import State

from selador.local.banner import banner as ready_banner
from selador.local.banner import runtime_summary
from selador.local.environment import (
    LOCAL_REGION,
    Endpoints,
    EnvFileError,
    build_environment,
    key_values,
    local_overrides,
    read_env_file,
)
from selador.local.gateway import (
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    RAW_HEADERS_EXTENSION,
    ROUTE_SELECTION_EXPRESSION,
    Gateway,
    GatewayOptions,
)
from selador.local.http_protocol import HeadLimitedH11Protocol
from selador.local.processes import ProcessRuntime
from selador.local.runtime import DEFAULT_CONCURRENCY, HandlerLoadError, LambdaRuntime, load_handler
from selador.local.template import TemplateConfig, TemplateError, load_template, load_yaml
from selador.settings import SettingsError, load_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3001
LAMBDA_DEFAULT_ASYNC_RETRIES = 2
API_GATEWAY_INTEGRATION_TIMEOUT = 29.0
"""Seconds: a WebSocket integration's default and maximum ``TimeoutInMillis``."""

log = logging.getLogger("selador.gateway")


def _async_retries(template_path: str, logical_id: str) -> int:
    """``EventInvokeConfig.MaximumRetryAttempts`` of the function, or Lambda's default (2)."""
    try:
        resource = load_yaml(template_path)["Resources"][logical_id]
        value = resource["Properties"]["EventInvokeConfig"]["MaximumRetryAttempts"]
    except (KeyError, TypeError):
        return LAMBDA_DEFAULT_ASYNC_RETRIES
    return value if isinstance(value, int) and 0 <= value <= 2 else LAMBDA_DEFAULT_ASYNC_RETRIES


# ---------------------------------------------------------------------------------- server


def frame_limited_protocol(max_frame_bytes: int) -> type[WebSocketsSansIOProtocol]:
    """The WebSocket protocol of uvicorn, closing with 1009 on a frame over ``max_frame_bytes``.

    API Gateway limits frames to 32 KiB as well as messages to 128 KiB; ASGI only sees whole
    messages, so the frame check sits in the protocol, where frames are still visible. The
    protocol also keeps the handshake's header names as the client sent them, for ``$connect``
    (see :data:`selador.local.gateway.RAW_HEADERS_EXTENSION`), and reports a vanished client as
    1006.

    Args:
        max_frame_bytes: Largest frame payload accepted (0: no frame limit).

    Returns:
        A protocol class for ``uvicorn.Config(ws=...)``.
    """

    class FrameLimitedProtocol(WebSocketsSansIOProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.handshake_initiated and self.conn.handshake_exc is not None and not self.close_sent:
                # A handshake the WebSocket library refused (a header line over 8 KiB, too many
                # headers, not HTTP): it has queued its 4xx answer (or nothing), but uvicorn
                # neither writes it nor closes, and the client would wait forever.
                self.close_sent = True
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.transport.close()

        def handle_connect(self, event: Request) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)  # unset when the handshake was refused
            if scope is not None:
                # ASGI wants lower-case names (Starlette's lookups rely on it); the names as sent
                # travel beside them for the $connect event.
                raw = scope["headers"]
                scope["headers"] = [(name.lower(), value) for name, value in raw]
                scope["extensions"][RAW_HEADERS_EXTENSION] = raw

        def _too_big(self, event: Frame) -> bool:
            if not max_frame_bytes or len(event.data) <= max_frame_bytes:
                return False
            if not self.close_sent:
                self.conn.fail(
                    CloseCode.MESSAGE_TOO_BIG,
                    f"frame of {len(event.data)} bytes exceeds the {max_frame_bytes}-byte limit",
                )
                self.handle_parser_exception()
            return True

        def handle_text(self, event: Frame) -> None:
            if not self._too_big(event):
                super().handle_text(event)

        def handle_bytes(self, event: Frame) -> None:
            if not self._too_big(event):
                super().handle_bytes(event)

        def handle_cont(self, event: Frame) -> None:
            if not self._too_big(event):
                super().handle_cont(event)

        async def send(self, message: Any) -> None:
            await super().send(message)
            if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
                # A refused handshake (denial response) is a complete answer; without this uvicorn
                # logs "ASGI callable returned without completing handshake" for every refusal.
                self.handshake_complete = True

        def send_receive_event_to_app(self) -> None:
            if self.curr_msg_data_type == "text" and not self.close_sent:
                data = b"".join(self.frames)
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    # uvicorn would log this with a traceback; it is the client's error, one line.
                    self.frames = []
                    closing = self.conn.state is not State.OPEN
                    log.warning(
                        "ws %s: %s, a text message is not valid UTF-8 (%s)",
                        f"{self.client[0]}:{self.client[1]}" if self.client else "client",
                        "message dropped (the client is closing)" if closing else "closed with 1007",
                        exc.reason,
                    )
                    if not closing:  # else the client's close frame, in the same read, ends it
                        self.conn.send_close(CloseCode.INVALID_DATA, "Invalid UTF-8 in text message")
                        self.handle_parser_exception()
                    return
            super().send_receive_event_to_app()

        def connection_lost(self, exc: Exception | None) -> None:
            # uvicorn reports a connection that vanished without a close frame as 1005; API
            # Gateway (and RFC 6455) call that 1006. The gateway reads the first disconnect only.
            if self.handshake_complete and self.conn.close_rcvd is None:
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
            super().connection_lost(exc)

    return FrameLimitedProtocol


class RawHeaderH11Protocol(HeadLimitedH11Protocol):
    """uvicorn's h11 HTTP protocol, handing WebSocket upgrades on with header names as sent.

    uvicorn rebuilds the upgrade request for the WebSocket protocol from lower-cased names, while
    API Gateway passes the client's casing to ``$connect`` (``Sec-WebSocket-Key``, ``x-api-key``
    as sent). h11 keeps the raw names, so the rebuilt request uses them, and the WebSocket
    protocol (:func:`frame_limited_protocol`) keeps them for the event. Plain HTTP requests are
    untouched: HTTP APIs lower-case header names anyway. Request heads are limited as
    :class:`~selador.local.http_protocol.HeadLimitedH11Protocol` does.
    """

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Hand the upgrade to the WebSocket protocol with the raw header names."""
        self.headers = list(event.headers.raw_items())
        super().handle_websocket_upgrade(event)


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


# ---------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selador serve",
        description="Local API Gateway: WebSocket API, @connections, HTTP API and Lambda Invoke API "
        "on one port, driven by template.yaml.",
    )
    add = parser.add_argument
    add("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    add("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default %(default)s)")
    add("--stage", help="WebSocket stage (default: the template's)")
    add("--template", default="template.yaml", help="SAM template (default %(default)s)")
    add("--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter override")
    add("--handler", help="module.function to run instead of the template's Handler")
    add("--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable, wins over all")
    add(
        "--env-file",
        action="append",
        default=[],
        metavar="PATH",
        help="KEY=VALUE lines (dotenv), applied before --env; keeps secrets out of argv",
    )
    add(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name to accept (besides loopback and --host), e.g. one in /etc/hosts",
    )
    add(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web page from elsewhere allowed to open the WebSocket API, e.g. https://app.example "
        "('*': any; pages on this machine always may)",
    )
    add(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="invocations at once, per pool of workers (default %(default)s)",
    )
    add(
        "--isolation",
        choices=["process", "thread"],
        default="process",
        help="run the handler in worker processes (default; API and Event invocations in separate "
        "pools) or on threads of the gateway's process",
    )
    add("--workers", type=_positive, help="front worker processes (default: one per CPU, at most 4)")
    add(
        "--background-workers",
        type=_positive,
        help="worker processes for Event invocations (default: one per CPU, at most 4)",
    )
    add(
        "--integration-timeout",
        type=float,
        metavar="SECONDS",
        help="API Gateway's integration timeout on message routes (default: the template's "
        "TimeoutInMillis of the WebSocket integration, else 29 s); 0 turns it off",
    )
    add("--idle-timeout", type=float, default=600.0, metavar="SECONDS", help="default %(default)s")
    add(
        "--max-connection-duration", type=float, default=7200.0, metavar="SECONDS", help="default %(default)s"
    )
    add("--max-frame-bytes", type=int, default=MAX_FRAME_BYTES, help="inbound frame limit, 0 = off")
    add("--inject-429", type=float, default=0.0, metavar="RATE", help="fraction of posts answered 429")
    add("--client-buffer-bytes", type=int, default=1024 * 1024, help="unsent bytes per connection before 429")
    add("--async-retries", type=int, help="retries of failed Event invocations (default: the template's)")
    add("--async-retry-delay", type=float, default=1.0, metavar="SECONDS", help="default %(default)s")
    add("--async-duplicates", type=float, default=0.0, metavar="RATE", help="fraction delivered twice")
    add("--drop-disconnect", type=float, default=0.0, metavar="RATE", help="fraction of $disconnect skipped")
    add(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="gateway log level"
    )
    return parser


def _integration_timeout(flag: float | None, template: TemplateConfig) -> float | None:
    """Seconds before a message route times out: the flag (0 = off), else the template's, else 29."""
    if flag is not None:
        if flag < 0:
            raise SystemExit("selador serve: --integration-timeout must be 0 (off) or more")
        return flag or None
    millis = template.websocket_integration_timeout_ms
    return millis / 1000 if millis is not None else API_GATEWAY_INTEGRATION_TIMEOUT


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _rate(value: float, flag: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise SystemExit(f"selador serve: {flag} must be between 0 and 1")
    return value


def _configure_logging(level: str) -> None:
    # Plain lines on stderr, apart from the handler's own logs: "selador.gateway" would otherwise
    # propagate into the handler's Powertools "selador" logger and come out as its JSON.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s gateway %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(handler)
    uvicorn_errors.setLevel(logging.WARNING)
    uvicorn_errors.addFilter(_drop_cancellations)


def _drop_cancellations(record: logging.LogRecord) -> bool:
    # A forced stop (second Ctrl-C) cancels the lifespan and connection tasks, which uvicorn logs
    # with a traceback each; they are the intended outcome, not errors.
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def main(argv: list[str] | None = None) -> int:
    """Run the gateway until Ctrl-C.

    Args:
        argv: Arguments after ``serve``.

    Returns:
        The exit status: 0 after a clean stop, 1 when the handler cannot be loaded, 2 on a
        configuration error.
    """
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    cli_env: dict[str, str] = {}
    try:
        for path in args.env_file:
            cli_env |= read_env_file(path)
    except EnvFileError as exc:
        print(f"selador serve: {exc}", file=sys.stderr)
        return 2
    cli_env |= key_values(args.env, "--env")
    try:
        template = load_template(args.template, key_values(args.parameter, "--parameter") or None)
    except TemplateError as exc:
        print(f"selador serve: {exc}", file=sys.stderr)
        return 2
    if template.route_selection_expression not in ("", ROUTE_SELECTION_EXPRESSION):
        print(
            f"selador serve: route selection {template.route_selection_expression!r} is not supported "
            f"(only {ROUTE_SELECTION_EXPRESSION})",
            file=sys.stderr,
        )
        return 2
    function = template.function
    # The Invoke API must answer to the name the handler's hand-off will use.
    function_name = cli_env.get("AWS_LAMBDA_FUNCTION_NAME") or function.logical_id
    stage = args.stage or template.stage_name
    options = GatewayOptions(
        stage=stage,
        websocket_route_keys=template.websocket_route_keys,
        http_routes=template.http_routes,
        http_jwt_routes=template.http_jwt_routes,
        function_name=function_name,
        region=LOCAL_REGION,
        max_message_bytes=MAX_MESSAGE_BYTES,
        idle_timeout=args.idle_timeout,
        max_connection_duration=args.max_connection_duration,
        integration_timeout=_integration_timeout(args.integration_timeout, template),
        inject_429=_rate(args.inject_429, "--inject-429"),
        client_buffer_bytes=args.client_buffer_bytes,
        async_retries=(
            args.async_retries
            if args.async_retries is not None
            else _async_retries(args.template, function_name)
        ),
        async_retry_delay=args.async_retry_delay,
        async_duplicate_rate=_rate(args.async_duplicates, "--async-duplicates"),
        disconnect_drop_rate=_rate(args.drop_disconnect, "--drop-disconnect"),
        bound_host=args.host,
        allowed_hosts=tuple(args.allow_host),
        allowed_origins=tuple(args.allow_origin),
    )
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(
            f"selador serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    endpoints = Endpoints(args.host, sock.getsockname()[1], stage)
    workdir = tempfile.mkdtemp(prefix="selador-gateway-")
    try:
        overrides = local_overrides(
            endpoints, function_name=function_name, sqlite_path=str(Path(workdir) / "selador.sqlite3")
        )
        env = build_environment(
            function.environment, overrides, cli_env, memory_size=function.memory_size, inherited=os.environ
        )
        os.environ.update(env)
        handler_spec = args.handler or function.handler
        try:
            handler = load_handler(handler_spec)
            banner = ready_banner(
                endpoints,
                template_path=args.template,
                function=function,
                handler=handler_spec,
                function_name=function_name,
                options=options,
                concurrency=args.concurrency,
                runtime=runtime_summary(args),
                max_frame_bytes=args.max_frame_bytes,
                applied=overrides,
                cli_env=cli_env,
                unresolved=list(function.unresolved_environment),
            )
            settings = load_settings()
        except HandlerLoadError as exc:
            cause = exc.__cause__
            if cause is not None and not isinstance(cause, ModuleNotFoundError):
                # The module itself failed while importing: its traceback is the useful part.
                traceback.print_exception(cause)
            print(f"selador serve: {exc}", file=sys.stderr)
            return 1
        except SettingsError as exc:
            print(f"selador serve: {exc}", file=sys.stderr)
            return 2
        runtime: LambdaRuntime
        if args.isolation == "process":
            # Workers inherit os.environ as it is now: the handler's environment is already set.
            runtime = ProcessRuntime(
                handler_spec,
                function_name=function_name,
                timeout=function.timeout,
                memory_size=function.memory_size,
                region=LOCAL_REGION,
                concurrency=args.concurrency,
                workers=args.workers,
                background_workers=args.background_workers,
            )
            try:
                runtime.start()
            except (HandlerLoadError, RuntimeError) as exc:
                runtime.terminate(grace=0)
                print(f"selador serve: {exc}", file=sys.stderr)
                return 1
        else:
            runtime = LambdaRuntime(
                handler,
                function_name=function_name,
                timeout=function.timeout,
                memory_size=function.memory_size,
                region=LOCAL_REGION,
                concurrency=args.concurrency,
            )
        if settings.auth_mode == "jwt":
            # The template's JWT authorizer checks tokens as the handler does (selador.auth).
            options = dataclasses.replace(options, auth_settings=settings)
        gateway = Gateway(runtime, options)
        server = build_server(
            gateway, max_frame_bytes=args.max_frame_bytes, on_ready=lambda: print(banner, flush=True)
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        _finish(runtime, workdir)
        return 0
    finally:
        sock.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _finish(runtime: LambdaRuntime, workdir: str, grace: float = 3.0) -> None:
    """Let running invocations end briefly; then leave without waiting for their threads."""
    runtime.shutdown()
    deadline = time.monotonic() + grace
    while runtime.running and time.monotonic() < deadline:
        time.sleep(0.05)
    if isinstance(runtime, ProcessRuntime):
        if runtime.running:
            print(
                f"selador serve: stopping workers with {runtime.running} running invocation(s)",
                file=sys.stderr,
                flush=True,
            )
        runtime.terminate(grace=0.5)
        print("Stopped.", flush=True)
        return
    if runtime.running:
        # Worker threads cannot be killed and the interpreter would wait for them at exit.
        print(
            f"selador serve: abandoning {runtime.running} running invocation(s)", file=sys.stderr, flush=True
        )
        shutil.rmtree(workdir, ignore_errors=True)
        sys.stdout.flush()
        os._exit(0)
    print("Stopped.", flush=True)
