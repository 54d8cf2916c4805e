"""The offline responder, streamed directly and through a real Strands agent."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from pydantic import BaseModel
from strands import Agent

from selador.agents.offline import (
    DISCLAIMER,
    OfflineResponder,
    find_lot_area,
    find_zones,
    plan_tool_calls,
    tokenize,
)
from selador.agents.state import INVOCATION_STATE_KEY, RunState
from selador.agents.tools import TOOLS

from .conftest import FakeKnowledgeBase

ALL_TOOLS = set(TOOLS)
TOOL_SPECS = [tool.tool_spec for tool in TOOLS.values()]
QUESTION = (
    "How much floor area can I build on my 5,000 sq ft NR3 lot, and what is the mortgage payment on a "
    "$500,000 house?"
)


async def collect(model: OfflineResponder, messages: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
    return [event async for event in model.stream(messages, **kwargs)]


def question(text: str = QUESTION) -> list[Any]:
    return [{"role": "user", "content": [{"text": text}]}]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["contentBlockDelta"]["delta"]["text"]
        for e in events
        if "contentBlockDelta" in e and "text" in e["contentBlockDelta"]["delta"]
    )


def tool_uses(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rebuild the toolUse blocks from a tool-phase stream, parsing each block's JSON input."""
    uses: list[dict[str, Any]] = []
    for event in events:
        if "contentBlockStart" in event and "toolUse" in event["contentBlockStart"]["start"]:
            uses.append({**event["contentBlockStart"]["start"]["toolUse"], "raw": ""})
        elif "contentBlockDelta" in event and "toolUse" in event["contentBlockDelta"]["delta"]:
            uses[-1]["raw"] += event["contentBlockDelta"]["delta"]["toolUse"]["input"]
    for use in uses:
        use["input"] = json.loads(use.pop("raw"))
    return uses


def with_results(state: RunState, user_text: str = QUESTION) -> list[Any]:
    """A conversation after one tool round, with results produced by the real tools."""
    from types import SimpleNamespace

    context = SimpleNamespace(invocation_state={INVOCATION_STATE_KEY: state})
    search = TOOLS["search_knowledge_base"](query="ADU", tool_context=context)
    zoning = TOOLS["zoning_standards"](zone="NR3", tool_context=context)
    mortgage = TOOLS["mortgage_payment"](price_usd=500_000)
    calls = [
        ("t1", "search_knowledge_base", search),
        ("t2", "zoning_standards", zoning),
        ("t3", "mortgage_payment", mortgage),
    ]
    return [
        {"role": "user", "content": [{"text": user_text}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": tid, "name": name, "input": {}}} for tid, name, _ in calls],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": tid, "status": "success", "content": [{"text": text}]}}
                for tid, _, text in calls
            ],
        },
    ]


# --------------------------------------------------------------------------------------------
# tool selection
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zones"),
    [
        ("Is my lot in nr3?", ["NR3"]),
        ("What about LR2 townhouses", ["LR2"]),
        ("rules for NC2P-55 (M)", ["NC2-55"]),
        ("a 1920s house zoned SF 5000", ["NR3"]),
        ("MR zone height", ["MR"]),
        ("setbaks for lowrise 2 zone?", ["LR2"]),
        ("how tall can buildings be in midrise zones?", ["MR"]),
        ("LR2 vs LR3 - which one allows taller buildings?", ["LR2", "LR3"]),
        ("neighborhood residential 1 or single family 7200", ["NR1", "NR2"]),
        ("Mr. Smith works 24 hr shifts", []),
        ("no zone here", []),
    ],
)
def test_find_zones(text: str, zones: list[str]) -> None:
    assert find_zones(text) == zones


@pytest.mark.parametrize(
    ("text", "area"),
    [
        ("a 5,000 sq ft lot", 5000),
        ("5000 square feet", 5000),
        ("lot of 4200sf", 4200),
        ("a quarter: 0.25 acres", 10_890),
        ("a half acre lot", 21_780),
        ("a big house", None),
    ],
)
def test_find_lot_area(text: str, area: float | None) -> None:
    assert find_lot_area(text) == area


def test_plan_for_a_rich_question() -> None:
    calls = plan_tool_calls(QUESTION, QUESTION, ALL_TOOLS)

    assert calls == [
        ("search_knowledge_base", {"query": QUESTION}),
        ("zoning_standards", {"zone": "NR3"}),
        ("buildable_area", {"lot_area_sqft": 5000.0, "zone": "NR3"}),
        ("mortgage_payment", {"price_usd": 500_000.0}),
    ]


