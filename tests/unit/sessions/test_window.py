"""The turn window: whole turns leave the prompt, oldest first, before each new question."""

from __future__ import annotations

from typing import Any

import pytest
from strands import Agent
from strands.types.exceptions import ContextWindowOverflowException

from selador.agents.offline import OfflineResponder
from selador.sessions.window import TurnWindowConversationManager, is_question, turn_starts


def turn(n: int, *, tools: bool = False) -> list[dict[str, Any]]:
    """One stored turn: the question, optionally a tool round, the answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": f"question {n}"}]}]
    if tools:
        messages += [
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": f"t{n}", "name": "x", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": f"t{n}", "content": [{"text": "r"}]}}]},
        ]
    messages.append({"role": "assistant", "content": [{"text": f"answer {n}"}]})
    return messages


class _Holder:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages


def test_questions_are_user_text_without_tool_results() -> None:
    history = turn(1, tools=True)
    assert [is_question(m) for m in history] == [True, False, False, False]
    assert turn_starts(turn(1) + turn(2, tools=True) + turn(3)) == [0, 2, 6]


def test_before_a_question_the_window_keeps_the_last_turns_whole() -> None:
    manager = TurnWindowConversationManager(3)
    history = turn(1, tools=True) + turn(2) + turn(3, tools=True) + turn(4)
    holder = _Holder(list(history))
    assert manager._keep_last(holder, 2) == 6  # type: ignore[arg-type]
    assert holder.messages == turn(3, tools=True) + turn(4)
    assert manager.removed_message_count == 6
    assert manager._keep_last(holder, 2) == 0  # nothing more to drop
    assert manager.get_state()["removed_message_count"] == 6


def test_a_history_that_starts_mid_turn_loses_the_fragment() -> None:
    manager = TurnWindowConversationManager(5)
    holder = _Holder(turn(1, tools=True)[2:] + turn(2))
    manager._keep_last(holder, 4)  # type: ignore[arg-type]
    assert holder.messages == turn(2)


def test_one_turn_window_keeps_only_the_new_question() -> None:
    manager = TurnWindowConversationManager(1)
    holder = _Holder(turn(1) + turn(2))
    manager._keep_last(holder, 0)  # type: ignore[arg-type]
    assert holder.messages == [] and manager.removed_message_count == 4


def test_overflow_drops_the_oldest_turn_and_gives_up_at_the_current_one() -> None:
    manager = TurnWindowConversationManager(10)
    holder = _Holder(turn(1) + turn(2) + turn(3)[:1])
    error = ContextWindowOverflowException("too long")
    manager.reduce_context(holder, error)  # type: ignore[arg-type]
    assert holder.messages == turn(2) + turn(3)[:1]
    manager.reduce_context(holder, error)  # type: ignore[arg-type]
    assert holder.messages == turn(3)[:1]
    with pytest.raises(ContextWindowOverflowException):
        manager.reduce_context(holder, error)  # type: ignore[arg-type]


def test_a_real_agent_prompt_holds_at_most_max_turns() -> None:
    seen: list[int] = []

    class Counting(OfflineResponder):
        async def stream(self, messages, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(len(turn_starts(messages)))
            async for event in super().stream(messages, *args, **kwargs):
                yield event

    history = turn(1) + turn(2) + turn(3) + turn(4)
    agent = Agent(
        model=Counting(),
        messages=list(history),  # type: ignore[arg-type]
        conversation_manager=TurnWindowConversationManager(3),
        callback_handler=None,
    )
    agent("hello there")
    assert seen and max(seen) == 3
    assert agent.messages[0]["content"][0]["text"] == "question 3"
    with pytest.raises(ValueError):
        TurnWindowConversationManager(0)


def test_tool_results_of_older_turns_leave_the_prompt_but_every_tool_use_keeps_a_result() -> None:
    from selador.sessions.window import LEFT_OUT, leave_out_old_tool_results

    history = turn(1, tools=True) + turn(2) + turn(3, tools=True) + turn(4, tools=True)
    originals = [dict(m) for m in history]
    messages = list(history)
    assert leave_out_old_tool_results(messages) == 2
    results = [
        (b["toolResult"]["toolUseId"], b["toolResult"]["content"][0]["text"])
        for m in messages
        for b in m["content"]
        if "toolResult" in b
    ]
    assert results == [("t1", LEFT_OUT), ("t3", LEFT_OUT), ("t4", "r")]
    # The messages were replaced, not changed: the session manager's copies are intact.
    assert (
        history[2]["content"][0]["toolResult"]["content"]
        == [{"text": "r"}]
        == originals[2]["content"][0]["toolResult"]["content"]
    )
    assert leave_out_old_tool_results(messages) == 0  # nothing left to do
    assert leave_out_old_tool_results(list(turn(1, tools=True)), keep_turns=0) == 1
