"""The process runtime: Lambda's contract kept across a process boundary, pools, crashes, stop."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from selador.local.gateway import Gateway, GatewayOptions
from selador.local.processes import BACKGROUND_NICE, ProcessRuntime
from selador.local.runtime import HandlerLoadError, LambdaRuntime
from selador.local.serve import serve_in_thread

HANDLER = "process_fixture_handlers.dispatch"
WAIT = 20.0


def make_runtime(**kwargs: Any) -> ProcessRuntime:
    defaults: dict[str, Any] = {
        "function_name": "main-fn",
        "timeout": 30,
        "memory_size": 512,
        "concurrency": 16,
        "workers": 1,
        "background_workers": 1,
    }
    runtime = ProcessRuntime(kwargs.pop("handler", HANDLER), **(defaults | kwargs))
    runtime.start()
    return runtime


@pytest.fixture(scope="module")
def runtime() -> Iterator[ProcessRuntime]:
    os.environ["SELADOR_TEST_MARKER"] = "inherited"
    try:
        runtime = make_runtime()
    finally:
        del os.environ["SELADOR_TEST_MARKER"]
    yield runtime
    runtime.terminate()


async def test_the_handler_runs_in_a_worker_with_lambdas_context_and_the_environment(
    runtime: ProcessRuntime,
) -> None:
    outcome = await runtime.invoke({"do": "describe", "items": (1, 2)}, label="t")
    assert outcome.ok, outcome.error
    payload = outcome.payload
    assert payload["pid"] != os.getpid()
    assert payload["pid"] in runtime.worker_pids["front"]
    assert payload["event"] == {"do": "describe", "items": [1, 2]}  # through JSON
    assert payload["env"] == "inherited"  # the environment when the workers started
    assert payload["function_name"] == "main-fn"
    assert payload["memory"] == "512"
    assert payload["request_id"] == outcome.request_id
    assert 0 < payload["remaining_ms"] <= 30_000


async def test_background_invocations_run_in_their_own_lower_priority_workers(
    runtime: ProcessRuntime,
) -> None:
    front = await runtime.invoke({"do": "describe"}, label="t")
    background = await runtime.invoke({"do": "describe"}, label="t", background=True)
    assert background.payload["pid"] in runtime.worker_pids["background"]
    assert background.payload["pid"] != front.payload["pid"]
    assert front.payload["nice"] == os.nice(0)
    assert background.payload["nice"] == min(19, os.nice(0) + BACKGROUND_NICE)


async def test_handler_errors_are_lambda_error_documents(runtime: ProcessRuntime) -> None:
    errors_before = runtime.errors
    failed = await runtime.invoke({"do": "fail"}, label="t")
    assert failed.error is not None
    assert failed.error["errorType"] == "ValueError"
    assert failed.error["errorMessage"] == "bad input"
    assert any("fail" in line for line in failed.error["stackTrace"])
    unserialisable = await runtime.invoke({"do": "unserialisable"}, label="t")
    assert unserialisable.error is not None
    assert unserialisable.error["errorType"] == "Runtime.MarshalError"
    assert runtime.errors == errors_before + 2


async def test_invocations_run_at_once_inside_a_worker(runtime: ProcessRuntime) -> None:
    count = 12  # one front worker, 16 threads: all twelve must be in the barrier together
    outcomes = await asyncio.gather(
        *(runtime.invoke({"do": "meet", "n": count}, label="t") for _ in range(count))
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert sorted(o.payload for o in outcomes) == list(range(count))


async def test_a_worker_that_dies_fails_its_invocation_and_is_replaced(runtime: ProcessRuntime) -> None:
    (before,) = runtime.worker_pids["front"]
    outcome = await runtime.invoke({"do": "die", "status": 3}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in outcome.error["errorMessage"]
    again = await runtime.invoke({"do": "describe"}, label="t")
    assert again.ok, again.error
    assert again.payload["pid"] != before
    assert runtime.worker_pids["front"] == [again.payload["pid"]]
    assert runtime.running == 0


async def test_timeout_is_reported_while_the_invocation_runs_on() -> None:
    runtime = make_runtime(timeout=0.3)
    try:
        outcome = await runtime.invoke({"do": "sleep", "seconds": 1.0}, label="t")
        assert outcome.error is not None
        assert outcome.error["errorType"] == "Sandbox.Timedout"
        assert runtime.running == 1  # still running in its worker
        deadline = time.monotonic() + WAIT
        while runtime.running:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        runtime.terminate()


async def test_after_shutdown_invocations_are_refused_and_terminate_ends_the_workers() -> None:
    runtime = make_runtime()
    pids = runtime.worker_pids
    assert len(pids["front"]) == len(pids["background"]) == 1
    runtime.shutdown()
    refused = await runtime.invoke({"do": "describe"}, label="t")
    assert refused.error is not None
    assert refused.error["errorType"] == "Runtime.Stopped"
    runtime.terminate()
    for pid in pids["front"] + pids["background"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_handler_that_cannot_load_fails_at_once() -> None:
    with pytest.raises(HandlerLoadError, match="No module named 'selador_no_such_module'"):
        ProcessRuntime("selador_no_such_module.handler", function_name="f", timeout=3, memory_size=128)


def test_through_the_gateway_event_invocations_use_the_background_pool(tmp_path: Path) -> None:
    runtime = make_runtime()
    options = GatewayOptions(stage="production", function_name="main-fn", async_retries=0)
    try:
        with serve_in_thread(Gateway(runtime, options)) as running:
            client = boto3.client(
                "lambda",
                endpoint_url=running.endpoints.lambda_endpoint,
                region_name="us-west-2",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"total_max_attempts": 1}),
            )
            answer = client.invoke(FunctionName="main-fn", Payload=json.dumps({"do": "describe"}))
            front_pid = json.loads(answer["Payload"].read())["pid"]
            marker = tmp_path / "event.json"
            accepted = client.invoke(
                FunctionName="main-fn",
                InvocationType="Event",
                Payload=json.dumps({"do": "describe", "write_to": str(marker)}),
            )
            assert accepted["StatusCode"] == 202
            deadline = time.monotonic() + WAIT
            while not marker.exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            background_pid = json.loads(marker.read_text())["pid"]
            pids = runtime.worker_pids
    finally:
        runtime.terminate()
    assert pids["front"] == [front_pid]
    assert pids["background"] == [background_pid]


async def test_a_handler_raising_a_base_exception_answers_at_once(runtime: ProcessRuntime) -> None:
    outcome = await runtime.invoke({"do": "cancelled"}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "CancelledError"
    assert runtime.running == 0


async def test_thread_runtime_also_answers_a_base_exception() -> None:
    def handler(_event: Any, _context: Any) -> None:
        raise asyncio.CancelledError

    thread_runtime = LambdaRuntime(handler, function_name="f", timeout=30, memory_size=128)
    outcome = await thread_runtime.invoke({}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "CancelledError"
    assert thread_runtime.running == 0


@pytest.mark.parametrize(
    ("how", "raised", "message"),
    [
        ("raise", HandlerLoadError, "RuntimeError: cannot load in a worker"),
        ("exit", RuntimeError, r"exited while starting \(status 5\)"),
    ],
)
def test_workers_that_cannot_load_the_handler_fail_the_start(
    monkeypatch: pytest.MonkeyPatch, how: str, raised: type[Exception], message: str
) -> None:
    monkeypatch.setenv("SELADOR_TEST_BROKEN", how)
    broken = ProcessRuntime(
        "process_fixture_broken.handler", function_name="f", timeout=3, memory_size=128, workers=1
    )
    try:
        with pytest.raises(raised, match=message):
            broken.start()
    finally:
        broken.terminate(grace=0)


async def test_invocations_fail_cleanly_when_no_worker_can_be_started(
    runtime: ProcessRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_worker(_pool: str) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(runtime, "_pick", no_worker)
    outcome = await runtime.invoke({"do": "describe"}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.Unavailable"
    assert "Too many open files" in outcome.error["errorMessage"]
    assert runtime.running == 0


async def test_after_shutdown_the_thread_runtime_refuses_without_counting_a_running_invocation() -> None:
    thread_runtime = LambdaRuntime(lambda e, c: None, function_name="f", timeout=30, memory_size=128)
    thread_runtime.shutdown()
    outcome = await thread_runtime.invoke({}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.Unavailable"
    assert thread_runtime.running == 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts descriptors through /proc (Linux)")
async def test_dead_workers_leave_no_threads_or_descriptors_behind() -> None:
    crashing = make_runtime()

    async def crash_once() -> None:
        outcome = await crashing.invoke({"do": "die", "status": 4}, label="t")
        assert outcome.error is not None
        assert outcome.error["errorType"] == "Runtime.ExitError"
        await crashing.invoke({"do": "describe"}, label="t")  # starts the replacement

    async def settles_at(threads: int, fds: int) -> bool:
        # The reader cleans up after the dead worker on its own thread: give it time.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if threading.active_count() <= threads and _open_fds() <= fds:
                return True
            await asyncio.sleep(0.05)
        return False

    try:
        await crash_once()
        await asyncio.sleep(0.5)
        threads, fds = threading.active_count(), _open_fds()
        for _ in range(5):
            await crash_once()
        # Each crash replaces a worker (reader and writer threads, a pipe, a sentinel): leaked,
        # these would grow five times over; cleaned up, they come back to where they were.
        assert await settles_at(threads, fds), (threading.active_count(), threads, _open_fds(), fds)
    finally:
        crashing.terminate()


async def test_an_invocation_queued_past_its_timeout_is_not_run(tmp_path: Path) -> None:
    queued = make_runtime(timeout=0.3, concurrency=1)  # one thread per worker: the second waits
    marker = tmp_path / "ran.json"
    try:
        first, second = await asyncio.gather(
            queued.invoke({"do": "sleep", "seconds": 0.8}, label="t"),
            queued.invoke({"do": "describe", "write_to": str(marker)}, label="t"),
        )
        assert first.error is not None and second.error is not None
        assert second.error["errorType"] == "Sandbox.Timedout"
        deadline = time.monotonic() + WAIT
        while queued.running:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        queued.terminate()
    assert not marker.exists()


_ORPHAN_SCRIPT = """
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
from selador.local.processes import ProcessRuntime
import asyncio
runtime = ProcessRuntime("process_fixture_handlers.dispatch", function_name="f", timeout=60,
                         memory_size=128, workers=1, background_workers=1)
runtime.start()
pids = runtime.worker_pids
print(json.dumps(pids["front"] + pids["background"]), flush=True)
asyncio.run(runtime.invoke({"do": "sleep", "seconds": 30}, label="t"))
"""


def test_workers_end_when_the_gateway_is_killed() -> None:
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, json.dumps(sys.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        pids = json.loads(process.stdout.readline())
        time.sleep(0.3)  # the 30 s invocation is running in the front worker
        process.kill()
        process.wait(WAIT)
        deadline = time.monotonic() + WAIT
        alive = set(pids)
        while alive:
            assert time.monotonic() < deadline, f"orphaned workers: {alive}"
            for pid in list(alive):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    alive.discard(pid)
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
