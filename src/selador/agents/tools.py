"""The agents' tools: knowledge-base search, the zoning table and three calculators.

Each tool is a thin ``@tool`` wrapper: it validates its arguments (a ``ValueError`` becomes a tool
error the model reads, with the message as written here), calls a pure ``_compute_*`` function and
formats the result as short text. The model sees the docstrings as the tools' descriptions.

Text formats matter beyond the model: :mod:`selador.agents.offline` composes its answers from
these outputs, so every tool puts a one-line summary first, details on ``- `` lines, and the
sources it drew on on ``[n] Title — section (location)`` lines numbered through the run's
:class:`~selador.agents.state.RunState`.

Knowledge-base failures do not raise: the search tool returns an error result the model can read
(so it may still answer from the other tools) and records the failure in the run state; the
orchestrator turns a run whose every search failed and that cited nothing into an error frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from strands import ToolContext, tool

from selador.agents.state import INVOCATION_STATE_KEY, RunState
from selador.knowledge.base import KnowledgeBaseError, Passage

if TYPE_CHECKING:
    from strands.tools.decorator import DecoratedFunctionTool

    from selador.knowledge.zoning import ZoneStandard

logger = logging.getLogger(__name__)

MAX_SEARCH_RESULTS = 20
"""Most passages one search may return, whatever the model asks for."""

MAX_PASSAGE_CHARS = 1500
"""Passage text longer than this is cut at a word boundary, so a few passages cannot flood the context."""

ZONING_TABLE_TITLE = "Seattle zoning standards (bundled summary table)"
FEE_SOURCE_TITLE = "Seattle Fee Subtitle (SMC Chapter 22.900)"
FEE_SOURCE_SECTION = "22.900D.010 Development permit fees"
FEE_SOURCE_LOCATION = "https://library.municode.com/wa/seattle/codes/municipal_code (SMC 22.900D.010)"


# --------------------------------------------------------------------------------------------
# Pure calculations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MortgageBreakdown:
    """A monthly mortgage payment, split into its parts (dollars, rounded to cents).

    Attributes:
        price: Purchase price.
        down_payment: Cash paid up front.
        loan_amount: Amount borrowed.
        payments: Number of monthly payments.
        principal_and_interest: Monthly principal and interest.
        property_tax: Monthly property tax (escrowed).
        insurance: Monthly homeowners insurance (escrowed).
        total_monthly: Principal, interest and escrow together.
        total_interest: Interest paid over the whole loan.
    """

    price: float
    down_payment: float
    loan_amount: float
    payments: int
    principal_and_interest: float
    property_tax: float
    insurance: float
    total_monthly: float
    total_interest: float


def _cents(value: float) -> float:
    """Round half up to cents, as money is (``round`` would give 1702.67 for 1702.675)."""
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _require_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number (got {value!r})")
    return float(value)


def _compute_mortgage(
    price_usd: float,
    down_payment_pct: float = 20,
    annual_rate_pct: float = 6.5,
    years: int = 30,
    property_tax_rate_pct: float = 1.0,
    insurance_usd_per_year: float = 1200,
) -> MortgageBreakdown:
    """Fixed-rate amortisation: ``M = L*r / (1 - (1 + r)**-n)`` with ``r`` the monthly rate.

    Args:
        price_usd: Purchase price in dollars, > 0.
        down_payment_pct: Down payment as a percent of the price, 0 to < 100.
        annual_rate_pct: Annual interest rate in percent, 0 to 30.
        years: Loan term in whole years, 1 to 50.
        property_tax_rate_pct: Yearly property tax as a percent of the price, 0 to 10.
        insurance_usd_per_year: Yearly homeowners insurance in dollars, >= 0.

    Returns:
        The monthly breakdown.

    Raises:
        ValueError: naming the argument that is out of range.
    """
    price = _require_finite("price_usd", price_usd)
    down_pct = _require_finite("down_payment_pct", down_payment_pct)
    rate_pct = _require_finite("annual_rate_pct", annual_rate_pct)
    tax_pct = _require_finite("property_tax_rate_pct", property_tax_rate_pct)
    insurance = _require_finite("insurance_usd_per_year", insurance_usd_per_year)
    if price <= 0:
        raise ValueError(f"price_usd must be greater than 0 (got {price:g})")
    if not 0 <= down_pct < 100:
        raise ValueError(f"down_payment_pct must be at least 0 and below 100 (got {down_pct:g})")
    if not 0 <= rate_pct <= 30:
        raise ValueError(f"annual_rate_pct must be between 0 and 30 (got {rate_pct:g})")
    if isinstance(years, bool) or int(years) != years or not 1 <= years <= 50:
        raise ValueError(f"years must be a whole number from 1 to 50 (got {years!r})")
    if not 0 <= tax_pct <= 10:
        raise ValueError(f"property_tax_rate_pct must be between 0 and 10 (got {tax_pct:g})")
    if insurance < 0:
        raise ValueError(f"insurance_usd_per_year must not be negative (got {insurance:g})")

    payments = int(years) * 12
    down_payment = price * down_pct / 100
    loan = price - down_payment
    monthly_rate = rate_pct / 100 / 12
    if monthly_rate == 0:
        principal_and_interest = loan / payments
    else:
        principal_and_interest = loan * monthly_rate / (1 - (1 + monthly_rate) ** -payments)
    pi = _cents(principal_and_interest)
    tax = _cents(price * tax_pct / 100 / 12)
    ins = _cents(insurance / 12)
    return MortgageBreakdown(
        price=_cents(price),
        down_payment=_cents(down_payment),
        loan_amount=_cents(loan),
        payments=payments,
        principal_and_interest=pi,
        property_tax=tax,
        insurance=ins,
        total_monthly=_cents(pi + tax + ins),
        total_interest=_cents(principal_and_interest * payments - loan),
    )


@dataclass(frozen=True)
class BuildableArea:
    """Zoning envelope of a lot (square feet).

    Attributes:
        lot_area_sqft: The lot area.
        far: Floor area ratio applied, if any.
        lot_coverage: Lot coverage applied, as a fraction, if any.
        max_floor_area_sqft: ``lot x FAR`` (gross floor area), when a FAR applies.
        max_footprint_sqft: ``lot x coverage`` (building footprint), when a coverage limit applies.
    """

    lot_area_sqft: float
    far: float | None
    lot_coverage: float | None
    max_floor_area_sqft: float | None
    max_footprint_sqft: float | None


def _normalise_coverage(lot_coverage: float) -> float:
    """Coverage as a fraction; values above 1 (up to 100) are read as percentages."""
    coverage = _require_finite("lot_coverage", lot_coverage)
    if 0 < coverage <= 1:
        return coverage
    if 1 < coverage <= 100:
        return coverage / 100
    raise ValueError(
        f"lot_coverage must be a fraction in (0, 1] or a percentage up to 100 (got {coverage:g})"
    )


def _compute_buildable_area(
    lot_area_sqft: float, far: float | None = None, lot_coverage: float | None = None
) -> BuildableArea:
    """Maximum floor area (lot x FAR) and footprint (lot x coverage).

    Args:
        lot_area_sqft: Lot area in square feet, > 0.
        far: Floor area ratio, > 0 and at most 30.
        lot_coverage: Maximum lot coverage as a fraction (0.35) or a percentage (35).

    Returns:
        The envelope; a field is ``None`` when its limit was not given.

    Raises:
        ValueError: for a non-positive area, an out-of-range FAR or coverage, or neither limit given.
    """
    lot = _require_finite("lot_area_sqft", lot_area_sqft)
    if lot <= 0:
        raise ValueError(f"lot_area_sqft must be greater than 0 (got {lot:g})")
    if far is None and lot_coverage is None:
        raise ValueError("give far or lot_coverage (or a zone whose table row has them)")
    ratio = None
    if far is not None:
        ratio = _require_finite("far", far)
        if not 0 < ratio <= 30:
            raise ValueError(f"far must be greater than 0 and at most 30 (got {ratio:g})")
    coverage = None if lot_coverage is None else _normalise_coverage(lot_coverage)
    return BuildableArea(
        lot_area_sqft=lot,
        far=ratio,
        lot_coverage=coverage,
        max_floor_area_sqft=None if ratio is None else round(lot * ratio, 1),
        max_footprint_sqft=None if coverage is None else round(lot * coverage, 1),
    )


@dataclass(frozen=True)
class FeeBracket:
    """One row of the value-based fee schedule.

    Attributes:
        floor_usd: Lowest project value of the bracket.
        base_fee: Fee at ``floor_usd``.
        per_thousand: Fee per $1,000 (or part of it) of value above ``floor_usd``.
    """

    floor_usd: float
    base_fee: float
    per_thousand: float


FEE_SCHEDULE: tuple[FeeBracket, ...] = (
    FeeBracket(0, 250.00, 0.0),
    FeeBracket(1_000, 250.00, 18.00),
    FeeBracket(25_000, 682.00, 13.50),
    FeeBracket(50_000, 1_019.50, 9.50),
    FeeBracket(100_000, 1_494.50, 7.50),
    FeeBracket(500_000, 4_494.50, 6.00),
    FeeBracket(1_000_000, 7_494.50, 5.00),
    FeeBracket(5_000_000, 27_494.50, 4.00),
    FeeBracket(50_000_000, 207_494.50, 3.50),
)
"""An estimating schedule with the *shape* of SDCI's value-based development fee (SMC 22.900D.010).

