"""Review findings on the bundled knowledge base's typo correction, fixed.

How fast a long unknown word is searched is a ``make bench`` target (``responder.adversarial_worst``).
"""

from __future__ import annotations

import random
import string

import pytest

from selador.knowledge import spelling
from selador.knowledge.local import LocalKnowledgeBase


def test_a_word_longer_than_any_document_word_is_never_corrected(monkeypatch: pytest.MonkeyPatch) -> None:
    kb = LocalKnowledgeBase()
    kb.search("warm up")
    rng = random.Random(5)
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(800))
    assert spelling.max_distance(word) == 0

    def no_deletes(*_: object) -> set[str]:
        raise AssertionError("an 800-letter word must not reach the delete-neighbourhood search")

    monkeypatch.setattr(spelling, "_deletes", no_deletes)
    assert kb.search(word) == []
