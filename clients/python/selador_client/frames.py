"""Frames as they arrive, and the ``seq`` bookkeeping of one run (dedupe, order, gaps)."""

from __future__ import annotations

import json
import time
from typing import Any

TERMINAL_TYPES = frozenset({"result", "error"})
"""Frame types that end a run (when they carry a ``seq``)."""
REORDER_WINDOW = 256
"""Frames further than this ahead of the next expected ``seq`` are dropped (a resume resends them)."""


class Frame(dict[str, Any]):
    """One server frame: the decoded JSON object, plus the text it arrived as (``raw``).

    Args:
        data: The decoded object.
        raw: The message as received.
    """

    def __init__(self, data: dict[str, Any], raw: str) -> None:
        super().__init__(data)
        self.raw = raw

    @classmethod
    def parse(cls, message: str | bytes) -> Frame | None:
        """Decode one WebSocket message; ``None`` when it is not a JSON object.

        Args:
            message: The message as received.

        Returns:
            The frame, or ``None`` for anything that is not a JSON object (logged by the caller).
        """
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        return cls(data, text) if isinstance(data, dict) else None

    @property
    def seq(self) -> int | None:
        """The frame's ``seq`` when it has a valid one (a whole number ≥ 1), else ``None``."""
        seq = self.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1:
            return seq
        return None


class RunFrames:
    """The frames of one run: drops a ``seq`` already seen, releases frames in ``seq`` order.

    Delivery is at-least-once and, around a resume, possibly out of order (docs/protocol.md
    "Runs: resume and cancel"), so a frame ahead of a gap waits here until the gap fills.

    Attributes:
        next_seq: The ``seq`` the next frame to release must have.
        gap_since: ``time.monotonic()`` when frames started waiting for a gap to fill, else ``None``.
    """

    def __init__(self) -> None:
        self.next_seq = 1
        self.gap_since: float | None = None
        self._waiting: dict[int, tuple[Any, Any]] = {}

    @property
    def last_seq(self) -> int:
        """The last ``seq`` released: everything up to it has been delivered (what to resume after)."""
        return self.next_seq - 1

    def add(self, seq: int, frame: Any, raw: Any) -> list[tuple[Any, Any]]:
        """Take one frame of the run.

        Args:
            seq: Its ``seq``.
            frame: The frame, decoded.
            raw: The frame as received.

        Returns:
            The ``(frame, raw)`` pairs that became deliverable, in ``seq`` order (empty for a
            duplicate or a frame that has to wait).
        """
        if seq < self.next_seq or seq in self._waiting or seq >= self.next_seq + REORDER_WINDOW:
            return []
        self._waiting[seq] = (frame, raw)
        ready = []
        while self.next_seq in self._waiting:
            ready.append(self._waiting.pop(self.next_seq))
            self.next_seq += 1
        if not self._waiting:
            self.gap_since = None
        elif ready or self.gap_since is None:
            self.gap_since = time.monotonic()
        return ready

    def forget_waiting(self) -> None:
        """Drop frames waiting for a gap (before asking for the run again from scratch)."""
        self._waiting.clear()
        self.gap_since = None
