"""Review findings on a conversation's turns, over both stores, with real Strands agents."""

from __future__ import annotations

from typing import Any

import pytest
from strands import Agent
from strands.types.exceptions import ContextWindowOverflowException

from selador.agents.offline import OfflineResponder
from selador.sessions.conversation import Conversation
from selador.sessions.service import Opening, Sessions
from selador.store.base import Store

from .test_conversation import settings, store, turn

__all__ = ["store"]  # the fixture, over SQLite and DynamoDB


class Overflowing(OfflineResponder):
    """A model whose context never fits, however much of the history is dropped."""

    async def stream(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def, override]
        raise ContextWindowOverflowException("input is too long")
        yield  # pragma: no cover - makes this an async generator


def user_texts(agent: Agent) -> list[str]:
    return [b["text"] for m in agent.messages if m["role"] == "user" for b in m["content"] if "text" in b]


def test_a_failed_turn_does_not_shrink_what_the_next_turn_sees(store: Store) -> None:
    conf = settings()
    Sessions(store, conf).create(Opening("p:u", "chat", None, None), "q")
    turn(store, conf, "p:u", "What is the FAR in LR2?")
    turn(store, conf, "p:u", "What is the height limit in NC2?")
    # A question that overflows: the window drops every earlier turn, then gives up; never committed.
    conversation = Conversation(store, conf, "p:u", "chat")
    conversation.open("Tell me everything")
    failing = Agent(model=Overflowing(), callback_handler=None, **conversation.agent_options())
    with pytest.raises(ContextWindowOverflowException):
        failing("Tell me everything")
    # The next question sees the conversation as committed: both earlier turns.
    agent = turn(store, conf, "p:u", "What did I ask first?")
    assert user_texts(agent) == [
        "What is the FAR in LR2?",
        "What is the height limit in NC2?",
        "What did I ask first?",
    ]
