"""The metric functions: pure, small, and unit-tested one by one.

Definitions (per question; :mod:`eval.report` averages them):

* **Tool selection** — :func:`tool_selection_ok`: the set of tools called equals the labelled set;
  a tool labelled optional may be called or not. Calling a tool twice is one tool in the set.
* **Argument accuracy** — :func:`match_calls`: each labelled call (a tool's key arguments) is
  matched against the calls actually made to that tool; an argument left out of a call counts as
  the tool's default. Numbers match within a relative tolerance (1% by default), strings
  case-insensitively after the parameter's normaliser (zone codes through the zoning module), a
  ``Range`` by inclusion. Score: matched labelled arguments / labelled arguments.
* **Retrieval** — :func:`best_ranks`, :func:`recall_at_k`, :func:`reciprocal_rank`: a labelled
  section's rank is its best (lowest) 1-based position in any search the run made; recall@k is the
  share of labelled sections ranked within k; the reciprocal rank is ``1 / best rank`` of any
  labelled section (0 when none was retrieved).
* **Fact coverage** — :func:`fact_coverage`: the share of labelled facts the answer contains
  (substrings case-insensitively with whitespace collapsed, regexes case-insensitively).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_REL_TOL = 0.01
"""Relative tolerance for numeric arguments (1%: 800,000 matches 795,000..805,000)."""

DEFAULT_ABS_TOL = 1e-9


class FactLike(Protocol):
    """What :func:`fact_present` needs of a fact."""

    @property
    def pattern(self) -> str:
        """The substring or regex."""

    @property
    def regex(self) -> bool:
        """Whether ``pattern`` is a regex."""


class RangeLike(Protocol):
    """What :func:`value_matches` needs of a range."""

    @property
    def low(self) -> float:
        """Lowest accepted value."""

    @property
    def high(self) -> float:
        """Highest accepted value."""


# --------------------------------------------------------------------------------------------
# Tool selection
# --------------------------------------------------------------------------------------------


def tool_diff(
    called: Iterable[str], expected: Iterable[str], optional: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """The tools missing from the calls and the tools called that should not have been.

    Args:
        called: Names of the tools called (repeats allowed).
        expected: The labelled set.
        optional: Tools that may be called or not.

    Returns:
        ``(missing, extra)``, each sorted.
    """
    called_set, expected_set = set(called), set(expected)
    missing = sorted(expected_set - called_set)
    extra = sorted(called_set - expected_set - set(optional))
    return missing, extra


def tool_selection_ok(called: Iterable[str], expected: Iterable[str], optional: Iterable[str] = ()) -> bool:
    """Exact set match: nothing missing, nothing extra (optional tools aside)."""
    missing, extra = tool_diff(called, expected, optional)
    return not missing and not extra


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").replace("$", "").strip())
        except ValueError:
            return None
    return None


def numbers_close(
    expected: float, actual: float, *, rel_tol: float = DEFAULT_REL_TOL, abs_tol: float = DEFAULT_ABS_TOL
) -> bool:
    """``actual`` within ``rel_tol`` of ``expected`` (relative to ``expected``), or within ``abs_tol``."""
    if not (math.isfinite(expected) and math.isfinite(actual)):
        return False
    return abs(actual - expected) <= max(abs_tol, rel_tol * abs(expected))


def value_matches(
    expected: Any,
    actual: Any,
    *,
    normalise: Callable[[Any], Any] | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
) -> bool:
    """Whether an actual argument value satisfies a labelled one.

    Args:
        expected: A number, string, bool, or an object with ``low``/``high`` (a range).
        actual: What the call passed (``None`` when it passed nothing and the tool has no default).
        normalise: Applied to both sides first (for example a zone-code normaliser).
        rel_tol: Relative tolerance for numbers.

    Returns:
        ``True`` on a match.
    """
    if actual is None:
        return False
    if normalise is not None:
        try:
            expected = expected if hasattr(expected, "low") else normalise(expected)
            actual = normalise(actual)
        except (TypeError, ValueError):
            return False
    if hasattr(expected, "low") and hasattr(expected, "high"):
        number = _as_number(actual)
        return number is not None and expected.low <= number <= expected.high
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if _is_number(expected):
        number = _as_number(actual)
        return number is not None and numbers_close(float(expected), number, rel_tol=rel_tol)
    if isinstance(expected, str) and isinstance(actual, str):
        return " ".join(expected.split()).casefold() == " ".join(actual.split()).casefold()
    return bool(expected == actual)


@dataclass(frozen=True)
class ArgCheck:
    """One labelled argument and what the best-matching call passed for it.

    Attributes:
        tool: Tool name.
        name: Parameter name.
        expected: The labelled value.
        actual: The value in the call chosen for this labelled call (``None``: tool not called).
        ok: Whether they match.
    """

    tool: str
    name: str
    expected: Any
    actual: Any
    ok: bool


def match_calls(
    tool: str,
    labelled: Sequence[Mapping[str, Any]],
    calls: Sequence[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    normalisers: Mapping[str, Callable[[Any], Any]] | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
) -> list[ArgCheck]:
    """Match each labelled call of one tool with the actual call that satisfies most of its arguments.

    Each actual call is used for at most one labelled call (greedily, labelled calls in order), so
    two labelled calls (``[{zone: LR2}, {zone: LR3}]``) need two different calls.

    Args:
        tool: The tool's name.
        labelled: The labelled calls: parameter → expected value.
        calls: The inputs of the calls actually made to this tool, in order.
        defaults: The tool's parameter defaults, used for parameters a call leaves out.
        normalisers: Per-parameter normalisers for :func:`value_matches`.
        rel_tol: Relative tolerance for numbers.

    Returns:
        One :class:`ArgCheck` per labelled argument.
    """
    defaults = defaults or {}
    normalisers = normalisers or {}
    free = list(range(len(calls)))
    checks: list[ArgCheck] = []
    for expected_call in labelled:
        best: tuple[int, list[ArgCheck]] | None = None
        for index in free:
            call = calls[index]
            attempt = []
            for name, expected in expected_call.items():
                actual = call.get(name, defaults.get(name))
                ok = value_matches(expected, actual, normalise=normalisers.get(name), rel_tol=rel_tol)
                attempt.append(ArgCheck(tool, name, expected, actual, ok))
            if best is None or sum(c.ok for c in attempt) > sum(c.ok for c in best[1]):
                best = (index, attempt)
        if best is None:
            checks.extend(
                ArgCheck(tool, name, expected, None, False) for name, expected in expected_call.items()
            )
        else:
            free.remove(best[0])
            checks.extend(best[1])
    return checks


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------


def best_ranks(relevant: Iterable[K], rankings: Iterable[Sequence[K]]) -> dict[K, int | None]:
    """Each relevant item's best 1-based rank over several ranked lists (``None``: never returned)."""
    ranks: dict[K, int | None] = dict.fromkeys(relevant)
    for ranking in rankings:
        for position, item in enumerate(ranking, start=1):
            if item in ranks:
                current = ranks[item]
                if current is None or position < current:
                    ranks[item] = position
    return ranks


