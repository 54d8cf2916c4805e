"""Scoring runs against their labels, the printed tables, and ``eval/results.json``.

Every aggregate is a mean over the questions a metric applies to (each question weighs the same):
tool selection over all questions, argument accuracy over questions with labelled arguments,
recall@5 and MRR over questions with labelled sections, fact coverage over questions with facts.
The issue's targets are judged on the overall scores (PASS/FAIL, the exit status); per ``query_type``
the same targets are shown as ``ok``/``below`` (a type has 9 to 41 questions, where one question
moves a mean by several points) and per ``kind`` the scores are reported only.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.dataset import Fact, Question, SectionRef, tool_parameters
from eval.metrics import (
    ArgCheck,
    best_ranks,
    fact_present,
    match_calls,
    mean,
    recall_at_k,
    reciprocal_rank,
    tool_diff,
)
from eval.runner import Observation
from selador.protocol import QUERY_TYPES

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
SCHEMA_VERSION = 1
RECALL_K = 5


@dataclass(frozen=True)
class Metric:
    """One reported metric.

    Attributes:
        key: Key in ``results.json``.
        label: Name in the table.
        target: The bound (``value >= target`` passes), or ``None`` when the issue sets none.
        percent: Show as a percentage (else as a 0-1 number).
    """

    key: str
    label: str
    target: float | None
    percent: bool = True

    def fmt(self, value: float | None) -> str:
        """The value as the table shows it."""
        if value is None:
            return "-"
        return f"{value * 100:.1f}%" if self.percent else f"{value:.3f}"

    def fmt_target(self) -> str:
        """The target as the table shows it."""
        if self.target is None:
            return "(none)"
        return f">= {self.target * 100:.0f}%" if self.percent else f">= {self.target:.2f}"


METRICS: tuple[Metric, ...] = (
    Metric("tool_selection", "tool selection", 0.95),
    Metric("arg_accuracy", "argument accuracy", None),
    Metric("recall_at_5", f"recall@{RECALL_K}", 0.90),
    Metric("mrr", "MRR", 0.75, percent=False),
    Metric("fact_coverage", "fact coverage", 0.90),
)
"""The metrics and their targets (issue 12); argument accuracy is reported without a target."""


def _normalise_zone(value: Any) -> Any:
    from selador.knowledge.zoning import normalize_zone_code

    text = str(value)
    return normalize_zone_code(text) or " ".join(text.split()).upper()


def _normalise_coverage(value: Any) -> Any:
    number = float(value)
    return number / 100 if number > 1 else number


NORMALISERS: dict[str, Callable[[Any], Any]] = {
    "zone": _normalise_zone,
    "permit_type": lambda value: str(value).strip().lower(),
    "lot_coverage": _normalise_coverage,
}
"""Per-parameter normalisers: the forms a tool itself treats as equal compare equal."""


def tool_defaults(tool: str) -> dict[str, Any]:
    """The tool's parameter defaults, from the schema the model sees."""
    return {
        name: prop["default"] for name, prop in tool_parameters().get(tool, {}).items() if "default" in prop
    }


