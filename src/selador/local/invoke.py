"""``selador invoke``: run one event file through the handler in-process, no Docker.

The counterpart of ``sam local invoke MainLambda -e events/ws_invoke.json`` for machines without a
container runtime. The function's handler, timeout, memory and environment come from
``template.yaml``; on top of them go the offline defaults (offline model, bundled knowledge base,
SQLite store, inline runs), then ``--env-vars`` (SAM's file format) and ``--env``, in that order.

WebSocket handlers answer through PostToConnection, so a small management-API listener runs on
``127.0.0.1`` (a free port) and ``WEBSOCKET_MANAGEMENT_ENDPOINT`` points at it unless the caller set
one. Every frame the handler posts is printed as one JSON line prefixed ``frame>``, then the
handler's return value as ``response>``. The listener behaves like API Gateway where it matters to
a handler: a connection is open only during a MESSAGE event (posting from ``$connect`` or
``$disconnect`` gets 410 ``GoneException``, as in AWS), ``DeleteConnection`` closes it, and a payload
over 128 KiB gets 413.

Exit status: 0 when the handler returned, 1 when it raised or timed out, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote

from selador.local.environment import parse_pairs
from selador.local.runtime import HandlerLoadError, LambdaContext, function_arn, load_handler
from selador.local.template import PSEUDO_PARAMETERS, TemplateConfig, TemplateError, load_template, load_yaml

MAX_PAYLOAD_BYTES = 128 * 1024
"""API Gateway's WebSocket message quota (botocore's ``Data`` maximum)."""

OFFLINE_DEFAULTS: dict[str, str] = {
    "MODEL_PROVIDER": "local",
    "CONNECTIONS_TABLE": "",
    "KNOWLEDGE_BASE_ID": "",
    "RUN_MODE": "inline",
}
"""Applied over the template's environment so an invocation needs no AWS account."""

_CONNECTIONS_PATH = re.compile(r"^(?:/(?P<stage>[^/]+))?/@connections/(?P<id>[^/?]+)/?$")


class UsageError(Exception):
    """A bad argument or input file; reported without a traceback, exit status 2."""


# ------------------------------------------------------------------------- management listener


@dataclass
class PostedFrame:
    """One PostToConnection the listener accepted.

    Attributes:
        connection_id: The connection id, percent-decoded.
        stage: The stage in the request path ("" when the endpoint has none).
        data: The posted bytes.
    """

    connection_id: str
    stage: str
    data: bytes

    def json_line(self) -> str:
        """The frame as one line of JSON (a non-JSON payload becomes a JSON string)."""
        text = self.data.decode("utf-8", errors="replace")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class ManagementListener:
    """A stdlib HTTP server answering the API Gateway management API on ``127.0.0.1``.

    Args:
        open_connections: Ids that accept frames; anything else answers 410 ``GoneException``.
        identity: ``sourceIp``/``userAgent`` reported by GetConnection.
        connected_at: Epoch milliseconds reported by GetConnection.
        out: Where ``frame>`` lines go (``None`` to print nothing).
    """

    open_connections: set[str] = field(default_factory=set)
    identity: dict[str, str] = field(default_factory=dict)
    connected_at: int = 0
    out: TextIO | None = None
    frames: list[PostedFrame] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("listener not started")
        return int(self._server.server_address[1])

    def endpoint(self, stage: str) -> str:
        """The management endpoint to hand the handler: ``http://127.0.0.1:{port}/{stage}``."""
        return f"http://127.0.0.1:{self.port}/{stage}" if stage else f"http://127.0.0.1:{self.port}"

    def start(self) -> ManagementListener:
        """Bind a free port and serve on a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="management-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _post(self, connection_id: str, stage: str, data: bytes) -> tuple[int, str | None]:
        if connection_id not in self.open_connections:
            return 410, "GoneException"
        if len(data) > MAX_PAYLOAD_BYTES:
            return 413, "PayloadTooLargeException"
        frame = PostedFrame(connection_id, stage, data)
        with self._lock:
            self.frames.append(frame)
            # Printed before the 200 goes back, so every frame is out before the handler returns.
            if self.out is not None:
                print("frame> " + frame.json_line(), file=self.out, flush=True)
        return 200, None

    def _delete(self, connection_id: str) -> tuple[int, str | None]:
        with self._lock:
            if connection_id not in self.open_connections:
                return 410, "GoneException"
            self.open_connections.discard(connection_id)
            if self.out is not None:
                print("close> " + json.dumps({"connectionId": connection_id}), file=self.out, flush=True)
        return 204, None


def _iso(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms / 1000)) + f".{epoch_ms % 1000:03d}Z"


def _handler_class(listener: ManagementListener) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "selador-invoke"
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the per-request access log (frames are printed instead)."""

        def _target(self) -> tuple[str, str] | None:
            match = _CONNECTIONS_PATH.match(self.path.split("?", 1)[0])
            if match is None:
                self._reply(
                    404, "NotFoundException", {"message": f"No method found matching route {self.path}"}
                )
                return None
            return unquote(match.group("id")), match.group("stage") or ""

        def _reply(self, status: int, error_type: str | None, body: Mapping[str, Any] | None = None) -> None:
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if error_type:
                # botocore maps this header to client.exceptions.<error_type>.
                self.send_header("x-amzn-ErrorType", error_type)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            """PostToConnection."""
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else b""
            target = self._target()
            if target is None:
                return
            status, error = listener._post(target[0], target[1], data)
            self._reply(status, error, {"message": error} if error else None)

        def do_GET(self) -> None:
            """GetConnection."""
            target = self._target()
            if target is None:
                return
            if target[0] not in listener.open_connections:
                self._reply(410, "GoneException", {"message": "GoneException"})
                return
            now = int(time.time() * 1000)
            self._reply(
                200,
                None,
                {
                    "connectedAt": _iso(listener.connected_at or now),
                    "lastActiveAt": _iso(now),
                    "identity": listener.identity,
                },
            )

        def do_DELETE(self) -> None:
            """DeleteConnection."""
            target = self._target()
            if target is None:
                return
            status, error = listener._delete(target[0])
            self._reply(status, error, {"message": error} if error else None)

    return _Handler


