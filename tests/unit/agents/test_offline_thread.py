"""The offline responder in a conversation: follow-ups read with the questions before them.

Most tests drive a real Strands ``Agent`` with the responder and the real tools over several calls:
Strands keeps ``agent.messages`` between calls, so each call sees the earlier turns, as it will
once sessions restore them. The figures asserted come from the bundled zoning table and the
calculators themselves, not from copies of their numbers.
"""

from __future__ import annotations

from typing import Any

import pytest
from strands import Agent
from strands.agent.conversation_manager import NullConversationManager

from selador.agents.offline import OfflineResponder
from selador.agents.offline import thread as thread_module
from selador.agents.offline.recall import question_parts
from selador.agents.specs import FINANCE_SPEC, RAG_SPEC
from selador.agents.state import INVOCATION_STATE_KEY, RunState
from selador.agents.tools import TOOLS, _compute_mortgage
from selador.knowledge.zoning import lookup_zone

from .conftest import FakeKnowledgeBase

Call = tuple[str, dict[str, Any]]


def new_agent(tool_names: tuple[str, ...] = RAG_SPEC.tool_names, messages: list[Any] | None = None) -> Agent:
    return Agent(
        model=OfflineResponder(),
        tools=[TOOLS[name] for name in tool_names],
        messages=messages,
        callback_handler=None,
    )


async def ask(agent: Agent, question: str) -> tuple[str, list[Call]]:
    """One turn: the answer and the tool calls this turn made (earlier turns' calls left out)."""
    result = await agent.invoke_async(
        question, invocation_state={INVOCATION_STATE_KEY: RunState(knowledge_base=FakeKnowledgeBase())}
    )
    return str(result).strip(), calls_since_question(agent.messages)


def calls_since_question(messages: list[Any]) -> list[Call]:
    # From the latest question on (Strands' sliding window may have trimmed earlier messages, so
    # a count taken before the call is no position).
    start = max(i for i, m in enumerate(messages) if question_parts(m) is not None)
    return [
        (block["toolUse"]["name"], block["toolUse"]["input"])
        for message in messages[start:]
        for block in message["content"]
        if "toolUse" in block
    ]


async def alone(question: str, tool_names: tuple[str, ...] = RAG_SPEC.tool_names) -> tuple[str, list[Call]]:
    return await ask(new_agent(tool_names), question)


def table(zone: str) -> Any:
    standard = lookup_zone(zone)
    assert standard is not None
    return standard


def past_turn(question: str, answer: str, *calls: tuple[str, dict[str, Any], str]) -> list[Any]:
    """The messages of one earlier turn as a session stores them: question, tool rounds, answer."""
    messages: list[Any] = [{"role": "user", "content": [{"text": question}]}]
    if calls:
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": f"old_{n}", "name": name, "input": tool_input}}
                    for n, (name, tool_input, _) in enumerate(calls)
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": f"old_{n}",
                            "status": "success",
                            "content": [{"text": text}],
                        }
                    }
                    for n, (_, _, text) in enumerate(calls)
                ],
            }
        )
    messages.append({"role": "assistant", "content": [{"text": answer}]})
    return messages


# --------------------------------------------------------------------------------------------
# a new zone, a new number: the thread's question again
# --------------------------------------------------------------------------------------------