@dataclass
class QuestionScore:
    """One question's scores and the reasons for each shortfall."""

    question: Question
    observation: Observation
    missing_tools: list[str]
    extra_tools: list[str]
    arg_checks: list[ArgCheck]
    ranks: dict[SectionRef, int | None]
    facts: list[tuple[Fact, bool]] = field(default_factory=list)

    @property
    def tools_ok(self) -> bool:
        """Exact set match."""
        return not self.missing_tools and not self.extra_tools

    @property
    def arg_accuracy(self) -> float | None:
        """Share of labelled arguments matched (``None`` without labelled arguments)."""
        return mean(float(c.ok) for c in self.arg_checks)

    @property
    def recall(self) -> float | None:
        """Recall@5 of the labelled sections (``None`` without labelled sections)."""
        return recall_at_k(self.ranks, RECALL_K) if self.ranks else None

    @property
    def rr(self) -> float | None:
        """Reciprocal rank of the first labelled section (``None`` without labelled sections)."""
        return reciprocal_rank(self.ranks) if self.ranks else None

    @property
    def fact_coverage(self) -> float | None:
        """Share of labelled facts in the answer (``None`` without facts)."""
        return mean(float(ok) for _, ok in self.facts)

    def value(self, key: str) -> float | None:
        """The question's value of a metric (``None`` when it does not apply)."""
        if key == "tool_selection":
            return float(self.tools_ok)
        if key == "arg_accuracy":
            return self.arg_accuracy
        if key == "recall_at_5":
            return self.recall
        if key == "mrr":
            return self.rr
        if key == "fact_coverage":
            return self.fact_coverage
        raise KeyError(key)

    @property
    def passed(self) -> bool:
        """Everything right: tools, arguments, every section in the top 5 (first at rank 1), every fact."""
        return (
            self.observation.error is None
            and self.tools_ok
            and all(c.ok for c in self.arg_checks)
            and (self.recall is None or self.recall == 1.0)
            and (self.rr is None or self.rr == 1.0)
            and all(ok for _, ok in self.facts)
        )

    def reasons(self) -> list[str]:
        """Why the question did not pass, one line per problem."""
        lines = []
        if self.observation.error:
            lines.append(f"run failed: {self.observation.error}")
        if self.missing_tools:
            lines.append(f"tool missing: {', '.join(self.missing_tools)}")
        if self.extra_tools:
            lines.append(f"tool extra: {', '.join(self.extra_tools)}")
        for call in self.observation.calls:
            if call.status != "success":
                detail = call.text.strip().splitlines()[0][:120] if call.text.strip() else call.status
                lines.append(f"tool {call.status}: {call.name}({call.input}): {detail}")
        for check in self.arg_checks:
            if not check.ok:
                got = "tool not called" if check.actual is None else repr(check.actual)
                lines.append(f"wrong arg {check.tool}.{check.name}: expected {check.expected}, got {got}")
        for ref, rank in self.ranks.items():
            if rank is None:
                where = "not retrieved" if self.observation.searches else "no search"
                lines.append(f"section {where}: {ref.label()}")
            elif rank > RECALL_K:
                lines.append(f"section at rank {rank} (outside the top {RECALL_K}): {ref.label()}")
        found = [rank for rank in self.ranks.values() if rank is not None]
        if found and min(found) > 1:
            lines.append(
                f"first labelled section at rank {min(found)} (reciprocal rank {1 / min(found):.2f})"
            )
        lines.extend(f"missing fact: {fact}" for fact, ok in self.facts if not ok)
        return lines


def score(question: Question, observation: Observation) -> QuestionScore:
    """Score one run against its question's labels."""
    missing, extra = tool_diff(observation.tools_called, question.tools, question.optional_tools)
    checks: list[ArgCheck] = []
    for tool, labelled in question.args.items():
        if tool in question.optional_tools and tool not in observation.tools_called:
            continue  # an optional tool that was not called has no arguments to judge
        calls = [call.input for call in observation.calls if call.name == tool]
        checks.extend(
            match_calls(tool, labelled, calls, defaults=tool_defaults(tool), normalisers=NORMALISERS)
        )
    ranks = best_ranks(question.sections, observation.searches)
    facts = [(fact, fact_present(fact, observation.answer)) for fact in question.facts]
    return QuestionScore(question, observation, missing, extra, checks, ranks, facts)


# --------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One metric over one group of questions."""

    value: float | None
    n: int
    status: str
    """``PASS``, ``FAIL``, ``-`` (no target or not judged) or ``n/a`` (no question applies)."""


def aggregate(scores: Sequence[QuestionScore], metric: Metric, *, judged: bool = True) -> Cell:
    """A metric's mean over the questions it applies to, judged against its target."""
    values = [v for v in (s.value(metric.key) for s in scores) if v is not None]
    value = mean(values)
    if value is None:
        return Cell(None, 0, "n/a")
    if metric.target is None or not judged:
        return Cell(value, len(values), "-")
    # A float tolerance, so a value of exactly 0.95 (19 of 20) is a PASS.
    return Cell(value, len(values), "PASS" if value >= metric.target - 1e-9 else "FAIL")


def scopes(scores: Sequence[QuestionScore]) -> dict[str, list[QuestionScore]]:
    """``overall`` and one group per query type, in protocol order."""
    groups: dict[str, list[QuestionScore]] = {"overall": list(scores)}
    for query_type in QUERY_TYPES:
        groups[query_type] = [s for s in scores if s.question.query_type == query_type]
    return groups


def kinds(scores: Sequence[QuestionScore]) -> dict[str, list[QuestionScore]]:
    """One group per question kind, in order of first appearance."""
    groups: dict[str, list[QuestionScore]] = {}
    for s in scores:
        groups.setdefault(s.question.kind, []).append(s)
    return groups


