"""Benchmark results: one record per target, the printed table and ``bench/results.json``."""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["PASS", "FAIL", "SKIP"]
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
SCHEMA_VERSION = 1


@dataclass
class Result:
    """The outcome of one target.

    Attributes:
        name: Target name, e.g. ``cold_start.connect``.
        measured: The number compared with the target (``None`` when skipped).
        unit: Unit of ``measured`` and ``target`` (``x`` for ratios).
        target: The bound.
        op: ``<=`` or ``==`` (how ``measured`` must relate to ``target``).
        status: PASS, FAIL or SKIP.
        detail: Everything else measured (samples summaries, baselines, counts).
        note: One line for the table (why it skipped, what the ratio is of).
    """

    name: str
    measured: float | None
    unit: str
    target: float
    op: str = "<="
    status: Status = "SKIP"
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``measured / target`` (under 1 is inside the target)."""
        if self.measured is None or not self.target:
            return None
        return self.measured / self.target


def judged(
    name: str,
    measured: float,
    unit: str,
    target: float,
    *,
    op: str = "<=",
    detail: dict[str, Any] | None = None,
    note: str = "",
) -> Result:
    """A result whose status follows from ``measured`` ``op`` ``target``."""
    ok = measured <= target if op == "<=" else measured == target
    return Result(name, measured, unit, target, op, "PASS" if ok else "FAIL", detail or {}, note)


def skipped(name: str, unit: str, target: float, reason: str) -> Result:
    """A target that could not be measured here (never a PASS)."""
    return Result(name, None, unit, target, "<=", "SKIP", {"reason": reason}, reason)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def table(results: list[Result]) -> str:
    """The results as a fixed-width text table."""
    rows = [("target", "measured", "bound", "ratio", "status", "note")]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        rows.append(
            (r.name, _fmt(r.measured, r.unit), f"{r.op} {_fmt(r.target, r.unit)}", ratio, r.status, r.note)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
        if index == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    return "\n".join(lines)


def write(
    results: list[Result], path: Path = RESULTS_PATH, *, argv: list[str] | None = None, seconds: float = 0
) -> None:
    """Write ``results.json``: environment, the options used, and every result."""
    document = {
        "schema": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": argv or [],
        "seconds": round(seconds, 1),
        "results": [{**asdict(r), "ratio": None if r.ratio is None else round(r.ratio, 4)} for r in results],
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
