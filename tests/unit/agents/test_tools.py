"""The tools: pure calculations with exact numbers, validation messages, and the tool wrappers."""

from __future__ import annotations

import itertools
import math

import pytest

from selador.agents import tools
from selador.agents.state import RunState
from selador.agents.tools import (
    FEE_SCHEDULE,
    TOOLS,
    _compute_buildable_area,
    _compute_mortgage,
    _compute_permit_fee,
    buildable_area,
    citation_line,
    mortgage_payment,
    permit_fee_estimate,
    search_knowledge_base,
    zoning_standards,
)
from selador.knowledge.base import KnowledgeBaseError, Passage

from .conftest import PASSAGES, FakeKnowledgeBase, tool_context

# --------------------------------------------------------------------------------------------
# mortgage
# --------------------------------------------------------------------------------------------


def test_mortgage_reference_case() -> None:
    b = _compute_mortgage(500_000)  # 20% down, 6.5%, 30 years, 1% tax, $1,200 insurance

    assert b.down_payment == 100_000.00
    assert b.loan_amount == 400_000.00
    assert b.payments == 360
    assert b.principal_and_interest == 2528.27
    assert b.property_tax == 416.67
    assert b.insurance == 100.00
    assert b.total_monthly == 3044.94
    assert b.total_interest == 510_177.95


def test_mortgage_fifteen_years_no_escrow() -> None:
    b = _compute_mortgage(
        300_000,
        down_payment_pct=0,
        annual_rate_pct=5,
        years=15,
        property_tax_rate_pct=0,
        insurance_usd_per_year=0,
    )

    assert b.principal_and_interest == 2372.38
    assert b.total_monthly == 2372.38
    assert b.payments == 180


def test_mortgage_zero_rate_divides_evenly() -> None:
    b = _compute_mortgage(450_000, annual_rate_pct=0, property_tax_rate_pct=0, insurance_usd_per_year=0)

    assert b.principal_and_interest == 1000.00
    assert b.total_interest == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"price_usd": 0}, "price_usd must be greater than 0"),
        ({"price_usd": -5}, "price_usd must be greater than 0"),
        ({"price_usd": math.nan}, "price_usd must be a finite number"),
        ({"price_usd": 1, "down_payment_pct": 100}, "down_payment_pct must be at least 0 and below 100"),
        ({"price_usd": 1, "down_payment_pct": -1}, "down_payment_pct must be at least 0 and below 100"),
        ({"price_usd": 1, "annual_rate_pct": 31}, "annual_rate_pct must be between 0 and 30"),
        ({"price_usd": 1, "years": 0}, "years must be a whole number from 1 to 50"),
        ({"price_usd": 1, "years": 2.5}, "years must be a whole number from 1 to 50"),
        ({"price_usd": 1, "property_tax_rate_pct": 11}, "property_tax_rate_pct must be between 0 and 10"),
        ({"price_usd": 1, "insurance_usd_per_year": -1}, "insurance_usd_per_year must not be negative"),
    ],
)
def test_mortgage_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _compute_mortgage(**kwargs)  # type: ignore[arg-type]


def test_mortgage_tool_text_has_the_numbers_and_a_pmi_note_below_20_percent() -> None:
    text = mortgage_payment(price_usd=500_000, down_payment_pct=10)

    first, *details = text.splitlines()
    assert first == "Estimated monthly payment for a $500,000.00 home: $3,360.98"
    assert "- Principal and interest: $2,844.31 a month (6.5% fixed, 30 years, 360 payments)" in details
    assert any("mortgage insurance (PMI)" in line for line in details)
    assert "PMI" not in mortgage_payment(price_usd=500_000)


# --------------------------------------------------------------------------------------------
# buildable area
# --------------------------------------------------------------------------------------------


def test_buildable_area_far_and_coverage() -> None:
    area = _compute_buildable_area(5000, far=1.4, lot_coverage=0.35)

    assert area.max_floor_area_sqft == 7000
    assert area.max_footprint_sqft == 1750