async def test_three_turns_far_then_a_new_zone_then_the_floor_area_on_a_lot() -> None:
    agent = new_agent()
    lr2, lr3 = table("LR2"), table("LR3")

    first, first_calls = await ask(agent, "What is the FAR in LR2?")
    assert ("zoning_standards", {"zone": "LR2"}) in first_calls
    assert first.startswith(f"In LR2: floor area ratio (FAR): {lr2.far:g}.")

    # Streamed, as the orchestrator drives it; the messages stay on the agent between calls.
    streamed = [
        event["data"]
        async for event in agent.stream_async(
            "And in LR3?",
            invocation_state={INVOCATION_STATE_KEY: RunState(knowledge_base=FakeKnowledgeBase())},
        )
        if "data" in event
    ]
    second = "".join(streamed)
    second_calls = calls_since_question(agent.messages)
    assert second_calls == [
        ("search_knowledge_base", {"query": "What is the FAR in LR3?"}),
        ("zoning_standards", {"zone": "LR3"}),
    ]
    lines = second.splitlines()
    assert lines[0] == "Following on from your question about the FAR in LR2, now in LR3."
    assert lines[2].startswith(f"In LR3: floor area ratio (FAR): {lr3.far:g}.")

    # A new agent restored from the messages (as a session would restore them) carries on.
    restored = new_agent(messages=agent.messages)
    third, third_calls = await ask(restored, "How much floor area is that on a 5,000 sq ft lot?")
    assert ("buildable_area", {"lot_area_sqft": 5000.0, "zone": "LR3"}) in third_calls
    assert ("zoning_standards", {"zone": "LR3"}) in third_calls
    assert lr3.far is not None
    floor_area = 5000 * lr3.far
    assert floor_area == 9000  # the table's LR3 FAR is 1.8
    lines = third.splitlines()
    assert lines[0] == "Following on from your question about the FAR in LR3, I've used zone LR3 from it."
    assert lines[2] == (
        f"Buildable envelope of a 5,000 sq ft lot in LR3: Maximum floor area: {floor_area:,.0f} sq ft "
        f"(5,000 x FAR {lr3.far:g})."
    )


@pytest.mark.parametrize(
    ("follow_up", "zone"),
    [
        ("what about MR?", "MR"),
        ("How about NC2-40?", "NC2-40"),
        ("And in LR3?", "LR3"),
        ("or lowrise 1?", "LR1"),
    ],
)
async def test_a_new_zone_asks_the_previous_question_again(follow_up: str, zone: str) -> None:
    agent = new_agent()
    await ask(agent, "How tall can I build in LR2?")

    answer, calls = await ask(agent, follow_up)

    assert calls == [
        ("search_knowledge_base", {"query": f"How tall can I build in {zone}?"}),
        ("zoning_standards", {"zone": zone}),
    ]
    lines = answer.splitlines()
    assert lines[0] == f"Following on from your question about the height limit in LR2, now in {zone}."
    assert lines[2].startswith(f"In {zone}: maximum height: {table(zone).max_height_ft:,.0f} ft.")


async def test_numbers_fill_the_payment_calculator_and_carry_over() -> None:
    agent = new_agent(FINANCE_SPEC.tool_names)
    await ask(agent, "Monthly payment on a $800,000 house at 6.5%?")

    down, down_calls = await ask(agent, "and with 10% down?")
    rate, rate_calls = await ask(agent, "What about at 7%?")
    term, term_calls = await ask(agent, "and over 15 years?")

    assert down_calls == [
        ("mortgage_payment", {"price_usd": 800_000.0, "annual_rate_pct": 6.5, "down_payment_pct": 10.0})
    ]
    assert rate_calls == [
        ("mortgage_payment", {"price_usd": 800_000.0, "annual_rate_pct": 7.0, "down_payment_pct": 10.0})
    ]
    assert term_calls == [
        (
            "mortgage_payment",
            {"price_usd": 800_000.0, "annual_rate_pct": 7.0, "down_payment_pct": 10.0, "years": 15},
        )
    ]
    for text, breakdown in (
        (down, _compute_mortgage(800_000, 10, 6.5)),
        (rate, _compute_mortgage(800_000, 10, 7)),
        (term, _compute_mortgage(800_000, 10, 7, 15)),
    ):
        assert f"Estimated monthly payment for a $800,000.00 home: ${breakdown.total_monthly:,.2f}." in text
    assert down.startswith(
        "Following on from your question about the monthly payment for a $800,000 home, now with 10% down."
    )
    assert term.startswith(
        "Following on from your question about the monthly payment for a $800,000 home, now over 15 years."
    )


async def test_a_lot_size_alone_computes_the_floor_area_of_the_zone_asked_about() -> None:
    agent = new_agent()
    await ask(agent, "What is the FAR in MR?")

    answer, calls = await ask(agent, "on a 4,000 sq ft lot?")

    assert ("buildable_area", {"lot_area_sqft": 4000.0, "zone": "MR"}) in calls
    mr_far = table("MR").far
    assert mr_far is not None
    assert f"Maximum floor area: {4000 * mr_far:,.0f} sq ft" in answer


