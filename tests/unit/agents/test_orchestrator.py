"""The orchestrator: frame sequences through a CollectingSink, errors, cancellation and deadlines."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from strands.types.exceptions import ModelThrottledException

from selador.agents import orchestrator as orchestrator_module
from selador.agents.offline import OfflineResponder, tokenize
from selador.agents.orchestrator import Orchestrator, classify_error, run_query
from selador.knowledge.base import KnowledgeBaseError
from selador.protocol import (
    DeltaFrame,
    ErrorFrame,
    MessageFrame,
    QueryRequest,
    ResultFrame,
    StatusFrame,
    _Frame,
)
from selador.settings import Settings
from selador.sink import CollectingSink

from .conftest import CancellingSink, FakeKnowledgeBase

ZONING_QUESTION = "How much floor area can I build on my 5,000 sq ft NR3 lot?"
SECRET_DETAIL = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude"


class RecordingResponder(OfflineResponder):
    """The offline responder, remembering every toolUse block it streams and every answer it starts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tool_uses: list[dict[str, str]] = []
        self.answers_started = 0

    async def stream(
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:  # type: ignore[override]
        async for event in super().stream(messages, tool_specs, system_prompt, **kwargs):
            start = event.get("contentBlockStart", {}).get("start", {})
            if "toolUse" in start:
                self.tool_uses.append(start["toolUse"])
            elif "contentBlockStart" in event:
                self.answers_started += 1
            yield event


class RaisingModel(OfflineResponder):
    """A model whose stream fails before its first event."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:  # type: ignore[override]
        raise self.error
        yield {}


class ScriptedModel(OfflineResponder):
    """Streams fixed text and ends with the given stop reason."""

    def __init__(self, text: str, stop_reason: str) -> None:
        super().__init__()
        self.text = text
        self.stop_reason = stop_reason

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:  # type: ignore[override]
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        for token in tokenize(self.text):
            yield {"contentBlockDelta": {"delta": {"text": token}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": self.stop_reason}}
        yield {
            "metadata": {
                "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
                "metrics": {"latencyMs": 1},
            }
        }


def throttling_error() -> ClientError:
    return ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": f"Too many requests for {SECRET_DETAIL}"}},
        "ConverseStream",
    )


def request(question: str = ZONING_QUESTION, query_type: str = "zoning", **kwargs: Any) -> QueryRequest:
    return QueryRequest(question=question, query_type=query_type, request_id="req-1", **kwargs)


def labels(frames: list[_Frame]) -> list[str]:
    """Frame kinds with consecutive repeats collapsed: status frames by stage."""
    out: list[str] = []
    for frame in frames:
        label = f"status:{frame.stage}" if isinstance(frame, StatusFrame) else frame.type  # type: ignore[attr-defined]
        if not out or out[-1] != label:
            out.append(label)
    return out


def assert_single_terminal(sink: CollectingSink) -> ResultFrame | ErrorFrame:
    terminals = [f for f in sink.frames if isinstance(f, ResultFrame | ErrorFrame)]
    assert len(terminals) == 1
    assert sink.frames[-1] is terminals[0]
    assert [f.seq for f in sink.frames] == list(range(1, len(sink.frames) + 1))
    return terminals[0]


def make(settings: Settings, model: Any = None, kb: FakeKnowledgeBase | None = None) -> Orchestrator:
    return Orchestrator(
        settings=settings, model=model or RecordingResponder(), knowledge_base=kb or FakeKnowledgeBase()
    )


# --------------------------------------------------------------------------------------------
# happy path
# --------------------------------------------------------------------------------------------


async def test_frame_sequence_and_result(settings: Settings, kb: FakeKnowledgeBase) -> None:
    model = RecordingResponder()
    sink = CollectingSink("req-1")

    data = await make(settings, model, kb).run(request(), sink)

    assert labels(sink.frames) == [
        "status:routed",
        "status:tool",
        "status:composing",
        "delta",
        "message",
        "result",
    ]
    routed = sink.frames[0]
    assert isinstance(routed, StatusFrame)
    assert (routed.agent, routed.message) == ("rag", "Routed to the rag agent")
    tool_frames = [f for f in sink.frames if isinstance(f, StatusFrame) and f.stage == "tool"]
    assert [(f.tool, f.step, f.message) for f in tool_frames] == [
        ("search_knowledge_base", 1, "Calling search_knowledge_base (step 1)"),
        ("zoning_standards", 2, "Calling zoning_standards (step 2)"),
        ("buildable_area", 3, "Calling buildable_area (step 3)"),
    ]
    assert [u["name"] for u in model.tool_uses] == [f.tool for f in tool_frames]

    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ResultFrame)
    assert terminal.data == data
    assert data is not None
    streamed = "".join(f.content for f in sink.frames if isinstance(f, DeltaFrame))
    (message,) = [f for f in sink.frames if isinstance(f, MessageFrame)]
    assert data.content == streamed == message.content
    assert "[1]" in data.content and "Sources:" in data.content
    assert data.success is True
    assert (data.agent, data.query_type, data.stop_reason, data.model) == (
        "rag",
        "zoning",
        "end_turn",
        "offline",
    )
    assert data.tools_available == 5
    assert data.tools_used == len(model.tool_uses) == 3
    assert data.tool_calls == {"search_knowledge_base": 1, "zoning_standards": 1, "buildable_area": 1}
    assert [s.title for s in data.sources] == [
        "Neighborhood Residential zones",
        "Permits overview",
        "Lowrise multifamily",
        "Seattle zoning standards (bundled summary table)",
    ]
    assert data.sources[0].score == 0.91
    assert data.usage.output_tokens > 0
    assert data.usage.total_tokens == data.usage.input_tokens + data.usage.output_tokens
    assert kb.queries == [(ZONING_QUESTION, settings.knowledge_base_results)]


async def test_financing_routes_to_the_finance_agent(settings: Settings) -> None:
    sink = CollectingSink("req-1")
    question = "What is the monthly payment on a $650,000 condo with 10% down?"

    data = await make(settings).run(request(question, "financing"), sink)

    assert data is not None
    assert (data.agent, data.tools_available) == ("finance", 2)
    # A payment with every input given is arithmetic: the documents hold nothing on mortgages.
    assert data.tool_calls == {"mortgage_payment": 1}
    assert "- Down payment: $65,000.00 (10%); loan amount: $585,000.00" in data.content


async def test_context_reaches_the_model(settings: Settings) -> None:
    model = RecordingResponder()

    data = await make(settings, model).run(
        request("How tall can I build?", context="The lot is zoned LR2."), CollectingSink("r")
    )

    assert data is not None
    assert [u["name"] for u in model.tool_uses] == ["search_knowledge_base", "zoning_standards"]
    assert "- Maximum height: 40 ft" in data.content


async def test_each_run_gets_a_fresh_agent(settings: Settings) -> None:
    orchestrator = make(settings)

    first = await orchestrator.run(request(), CollectingSink("a"))
    second = await orchestrator.run(request(), CollectingSink("b"))

    # Metrics accumulate on an Agent; equal counts show nothing carried over.
    assert first is not None and second is not None
    assert first.tools_used == second.tools_used == 3
    assert first.usage == second.usage


def test_build_agent_uses_the_spec(settings: Settings) -> None:
    orchestrator = make(settings)
    spec = orchestrator.spec_for("financing")

    agent = orchestrator.build_agent(spec)

    assert agent.name == "finance"
    assert agent.tool_names == ["mortgage_payment", "search_knowledge_base"]
    assert agent.model is orchestrator.model
    assert orchestrator.build_agent(spec) is not agent


# --------------------------------------------------------------------------------------------
# stop reasons that still produce a result
# --------------------------------------------------------------------------------------------


async def test_max_tokens_is_a_result_with_the_partial_text(settings: Settings) -> None:
    sink = CollectingSink("r")

    data = await make(settings, ScriptedModel("A partial answer that was cut", "max_tokens")).run(
        request(), sink
    )

    assert assert_single_terminal(sink).type == "result"
    assert data is not None
    assert (data.stop_reason, data.content, data.success) == (
        "max_tokens",
        "A partial answer that was cut",
        True,
    )


async def test_turn_limit_is_a_result_with_limit_turns(settings: Settings) -> None:
    sink = CollectingSink("r")
    limited = settings.model_copy(update={"agent_max_turns": 1})

    data = await make(limited).run(request(), sink)

    assert assert_single_terminal(sink).type == "result"
    assert data is not None
    assert data.stop_reason == "limit_turns"
    assert data.tools_used == 3


# --------------------------------------------------------------------------------------------
# errors: exactly one safe error frame
# --------------------------------------------------------------------------------------------


async def test_model_throttling_client_error_is_one_safe_error_frame(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    sink = CollectingSink("r")

    with caplog.at_level(logging.ERROR, logger="selador.agents.orchestrator"):
        data = await make(settings, RaisingModel(throttling_error())).run(request(), sink)

    assert data is None
    assert labels(sink.frames) == ["status:routed", "error"]
    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ErrorFrame)
    assert terminal.code == "throttled"
    assert terminal.error == "The model service is busy right now; please try again in a moment"
    wire = "".join(f.to_json() for f in sink.frames)
    assert "123456789012" not in wire and "arn:" not in wire and "Traceback" not in wire
    # The detail goes to the log instead.
    assert "ThrottlingException" in caplog.text


async def test_model_throttled_after_retries(settings: Settings) -> None:
    sink = CollectingSink("r")

    await make(settings, RaisingModel(ModelThrottledException(SECRET_DETAIL))).run(request(), sink)

    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ErrorFrame)
    assert terminal.code == "throttled"


async def test_unexpected_exception_is_an_internal_error(settings: Settings) -> None:
    sink = CollectingSink("r")

    await make(settings, RaisingModel(RuntimeError(f"boom {SECRET_DETAIL}"))).run(request(), sink)

    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ErrorFrame)
    assert terminal.code == "internal_error"
    assert "boom" not in terminal.error and "123456789012" not in terminal.error


async def test_a_raising_tool_still_ends_with_a_result(settings: Settings) -> None:
    # A tool that raises becomes an error toolResult in Strands; the model answers around it.
    kb = FakeKnowledgeBase(error=RuntimeError("kaboom"))
    sink = CollectingSink("r")

    data = await make(settings, kb=kb).run(request("Do I need a permit for a deck?"), sink)

    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ResultFrame)
    assert data is not None
    assert data.tool_calls == {"search_knowledge_base": 1}
    assert "- The search_knowledge_base step did not work: RuntimeError - kaboom" in data.content
    assert data.sources == []


async def test_knowledge_base_error_with_nothing_cited_is_an_error_frame(
    settings: Settings, failing_kb: FakeKnowledgeBase
) -> None:
    sink = CollectingSink("r")

    data = await make(settings, kb=failing_kb).run(request("Do I need a permit for a deck?"), sink)

    assert data is None
    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ErrorFrame)
    assert terminal.code == "knowledge_base_error"
    assert (
        terminal.error
        == "The knowledge base could not be searched: The knowledge base is unavailable right now"
    )


async def test_knowledge_base_error_but_other_sources_cited_is_a_result(
    settings: Settings, failing_kb: FakeKnowledgeBase
) -> None:
    sink = CollectingSink("r")

    data = await make(settings, kb=failing_kb).run(request(), sink)

    assert assert_single_terminal(sink).type == "result"
    assert data is not None
    assert [s.title for s in data.sources] == ["Seattle zoning standards (bundled summary table)"]
    assert "The knowledge base search failed" in data.content


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (KnowledgeBaseError("Search is down"), "knowledge_base_error"),
        (
            ClientError({"Error": {"Code": "AccessDeniedException", "Message": SECRET_DETAIL}}, "Converse"),
            "model_error",
        ),
        (
            ClientError({"Error": {"Code": "ValidationException", "Message": SECRET_DETAIL}}, "Converse"),
            "model_error",
        ),
        (RuntimeError("wrapper"), "internal_error"),
    ],
)
def test_classify_error(error: Exception, code: str) -> None:
    got_code, text = classify_error(error)

    assert got_code == code
    assert SECRET_DETAIL not in text
    if isinstance(error, KnowledgeBaseError):
        assert text == "Search is down"


def test_classify_error_unwraps_causes() -> None:
    try:
        try:
            raise throttling_error()
        except ClientError as inner:
            raise RuntimeError("event loop failed") from inner
    except RuntimeError as outer:
        assert classify_error(outer)[0] == "throttled"


# --------------------------------------------------------------------------------------------
# cancellation and deadlines
# --------------------------------------------------------------------------------------------


async def test_a_cancel_mid_stream_ends_with_a_cancelled_result_holding_the_text_so_far(
    settings: Settings,
) -> None:
    model = RecordingResponder()
    sink = CancellingSink("r", after=3)

    data = await make(settings, model).run(request(), sink)

    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ResultFrame) and terminal.data == data
    assert terminal.data.success is False and terminal.data.stop_reason == "cancelled"
    streamed = "".join(f.content for f in sink.frames if isinstance(f, DeltaFrame))
    assert terminal.data.content == streamed and streamed  # exactly what the client saw
    assert terminal.data.agent == "rag" and terminal.data.query_type == "zoning"
    # The model stopped within a token or two of the signal, far short of the whole answer.
    assert 3 <= sink.deltas <= 5
    assert not any(isinstance(f, MessageFrame) for f in sink.frames)


async def test_cancelled_before_the_start(settings: Settings) -> None:
    sink = CollectingSink("r")
    sink.cancel_signal.set()

    await make(settings).run(request(), sink)

    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ResultFrame)
    assert (terminal.data.success, terminal.data.stop_reason, terminal.data.content) == (
        False,
        "cancelled",
        "",
    )
    assert not any(isinstance(f, DeltaFrame) for f in sink.frames)


async def test_deadline_stops_a_slow_answer_with_timeout(settings: Settings) -> None:
    model = RecordingResponder(token_delay_ms=20)  # a ~100-token answer takes seconds
    sink = CollectingSink("r")

    data = await make(settings, model).run(request(), sink, deadline=time.monotonic() + 0.2)

    assert data is None
    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ErrorFrame)
    assert (terminal.code, terminal.error) == ("timeout", "The query took too long and was stopped")
    # The sink's own signal means "client gone"; a timeout must not set it, or the frame would be dropped.
    assert not sink.cancel_signal.is_set()


async def test_deadline_hard_stops_a_stuck_tool(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A tool blocked in a worker thread never reaches a cancellation checkpoint.
    monkeypatch.setattr(orchestrator_module, "HARD_STOP_GRACE_S", 0.05)
    release = threading.Event()
    kb = FakeKnowledgeBase(before=lambda: release.wait(10))
    sink = CollectingSink("r")
    try:
        with caplog.at_level(logging.WARNING, logger="selador.agents.orchestrator"):
            data = await make(settings, kb=kb).run(request(), sink, deadline=time.monotonic() + 0.05)
    finally:
        release.set()

    assert data is None
    assert "hard-stopped after the deadline" in caplog.text
    terminal = assert_single_terminal(sink)
    assert isinstance(terminal, ErrorFrame)
    assert terminal.code == "timeout"


async def test_a_distant_deadline_does_not_interfere(settings: Settings) -> None:
    sink = CollectingSink("r")

    data = await make(settings).run(request(), sink, deadline=time.monotonic() + 60)

    assert data is not None
    assert assert_single_terminal(sink).type == "result"


# --------------------------------------------------------------------------------------------
# the sync entry point
# --------------------------------------------------------------------------------------------


def test_run_query_runs_the_cached_orchestrator(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    built = make(settings)
    monkeypatch.setattr(orchestrator_module, "get_orchestrator", lambda s: built)
    sink = CollectingSink("r")

    data = run_query(request(), sink, settings=settings)

    assert data is not None
    assert sink.terminal is not None and sink.terminal.type == "result"


def test_run_query_reports_a_build_failure_as_one_error_frame(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: Settings) -> Orchestrator:
        raise KnowledgeBaseError("The knowledge base index is missing")

    monkeypatch.setattr(orchestrator_module, "get_orchestrator", broken)
    sink = CollectingSink("r")

    assert run_query(request(), sink, settings=settings) is None
    assert len(sink.frames) == 1
    assert isinstance(sink.frames[0], ErrorFrame)
    assert (sink.frames[0].code, sink.frames[0].error) == (
        "knowledge_base_error",
        "The knowledge base index is missing",
    )


def test_run_query_with_the_real_factory_and_bundled_knowledge_base(settings: Settings) -> None:
    orchestrator_module.get_orchestrator.cache_clear()
    try:
        sink = CollectingSink("r")
        question = "What size egress window does a basement bedroom need?"

        data = run_query(request(question, "building_codes"), sink, settings=settings)

        assert orchestrator_module.get_orchestrator(settings) is orchestrator_module.get_orchestrator(
            settings
        )
    finally:
        orchestrator_module.get_orchestrator.cache_clear()

    assert labels(sink.frames) == [
        "status:routed",
        "status:tool",
        "status:composing",
        "delta",
        "message",
        "result",
    ]
    assert data is not None
    assert data.sources and all(s.title and s.location for s in data.sources)
    assert "[1]" in data.content
    assert data.tool_calls == {"search_knowledge_base": 1}