A minimum (base) fee up to $1,000, then a fee at each bracket's floor plus a falling rate per
$1,000 of value above it; each bracket's base equals the previous bracket's fee at its top, so the
fee is continuous in the value. The dollar figures are round illustrative numbers, not the current
ordinance: SDCI revises the table yearly and adds surcharges and hourly review.
"""

PERMIT_TYPES: dict[str, tuple[float, float]] = {
    "building": (1.0, 0.65),
    "mechanical": (0.5, 0.0),
}
"""``permit_type`` → (share of the schedule's permit fee, plan review as a share of the permit fee)."""


@dataclass(frozen=True)
class PermitFeeEstimate:
    """An estimated permit fee.

    Attributes:
        project_value_usd: Declared value of the work.
        permit_type: ``building`` or ``mechanical``.
        bracket: The schedule row used.
        permit_fee: The value-based permit fee.
        plan_review_fee: Plan review, modelled as a share of the permit fee.
        total: Permit plus plan review.
    """

    project_value_usd: float
    permit_type: str
    bracket: FeeBracket
    permit_fee: float
    plan_review_fee: float
    total: float


def _compute_permit_fee(project_value_usd: float, permit_type: str = "building") -> PermitFeeEstimate:
    """Estimate a permit fee from :data:`FEE_SCHEDULE`.

    Value above a bracket's floor is charged per started $1,000 (as fee tables do).

    Args:
        project_value_usd: Value of the work in dollars, > 0.
        permit_type: A key of :data:`PERMIT_TYPES`.

    Returns:
        The estimate.

    Raises:
        ValueError: for a non-positive value or an unknown permit type.
    """
    value = _require_finite("project_value_usd", project_value_usd)
    if value <= 0:
        raise ValueError(f"project_value_usd must be greater than 0 (got {value:g})")
    kind = permit_type.strip().lower()
    if kind not in PERMIT_TYPES:
        raise ValueError(f"permit_type must be one of {', '.join(PERMIT_TYPES)} (got {permit_type!r})")
    share, review_share = PERMIT_TYPES[kind]
    bracket = next(b for b in reversed(FEE_SCHEDULE) if value > b.floor_usd or b.floor_usd == 0)
    started_thousands = math.ceil((value - bracket.floor_usd) / 1000) if bracket.per_thousand else 0
    permit_fee = _cents((bracket.base_fee + started_thousands * bracket.per_thousand) * share)
    plan_review = _cents(permit_fee * review_share)
    return PermitFeeEstimate(
        project_value_usd=value,
        permit_type=kind,
        bracket=bracket,
        permit_fee=permit_fee,
        plan_review_fee=plan_review,
        total=_cents(permit_fee + plan_review),
    )


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


VALUATION_PER_SQFT: dict[str, float] = {"new": 250.0, "alteration": 125.0}
"""Illustrative value of work per square foot when only the floor area is known.

SDCI values work from floor area by occupancy and construction type (valuation tables in the style
of the ICC Building Valuation Data) unless a higher value is declared; these two round rates, for
new floor area (an addition, a new house or ADU) and for altering existing space, stand in for
that table. They are estimates, said so wherever they are used.
"""
VALUATION_BASIS = (
    "the value of the work is estimated from its floor area at an illustrative $250 per sq ft for new "
    "floor area ($125 for altering existing space); SDCI values work from its own valuation table."
)


def estimated_project_value(floor_area_sqft: float, kind: str = "new") -> float:
    """An illustrative value of work from its floor area (see :data:`VALUATION_PER_SQFT`).

    Args:
        floor_area_sqft: Floor area built or altered, in square feet.
        kind: ``new`` (added floor area) or ``alteration``.

    Returns:
        The estimated value in dollars.
    """
    return round(floor_area_sqft * VALUATION_PER_SQFT.get(kind, VALUATION_PER_SQFT["new"]), 2)


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")


def _pct(value: float) -> str:
    return f"{value:g}%"


def citation_line(number: int, title: str, location: str, section: str | None = None) -> str:
    """The ``[n] Title — section (location)`` line tools print and answers list under Sources."""
    middle = f"{title} — {section}" if section else title
    return f"[{number}] {middle} ({location})"


def _clip(text: str, limit: int = MAX_PASSAGE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit] + " …"


def _format_passages(query: str, passages: list[Passage], state: RunState) -> str:
    if not passages:
        return (
            f'No passages in the knowledge base match "{query}". Try other words, or say that the '
            "documents do not cover this."
        )
    plural = "passage" if len(passages) == 1 else "passages"
    parts = [f'{len(passages)} {plural} for "{query}" (cite them by number):']
    for passage in passages:
        number = state.cite(passage.title, passage.source, passage.section, passage.score)
        parts.append(
            "\n".join(
                (
                    citation_line(number, passage.title, passage.source, passage.section),
                    f"relevance {passage.score:.3f}",
                    _clip(passage.text),
                )
            )
        )
    return "\n\n".join(parts)


def _format_mortgage(
    b: MortgageBreakdown, down_pct: float, rate_pct: float, years: int, tax_pct: float
) -> str:
    lines = [
        f"Estimated monthly payment for a {_money(b.price)} home: {_money(b.total_monthly)}",
        f"- Down payment: {_money(b.down_payment)} ({_pct(down_pct)}); loan amount: {_money(b.loan_amount)}",
        f"- Principal and interest: {_money(b.principal_and_interest)} a month "
        f"({_pct(rate_pct)} fixed, {years} years, {b.payments} payments)",
        f"- Property tax: {_money(b.property_tax)} a month ({_pct(tax_pct)} of the price a year)",
        f"- Homeowners insurance: {_money(b.insurance)} a month",
        f"- Total interest over the loan: {_money(b.total_interest)}",
    ]
    if down_pct < 20:
        lines.append(
            "- With less than 20% down, lenders usually add mortgage insurance (PMI), not included here."
        )
    return "\n".join(lines)


def _zone_section(standard: ZoneStandard) -> str:
    return f"{standard.code}: {standard.name}"


def _format_zone(standard: ZoneStandard, number: int) -> str:
    def feet(value: float | None) -> str:
        return "not set" if value is None else f"{_number(value)} ft"

    lines = [f"Zone {standard.code} — {standard.name} (bundled summary table):"]
    lines.append(f"- Maximum height: {feet(standard.max_height_ft)}")
    lines.append(f"- Floor area ratio (FAR): {'not set' if standard.far is None else _number(standard.far)}")
    coverage = standard.max_lot_coverage
    lines.append(f"- Maximum lot coverage: {'not set' if coverage is None else _pct(_cents(coverage * 100))}")
    lines.append(
        f"- Setbacks: front {feet(standard.front_setback_ft)}, side {feet(standard.side_setback_ft)}, "
        f"rear {feet(standard.rear_setback_ft)}"
    )
    if standard.min_lot_size_sqft is not None:
        lines.append(f"- Minimum lot size: {_number(standard.min_lot_size_sqft)} sq ft")
    if standard.notes:
        lines.append(f"- Notes: {standard.notes}")
    lines.append(citation_line(number, ZONING_TABLE_TITLE, standard.source, _zone_section(standard)))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Zoning table access (imported lazily: the table module is only needed when a tool runs)
# --------------------------------------------------------------------------------------------


def _lookup_zone(zone: str) -> ZoneStandard:
    from selador.knowledge import zoning

    code = " ".join(zone.split())
    if not code:
        raise ValueError("zone must not be empty (for example NR3, LR2 or NC2-55)")
    standard = zoning.lookup_zone(code)
    if standard is None:
        known = ", ".join(sorted(zoning.load_zoning_standards()))
        raise ValueError(f"unknown zone {zone!r}; the bundled table knows: {known}")
    return standard


def _run_state(tool_context: ToolContext) -> RunState:
    state = tool_context.invocation_state.get(INVOCATION_STATE_KEY)
    if not isinstance(state, RunState):
        raise RuntimeError(
            f"no run state: invoke the agent with invocation_state={{{INVOCATION_STATE_KEY!r}: …}}"
        )
    return state


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------


@tool(context=True)
def search_knowledge_base(query: str, tool_context: ToolContext, max_results: int = 5) -> Any:
    """Search the Seattle real-estate knowledge base (zoning code, building code, permit guides).

    Returns the best-matching passages, numbered [1], [2]… with title, section and source; cite
    those numbers in the answer. Numbers stay the same for the same document across searches.

    Args:
        query: What to look for, in plain words (for example "ADU size limit in NR zones").
        max_results: How many passages to return, 1 to 20.
        tool_context: Supplied by Strands; carries the run's knowledge base and source list.
    """
    text = query.strip()
    if not text:
        raise ValueError("query must not be empty")
    if isinstance(max_results, bool) or not 1 <= max_results <= MAX_SEARCH_RESULTS:
        raise ValueError(f"max_results must be between 1 and {MAX_SEARCH_RESULTS} (got {max_results!r})")
    state = _run_state(tool_context)
    limit = min(max_results, state.max_results)
    try:
        passages = state.knowledge_base.search(text, limit=limit)
    except KnowledgeBaseError as exc:
        # The message is safe to show (KnowledgeBaseError's contract); the detail is logged by the
        # implementation. Returning an error result lets the model still answer from other tools.
        message = str(exc) or "the knowledge base could not answer"
        state.record_knowledge_base_error(message)
        logger.warning("knowledge base search failed: %s", message)
        return {
            "status": "error",
            "content": [
                {
                    "text": f"The knowledge base search failed: {message}. Say that the documents could "
                    "not be searched; answer only from the other tools, if at all."
                }
            ],
        }
    return _format_passages(text, passages[:limit], state)


@tool(context=True)
def zoning_standards(zone: str, tool_context: ToolContext) -> str:
    """Look up a Seattle zone's development standards in the bundled summary table.

    Gives maximum height, floor area ratio (FAR), lot coverage, setbacks and minimum lot size, with
    a numbered source line to cite. An unknown zone returns the list of zones the table knows.

    Args:
        zone: Zone code, for example "NR3", "LR2", "MR", "NC2-55".
        tool_context: Supplied by Strands; carries the run's knowledge base and source list.
    """
    standard = _lookup_zone(zone)
    number = _run_state(tool_context).cite(ZONING_TABLE_TITLE, standard.source, _zone_section(standard))
    return _format_zone(standard, number)


@tool
def buildable_area(
    lot_area_sqft: float,
    zone: str | None = None,
    far: float | None = None,
    lot_coverage: float | None = None,
) -> str:
    """Compute a lot's maximum floor area (lot x FAR) and maximum building footprint (lot x coverage).

    Give a zone to take FAR and lot coverage from the bundled zoning table, or give them directly
    (explicit values win over the zone's). Does not account for setbacks, height, or exemptions.

    Args:
        lot_area_sqft: Lot area in square feet (for example 5000).
        zone: Optional Seattle zone code (for example "NR3" or "LR2").
        far: Optional floor area ratio (for example 1.3).
        lot_coverage: Optional maximum lot coverage as a fraction (0.35) or a percentage (35).
    """
    standard = _lookup_zone(zone) if zone else None
    if standard is not None:
        far = standard.far if far is None else far
        lot_coverage = standard.max_lot_coverage if lot_coverage is None else lot_coverage
    if standard is not None and far is None and lot_coverage is None:
        raise ValueError(
            f"zone {standard.code} has no FAR or lot coverage in the table; pass far or lot_coverage"
        )
    area = _compute_buildable_area(lot_area_sqft, far, lot_coverage)
    where = f" in {standard.code}" if standard else ""
    lines = [f"Buildable envelope of a {_number(area.lot_area_sqft)} sq ft lot{where}:"]
    if area.max_floor_area_sqft is not None and area.far is not None:
        lines.append(
            f"- Maximum floor area: {_number(area.max_floor_area_sqft)} sq ft "
            f"({_number(area.lot_area_sqft)} x FAR {_number(area.far)})"
        )
    if area.max_footprint_sqft is not None and area.lot_coverage is not None:
        lines.append(
            f"- Maximum footprint: {_number(area.max_footprint_sqft)} sq ft "
            f"({_pct(_cents(area.lot_coverage * 100))} lot coverage)"
        )
    if (
        standard is not None
        and standard.min_lot_size_sqft
        and area.lot_area_sqft < standard.min_lot_size_sqft
    ):
        lines.append(
            f"- The lot is smaller than {standard.code}'s minimum lot size of "
            f"{_number(standard.min_lot_size_sqft)} sq ft; check substandard-lot rules."
        )
    if standard is not None and standard.max_height_ft is not None:
        lines.append(f"- Height limit in {standard.code}: {_number(standard.max_height_ft)} ft")
    lines.append("- Setbacks, height and exemptions can lower what fits; this is the ceiling, not a design.")
    return "\n".join(lines)


@tool(context=True)
def permit_fee_estimate(
    project_value_usd: float, tool_context: ToolContext, permit_type: str = "building"
) -> str:
    """Estimate Seattle (SDCI) permit fees from the value of the work.

    An estimate only: the schedule is modelled on SDCI's value-based development fees in the
    Seattle Fee Subtitle (SMC 22.900D.010), with round illustrative figures; the current table,
    surcharges and hourly review fees change the real amount.

    Args:
        project_value_usd: Value of the construction work in dollars (for example 250000).
        permit_type: "building" (permit plus plan review) or "mechanical".
        tool_context: Supplied by Strands; carries the run's knowledge base and source list.
    """
    estimate = _compute_permit_fee(project_value_usd, permit_type)
    number = _run_state(tool_context).cite(FEE_SOURCE_TITLE, FEE_SOURCE_LOCATION, FEE_SOURCE_SECTION)
    b = estimate.bracket
    if b.per_thousand:
        rule = (
            f"{_money(b.base_fee)} at {_money(b.floor_usd)} plus {_money(b.per_thousand)} "
            "per started $1,000 above"
        )
    else:
        rule = f"minimum fee {_money(b.base_fee)}"
    share, review_share = PERMIT_TYPES[estimate.permit_type]
    if share != 1:
        rule += f", at {_pct(share * 100)} for {estimate.permit_type} permits"
    lines = [
        f"Estimated {estimate.permit_type} permit fees for a {_money(estimate.project_value_usd)} project: "
        f"{_money(estimate.total)}",
        f"- Permit fee: {_money(estimate.permit_fee)} ({rule})",
    ]
    if review_share:
        lines.append(
            f"- Plan review fee: {_money(estimate.plan_review_fee)} "
            f"(modelled as {_pct(review_share * 100)} of the permit fee)"
        )
    lines.append(
        "- Estimate only, modelled on SDCI's value-based fee table (SMC 22.900D.010) with illustrative "
        "figures; check SDCI's current fee schedule."
    )
    lines.append(citation_line(number, FEE_SOURCE_TITLE, FEE_SOURCE_LOCATION, FEE_SOURCE_SECTION))
    return "\n".join(lines)


@tool
def mortgage_payment(
    price_usd: float,
    down_payment_pct: float = 20,
    annual_rate_pct: float = 6.5,
    years: int = 30,
    property_tax_rate_pct: float = 1.0,
    insurance_usd_per_year: float = 1200,
) -> str:
    """Compute a fixed-rate mortgage's monthly payment: principal and interest plus escrow.

    Uses the standard amortisation formula; escrow is property tax and homeowners insurance.
    Mortgage insurance (PMI) and HOA dues are not included.

    Args:
        price_usd: Purchase price in dollars (for example 750000).
        down_payment_pct: Down payment as a percent of the price (20 means 20%).
        annual_rate_pct: Annual interest rate in percent (6.5 means 6.5%).
        years: Loan term in years (for example 30 or 15).
        property_tax_rate_pct: Yearly property tax as a percent of the price (about 1 in Seattle).
        insurance_usd_per_year: Yearly homeowners insurance in dollars.
    """
    breakdown = _compute_mortgage(
        price_usd, down_payment_pct, annual_rate_pct, years, property_tax_rate_pct, insurance_usd_per_year
    )
    return _format_mortgage(breakdown, down_payment_pct, annual_rate_pct, int(years), property_tax_rate_pct)


TOOLS: dict[str, DecoratedFunctionTool[..., Any]] = {
    t.tool_name: t
    for t in (search_knowledge_base, zoning_standards, buildable_area, permit_fee_estimate, mortgage_payment)
}
"""Every tool, by name (the names :class:`~selador.agents.specs.AgentSpec` lists)."""