async def test_a_new_ask_gets_only_the_zone_it_lacks() -> None:
    agent = new_agent()
    await ask(agent, "What is the FAR in LR2?")

    answer, calls = await ask(agent, "what about the setbacks?")

    assert ("zoning_standards", {"zone": "LR2"}) in calls
    assert (
        answer.splitlines()[0]
        == "Following on from your question about the FAR in LR2, I've used zone LR2 from it."
    )
    lr2 = table("LR2")
    assert f"In LR2: setbacks: front {lr2.front_setback_ft:g} ft" in answer


async def test_the_thread_skips_thanks_and_questions_about_the_conversation() -> None:
    agent = new_agent()
    for text in ("What is the FAR in LR2?", "thanks!", "What did I ask first?"):
        await ask(agent, text)

    answer, calls = await ask(agent, "And in LR3?")

    assert ("zoning_standards", {"zone": "LR3"}) in calls
    assert answer.startswith("Following on from your question about the FAR in LR2, now in LR3.")


# --------------------------------------------------------------------------------------------
# what was asked before
# --------------------------------------------------------------------------------------------


async def test_what_did_i_ask_first_and_last() -> None:
    agent = new_agent()
    for text in ("What is the FAR in LR2?", "And in LR3?"):
        await ask(agent, text)

    first, first_calls = await ask(agent, "What did I ask first?")
    last, last_calls = await ask(agent, "what was my last question?")
    listed, _ = await ask(agent, "What were my questions so far?")

    assert first_calls == last_calls == []
    assert first == 'The earliest question I have from this conversation is: "What is the FAR in LR2?"'
    # The last real question: asking about the conversation is not one.
    assert last == 'Just before this, you asked: "And in LR3?"'
    assert listed == 'Your questions so far, oldest first:\n1. "What is the FAR in LR2?"\n2. "And in LR3?"'


async def test_what_did_i_ask_with_no_history_says_there_is_none() -> None:
    answer, calls = await alone("What did I ask before?")

    assert calls == []
    assert (
        answer == "I have no earlier question of yours in this conversation: this is the first one I can see."
    )


# --------------------------------------------------------------------------------------------
# what the history must not change
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "What is the monthly payment on a $650,000 condo with 10% down?",
        "What permit fees apply to a $120,000 kitchen remodel?",
        "What's the difference between NC1, NC2 and NC3?",
        "My lot is 4,500 square feet and the FAR is 1.3. How much floor area is that?",
        "whats the maximim hieght in NC2-55?",
        "Can I build a backyard cottage in NR3? How big can it be?",
        "What is SEPA review and does my project need it?",
        "Is there a rule that ADUs need parking?",
        "How much can I build on a 6,000 sq ft lot in NR2?",
    ],
)
async def test_a_question_complete_on_its_own_is_answered_as_without_history(question: str) -> None:
    agent = new_agent()
    for text in (
        "How much can I build on a 5,000 sq ft lot in LR3?",
        "Monthly payment on a $800,000 house at 7%?",
    ):
        await ask(agent, text)

    assert await ask(agent, question) == await alone(question)


async def test_figures_the_previous_question_cannot_use_do_not_follow_on() -> None:
    agent = new_agent()
    await ask(agent, "What is the FAR in LR2?")

    # A down payment is no input to a FAR question: answered as it would be alone.
    assert await ask(agent, "and with 20% down?") == await alone("and with 20% down?")


# --------------------------------------------------------------------------------------------
# histories from elsewhere: another agent, a trimmed window
# --------------------------------------------------------------------------------------------


