"""The metric functions of the eval harness, one by one (pure: no orchestrator involved)."""

from __future__ import annotations

import pytest
from eval.dataset import Fact, Range
from eval.metrics import (
    best_ranks,
    fact_coverage,
    fact_matches,
    fact_present,
    match_calls,
    mean,
    numbers_close,
    recall_at_k,
    reciprocal_rank,
    tool_diff,
    tool_selection_ok,
    value_matches,
)
from eval.report import NORMALISERS

# --------------------------------------------------------------------------------------------
# Tool selection: exact set match
# --------------------------------------------------------------------------------------------


def test_exact_set_match_ignores_order_and_repeats() -> None:
    assert tool_selection_ok(
        ["zoning_standards", "search_knowledge_base"], {"search_knowledge_base", "zoning_standards"}
    )
    assert tool_selection_ok(["zoning_standards", "zoning_standards"], {"zoning_standards"})
    assert tool_selection_ok([], set())


def test_exact_set_match_fails_on_missing_or_extra_tools() -> None:
    assert not tool_selection_ok(["search_knowledge_base"], {"search_knowledge_base", "zoning_standards"})
    assert not tool_selection_ok(["search_knowledge_base"], set())
    assert tool_diff(
        ["search_knowledge_base", "buildable_area"], {"permit_fee_estimate", "search_knowledge_base"}
    ) == (
        ["permit_fee_estimate"],
        ["buildable_area"],
    )


def test_optional_tools_may_be_called_or_not() -> None:
    expected, optional = {"search_knowledge_base"}, {"zoning_standards"}
    assert tool_selection_ok(["search_knowledge_base"], expected, optional)
    assert tool_selection_ok(["search_knowledge_base", "zoning_standards"], expected, optional)
    assert not tool_selection_ok(["zoning_standards"], expected, optional)


# --------------------------------------------------------------------------------------------
# Arguments: tolerance, normalisers, defaults, several calls
# --------------------------------------------------------------------------------------------


def test_numbers_match_within_one_percent() -> None:
    assert numbers_close(800_000, 800_000)
    assert numbers_close(800_000, 805_000)
    assert not numbers_close(800_000, 810_000)
    assert numbers_close(6.5, 6.5)
    assert not numbers_close(6.5, 6.0)
    assert not numbers_close(0.0, 0.001)
    assert numbers_close(0.0, 0.0)
    assert not numbers_close(1.0, float("nan"))


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (800_000, 800000.0, True),
        (800_000, "800,000", True),
        (800_000, "$800,000", True),
        (20, 20, True),
        (20, 25, False),
        (6.5, "six and a half", False),
        (800_000, None, False),
        ("building", "Building ", True),
        ("building", "mechanical", False),
        (True, 1, False),
        (Range(300_000, 800_000), 450_000, True),
        (Range(300_000, 800_000), 800_000, True),
        (Range(300_000, 800_000), 200_000, False),
        (Range(300_000, 800_000), "not a number", False),
    ],
)
def test_value_matches(expected: object, actual: object, ok: bool) -> None:
    assert value_matches(expected, actual) is ok


def test_zone_arguments_compare_through_the_zone_normaliser() -> None:
    zone = NORMALISERS["zone"]
    assert value_matches("LR2", "lr-2", normalise=zone)
    assert value_matches("LR2", "LR2 (M1)", normalise=zone)
    assert value_matches("NC3-75", "nc3p-75 (M)", normalise=zone)
    assert value_matches("NR3", "SF 5000", normalise=zone)
    assert not value_matches("LR2", "LR3", normalise=zone)


def test_lot_coverage_percent_equals_fraction() -> None:
    assert value_matches(0.35, 35, normalise=NORMALISERS["lot_coverage"])
    assert value_matches(35, 0.35, normalise=NORMALISERS["lot_coverage"])


def test_match_calls_uses_defaults_for_left_out_arguments() -> None:
    checks = match_calls(
        "mortgage_payment",
        [{"price_usd": 800_000, "down_payment_pct": 20, "annual_rate_pct": 6.5}],
        [{"price_usd": 800_000}],
        defaults={"down_payment_pct": 20, "annual_rate_pct": 6.5, "years": 30},
    )
    assert [c.ok for c in checks] == [True, True, True]


