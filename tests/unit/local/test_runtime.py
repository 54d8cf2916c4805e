"""The in-process Lambda runtime: handler loading, context, JSON round trips, errors, concurrency."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from selador.local.runtime import HandlerLoadError, LambdaRuntime, function_arn, load_handler

WAIT = 10.0


@pytest.fixture
def fake_module() -> Iterator[types.ModuleType]:
    module = types.ModuleType("selador_fake_handlers")
    module.handler = lambda event, context: {"ok": True}  # type: ignore[attr-defined]
    module.not_callable = 42  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def runtime_for(handler: Any, **kwargs: Any) -> LambdaRuntime:
    defaults: dict[str, Any] = {"function_name": "main-fn", "timeout": 30, "memory_size": 1024}
    return LambdaRuntime(handler, **(defaults | kwargs))


def test_load_handler_imports_module_function(fake_module: types.ModuleType) -> None:
    assert load_handler("selador_fake_handlers.handler") is fake_module.handler


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nodots", "must look like module.function"),
        ("selador_no_such_module.handler", "No module named 'selador_no_such_module'"),
        ("selador_fake_handlers.missing", "Handler 'missing' missing on module"),
        ("selador_fake_handlers.not_callable", "is not callable"),
    ],
)
def test_load_handler_errors_name_the_problem(fake_module: types.ModuleType, spec: str, message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message):
        load_handler(spec)


async def test_context_matches_lambda_and_counts_down_from_the_timeout() -> None:
    seen: dict[str, Any] = {}

    def handler(_event: Any, context: Any) -> None:
        seen.update(
            name=context.function_name,
            version=context.function_version,
            arn=context.invoked_function_arn,
            memory=context.memory_limit_in_mb,
            request_id=context.aws_request_id,
            log_group=context.log_group_name,
            remaining=context.get_remaining_time_in_millis(),
        )

    outcome = await runtime_for(handler, timeout=7).invoke({}, label="test")
    assert outcome.ok
    assert seen["name"] == "main-fn"
    assert seen["version"] == "$LATEST"
    assert seen["arn"] == function_arn("main-fn") == "arn:aws:lambda:us-west-2:123456789012:function:main-fn"
    assert seen["memory"] == "1024"  # a string, as Lambda's Python runtime passes it
    assert seen["request_id"] == outcome.request_id
    assert seen["log_group"] == "/aws/lambda/main-fn"
    assert 0 < seen["remaining"] <= 7000


async def test_each_invocation_has_its_own_request_id() -> None:
    ids: list[str] = []
    runtime = runtime_for(lambda e, c: ids.append(c.aws_request_id))
    await asyncio.gather(*(runtime.invoke({}, label="t") for _ in range(5)))
    assert len(set(ids)) == 5


async def test_event_and_result_go_through_json() -> None:
    received: list[Any] = []

    def handler(event: Any, _context: Any) -> Any:
        received.append(event)
        event["added"] = True
        return {"tuple": (1, 2), "nested": {"x": None}}

    original = {"items": (1, 2), "text": "é"}
    outcome = await runtime_for(handler).invoke(original, label="t")
    assert received == [{"items": [1, 2], "text": "é", "added": True}]
    assert original == {"items": (1, 2), "text": "é"}  # the handler got a copy
    assert outcome.payload == {"tuple": [1, 2], "nested": {"x": None}}


async def test_handler_exception_becomes_the_error_document(caplog: pytest.LogCaptureFixture) -> None:
    def handler(_event: Any, _context: Any) -> None:
        raise ValueError("bad input")

    caplog.set_level(logging.INFO, logger="selador.gateway")
    runtime = runtime_for(handler)
    outcome = await runtime.invoke({}, label="ws invoke ABC=")
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "ValueError"
    assert outcome.error["errorMessage"] == "bad input"
    assert any("handler" in line for line in outcome.error["stackTrace"])
    assert outcome.describe() == "ValueError"
    assert runtime.errors == 1
    assert "ws invoke ABC= -> ValueError in" in caplog.text


async def test_unserialisable_result_is_a_marshal_error() -> None:
    outcome = await runtime_for(lambda e, c: {"a": {1, 2}}).invoke({}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.MarshalError"


async def test_system_exit_is_an_exit_error() -> None:
    def handler(_event: Any, _context: Any) -> None:
        raise SystemExit(3)

    outcome = await runtime_for(handler).invoke({}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.ExitError"


async def test_each_invocation_is_logged_with_label_status_and_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="selador.gateway")
    outcome = await runtime_for(lambda e, c: {"statusCode": 204}).invoke({}, label="http GET /health")
    assert outcome.status_code == 204
    (record,) = [r for r in caplog.records if r.name == "selador.gateway"]
    assert record.getMessage().startswith("http GET /health -> 204 in ")
    assert " ms [" in record.getMessage()


async def test_timeout_reports_sandbox_timedout_while_the_thread_runs_on() -> None:
    release = threading.Event()
    finished = threading.Event()

    def handler(_event: Any, _context: Any) -> None:
        release.wait(WAIT)
        finished.set()

    runtime = runtime_for(handler, timeout=0.1)
    outcome = await runtime.invoke({}, label="t")
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.10 seconds" in outcome.error["errorMessage"]
    assert runtime.running == 1  # the thread cannot be stopped
    release.set()
    assert finished.wait(WAIT)
    for _ in range(int(WAIT / 0.01)):
        if runtime.running == 0:
            break
        await asyncio.sleep(0.01)
    assert runtime.running == 0


async def test_invocations_run_at_once_without_blocking_the_event_loop() -> None:
    count = 40
    barrier = threading.Barrier(count, timeout=WAIT)
    loop_turns = 0

    def handler(_event: Any, _context: Any) -> int:
        return barrier.wait()  # raises BrokenBarrierError unless all 40 are in at once

    async def spin() -> None:
        nonlocal loop_turns
        while True:
            loop_turns += 1
            await asyncio.sleep(0)

    spinner = asyncio.create_task(spin())
    runtime = runtime_for(handler)
    outcomes = await asyncio.gather(*(runtime.invoke({}, label="t") for _ in range(count)))
    spinner.cancel()
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert loop_turns > 0


async def test_concurrency_limit_queues_the_rest() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def handler(_event: Any, _context: Any) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        threading.Event().wait(0.02)
        with lock:
            active -= 1

    runtime = runtime_for(handler, concurrency=2)
    outcomes = await asyncio.gather(*(runtime.invoke({}, label="t") for _ in range(6)))
    assert all(o.ok for o in outcomes)
    assert peak <= 2
    assert runtime.total == 6


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        runtime_for(lambda e, c: None, concurrency=0)