async def test_history_answered_by_another_agent_with_other_tools() -> None:
    finance = new_agent(FINANCE_SPEC.tool_names)
    await ask(finance, "Monthly payment on a $800,000 house at 6.5%?")
    rag = new_agent(RAG_SPEC.tool_names, messages=finance.messages)

    answer, calls = await ask(rag, "What about at 7%?")

    assert calls == [("mortgage_payment", {"price_usd": 800_000.0, "annual_rate_pct": 7.0})]
    assert f"${_compute_mortgage(800_000, 20, 7).total_monthly:,.2f}" in answer

    # The other way: the finance agent has no zoning table; the question it searches is LR3's.
    zoning = new_agent(RAG_SPEC.tool_names)
    await ask(zoning, "What is the FAR in LR2?")
    answer, calls = await ask(new_agent(FINANCE_SPEC.tool_names, messages=zoning.messages), "And in LR3?")
    assert calls == [("search_knowledge_base", {"query": "What is the FAR in LR3?"})]
    assert answer.startswith("Following on from your question about the FAR in LR2, now in LR3.")


async def test_history_stored_with_tool_calls_the_current_agent_lacks() -> None:
    history = [
        *past_turn(
            "What is the height limit in NC3-65?",
            "In NC3-65: maximum height: 65 ft.",
            ("zoning_standards", {"zone": "NC3-65"}, "Zone NC3-65 — (table)\n- Maximum height: 65 ft"),
            ("some_retired_tool", {"x": 1}, "whatever it said"),
        ),
    ]
    answer, calls = await ask(new_agent(messages=history), "what about NC2-55?")

    assert ("zoning_standards", {"zone": "NC2-55"}) in calls
    assert answer.splitlines()[2].startswith(
        f"In NC2-55: maximum height: {table('NC2-55').max_height_ft:,.0f} ft."
    )


async def test_a_trimmed_history_starting_mid_conversation() -> None:
    # The window starts at a follow-up whose own predecessor ("What is the FAR in LR2?") is gone.
    history = [
        *past_turn("And in LR3?", "In LR3: floor area ratio (FAR): 1.8."),
        *past_turn("thanks", "You're welcome."),
    ]
    agent = new_agent(messages=history)

    answer, calls = await ask(agent, "How much floor area is that on a 5,000 sq ft lot?")
    first, _ = await ask(agent, "what was my first question?")

    assert ("buildable_area", {"lot_area_sqft": 5000.0, "zone": "LR3"}) in calls
    assert (
        answer.splitlines()[0]
        == 'Following on from your question "And in LR3?", I\'ve used zone LR3 from it.'
    )
    assert "Maximum floor area: 9,000 sq ft" in answer
    assert first == 'The earliest question I have from this conversation is: "And in LR3?"'


async def test_reading_the_history_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Twenty turns of an earlier thread, then the one followed: four questions back.
    history: list[Any] = []
    for n in range(20):
        history += past_turn(f"Monthly payment on a ${700 + n},000 house?", "…")
    history += past_turn("What is the FAR in LR2?", "…")
    for lot in (4000, 4500, 5000):
        history += past_turn(f"and on a {lot:,} sq ft lot?", "…")
    reads: list[str] = []
    real_read = thread_module.read

    def counting_read(question: str, context: str = "") -> Any:
        reads.append(question)
        return real_read(question, context)

    monkeypatch.setattr(thread_module, "read", counting_read)
    # No sliding window: the whole history reaches the responder.
    agent = new_agent(messages=history)
    agent.conversation_manager = NullConversationManager()

    answer, calls = await ask(agent, "And in LR3?")

    # Per call of the responder (tools, then the answer): the four questions back to the one that
    # stands alone, each read once, and each follow-up's rewritten question (three earlier, this
    # one); none of the twenty before.
    assert len(reads) == 2 * (4 + 4)
    assert not any("Monthly payment" in question for question in reads)
    assert ("buildable_area", {"lot_area_sqft": 5000.0, "zone": "LR3"}) in calls
    assert "Maximum floor area: 9,000 sq ft" in answer

    reads.clear()
    await ask(agent, "What is the FAR in NR3?")  # stands alone: the history is not read at all
    assert reads == []


async def test_a_follow_up_past_the_reading_bound_is_answered_alone() -> None:
    history = past_turn("What is the FAR in LR2?", "…")
    for n in range(thread_module.MAX_QUESTIONS_READ):
        history += past_turn(f"and on a {4000 + n:,} sq ft lot?", "…")
    agent = new_agent(messages=history)
    agent.conversation_manager = NullConversationManager()

    assert await ask(agent, "And in LR3?") == await alone("And in LR3?")
