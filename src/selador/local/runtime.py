"""Run a Lambda handler in-process the way Lambda runs it.

Each invocation gets the event as JSON (serialised and parsed again, so a handler cannot rely on
objects the gateway happened to build), a fresh context whose ``get_remaining_time_in_millis()``
counts down from the template's ``Timeout``, and a worker thread of its own: the handler is
synchronous, so it runs in a thread pool and never blocks the gateway's event loop or another
invocation. The return value goes through JSON as well; what JSON cannot carry is a
``Runtime.MarshalError``, as on Lambda.

What cannot be emulated in-process: a timed-out invocation is *reported* as
``Sandbox.Timedout`` when the function's timeout passes, but its thread cannot be killed and runs
to its end (Lambda would freeze and discard it).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from selador.local.events import DEFAULT_ACCOUNT, DEFAULT_REGION

Handler = Callable[[Any, Any], Any]
"""A Lambda handler: ``handler(event, context) -> JSON-serialisable value``."""

DEFAULT_CONCURRENCY = 256
"""Worker threads, i.e. invocations that run at once; later ones queue."""

log = logging.getLogger("selador.gateway")


class HandlerLoadError(RuntimeError):
    """The handler named ``module.function`` cannot be imported or is not callable."""


def load_handler(spec: str) -> Handler:
    """Import ``module.function`` as Lambda does with the function's ``Handler`` setting.

    Args:
        spec: ``package.module.function`` (``selador.handler.lambda_handler``).

    Returns:
        The handler callable.

    Raises:
        HandlerLoadError: when the spec is malformed, the module does not import, or the attribute
            is missing or not callable. An exception raised *inside* the module while importing
            is chained as the cause so its traceback is kept.
    """
    module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise HandlerLoadError(f"handler {spec!r} must look like module.function")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise HandlerLoadError(
                f"Unable to import module '{module_name}': No module named '{exc.name}'"
            ) from exc
        raise HandlerLoadError(f"Unable to import module '{module_name}': {exc}") from exc
    handler = getattr(module, attribute, None)
    if handler is None:
        raise HandlerLoadError(f"Handler '{attribute}' missing on module '{module_name}'")
    if not callable(handler):
        raise HandlerLoadError(f"Handler '{attribute}' on module '{module_name}' is not callable")
    return handler


def function_arn(name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    """The unqualified ARN of a function.

    Args:
        name: Function name.
        region: AWS region.
        account: Account id.

    Returns:
        ``arn:aws:lambda:{region}:{account}:function:{name}``.
    """
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


@dataclass
class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler.

    ``memory_limit_in_mb`` is a string, as in the real runtime (which reads it from
    ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``), so code that does arithmetic on it fails here too.

    Attributes:
        function_name: Function name.
        function_version: Always ``$LATEST`` locally.
        invoked_function_arn: ARN used to invoke the function.
        memory_limit_in_mb: Configured memory, as a string.
        aws_request_id: Fresh UUID per invocation.
        log_group_name: ``/aws/lambda/{function_name}``.
        log_stream_name: A stream name shaped like Lambda's.
        identity: Cognito identity (never set by API Gateway invocations).
        client_context: Mobile client context (never set by API Gateway invocations).
    """

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float = field(repr=False)
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (never negative)."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation.

    Attributes:
        request_id: The invocation's ``aws_request_id``.
        payload: The handler's return value after the JSON round trip (``None`` on error).
        error: Lambda's error document (``errorMessage``, ``errorType``, ``stackTrace``) when the
            handler raised, timed out or returned something JSON cannot carry.
        duration_ms: Wall-clock milliseconds until the outcome was known.
    """

    request_id: str
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        """Whether the handler returned normally."""
        return self.error is None

    @property
    def status_code(self) -> int | None:
        """The ``statusCode`` of a proxy response, when the payload is one."""
        if isinstance(self.payload, dict) and isinstance(self.payload.get("statusCode"), int):
            return int(self.payload["statusCode"])
        return None

    def describe(self) -> str:
        """A short status for logs: the ``statusCode``, ``ok`` or the error type."""
        if self.error is not None:
            return str(self.error.get("errorType", "error"))
        code = self.status_code
        return str(code) if code is not None else "ok"


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still gets a document
        message = f"<{type(exc).__name__} with an unprintable message>"
    return {
        "errorMessage": message,
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def new_log_stream() -> str:
    """A log stream name shaped like Lambda's, one per execution environment."""
    return time.strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex


def call_handler(handler: Handler, event: Any, context: Any) -> tuple[Any, dict[str, Any] | None]:
    """Run the handler once; its JSON-round-tripped result, or Lambda's error document.

    Args:
        handler: The handler.
        event: The (already JSON-round-tripped) event.
        context: The context.

    Returns:
        ``(payload, None)`` on success, ``(None, error)`` when the handler raised, exited or
        returned something JSON cannot carry (``Runtime.MarshalError``).
    """
    try:
        result = handler(event, context)
    except SystemExit as exc:
        return None, _error(exc, "Runtime.ExitError")
    except BaseException as exc:  # noqa: BLE001 - any handler failure is the invocation's error document
        # BaseException too: a CancelledError escaping a handler's own event loop must still
        # answer, or the invocation would hang until the function's timeout.
        return None, _error(exc)
    try:
        return json.loads(json.dumps(result)), None
    except (TypeError, ValueError) as exc:
        return None, _error(exc, "Runtime.MarshalError")


