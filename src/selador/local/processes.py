"""Run the handler in worker processes: Lambda's separate execution environments, approximated.

:class:`~selador.local.runtime.LambdaRuntime` runs every invocation on a thread of the gateway's
own process, so one interpreter lock serialises all of them *and* the gateway's event loop: a
burst of answers being generated delays every other client's ``$connect`` and acknowledgement,
which on AWS run in environments of their own. :class:`ProcessRuntime` keeps the same contract
(event and result through JSON, Lambda's context and error documents, the function's timeout) but
runs the handler in pools of worker processes:

* **front** workers take the invocations somebody waits for: WebSocket routes, HTTP routes and
  ``RequestResponse`` calls;
* **background** workers take ``Event`` (asynchronous) invocations, at a lower CPU priority
  (``nice``), because on AWS they would not take CPU from the API path at all.

Each worker imports the handler once and keeps it (a warm container) and runs up to its share of
``concurrency`` invocations on threads. A worker that dies (``os._exit``, a crash) fails its
running invocations with ``Runtime.ExitError``, as Lambda reports a runtime that exited, and is
replaced on the next invocation. Processes are started with ``spawn``: the gateway has threads,
and forking a threaded process can copy a held lock.

Still not emulated: one environment per concurrent invocation (threads share a worker), and a
timed-out invocation is reported at the timeout but runs on (killing its worker would kill the
others it shares the worker with).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from selador.local.events import DEFAULT_ACCOUNT, DEFAULT_REGION
from selador.local.runtime import (
    DEFAULT_CONCURRENCY,
    HandlerLoadError,
    LambdaContext,
    LambdaRuntime,
    call_handler,
    load_handler,
    new_log_stream,
)

BACKGROUND_NICE = 10
"""How much lower the background workers' CPU priority is (``nice`` increment)."""

log = logging.getLogger("selador.gateway")

Outcome = tuple[Any, dict[str, Any] | None]


MAX_DEFAULT_WORKERS = 4
"""The default pool size stops here: every worker is a container of its own (imports, store, model)."""


def default_workers() -> int:
    """Workers per pool: one per CPU this process may use, at least one, at most four."""
    try:
        cpus = len(os.sched_getaffinity(0))  # the CPUs a container or taskset allows, not the host's
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class _WorkerSpec:
    handler: str
    threads: int
    nice: int
    context: dict[str, Any]


def _worker_main(conn: Connection, spec: _WorkerSpec) -> None:  # pragma: no cover - runs in a child
    """A worker process: load the handler, then run invocations until told to stop."""
    # Ctrl-C reaches the whole process group; the gateway decides when its workers stop, after
    # letting running invocations finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.nice and hasattr(os, "nice"):  # not on Windows: same priority there
        os.nice(spec.nice)
    # Line by line, as Lambda ships logs: a block buffer would lose the last lines of a worker
    # that is terminated or exits abruptly, and interleave badly with the others.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    try:
        handler = load_handler(spec.handler)
    except BaseException as exc:  # noqa: BLE001 - whatever the import raised is the load error
        send(("load_error", "".join(traceback.format_exception_only(exc)).strip()))
        return
    executor = ThreadPoolExecutor(max_workers=spec.threads, thread_name_prefix="lambda")

    def run(invocation_id: int, wire_event: str, request_id: str, deadline: float) -> None:
        payload: Any = None
        error: dict[str, Any] | None
        try:
            # time.monotonic() is CLOCK_MONOTONIC, one clock for every process on the machine,
            # so the deadline the gateway set holds here (time spent queued counts, as on Lambda).
            if time.monotonic() >= deadline:
                # Queued past the function's timeout: the caller has had its Sandbox.Timedout,
                # and running it now would act on a request everyone has given up on.
                error = {"errorMessage": "not run: queued past the timeout", "errorType": "Sandbox.Timedout"}
                send(("done", invocation_id, None, error))
                return
            context = LambdaContext(aws_request_id=request_id, deadline=deadline, **spec.context)
            # The payload has been through JSON already (call_handler), so it pickles.
            payload, error = call_handler(handler, json.loads(wire_event), context)
        except BaseException as exc:  # noqa: BLE001 - every invocation must answer, or it hangs
            error = {"errorMessage": repr(exc)[:1000], "errorType": "Runtime.Unknown"}
        send(("done", invocation_id, payload, error))

    send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            # The gateway is gone (killed, crashed): nobody can receive an answer or a frame,
            # so stop now rather than finish runs as an orphan.
            os._exit(1)
        if message is None:
            break
        executor.submit(run, *message)
    executor.shutdown(wait=True)


