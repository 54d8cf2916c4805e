"""Per-run state the tools share with the orchestrator (no strands import).

The orchestrator hands one :class:`RunState` to the agent as ``invocation_state["selador"]``; the
tools read the knowledge base from it, number the sources they cite through it, and record the
knowledge-base failures the orchestrator reports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from selador.knowledge.base import KnowledgeBase
from selador.protocol import Source

INVOCATION_STATE_KEY = "selador"
"""The ``invocation_state`` key the orchestrator stores the :class:`RunState` under."""


@dataclass
class RunState:
    """What one query's tools share.

    Tools run concurrently in worker threads (Strands' default executor), so the source registry is
    guarded by a lock: a citation number, once given, always names the same source.

    Attributes:
        knowledge_base: The container's knowledge base.
        max_results: Upper bound on passages per search (``KNOWLEDGE_BASE_RESULTS``).
        sources: Every source cited so far, in citation order; ``[n]`` is ``sources[n - 1]``.
        knowledge_base_errors: Safe messages of failed searches, in order.
    """

    knowledge_base: KnowledgeBase
    max_results: int = 5
    sources: list[Source] = field(default_factory=list)
    knowledge_base_errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def cite(self, title: str, location: str, section: str | None = None, score: float | None = None) -> int:
        """Register a source (deduplicated by title and section) and return its citation number.

        Args:
            title: Document title.
            location: Where the document lives (URL, S3 URI, code reference).
            section: Section or heading, when known.
            score: Relevance score of the best passage seen from this source.

        Returns:
            The 1-based citation number.
        """
        with self._lock:
            for index, source in enumerate(self.sources):
                if source.title == title and source.section == section:
                    if score is not None and (source.score is None or score > source.score):
                        self.sources[index] = source.model_copy(update={"score": score})
                    return index + 1
            self.sources.append(Source(title=title, location=location, section=section, score=score))
            return len(self.sources)

    def record_knowledge_base_error(self, message: str) -> None:
        """Remember a failed search so the orchestrator can report it."""
        with self._lock:
            self.knowledge_base_errors.append(message)
