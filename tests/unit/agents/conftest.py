"""Fixtures for the agent tests: a fake knowledge base, settings, and a sink that acts mid-stream."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from selador.agents.state import INVOCATION_STATE_KEY, RunState
from selador.knowledge.base import KnowledgeBase, KnowledgeBaseError, Passage
from selador.settings import Settings
from selador.sink import CollectingSink

PASSAGES = [
    Passage(
        text=(
            "Accessory dwelling units are allowed in Neighborhood Residential zones. "
            "A detached ADU may be up to 1,000 square feet of gross floor area on a lot. "
            "Two ADUs are allowed per lot."
        ),
        title="Neighborhood Residential zones",
        source="https://example.test/nr",
        score=0.91,
        section="SMC 23.44.041 Accessory dwelling units",
        document_id="nr",
    ),
    Passage(
        text="Most new buildings and additions need a building permit. Small repairs are exempt.",
        title="Permits overview",
        source="https://example.test/permits",
        score=0.55,
        section="When you need a permit",
        document_id="permits",
    ),
    Passage(
        text="Lowrise zones allow townhouses and apartments. Heights are 30 to 50 feet.",
        title="Lowrise multifamily",
        source="https://example.test/lr",
        score=0.4,
        section=None,
        document_id="lr",
    ),
]


class FakeKnowledgeBase(KnowledgeBase):
    """Returns fixed passages; records queries; optionally raises."""

    name = "fake"

    def __init__(
        self,
        passages: list[Passage] | None = None,
        error: Exception | None = None,
        before: Callable[[], None] | None = None,
    ) -> None:
        self.passages = PASSAGES if passages is None else passages
        self.error = error
        self.before = before
        self.queries: list[tuple[str, int]] = []

    def search(self, query: str, limit: int = 5) -> list[Passage]:
        self.queries.append((query, limit))
        if self.before is not None:
            self.before()
        if self.error is not None:
            raise self.error
        return self.passages[:limit]


@pytest.fixture
def kb() -> FakeKnowledgeBase:
    return FakeKnowledgeBase()


@pytest.fixture
def failing_kb() -> FakeKnowledgeBase:
    return FakeKnowledgeBase(error=KnowledgeBaseError("The knowledge base is unavailable right now"))


@pytest.fixture
def settings() -> Settings:
    return Settings(model_provider="local", local_model_token_delay_ms=0, model_max_attempts=1)


def tool_context(state: RunState) -> Any:
    """What the context tools read from a ToolContext: only ``invocation_state``."""
    return SimpleNamespace(invocation_state={INVOCATION_STATE_KEY: state})


class CancellingSink(CollectingSink):
    """Sets its cancel signal once it has received ``after`` deltas (the client went away)."""

    def __init__(self, request_id: str, after: int) -> None:
        super().__init__(request_id)
        self.after = after
        self.deltas = 0

    def delta(self, text: str) -> None:
        super().delta(text)
        self.deltas += 1
        if self.deltas == self.after:
            self.cancel_signal.set()