def summary(scores: Sequence[QuestionScore]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every metric per scope (overall and query types, judged) and per kind (not judged)."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for name, group in scopes(scores).items():
        result[name] = {m.key: vars(aggregate(group, m)) | {"questions": len(group)} for m in METRICS}
    for name, group in kinds(scores).items():
        result[f"kind:{name}"] = {
            m.key: vars(aggregate(group, m, judged=False)) | {"questions": len(group)} for m in METRICS
        }
    return result


def failed(scores: Sequence[QuestionScore]) -> bool:
    """Whether any target FAILs on the overall scores."""
    return any(aggregate(list(scores), metric).status == "FAIL" for metric in METRICS)


# --------------------------------------------------------------------------------------------
# Text output
# --------------------------------------------------------------------------------------------


def _grid(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(scores: Sequence[QuestionScore]) -> str:
    """Metrics (rows) by scope (columns: overall, judged PASS/FAIL, then each query type, ok/below)."""
    groups = scopes(scores)
    rows = [["metric", "target", *groups]]
    for metric in METRICS:
        row = [metric.label, metric.fmt_target()]
        for name, group in groups.items():
            cell = aggregate(group, metric)
            text = metric.fmt(cell.value)
            status = cell.status if name == "overall" else {"PASS": "ok", "FAIL": "below"}.get(cell.status)
            row.append(text if cell.status in ("-", "n/a") else f"{text} {status}")
        rows.append(row)
    rows.append(["questions", "", *(str(len(g)) for g in groups.values())])
    for label, key in (
        ("  with args", "arg_accuracy"),
        ("  with sections", "recall_at_5"),
        ("  with facts", "fact_coverage"),
    ):
        metric = next(m for m in METRICS if m.key == key)
        rows.append([label, "", *(str(aggregate(g, metric).n) for g in groups.values())])
    rows.append(["all right", "", *(f"{sum(s.passed for s in g)}/{len(g)}" for g in groups.values())])
    return _grid(rows)


def kind_table(scores: Sequence[QuestionScore]) -> str:
    """Metrics by question kind (not judged: the targets are overall and per query type)."""
    rows = [["kind", "n", *(m.label for m in METRICS), "all right"]]
    for name, group in kinds(scores).items():
        rows.append(
            [
                name,
                str(len(group)),
                *(m.fmt(aggregate(group, m, judged=False).value) for m in METRICS),
                f"{sum(s.passed for s in group)}/{len(group)}",
            ]
        )
    return _grid(rows)


def failure_list(scores: Sequence[QuestionScore], *, limit: int | None = None) -> str:
    """The questions that did not pass and why."""
    lines = []
    bad = [s for s in scores if not s.passed]
    for s in bad[:limit] if limit else bad:
        q = s.question
        text = q.question if len(q.question) <= 90 else q.question[:87] + "..."
        called = ", ".join(s.observation.tools_called) or "no tools"
        lines.append(f"- {q.id} [{q.query_type}/{q.kind}] {text!r}  (called: {called})")
        lines.extend(f"    {reason}" for reason in s.reasons())
    if limit and len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more (see results.json)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# results.json
# --------------------------------------------------------------------------------------------


def _question_record(s: QuestionScore) -> dict[str, Any]:
    q, o = s.question, s.observation
    return {
        "id": q.id,
        "query_type": q.query_type,
        "kind": q.kind,
        "question": q.question,
        "context": q.context,
        "passed": s.passed,
        "agent": o.agent,
        "error": o.error,
        "seconds": round(o.seconds, 4),
        "expected_tools": sorted(q.tools),
        "optional_tools": sorted(q.optional_tools),
        "calls": [{"name": c.name, "input": c.input, "status": c.status} for c in o.calls],
        "tool_selection": s.tools_ok,
        "missing_tools": s.missing_tools,
        "extra_tools": s.extra_tools,
        "args": [
            {"tool": c.tool, "name": c.name, "expected": str(c.expected), "actual": c.actual, "ok": c.ok}
            for c in s.arg_checks
        ],
        "arg_accuracy": s.arg_accuracy,
        "searches": [[ref.label() for ref in ranking] for ranking in o.searches],
        "section_ranks": {ref.label(): rank for ref, rank in s.ranks.items()},
        "recall_at_5": s.recall,
        "reciprocal_rank": s.rr,
        "facts": [{"fact": str(f), "present": ok} for f, ok in s.facts],
        "fact_coverage": s.fact_coverage,
        "reasons": s.reasons(),
        "answer": o.answer,
    }


def write(
    scores: Sequence[QuestionScore],
    path: Path = RESULTS_PATH,
    *,
    argv: Sequence[str] = (),
    seconds: float = 0.0,
    setup: dict[str, Any] | None = None,
) -> None:
    """Write ``results.json``: environment, targets, the summary and every question's record."""
    document = {
        "schema": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": list(argv),
        "seconds": round(seconds, 2),
        "setup": setup or {},
        "targets": {m.key: m.target for m in METRICS},
        "passed": not failed(scores),
        "summary": summary(scores),
        "questions": [_question_record(s) for s in scores],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