def test_buildable_area_reads_coverage_above_one_as_percent() -> None:
    assert _compute_buildable_area(5000, lot_coverage=35).max_footprint_sqft == 1750
    assert _compute_buildable_area(5000, lot_coverage=35).max_floor_area_sqft is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1.0, None), "lot_area_sqft must be greater than 0"),
        ((-100, 1.0, None), "lot_area_sqft must be greater than 0"),
        ((5000, None, None), "give far or lot_coverage"),
        ((5000, 0, None), "far must be greater than 0 and at most 30"),
        ((5000, 31, None), "far must be greater than 0 and at most 30"),
        ((5000, None, 0), r"lot_coverage must be a fraction in \(0, 1\] or a percentage up to 100"),
        ((5000, None, 150), r"lot_coverage must be a fraction in \(0, 1\] or a percentage up to 100"),
    ],
)
def test_buildable_area_validation(args: tuple[float, float | None, float | None], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _compute_buildable_area(*args)


def test_buildable_area_tool_takes_far_from_the_zone() -> None:
    text = buildable_area(lot_area_sqft=5000, zone="lr2")

    assert text.splitlines()[0] == "Buildable envelope of a 5,000 sq ft lot in LR2:"
    assert "- Maximum floor area: 7,000 sq ft (5,000 x FAR 1.4)" in text
    assert "- Height limit in LR2: 40 ft" in text


def test_buildable_area_tool_explicit_values_win_over_the_zone() -> None:
    text = buildable_area(lot_area_sqft=5000, zone="NR3", lot_coverage=0.5)

    assert "- Maximum footprint: 2,500 sq ft (50% lot coverage)" in text


def test_buildable_area_tool_flags_a_substandard_lot() -> None:
    text = buildable_area(lot_area_sqft=3000, zone="NR3")

    assert "smaller than NR3's minimum lot size of 5,000 sq ft" in text


def test_buildable_area_tool_unknown_zone_lists_known_zones() -> None:
    with pytest.raises(ValueError, match=r"unknown zone 'XX9'.*NR3"):
        buildable_area(lot_area_sqft=5000, zone="XX9")


# --------------------------------------------------------------------------------------------
# permit fees
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "permit_fee", "plan_review", "total"),
    [
        (500, 250.00, 162.50, 412.50),
        (1_000, 250.00, 162.50, 412.50),
        (1_001, 268.00, 174.20, 442.20),
        (25_000, 682.00, 443.30, 1_125.30),
        (250_000, 2_619.50, 1_702.68, 4_322.18),
        (60_000_000, 242_494.50, 157_621.43, 400_115.93),
    ],
)
def test_permit_fee_schedule(value: float, permit_fee: float, plan_review: float, total: float) -> None:
    estimate = _compute_permit_fee(value)

    assert (estimate.permit_fee, estimate.plan_review_fee, estimate.total) == (permit_fee, plan_review, total)


def test_permit_fee_is_continuous_at_every_bracket_floor() -> None:
    # The fee at a bracket's top equals the next bracket's base: no jump when crossing a floor.
    for lower, upper in itertools.pairwise(FEE_SCHEDULE):
        at_top = lower.base_fee + (upper.floor_usd - lower.floor_usd) / 1000 * lower.per_thousand
        assert at_top == pytest.approx(upper.base_fee)
        assert _compute_permit_fee(upper.floor_usd).permit_fee == pytest.approx(upper.base_fee)