def test_plan_reads_mortgage_terms() -> None:
    text = "Monthly payment on a $750k condo with 10% down at 6.25% interest on a 15-year loan?"

    (mortgage,) = [c for c in plan_tool_calls(text, text, ALL_TOOLS) if c[0] == "mortgage_payment"]

    assert mortgage[1] == {
        "price_usd": 750_000.0,
        "down_payment_pct": 10.0,
        "annual_rate_pct": 6.25,
        "years": 15,
    }


def test_plan_permit_fee_needs_value_and_fee_words() -> None:
    text = "What permit fees apply to a $120,000 kitchen remodel?"

    assert ("permit_fee_estimate", {"project_value_usd": 120_000.0}) in plan_tool_calls(text, text, ALL_TOOLS)
    assert not any(
        name == "permit_fee_estimate"
        for name, _ in plan_tool_calls("a $120,000 remodel", "a $120,000 remodel", ALL_TOOLS)
    )


def test_plan_offers_only_available_tools() -> None:
    calls = plan_tool_calls(QUESTION, QUESTION, {"mortgage_payment"})

    assert [name for name, _ in calls] == ["mortgage_payment"]


# --------------------------------------------------------------------------------------------
# streaming: the tool phase
# --------------------------------------------------------------------------------------------


async def test_tool_phase_event_order_and_json_inputs() -> None:
    events = await collect(OfflineResponder(), question(), tool_specs=TOOL_SPECS)

    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart"
    assert kinds[-2:] == ["messageStop", "metadata"]
    assert (
        kinds[1:-2] == ["contentBlockStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop"] * 4
    )
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    uses = tool_uses(events)
    assert [(u["name"], u["input"]) for u in uses] == plan_tool_calls(QUESTION, QUESTION, ALL_TOOLS)
    assert len({u["toolUseId"] for u in uses}) == 4
    usage = events[-1]["metadata"]["usage"]
    assert usage["inputTokens"] == len(QUESTION.split())
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > usage["inputTokens"]


async def test_the_context_block_is_read_and_searched_with_the_question() -> None:
    messages = [
        {
            "role": "user",
            "content": [{"text": "How tall can I build?"}, {"text": "Context from the user:\nmy lot is LR2"}],
        }
    ]

    uses = tool_uses(await collect(OfflineResponder(), messages, tool_specs=TOOL_SPECS))

    assert [(u["name"], u["input"]) for u in uses] == [
        ("search_knowledge_base", {"query": "How tall can I build?\nmy lot is LR2"}),
        ("zoning_standards", {"zone": "LR2"}),
    ]


# --------------------------------------------------------------------------------------------
# streaming: the answer phase
# --------------------------------------------------------------------------------------------


async def test_answer_from_tool_results_cites_sources(kb: FakeKnowledgeBase) -> None:
    state = RunState(knowledge_base=kb)
    messages = with_results(state)

    events = await collect(OfflineResponder(), messages, tool_specs=TOOL_SPECS)

    assert next(iter(events[0])) == "messageStart"
    assert events[1] == {"contentBlockStart": {"start": {}}}
    assert events[-3] == {"contentBlockStop": {}}
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    answer = text_of(events)
    lines = answer.splitlines()
    # The direct answer first: the calculator's figure for the question's payment.
    assert lines[0] == "Estimated monthly payment for a $500,000.00 home: $3,044.94."
    # Then the top passage's sentences about the question, with its number, the best first (the
    # one with a figure: the question asks "how much"); passages sharing too few words with the
    # question ([2], [3]) are not quoted.
    assert lines[2] == "- A detached ADU may be up to 1,000 square feet of gross floor area on a lot. [1]"
    assert lines[3] == "- Accessory dwelling units are allowed in Neighborhood Residential zones. [1]"
    assert "- Zone NR3 — Neighborhood Residential 3 (bundled summary table) [4]" in lines
    assert not any("[2]" in line or "[3]" in line for line in lines)
    assert "  - Maximum lot coverage: 35%" in lines
    assert lines.count("Estimated monthly payment for a $500,000.00 home: $3,044.94.") == 1  # not repeated
    assert "- Principal and interest: $2,528.27 a month (6.5% fixed, 30 years, 360 payments)" in lines
    sources = lines[lines.index("Sources:") + 1 : -2]
    assert sources == [
        "[1] Neighborhood Residential zones — SMC 23.44.041 Accessory dwelling units (https://example.test/nr)",
        "[4] Seattle zoning standards (bundled summary table) — NR3: Neighborhood Residential 3 "
        "(SMC 23.44.010, 23.44.012, 23.44.014)",
    ]
    assert lines[-1] == DISCLAIMER
    deltas = [e for e in events if "contentBlockDelta" in e]
    assert events[-1]["metadata"]["usage"]["outputTokens"] == len(deltas) == len(tokenize(answer))


