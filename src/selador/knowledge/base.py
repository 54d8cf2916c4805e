"""The knowledge-base interface both implementations answer to."""

from __future__ import annotations

import abc
from dataclasses import dataclass


class KnowledgeBaseError(RuntimeError):
    """The knowledge base could not answer; ``str()`` is safe to show a user."""


@dataclass(frozen=True)
class Passage:
    """One ranked search hit.

    Attributes:
        text: The passage text.
        title: Title of the document it comes from.
        source: Where the document lives (public source URL or S3 URI).
        score: Relevance score, higher is better (not comparable across implementations).
        section: Code section or heading the passage sits under, when known.
        document_id: Stable id of the document.
    """

    text: str
    title: str
    source: str
    score: float
    section: str | None = None
    document_id: str = ""


class KnowledgeBase(abc.ABC):
    """Ranked search over zoning, building-code and permit documents."""

    name: str = "knowledge-base"

    @abc.abstractmethod
    def search(self, query: str, limit: int = 5) -> list[Passage]:
        """Return up to ``limit`` passages, best first.

        Raises:
            KnowledgeBaseError: when the backing service fails.
        """