def test_match_calls_reports_the_wrong_value_and_an_uncalled_tool() -> None:
    checks = match_calls("zoning_standards", [{"zone": "LR2"}], [{"zone": "LR3"}], normalisers=NORMALISERS)
    assert [(c.name, c.expected, c.actual, c.ok) for c in checks] == [("zone", "LR2", "LR3", False)]
    checks = match_calls("zoning_standards", [{"zone": "LR2"}], [])
    assert [(c.actual, c.ok) for c in checks] == [(None, False)]


def test_two_labelled_calls_need_two_actual_calls() -> None:
    labelled = [{"zone": "LR2"}, {"zone": "LR3"}]
    both = match_calls(
        "zoning_standards", labelled, [{"zone": "LR3"}, {"zone": "lr2"}], normalisers=NORMALISERS
    )
    assert all(c.ok for c in both)
    one = match_calls("zoning_standards", labelled, [{"zone": "LR2"}], normalisers=NORMALISERS)
    assert [c.ok for c in one] == [True, False]
    same_twice = match_calls("zoning_standards", labelled, [{"zone": "LR2"}, {"zone": "LR2"}])
    assert [c.ok for c in same_twice] == [True, False]


# --------------------------------------------------------------------------------------------
# Retrieval: recall@k and MRR
# --------------------------------------------------------------------------------------------


def test_best_ranks_take_the_best_position_over_searches() -> None:
    ranks = best_ranks(["a", "b", "c"], [["x", "b", "a"], ["a", "y"]])
    assert ranks == {"a": 1, "b": 2, "c": None}


def test_recall_at_k() -> None:
    assert recall_at_k({"a": 1, "b": 5}, 5) == 1.0
    assert recall_at_k({"a": 1, "b": 6}, 5) == 0.5
    assert recall_at_k({"a": None, "b": None}, 5) == 0.0
    assert recall_at_k({"a": 3}, 2) == 0.0
    assert recall_at_k({}, 5) == 1.0


def test_reciprocal_rank_of_the_first_relevant_passage() -> None:
    assert reciprocal_rank({"a": 1}) == 1.0
    assert reciprocal_rank({"a": 4, "b": 2}) == 0.5
    assert reciprocal_rank({"a": None, "b": 3}) == pytest.approx(1 / 3)
    assert reciprocal_rank({"a": None}) == 0.0


def test_mrr_over_questions_is_the_mean_of_reciprocal_ranks() -> None:
    per_question = [reciprocal_rank(r) for r in ({"a": 1}, {"a": 2}, {"a": None}, {"a": 4})]
    assert mean(per_question) == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert mean([]) is None


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------


def test_substring_facts_are_case_and_whitespace_insensitive() -> None:
    assert fact_matches("SMC 23.45.510", "see smc  23.45.510\nfor the table")
    assert fact_matches("Hearing Examiner", "appeal to the hearing\n examiner")
    assert not fact_matches("23.45.510", "SMC 23.45.518")
    # A plain fact is not a regex: the dot is literal.
    assert not fact_matches("1.4", "FAR 104")


def test_regex_facts() -> None:
    money = r"4,?811\.91|4,?812\b"
    assert fact_matches(money, "Total: $4,811.91 a month", regex=True)
    assert fact_matches(money, "about $4812 a month", regex=True)
    assert not fact_matches(money, "about $4,811 a month", regex=True)
    assert fact_matches(r"\b1\.4\b", "FAR 1.4 in LR2", regex=True)
    assert not fact_matches(r"\b1\.4\b", "FAR 11.45", regex=True)
    assert fact_matches(r"mortgage|financ", "FINANCING help", regex=True)


def test_fact_coverage_is_the_share_present() -> None:
    facts = [Fact("23.45.510"), Fact(r"\b1\.4\b", regex=True), Fact("hardship")]
    text = "LR2 has an FAR of 1.4 (SMC 23.45.510)."
    assert [fact_present(f, text) for f in facts] == [True, True, False]
    assert fact_coverage(facts, text) == pytest.approx(2 / 3)
    assert fact_coverage([], text) == 1.0
