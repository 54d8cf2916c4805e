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
import sys
import tempfile
import time
import traceback
from pathlib import Path

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
    ROUTE_SELECTION_EXPRESSION,
    Gateway,
    GatewayOptions,
)
from selador.local.processes import ProcessRuntime
from selador.local.runtime import DEFAULT_CONCURRENCY, HandlerLoadError, LambdaRuntime, load_handler
from selador.local.server import DEFAULT_HOST, RunningGateway, bind_socket, build_server, serve_in_thread
from selador.local.template import TemplateConfig, TemplateError, load_template, load_yaml
from selador.settings import SettingsError, load_settings

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


def _sqs_on_failure(template_path: str, logical_id: str) -> bool:
    """Whether the function's failed ``Event`` invocations go to an SQS on-failure destination."""
    try:
        resource = load_yaml(template_path)["Resources"][logical_id]
        destination = resource["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    except (KeyError, TypeError):
        return False
    return isinstance(destination, dict) and destination.get("Type") == "SQS"


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
        async_on_failure=_sqs_on_failure(args.template, function_name),
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


# Re-exported: tests and embedders have always imported these from here.
__all__ = [
    "DEFAULT_HOST",
    "Endpoints",
    "RunningGateway",
    "build_environment",
    "key_values",
    "local_overrides",
    "main",
    "serve_in_thread",
]