@dataclass
class _Worker:
    """The gateway's side of one worker process."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    pool: str
    inflight: dict[int, Future[Outcome]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)
    outbox: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    alive: bool = True
    load_error: str | None = None
    exit_code: int | None = None
    pid: int = 0

    def send(self, message: Any) -> None:
        """Queue a message for the worker; never blocks (the caller is the gateway's event loop)."""
        self.outbox.put(message)

    def write(self) -> None:
        """Send queued messages to the worker (the writer thread's loop).

        A worker busy with hundreds of invocations reads its pipe late, and a full pipe would
        otherwise block whoever writes: the gateway's event loop.
        """
        while True:
            message = self.outbox.get()
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                return  # the reader sees the worker gone and fails what it was running
            if message is None:
                return


class ProcessRuntime(LambdaRuntime):
    """Invokes the handler in front and background worker processes (see the module docstring).

    Args:
        handler_spec: ``module.function``; loaded here too, so a bad spec fails at start.
        function_name: Function name on the context and in ARNs.
        timeout: The function's timeout in seconds.
        memory_size: Memory in MB.
        region: Region for the ARN.
        account: Account id for the ARN.
        concurrency: Invocations at once per pool; each worker runs its share on threads.
        workers: Front worker processes.
        background_workers: Background worker processes.
        background_nice: ``nice`` increment of the background workers (0: same priority).

    Raises:
        HandlerLoadError: when the handler cannot be loaded.
    """

    def __init__(
        self,
        handler_spec: str,
        *,
        function_name: str,
        timeout: float,
        memory_size: int,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
        concurrency: int = DEFAULT_CONCURRENCY,
        workers: int | None = None,
        background_workers: int | None = None,
        background_nice: int = BACKGROUND_NICE,
    ) -> None:
        super().__init__(
            load_handler(handler_spec),
            function_name=function_name,
            timeout=timeout,
            memory_size=memory_size,
            region=region,
            account=account,
            concurrency=concurrency,
        )
        self.handler_spec = handler_spec
        self._mp = multiprocessing.get_context("spawn")
        self._sizes = {
            "front": default_workers() if workers is None else workers,
            "background": default_workers() if background_workers is None else background_workers,
        }
        if min(self._sizes.values()) < 1:
            raise ValueError("each pool needs at least one worker")
        self._nice = {"front": 0, "background": max(0, background_nice)}
        self._pools: dict[str, list[_Worker]] = {name: [] for name in self._sizes}
        self._ids = itertools.count(1)
        self._turns = dict.fromkeys(self._sizes, 0)
        self._pool_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------------------ lifecycle

    def start(self, wait: float = 30.0) -> None:
        """Start every worker now and wait until they have loaded the handler.

        Args:
            wait: Seconds to wait for the workers.

        Raises:
            HandlerLoadError: when a worker cannot load the handler.
            RuntimeError: when a worker does not start in time or dies while starting.
        """
        with self._pool_lock:
            for name, size in self._sizes.items():
                while len(self._pools[name]) < size:
                    self._pools[name].append(self._spawn(name))
            workers = [w for pool in self._pools.values() for w in pool]
        deadline = time.monotonic() + wait
        for worker in workers:
            if not worker.ready.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"a {worker.pool} worker did not start within {wait:g} s")
            if worker.load_error is not None:
                raise HandlerLoadError(worker.load_error)
            if not worker.alive:
                raise RuntimeError(
                    f"a {worker.pool} worker exited while starting (status {worker.exit_code})"
                )

    @property
    def worker_pids(self) -> dict[str, list[int]]:
        """Process ids of the live workers, per pool."""
        with self._pool_lock:
            return {name: [w.pid for w in pool if w.alive] for name, pool in self._pools.items()}

    def shutdown(self) -> None:
        """Stop taking invocations; workers finish what they run, then exit."""
        self._closed = True
        with self._pool_lock:
            workers = [w for pool in self._pools.values() for w in pool]
        for worker in workers:
            if worker.alive:
                worker.send(None)

    def terminate(self, grace: float = 2.0) -> None:
        """End every worker: after ``grace`` seconds to exit on their own, by SIGTERM, then SIGKILL."""
        self.shutdown()
        with self._pool_lock:
            workers = [w for pool in self._pools.values() for w in pool]
        deadline = time.monotonic() + grace
        for worker in workers:
            # ValueError: the reader closed a worker that exited meanwhile; nothing left to stop.
            with contextlib.suppress(ValueError):
                worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in workers:
            with contextlib.suppress(ValueError):
                if worker.process.is_alive():
                    worker.process.terminate()
                    worker.process.join(2.0)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join(2.0)

    # ------------------------------------------------------------------------------ invocations

    def _submit(self, wire_event: str, context: LambdaContext, *, background: bool) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        future.set_running_or_notify_cancel()  # like an executor's: nobody can cancel it now
        if self._closed:
            future.set_result(
                (None, {"errorMessage": "the gateway is stopping", "errorType": "Runtime.Stopped"})
            )
            return future
        worker = self._pick("background" if background else "front")
        invocation_id = next(self._ids)
        with worker.lock:
            worker.inflight[invocation_id] = future
        if not worker.alive:
            # It died after being picked and its reader may have failed the others already.
            self._fail(worker, invocation_id, "Runtime exited with error: the worker is gone")
            return future
        worker.send((invocation_id, wire_event, context.aws_request_id, context.deadline))
        return future

    def _pick(self, pool_name: str) -> _Worker:
        """The live worker with the fewest running invocations; dead ones are replaced.

        Ties go round-robin, so invocations one after another warm every worker instead of
        always the first one (each worker is a container with its own cold start).
        """
        with self._pool_lock:
            pool = self._pools[pool_name]
            for index, worker in enumerate(pool):
                if not worker.alive:
                    pool[index] = self._spawn(pool_name)
            while len(pool) < self._sizes[pool_name]:
                pool.append(self._spawn(pool_name))
            turn = self._turns[pool_name] = self._turns[pool_name] + 1
            order = pool[turn % len(pool) :] + pool[: turn % len(pool)]
            return min(order, key=lambda w: len(w.inflight))

    def _spawn(self, pool_name: str) -> _Worker:
        threads = max(1, math.ceil(self.concurrency / self._sizes[pool_name]))
        # One log stream per worker: each is an execution environment of its own.
        context = self.environment_fields(new_log_stream())
        spec = _WorkerSpec(self.handler_spec, threads, self._nice[pool_name], context)
        parent, child = self._mp.Pipe()
        process = self._mp.Process(
            target=_worker_main, args=(child, spec), name=f"selador-{pool_name}", daemon=True
        )
        process.start()
        child.close()
        worker = _Worker(process, parent, pool_name, pid=process.pid or 0)
        threading.Thread(
            target=self._read, args=(worker,), name=f"selador-{pool_name}-reader", daemon=True
        ).start()
        threading.Thread(target=worker.write, name=f"selador-{pool_name}-writer", daemon=True).start()
        return worker

    def _read(self, worker: _Worker) -> None:
        """Deliver the worker's outcomes; when it dies, fail what it was running and clean up."""
        try:
            while True:
                message = worker.conn.recv()
                kind = message[0]
                if kind == "done":
                    _, invocation_id, payload, error = message
                    with worker.lock:
                        future = worker.inflight.pop(invocation_id, None)
                    if future is not None and not future.done():
                        future.set_result((payload, error))
                elif kind == "ready":
                    worker.ready.set()
                elif kind == "load_error":
                    worker.load_error = message[1]
        except (EOFError, OSError):
            pass  # the worker exited (or was killed)
        finally:
            # Whatever ended the loop, nothing more comes from this worker: mark it dead first,
            # so an invocation registered from now on fails at once instead of waiting (_submit).
            worker.alive = False
            worker.outbox.put(None)  # ends the writer thread
            worker.process.join(5.0)
            code = worker.exit_code = worker.process.exitcode
            worker.ready.set()  # after the exit code is known: start() reports it
            with worker.lock:
                lost = list(worker.inflight)
            if worker.load_error is not None:
                reason, error_type = worker.load_error, "Runtime.ImportModuleError"
            else:
                reason, error_type = f"Runtime exited with error: exit status {code}", "Runtime.ExitError"
            for invocation_id in lost:
                self._fail(worker, invocation_id, reason, error_type)
            if lost and not self._closed:
                log.warning(
                    "a %s worker exited (status %s) with %d invocation(s) running",
                    worker.pool,
                    code,
                    len(lost),
                )
            worker.conn.close()
            if code is not None:
                worker.process.close()  # its sentinel and pipe; a dead worker must not leak them

    @staticmethod
    def _fail(
        worker: _Worker, invocation_id: int, message: str, error_type: str = "Runtime.ExitError"
    ) -> None:
        with worker.lock:
            future = worker.inflight.pop(invocation_id, None)
        if future is not None and not future.done():
            future.set_result((None, {"errorMessage": message, "errorType": error_type}))