async def test_two_runs_are_identical(kb: FakeKnowledgeBase) -> None:
    def without_latency(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e if "metadata" not in e else e["metadata"]["usage"] for e in events]

    first_tools = await collect(OfflineResponder(), question(), tool_specs=TOOL_SPECS)
    second_tools = await collect(OfflineResponder(), question(), tool_specs=TOOL_SPECS)
    first = await collect(
        OfflineResponder(), with_results(RunState(knowledge_base=kb)), tool_specs=TOOL_SPECS
    )
    second = await collect(
        OfflineResponder(), with_results(RunState(knowledge_base=kb)), tool_specs=TOOL_SPECS
    )

    assert without_latency(first_tools) == without_latency(second_tools)
    assert without_latency(first) == without_latency(second)


async def test_token_delay_is_honoured_between_tokens(kb: FakeKnowledgeBase) -> None:
    pauses: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        pauses.append(seconds)

    model = OfflineResponder(token_delay_ms=15, sleep=counting_sleep)
    events = await collect(model, with_results(RunState(knowledge_base=kb)), tool_specs=TOOL_SPECS)

    tokens = [e for e in events if "contentBlockDelta" in e]
    assert len(pauses) == len(tokens) > 20
    assert set(pauses) == {0.015}


async def test_zero_delay_still_yields_to_the_event_loop(kb: FakeKnowledgeBase) -> None:
    pauses: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        pauses.append(seconds)

    await collect(
        OfflineResponder(sleep=counting_sleep),
        with_results(RunState(knowledge_base=kb)),
        tool_specs=TOOL_SPECS,
    )

    assert pauses and set(pauses) == {0.0}


async def test_cancel_signal_stops_the_answer_early(kb: FakeKnowledgeBase) -> None:
    cancel = threading.Event()
    pauses = 0

    async def cancel_after_five(seconds: float) -> None:
        nonlocal pauses
        pauses += 1
        if pauses == 5:
            cancel.set()

    model = OfflineResponder(sleep=cancel_after_five)
    events = await collect(
        model, with_results(RunState(knowledge_base=kb)), tool_specs=TOOL_SPECS, cancel_signal=cancel
    )

    assert len([e for e in events if "contentBlockDelta" in e]) == 5
    assert not any("messageStop" in e for e in events)


async def test_without_tools_it_answers_directly() -> None:
    events = await collect(OfflineResponder(), question("What is a good first home?"), tool_specs=None)

    assert not tool_uses(events)
    answer = text_of(events)
    assert answer.startswith(
        'I have no reference documents or calculators available to answer "What is a good first home?"'
    )
    assert answer.endswith(DISCLAIMER)
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}


async def test_failed_tool_results_are_reported_in_the_answer() -> None:
    messages = [
        *question("ADU rules?"),
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "search_knowledge_base", "input": {}}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "t1",
                        "status": "error",
                        "content": [{"text": "Error: The knowledge base search failed: offline"}],
                    }
                }
            ],
        },
    ]

    answer = text_of(await collect(OfflineResponder(), messages, tool_specs=TOOL_SPECS))

    assert answer.startswith('I could not get reference material for "ADU rules?" just now.')
    assert (
        "- The search_knowledge_base step did not work: The knowledge base search failed: offline" in answer
    )
    assert "Sources:" not in answer


@pytest.mark.parametrize("minimum", [2_000, 20_000])
async def test_min_answer_tokens_pads_with_numbered_sentences(kb: FakeKnowledgeBase, minimum: int) -> None:
    model = OfflineResponder(min_answer_tokens=minimum)

    events = await collect(model, with_results(RunState(knowledge_base=kb)), tool_specs=TOOL_SPECS)

    answer = text_of(events)
    assert len(tokenize(answer)) >= minimum
    assert "Further detail:" in answer
    assert "\n1. " in answer and "\n2. " in answer
    assert answer.index("Further detail:") < answer.index("Sources:")
    assert answer.endswith(DISCLAIMER)
    assert events[-1]["metadata"]["usage"]["outputTokens"] == len(tokenize(answer))