def listener_for_event(event: Mapping[str, Any], out: TextIO | None) -> ManagementListener:
    """A listener whose open connections mirror API Gateway's state during ``event``.

    During ``$connect`` the connection is not established yet and after ``$disconnect`` it is
    gone: both answer 410 in AWS. Only a MESSAGE event's connection accepts frames.

    Args:
        event: The event about to be invoked.
        out: Where to print frames.

    Returns:
        The (unstarted) listener.
    """
    ctx = event.get("requestContext") if isinstance(event, Mapping) else None
    ctx = ctx if isinstance(ctx, Mapping) else {}
    connection_id = ctx.get("connectionId")
    identity = ctx.get("identity") if isinstance(ctx.get("identity"), Mapping) else {}
    open_ids = {str(connection_id)} if connection_id and ctx.get("eventType") == "MESSAGE" else set()
    return ManagementListener(
        open_connections=open_ids,
        identity={k: str(v) for k, v in (identity or {}).items() if v is not None},
        connected_at=int(ctx.get("connectedAt") or 0),
        out=out,
    )


# ----------------------------------------------------------------------------- environment


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise UsageError(f"environment values must be strings, numbers or booleans, got {value!r}")


def read_env_vars_file(path: str | Path, logical_id: str) -> dict[str, str]:
    """Variables from a ``sam local invoke --env-vars`` file.

    ``{"Parameters": {...}}`` applies to every function and ``{"MainLambda": {...}}`` to that one
    (it wins over ``Parameters``), as in SAM.

    Args:
        path: The JSON file.
        logical_id: The function's logical id.

    Returns:
        The variables.

    Raises:
        UsageError: The file is missing or not shaped like SAM's.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--env-vars file not found: {path}") from None
    except ValueError as exc:
        raise UsageError(f"--env-vars file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f'--env-vars file {path} must be {{"{logical_id}": {{...}}}} or {{"Parameters": {{...}}}}'
        )
    merged: dict[str, str] = {}
    for section in ("Parameters", logical_id):
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise UsageError(f"--env-vars {path}: {section!r} must map names to values")
        merged.update({str(k): _env_value(v) for k, v in values.items()})
    return merged


def parse_env_pairs(pairs: Sequence[str], flag: str = "--env") -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict (later ones win).

    Args:
        pairs: The arguments.
        flag: The flag they came with, for the error.

    Returns:
        The variables.

    Raises:
        UsageError: An argument has no ``=`` or an empty name.
    """
    try:
        return parse_pairs(pairs, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _has_credentials(environ: Mapping[str, str]) -> bool:
    """Whether boto3 would find credentials without us (env, profile or a shared file)."""
    if environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE"):
        return True
    shared = environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(Path.home() / ".aws" / "credentials")
    return Path(shared).is_file()


def build_environment(
    config: TemplateConfig | None,
    *,
    region: str,
    env_file: Mapping[str, str],
    env_args: Mapping[str, str],
    environ: Mapping[str, str],
) -> dict[str, str]:
    """The variables to set for the invocation, in increasing precedence.

    Template environment, then Lambda's own variables, then :data:`OFFLINE_DEFAULTS`, then the
    ``--env-vars`` file, then ``--env``. Dummy credentials are added only when boto3 would find
    none (a profile or real keys in the shell are left alone).

    Args:
        config: The loaded template (``None`` without one).
        region: Region for ``AWS_REGION``/``AWS_DEFAULT_REGION`` unless the shell sets them.
        env_file: From ``--env-vars``.
        env_args: From ``--env``.
        environ: The current process environment.

    Returns:
        Variables to apply over ``os.environ``.
    """
    env: dict[str, str] = {}
    if config is not None:
        fn = config.function
        env |= fn.environment
        env |= {
            "AWS_LAMBDA_FUNCTION_NAME": fn.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        }
    env["AWS_REGION"] = environ.get("AWS_REGION") or region
    env["AWS_DEFAULT_REGION"] = environ.get("AWS_DEFAULT_REGION") or env["AWS_REGION"]
    env |= OFFLINE_DEFAULTS
    env |= env_file
    env |= env_args
    if not _has_credentials({**environ, **env}):
        # Clients must sign requests even to the local listener; these keys are never valid.
        env |= {"AWS_ACCESS_KEY_ID": "selador-local", "AWS_SECRET_ACCESS_KEY": "selador-local"}
    return env


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` and restore the previous environment afterwards."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ------------------------------------------------------------------------------- invocation


@dataclass
class Outcome:
    """What the handler did.

    Attributes:
        response: Its return value after a JSON round trip (``None`` on error).
        error: Lambda's error document when it raised, timed out or returned non-JSON.
        traceback: The formatted traceback of a raised exception.
    """

    response: Any = None
    error: dict[str, str] | None = None
    traceback: str = ""


def _reset_container() -> None:
    # A previous in-process invocation may have cached settings and clients built from another
    # environment; a fresh Lambda container would not have them.
    try:
        from selador.deps import reset_container
    except ImportError:  # pragma: no cover - only when running a foreign handler without selador
        return
    reset_container()


def invoke(handler_spec: str, event: Any, context: LambdaContext, timeout: float) -> Outcome:
    """Call the handler on a daemon thread, waiting at most ``timeout`` seconds.

    A daemon thread (not the main one) so that a handler that overruns its timeout does not keep
    the process alive after the timeout is reported, which Lambda would not either.

    Args:
        handler_spec: ``module.function``.
        event: The event (passed through JSON first, as Lambda does).
        context: The context.
        timeout: Seconds before the invocation is reported as timed out.

    Returns:
        The outcome.
    """
    outcome = Outcome()
    try:
        handler = load_handler(handler_spec)
    except HandlerLoadError as exc:
        outcome.error = {"errorType": "Runtime.ImportModuleError", "errorMessage": str(exc)}
        outcome.traceback = traceback.format_exc()
        return outcome
    wire_event = json.loads(json.dumps(event))

    def run() -> None:
        try:
            result = handler(wire_event, context)
        except BaseException as exc:  # noqa: BLE001 - every failure is the invocation's error
            outcome.error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            outcome.traceback = traceback.format_exc()
            return
        try:
            outcome.response = json.loads(json.dumps(result))
        except (TypeError, ValueError) as exc:
            outcome.error = {"errorType": "Runtime.MarshalError", "errorMessage": str(exc)}

    worker = threading.Thread(target=run, name="handler", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return Outcome(
            error={
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"{context.aws_request_id} Task timed out after {timeout:.2f} seconds",
            }
        )
    return outcome


def _load_event(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"event file not found: {path}") from None
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"event {path} is not JSON: {exc}") from None
    return restamp_arrival(event)


def restamp_arrival(event: Any) -> Any:
    """Set an API Gateway event's arrival time to now, as API Gateway stamps each request.

    A saved sample keeps the time it was captured, and ``POST /invoke`` counts its 29 s budget
    from it (``requestContext.timeEpoch``; REST: ``requestTimeEpoch``): replayed as is, every
    sample would be a request already out of time.
    """
    ctx = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(ctx, dict):
        now_ms = int(time.time() * 1000)
        for key in ("timeEpoch", "requestTimeEpoch"):
            if isinstance(ctx.get(key), int):
                ctx[key] = now_ms
    return event


def _code_dir(template_path: Path, logical_id: str) -> Path | None:
    """The function's ``CodeUri`` directory, so its handler imports as it would on Lambda."""
    try:
        resource = load_yaml(template_path)["Resources"][logical_id]
        code_uri = (resource.get("Properties") or {}).get("CodeUri")
    except (TemplateError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(code_uri, str):
        return None
    path = (template_path.parent / code_uri).resolve()
    return path if path.is_dir() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selador invoke",
        description="Run one API Gateway event through the handler in-process (no Docker), "
        "printing the frames it posts (frame>) and its response (response>).",
    )
    add = parser.add_argument
    add("-e", "--event", required=True, help="event JSON file ('-' for stdin), e.g. events/ws_invoke.json")
    add("--env", action="append", default=[], metavar="KEY=VALUE", help="environment override (repeatable)")
    add(
        "--env-vars",
        metavar="FILE.json",
        help='SAM-style file: {"MainLambda": {...}} and/or {"Parameters": {...}}',
    )
    add("-t", "--template", default="template.yaml", help="SAM template (default %(default)s)")
    add("--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter override")
    add("--function", metavar="LOGICAL_ID", help="function in the template (when it has several)")
    add("--handler", metavar="MODULE.FUNCTION", help="handler to run instead of the template's Handler")
    add(
        "--timeout", type=float, help="seconds before the run counts as timed out (default: template Timeout)"
    )
    add("--debug", action="store_true", help="print the traceback when the handler raises")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``selador invoke``.

    Args:
        argv: Arguments after ``invoke``.

    Returns:
        0 when the handler returned, 1 when it failed or timed out, 2 on a usage error.
    """
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    out = sys.stdout
    try:
        event = _load_event(args.event)
        config: TemplateConfig | None = None
        template_path = Path(args.template)
        overrides = parse_env_pairs(args.parameter, "--parameter")
        if template_path.is_file() or not args.handler:
            config = load_template(template_path, overrides, function_id=args.function)
        logical_id = config.function.logical_id if config else "Function"
        env_file = read_env_vars_file(args.env_vars, logical_id) if args.env_vars else {}
        env_args = parse_env_pairs(args.env)
    except (UsageError, TemplateError) as exc:
        print(f"selador invoke: {exc}", file=sys.stderr)
        return 2

    region = overrides.get("AWS::Region", PSEUDO_PARAMETERS["AWS::Region"])
    env = build_environment(config, region=region, env_file=env_file, env_args=env_args, environ=os.environ)
    handler_spec = args.handler or (config.function.handler if config else "")
    timeout = args.timeout if args.timeout is not None else float(config.function.timeout if config else 3)
    memory = config.function.memory_size if config else 128
    ctx = event.get("requestContext") if isinstance(event, dict) else None
    stage = str(ctx.get("stage", "")) if isinstance(ctx, dict) else ""
    stage = stage or (config.stage_name if config else "")

    listener = listener_for_event(event if isinstance(event, dict) else {}, out).start()
    if "WEBSOCKET_MANAGEMENT_ENDPOINT" not in {**env_file, **env_args}:
        env["WEBSOCKET_MANAGEMENT_ENDPOINT"] = listener.endpoint(stage)

    code_dir = _code_dir(template_path, logical_id) if config else None
    for path in (str(Path.cwd()), str(code_dir) if code_dir else None):
        if path and path not in sys.path:
            sys.path.insert(0, path)

    function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", logical_id)
    context = LambdaContext(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=function_arn(function_name, env["AWS_REGION"]),
        memory_limit_in_mb=str(memory),
        aws_request_id=str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=time.strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex,
        deadline=time.monotonic() + timeout,
    )
    try:
        with patched_environ(env):
            _reset_container()
            outcome = invoke(handler_spec, event, context, timeout)
            _reset_container()
    finally:
        listener.stop()

    if outcome.error is not None:
        print("error> " + json.dumps(outcome.error, ensure_ascii=False), file=out, flush=True)
        if args.debug and outcome.traceback:
            print(outcome.traceback, file=sys.stderr, end="")
        else:
            hint = " (--debug for the traceback)" if outcome.traceback else ""
            print(
                f"selador invoke: {outcome.error['errorType']}: {outcome.error['errorMessage']}{hint}",
                file=sys.stderr,
            )
        return 1
    print("response> " + json.dumps(outcome.response, ensure_ascii=False), file=out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