def test_permit_fee_mechanical_is_half_without_plan_review() -> None:
    estimate = _compute_permit_fee(250_000, " Mechanical ")

    assert estimate.permit_fee == 1_309.75
    assert estimate.plan_review_fee == 0
    assert estimate.total == 1_309.75


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (0, "building", "project_value_usd must be greater than 0"),
        (math.inf, "building", "project_value_usd must be a finite number"),
        (1000, "plumbing", "permit_type must be one of building, mechanical"),
    ],
)
def test_permit_fee_validation(value: float, kind: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _compute_permit_fee(value, kind)


def test_permit_fee_tool_says_it_is_an_estimate_and_cites_the_fee_subtitle(kb: FakeKnowledgeBase) -> None:
    state = RunState(knowledge_base=kb)

    text = permit_fee_estimate(project_value_usd=250_000, tool_context=tool_context(state))

    assert text.splitlines()[0] == "Estimated building permit fees for a $250,000.00 project: $4,322.18"
    assert "Estimate only" in text
    assert "SMC 22.900D.010" in text
    assert text.splitlines()[-1] == citation_line(
        1, tools.FEE_SOURCE_TITLE, tools.FEE_SOURCE_LOCATION, tools.FEE_SOURCE_SECTION
    )
    assert [s.title for s in state.sources] == [tools.FEE_SOURCE_TITLE]


# --------------------------------------------------------------------------------------------
# zoning standards
# --------------------------------------------------------------------------------------------


def test_zoning_standards_tool_reports_the_table_row_and_cites_it(kb: FakeKnowledgeBase) -> None:
    state = RunState(knowledge_base=kb)

    text = zoning_standards(zone="lr 2", tool_context=tool_context(state))

    assert text.splitlines()[0] == "Zone LR2 — Lowrise 2 (bundled summary table):"
    assert "- Maximum height: 40 ft" in text
    assert "- Floor area ratio (FAR): 1.4" in text
    assert "- Maximum lot coverage: not set" in text
    assert "- Setbacks: front 7 ft, side 5 ft, rear 7 ft" in text
    assert text.splitlines()[-1].startswith(
        "[1] Seattle zoning standards (bundled summary table) — LR2: Lowrise 2 (SMC"
    )
    assert state.sources[0].section == "LR2: Lowrise 2"


def test_zoning_standards_unknown_zone_lists_the_known_ones(kb: FakeKnowledgeBase) -> None:
    with pytest.raises(ValueError, match=r"unknown zone 'Q7'; the bundled table knows: .*LR2.*NR3"):
        zoning_standards(zone="Q7", tool_context=tool_context(RunState(knowledge_base=kb)))


def test_zoning_standards_empty_zone(kb: FakeKnowledgeBase) -> None:
    with pytest.raises(ValueError, match="zone must not be empty"):
        zoning_standards(zone="  ", tool_context=tool_context(RunState(knowledge_base=kb)))


# --------------------------------------------------------------------------------------------
# knowledge-base search
# --------------------------------------------------------------------------------------------


def test_search_numbers_passages_and_records_sources(kb: FakeKnowledgeBase) -> None:
    state = RunState(knowledge_base=kb, max_results=5)

    text = search_knowledge_base(query="  ADU size  ", tool_context=tool_context(state), max_results=2)

    assert kb.queries == [("ADU size", 2)]
    assert text.splitlines()[0] == '2 passages for "ADU size" (cite them by number):'
    assert (
        "[1] Neighborhood Residential zones — SMC 23.44.041 Accessory dwelling units (https://example.test/nr)"
        in text
    )
    assert "[2] Permits overview — When you need a permit (https://example.test/permits)" in text
    assert "A detached ADU may be up to 1,000 square feet" in text
    assert [(s.title, s.section, s.score) for s in state.sources] == [
        ("Neighborhood Residential zones", "SMC 23.44.041 Accessory dwelling units", 0.91),
        ("Permits overview", "When you need a permit", 0.55),
    ]


def test_search_numbers_stay_stable_across_searches(kb: FakeKnowledgeBase) -> None:
    state = RunState(knowledge_base=kb)
    search_knowledge_base(query="permits", tool_context=tool_context(state), max_results=1)

    text = search_knowledge_base(query="adu", tool_context=tool_context(state), max_results=3)

    # The first search cited the NR document as [1]; the second search reuses that number.
    assert "[1] Neighborhood Residential zones" in text
    assert "[2] Permits overview" in text
    assert "[3] Lowrise multifamily (https://example.test/lr)" in text
    assert len(state.sources) == 3


def test_search_is_capped_by_the_settings_limit(kb: FakeKnowledgeBase) -> None:
    state = RunState(knowledge_base=kb, max_results=1)

    search_knowledge_base(query="adu", tool_context=tool_context(state), max_results=10)

    assert kb.queries == [("adu", 1)]


def test_search_clips_long_passages() -> None:
    long_text = "word " * 2000
    kb = FakeKnowledgeBase(passages=[Passage(text=long_text, title="Long", source="s", score=1.0)])

    text = search_knowledge_base(query="q", tool_context=tool_context(RunState(knowledge_base=kb)))

    assert len(text) < tools.MAX_PASSAGE_CHARS + 200
    assert text.endswith(" …")


def test_search_without_hits_says_so() -> None:
    kb = FakeKnowledgeBase(passages=[])

    text = search_knowledge_base(query="moon zoning", tool_context=tool_context(RunState(knowledge_base=kb)))

    assert text.startswith('No passages in the knowledge base match "moon zoning"')


@pytest.mark.parametrize(
    ("query", "max_results", "message"),
    [
        (" ", 5, "query must not be empty"),
        ("adu", 0, "max_results must be between 1 and 20"),
        ("adu", 21, "max_results must be between 1 and 20"),
    ],
)
def test_search_validation(kb: FakeKnowledgeBase, query: str, max_results: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        search_knowledge_base(
            query=query, tool_context=tool_context(RunState(knowledge_base=kb)), max_results=max_results
        )
    assert kb.queries == []


def test_search_knowledge_base_error_becomes_an_error_result_and_is_recorded() -> None:
    kb = FakeKnowledgeBase(error=KnowledgeBaseError("The knowledge base is unavailable right now"))
    state = RunState(knowledge_base=kb)

    result = search_knowledge_base(query="adu", tool_context=tool_context(state))

    assert result["status"] == "error"
    assert (
        "The knowledge base search failed: The knowledge base is unavailable right now"
        in result["content"][0]["text"]
    )
    assert state.knowledge_base_errors == ["The knowledge base is unavailable right now"]
    assert state.sources == []


def test_search_without_run_state_fails_clearly() -> None:
    from types import SimpleNamespace

    with pytest.raises(RuntimeError, match="no run state"):
        search_knowledge_base(query="adu", tool_context=SimpleNamespace(invocation_state={}))


# --------------------------------------------------------------------------------------------
# registry and tool specs
# --------------------------------------------------------------------------------------------


def test_tool_registry_names_and_specs() -> None:
    assert set(TOOLS) == {
        "search_knowledge_base",
        "zoning_standards",
        "buildable_area",
        "permit_fee_estimate",
        "mortgage_payment",
    }
    for name, tool in TOOLS.items():
        spec = tool.tool_spec
        assert spec["name"] == name
        assert len(spec["description"]) > 40
        properties = spec["inputSchema"]["json"]["properties"]
        # The framework-supplied context never reaches the model's schema.
        assert "tool_context" not in properties
        assert all(p.get("description") for p in properties.values())


def test_run_state_cite_deduplicates_by_title_and_section_and_keeps_the_best_score() -> None:
    state = RunState(knowledge_base=FakeKnowledgeBase())

    assert state.cite("A", "loc", "s1", 0.2) == 1
    assert state.cite("A", "loc", "s2", 0.3) == 2
    assert state.cite("A", "elsewhere", "s1", 0.9) == 1

    assert [(s.section, s.score) for s in state.sources] == [("s1", 0.9), ("s2", 0.3)]


def test_passages_fixture_is_what_the_tests_assume() -> None:
    assert [p.title for p in PASSAGES] == [
        "Neighborhood Residential zones",
        "Permits overview",
        "Lowrise multifamily",
    ]