def test_tokenize_round_trips() -> None:
    text = "  Hello,  world!\n\n- a [1]\n"

    tokens = tokenize(text)

    assert "".join(tokens) == text
    assert tokens[:3] == ["  ", "Hello,  ", "world!\n\n"]


async def test_structured_output_is_refused_clearly() -> None:
    class Shape(BaseModel):
        x: int

    with pytest.raises(ValueError, match="does not produce structured output"):
        async for _ in OfflineResponder().structured_output(Shape, question()):
            pass


def test_config_round_trip_and_validation() -> None:
    model = OfflineResponder(token_delay_ms=5)
    model.update_config(min_answer_tokens=10)

    assert model.get_config() == {
        "model_id": "offline",
        "token_delay_ms": 5,
        "min_answer_tokens": 10,
        "tokens_per_delta": 1,
    }
    with pytest.raises(ValueError, match="unknown offline responder settings: temperature"):
        model.update_config(temperature=0.2)
    with pytest.raises(ValueError, match="token_delay_ms must not be negative"):
        model.update_config(token_delay_ms=-1)
    with pytest.raises(ValueError, match="tokens_per_delta must be at least 1"):
        model.update_config(tokens_per_delta=0)


async def test_tokens_per_delta_groups_tokens_but_counts_tokens(kb: FakeKnowledgeBase) -> None:
    messages = with_results(RunState(knowledge_base=kb))
    single = await collect(OfflineResponder(), messages, tool_specs=TOOL_SPECS)

    grouped = await collect(OfflineResponder(tokens_per_delta=8), messages, tool_specs=TOOL_SPECS)

    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in grouped if "contentBlockDelta" in e]
    assert text_of(grouped) == text_of(single)
    assert len(deltas) == -(-len(tokenize(text_of(single))) // 8)
    assert all(len(tokenize(d)) == 8 for d in deltas[:-1])
    assert grouped[-1]["metadata"]["usage"]["outputTokens"] == len(tokenize(text_of(single)))


# --------------------------------------------------------------------------------------------
# through a real Strands agent
# --------------------------------------------------------------------------------------------


async def test_runs_through_the_real_strands_event_loop(kb: FakeKnowledgeBase) -> None:
    state = RunState(knowledge_base=kb)
    agent = Agent(model=OfflineResponder(), tools=list(TOOLS.values()), callback_handler=None)

    result = await agent.invoke_async(QUESTION, invocation_state={INVOCATION_STATE_KEY: state})

    assert result.stop_reason == "end_turn"
    assert {name: m.call_count for name, m in result.metrics.tool_metrics.items()} == {
        "search_knowledge_base": 1,
        "zoning_standards": 1,
        "buildable_area": 1,
        "mortgage_payment": 1,
    }
    assert all(m.error_count == 0 for m in result.metrics.tool_metrics.values())
    assert result.metrics.cycle_count == 2
    text = str(result)
    assert "[1]" in text and "Sources:" in text
    assert "Estimated monthly payment for a $500,000.00 home: $3,044.94." in text
    assert kb.queries == [(QUESTION, 5)]
    assert {s.title for s in state.sources} >= {
        "Neighborhood Residential zones",
        "Seattle zoning standards (bundled summary table)",
    }


async def test_unrelated_passages_are_not_quoted() -> None:
    kb = FakeKnowledgeBase()
    state = RunState(knowledge_base=kb)
    from types import SimpleNamespace

    context = SimpleNamespace(invocation_state={INVOCATION_STATE_KEY: state})
    question_text = "What is the monthly payment on a $650,000 condo with 10% down?"
    results = [
        (
            "t1",
            "search_knowledge_base",
            TOOLS["search_knowledge_base"](query=question_text, tool_context=context),
        ),
        ("t2", "mortgage_payment", TOOLS["mortgage_payment"](price_usd=650_000, down_payment_pct=10)),
    ]
    messages = [
        *question(question_text),
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": t, "name": n, "input": {}}} for t, n, _ in results],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": t, "status": "success", "content": [{"text": x}]}}
                for t, _, x in results
            ],
        },
    ]

    answer = text_of(await collect(OfflineResponder(), messages, tool_specs=TOOL_SPECS))

    # The calculator answered; a search that found nothing on the question is not mentioned.
    assert "no passage" not in answer
    assert "ADU" not in answer
    assert "Sources:" not in answer  # nothing was cited
    assert answer.startswith("Estimated monthly payment for a $650,000.00 home:")