def _call_wire(handler: Handler, wire_event: str, context: Any) -> tuple[Any, dict[str, Any] | None]:
    return call_handler(handler, json.loads(wire_event), context)


class LambdaRuntime:
    """Invokes one handler concurrently, with Lambda's event, context and error semantics.

    Args:
        handler: The handler callable (see :func:`load_handler`).
        function_name: Function name on the context and in ARNs.
        timeout: The function's timeout in seconds (template ``Timeout``).
        memory_size: Memory in MB (template ``MemorySize``).
        region: Region for the ARN.
        account: Account id for the ARN.
        concurrency: Worker threads; invocations beyond that wait for a free one.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        function_name: str,
        timeout: float,
        memory_size: int,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.handler = handler
        self.function_name = function_name
        self.timeout = timeout
        self.memory_size = memory_size
        self.arn = function_arn(function_name, region, account)
        self.concurrency = concurrency
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lambda")
        self._log_stream = new_log_stream()
        self._lock = threading.Lock()
        self._running = 0
        self.total = 0
        self.errors = 0

    def new_context(self, request_id: str | None = None) -> LambdaContext:
        """A context whose countdown starts now.

        Args:
            request_id: Defaults to a fresh UUID.

        Returns:
            The context.
        """
        return LambdaContext(
            aws_request_id=request_id or str(uuid.uuid4()),
            deadline=time.monotonic() + self.timeout,
            **self.environment_fields(self._log_stream),
        )

    def environment_fields(self, log_stream: str) -> dict[str, str]:
        """The context fields one execution environment keeps for all its invocations.

        Args:
            log_stream: The environment's log stream name (see :func:`new_log_stream`).

        Returns:
            :class:`LambdaContext` keyword arguments except the request id and the deadline.
        """
        return {
            "function_name": self.function_name,
            "function_version": "$LATEST",
            "invoked_function_arn": self.arn,
            "memory_limit_in_mb": str(self.memory_size),
            "log_group_name": f"/aws/lambda/{self.function_name}",
            "log_stream_name": log_stream,
        }

    async def invoke(self, event: Any, *, label: str, background: bool = False) -> Invocation:
        """Run the handler on a worker thread and wait for its outcome (at most ``timeout``).

        Args:
            event: The event; it is serialised and parsed again before the handler sees it.
            label: What to call the invocation in the log (route and connection).
            background: An asynchronous (``Event``) invocation, which nobody waits for. Threads
                run it like any other; :class:`~selador.local.processes.ProcessRuntime` gives it
                its own, lower-priority processes.

        Returns:
            The outcome; handler failures are in ``error``, never raised.
        """
        started = time.monotonic()
        context = self.new_context()
        self.total += 1
        try:
            wire_event = json.dumps(event)
        except (TypeError, ValueError) as exc:
            # Only reachable through a bug in the gateway: every event it builds is JSON.
            outcome = Invocation(context.aws_request_id, None, _error(exc, "Runtime.InvalidEvent"), 0.0)
            self._record(outcome, label)
            return outcome
        with self._lock:
            self._running += 1
        try:
            future = self._submit(wire_event, context, background=background)
        except Exception as exc:  # noqa: BLE001 - e.g. no process could be started: the invocation fails, the gateway stays up
            with self._lock:
                self._running -= 1
            outcome = Invocation(context.aws_request_id, None, _error(exc, "Runtime.Unavailable"), 0.0)
            self._record(outcome, label)
            return outcome
        # Counted down when the thread ends, not when the wait does: a timed-out run still runs.
        future.add_done_callback(self._finished)
        try:
            # shield: on timeout the thread goes on (it cannot be stopped); only the wait ends.
            payload, error = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout)
        except TimeoutError:
            payload = None
            error = {
                "errorMessage": f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                f"{context.aws_request_id} Task timed out after {self.timeout:.2f} seconds",
                "errorType": "Sandbox.Timedout",
            }
        outcome = Invocation(context.aws_request_id, payload, error, (time.monotonic() - started) * 1000)
        self._record(outcome, label)
        return outcome

    def _submit(
        self, wire_event: str, context: LambdaContext, *, background: bool
    ) -> Future[tuple[Any, dict[str, Any] | None]]:
        """Start one invocation of the event (JSON text); the future holds ``(payload, error)``."""
        del background  # one pool of threads runs every invocation
        return self._executor.submit(_call_wire, self.handler, wire_event, context)

    @property
    def running(self) -> int:
        """Invocations whose handler has not returned yet (timed-out ones included)."""
        return self._running

    def _finished(self, _future: Future[Any]) -> None:
        with self._lock:
            self._running -= 1

    def _record(self, outcome: Invocation, label: str) -> None:
        if outcome.error is not None:
            self.errors += 1
            log.warning(
                "%s -> %s in %.0f ms [%s]: %s",
                label,
                outcome.describe(),
                outcome.duration_ms,
                outcome.request_id[:8],
                outcome.error.get("errorMessage", ""),
            )
        else:
            log.info(
                "%s -> %s in %.0f ms [%s]",
                label,
                outcome.describe(),
                outcome.duration_ms,
                outcome.request_id[:8],
            )

    def shutdown(self) -> None:
        """Stop taking invocations; running ones finish on their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