def recall_at_k(ranks: Mapping[K, int | None], k: int = 5) -> float:
    """Share of relevant items ranked within ``k`` (1.0 for an empty label set)."""
    if not ranks:
        return 1.0
    return sum(1 for rank in ranks.values() if rank is not None and rank <= k) / len(ranks)


def reciprocal_rank(ranks: Mapping[K, int | None]) -> float:
    """``1 / best rank`` of any relevant item; 0 when none was retrieved (1.0 for an empty label set)."""
    if not ranks:
        return 1.0
    found = [rank for rank in ranks.values() if rank is not None]
    return 1.0 / min(found) if found else 0.0


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------


def _flatten(text: str) -> str:
    return " ".join(text.split()).casefold()


def fact_matches(pattern: str, text: str, *, regex: bool = False) -> bool:
    """Whether ``text`` contains the fact: a case-insensitive regex search or substring."""
    if regex:
        return re.search(pattern, text, re.IGNORECASE) is not None
    return _flatten(pattern) in _flatten(text)


def fact_present(fact: FactLike, text: str) -> bool:
    """:func:`fact_matches` for a fact object."""
    return fact_matches(fact.pattern, text, regex=fact.regex)


def fact_coverage(facts: Sequence[FactLike], text: str) -> float:
    """Share of ``facts`` present in ``text`` (1.0 when there are none)."""
    if not facts:
        return 1.0
    return sum(fact_present(f, text) for f in facts) / len(facts)


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or ``None`` for no values."""
    items = list(values)
    return sum(items) / len(items) if items else None
