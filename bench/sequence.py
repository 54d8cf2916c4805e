"""A client's view of one run's frames across connections: dedupe by ``seq`` and check the result.

The protocol's client rule (docs/protocol.md, "Runs: resume and cancel"): drop a ``seq`` already
seen for the request, order by ``seq``. Delivery is at-least-once and a ``resume`` may repeat
frames around the seam between replay and live frames, so raw repeats are expected; what must
hold *after* dedupe is that the kept frames are ``1..N`` with no gap, arrived in ``seq`` order, and
end with exactly one terminal frame (the highest ``seq``). Pure logic: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL_TYPES = ("result", "error")


@dataclass(frozen=True)
class SeqProblems:
    """What is wrong with a run's frames after dedupe (all zero for a correct stream).

    Attributes:
        lost: ``seq`` numbers missing below the highest kept one, plus one when no terminal
            frame was kept.
        out_of_order: Kept frames that arrived after a frame with a higher ``seq``.
        terminals: Terminal frames kept (must be exactly 1).
        after_terminal: Kept frames whose ``seq`` is higher than the terminal frame's.
        duplicates: Raw repeats dropped by the dedupe (allowed: informational).
    """

    lost: int = 0
    out_of_order: int = 0
    terminals: int = 0
    after_terminal: int = 0
    duplicates: int = 0

    @property
    def ok(self) -> bool:
        """Whether the run was received whole: nothing lost, in order, exactly one terminal."""
        return self.lost == 0 and self.out_of_order == 0 and self.terminals == 1 and self.after_terminal == 0


@dataclass
class SeqLog:
    """The frames of one run a client kept, in arrival order, after dropping repeated ``seq``.

    Attributes:
        kept: ``seq`` of every kept frame, in the order it arrived.
        terminal_seqs: ``seq`` of every kept terminal frame.
        duplicates: Frames dropped because their ``seq`` had been seen.
        unnumbered: Frames for the request without a ``seq`` (errors about a message).
    """

    kept: list[int] = field(default_factory=list)
    terminal_seqs: list[int] = field(default_factory=list)
    duplicates: int = 0
    unnumbered: list[dict[str, Any]] = field(default_factory=list)
    terminal_frame: dict[str, Any] | None = None
    """The first terminal frame kept."""
    _seen: set[int] = field(default_factory=set, repr=False)

    def offer(self, seq: int, *, terminal: bool = False) -> bool:
        """Keep a frame unless its ``seq`` was seen; ``True`` when it is new."""
        if seq in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(seq)
        self.kept.append(seq)
        if terminal:
            self.terminal_seqs.append(seq)
        return True

    def offer_frame(self, frame: dict[str, Any]) -> bool:
        """:meth:`offer` for a decoded frame; a frame without an integer ``seq`` is set aside."""
        seq = frame.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self.unnumbered.append(frame)
            return False
        terminal = frame.get("type") in TERMINAL_TYPES
        new = self.offer(seq, terminal=terminal)
        if new and terminal and self.terminal_frame is None:
            self.terminal_frame = frame
        return new

    @property
    def contiguous(self) -> int:
        """The highest ``n`` such that every ``seq`` in ``1..n`` was kept (what to resume after)."""
        n = 0
        while n + 1 in self._seen:
            n += 1
        return n

    @property
    def terminal_type(self) -> str | None:
        """``result`` or ``error`` once a terminal frame was kept (by :meth:`offer_frame`)."""
        return None if self.terminal_frame is None else str(self.terminal_frame.get("type"))

    @property
    def ended(self) -> bool:
        """Whether a terminal frame was kept."""
        return bool(self.terminal_seqs)

    def problems(self) -> SeqProblems:
        """Judge the kept frames (see :class:`SeqProblems`)."""
        highest = max(self._seen, default=0)
        lost = sum(1 for n in range(1, highest + 1) if n not in self._seen)
        if not self.terminal_seqs:
            lost += 1  # the terminal frame itself
        out_of_order = 0
        running_max = 0
        for seq in self.kept:
            if seq < running_max:
                out_of_order += 1
            running_max = max(running_max, seq)
        after_terminal = 0
        if self.terminal_seqs:
            first_terminal = min(self.terminal_seqs)
            after_terminal = sum(1 for seq in self.kept if seq > first_terminal)
        return SeqProblems(
            lost=lost,
            out_of_order=out_of_order,
            terminals=len(self.terminal_seqs),
            after_terminal=after_terminal,
            duplicates=self.duplicates,
        )


def add_problems(total: dict[str, int], problems: SeqProblems) -> dict[str, int]:
    """Accumulate :class:`SeqProblems` into a counter dict (``terminals`` counts runs not ending once)."""
    total["lost"] = total.get("lost", 0) + problems.lost
    total["out_of_order"] = total.get("out_of_order", 0) + problems.out_of_order
    total["not_one_terminal"] = total.get("not_one_terminal", 0) + (problems.terminals != 1)
    total["after_terminal"] = total.get("after_terminal", 0) + problems.after_terminal
    total["duplicates_dropped"] = total.get("duplicates_dropped", 0) + problems.duplicates
    return total
