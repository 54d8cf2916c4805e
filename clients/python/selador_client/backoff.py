"""Exponential backoff with jitter between reconnection attempts."""

from __future__ import annotations

import random


class Backoff:
    """Delays that grow by ``factor`` from ``initial`` up to ``maximum``, each spread by ``jitter``.

    Jitter keeps many clients cut off at once (a deploy, a network blip) from all reconnecting in
    the same instant.

    Args:
        initial: The first delay, in seconds (> 0).
        maximum: The longest delay, in seconds (≥ ``initial``).
        factor: What each delay is multiplied by for the next one (≥ 1).
        jitter: Each delay is multiplied by a random number in ``[1 - jitter, 1 + jitter]``
            (0 ≤ jitter < 1; 0 for exact delays).
        rng: The random source (a seeded one in tests).

    Raises:
        ValueError: naming the argument that is out of range.
    """

    def __init__(
        self,
        initial: float = 0.25,
        maximum: float = 5.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not initial > 0:
            raise ValueError(f"backoff: the initial delay must be > 0 s (got {initial!r})")
        if not maximum >= initial:
            raise ValueError(f"backoff: the maximum delay must be ≥ the initial one (got {maximum!r})")
        if not factor >= 1:
            raise ValueError(f"backoff: the factor must be ≥ 1 (got {factor!r})")
        if not 0 <= jitter < 1:
            raise ValueError(f"backoff: jitter must be in [0, 1) (got {jitter!r})")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        # Spreading retries needs no cryptographic randomness.
        self._rng = rng or random.Random()
        self._base = initial

    def next(self) -> float:
        """The delay before the next attempt (and the one after it grows)."""
        base = self._base
        self._base = min(base * self.factor, self.maximum)
        if not self.jitter:
            return base
        return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """Start again from ``initial`` (the connection made progress)."""
        self._base = self.initial
