"""Choosing tools for a question, and filling their inputs from what was read.

Rules (a tool is never called with inputs it cannot be given):

* Greetings, thanks and questions outside Selador's scope call nothing.
* ``search_knowledge_base`` for anything that depends on code text (zoning, building codes,
  permits), with the question and its context as the query; not for a pure calculation whose
  inputs are all given (a mortgage payment, "lot x FAR"), where the documents add nothing.
* ``zoning_standards`` for each named zone the bundled table knows (at most three).
* ``buildable_area`` when a lot size is given, the question asks how much can be built, and a
  zone or a FAR / coverage says how much.
* ``permit_fee_estimate`` when a permit's cost is asked and the work's value is given, or can be
  estimated from its floor area (an illustrative rate per square foot, said so in the answer).
* ``mortgage_payment`` when a payment, interest, down payment, tax or affordability is asked about
  a price or a loan; once per loan term when several are compared.

A second round chains one tool to another: a question about the rules as a whole for a place
("zoning requirements … on Capitol Hill") that names no zone and no particular rule looks up, in
the zoning table, the zones named by the first of the search's top passages to name any.

A figure a calculator cannot take (a lot of 0 sq ft, a FAR of 45, a coverage of 150%) is set aside
rather than passed on to fail; :func:`set_aside` says which, for the answer to explain.
"""

from __future__ import annotations

import re
from typing import Any

from selador.agents.offline import lexicon
from selador.agents.offline.reading import Reading, find_zones, read

STANDARDS_ASK = re.compile(
    r"\b(requirements?|rules?|standards?|regulations?|restrictions?)\b[^?.!]{0,40}"
    r"\b(zon\w*|residential|development|build\w*)\b"
    r"|\b(zon\w*|residential|development)\b[^?.!]{0,40}\b(requirements?|rules?|standards?|regulations?)\b"
    r"|\bwhat\s+can\s+(i|we)\s+build\b",
    re.IGNORECASE,
)
"""A question about the rules for building, as a whole (not about one figure or procedure)."""
MAX_ZONES = 3
"""Zones looked up at most for one question (comparisons name two or three)."""
MAX_FAR = 30.0
"""The largest floor area ratio the buildable-area calculator takes."""
MAX_RATE_PCT = 30.0
MAX_TAX_PCT = 10.0


def plan_tool_calls(question: str, context: str, available: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The tools to call for a question, in order, with their inputs.

    Args:
        question: The question.
        context: All the user's text (question and context); figures may be in either.
        available: Names of the tools the agent offers.

    Returns:
        ``(tool name, input)`` pairs; tools not in ``available`` are left out.
    """
    extra = context[len(question) :].strip() if context.startswith(question) else context
    return plan(read(question, "" if extra == question else extra), available)


def plan(reading: Reading, available: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The tools to call for what was read (see the module docstring for the rules)."""
    if reading.kind != "question":
        return []
    calls: list[tuple[str, dict[str, Any]]] = []
    if _needs_search(reading, available):
        calls.append(("search_knowledge_base", {"query": reading.text[:500]}))
    calls.extend(("zoning_standards", {"zone": zone}) for zone in _table_zones(reading))
    buildable = _buildable_input(reading)
    if buildable is not None:
        calls.append(("buildable_area", buildable))
    fee = _fee_input(reading)
    if fee is not None:
        calls.append(("permit_fee_estimate", fee))
    calls.extend(("mortgage_payment", tool_input) for tool_input in _mortgage_inputs(reading))
    return [(name, tool_input) for name, tool_input in calls if name in available]


def set_aside(reading: Reading) -> list[str]:
    """The figures the question gives that no calculator can take, each with why.

    Args:
        reading: What was read of the question.

    Returns:
        One sentence per figure set aside (empty when every figure is usable).
    """
    notes = []
    if reading.lot_area is not None and reading.lot_area <= 0:
        notes.append(f"a lot of {reading.lot_area:g} sq ft (a lot's area must be more than 0)")
    if reading.far is not None and not _usable_far(reading.far):
        notes.append(f"a FAR of {reading.far:g} (floor area ratios run above 0 to at most {MAX_FAR:g})")
    if reading.coverage is not None and not _usable_coverage(reading.coverage):
        notes.append(f"a lot coverage of {reading.coverage:g}% (coverage runs above 0 to at most 100%)")
    if reading.rate is not None and not 0 < reading.rate <= MAX_RATE_PCT:
        notes.append(f"an interest rate of {reading.rate:g}% (the calculator takes up to {MAX_RATE_PCT:g}%)")
    if reading.tax_rate is not None and not 0 <= reading.tax_rate <= MAX_TAX_PCT:
        notes.append(f"a tax rate of {reading.tax_rate:g}% (the calculator takes 0 to {MAX_TAX_PCT:g}%)")
    return notes


def _usable_far(far: float) -> bool:
    return 0 < far <= MAX_FAR


def _usable_coverage(coverage: float) -> bool:
    return 0 < coverage <= 100


def _needs_search(reading: Reading, available: set[str]) -> bool:
    if reading.lot_area is not None and (reading.far is not None or reading.coverage is not None):
        # "lot x FAR" with the FAR given: arithmetic on the user's own figures, unless there is no
        # calculator to do it with (then the documents are all there is).
        return bool(reading.zones) or "buildable_area" not in available
    # The documents hold nothing on mortgages: search only when the question is also about rules.
    return not _mortgage_inputs(reading) or bool(reading.topical or reading.zones or reading.wants_fee)


def _table_zones(reading: Reading) -> list[str]:
    from selador.knowledge.zoning import lookup_zone

    return [zone for zone in reading.zones if lookup_zone(zone) is not None][:MAX_ZONES]


def _buildable_input(reading: Reading) -> dict[str, Any] | None:
    if reading.lot_area is None or not (reading.wants_buildable or reading.far is not None):
        return None
    if reading.lot_area <= 0:
        return None
    tool_input: dict[str, Any] = {"lot_area_sqft": reading.lot_area}
    zones = _table_zones(reading)
    if zones:
        tool_input["zone"] = zones[0]
    if reading.far is not None and _usable_far(reading.far):
        tool_input["far"] = reading.far
    if reading.coverage is not None and _usable_coverage(reading.coverage):
        tool_input["lot_coverage"] = reading.coverage
    if len(tool_input) == 1:
        return None  # neither a zone nor a FAR or coverage: nothing says how much
    return tool_input


def _fee_input(reading: Reading) -> dict[str, Any] | None:
    if not reading.wants_fee:
        return None
    value = reading.amount("work")
    if value is None and reading.floor_area:
        from selador.agents.tools import estimated_project_value

        value = estimated_project_value(reading.floor_area, "new" if reading.new_work else "alteration")
    if value is None:
        return None
    tool_input: dict[str, Any] = {"project_value_usd": value}
    if reading.mechanical:
        tool_input["permit_type"] = "mechanical"
    return tool_input


def _mortgage_inputs(reading: Reading) -> list[dict[str, Any]]:
    if not reading.wants_payment:
        return []
    loan = reading.amount("loan")
    price = reading.amount("price")
    if price is None and loan is None:
        return []
    tool_input: dict[str, Any] = {"price_usd": price if price is not None else loan}
    if price is None:
        tool_input["down_payment_pct"] = 0.0  # a loan amount: nothing down on top of it
    elif reading.down_pct is not None and 0 <= reading.down_pct < 100:
        tool_input["down_payment_pct"] = reading.down_pct
    elif reading.down_amount is not None and 0 < reading.down_amount < price:
        tool_input["down_payment_pct"] = round(reading.down_amount / price * 100, 4)
    if reading.rate is not None and 0 < reading.rate <= MAX_RATE_PCT:
        tool_input["annual_rate_pct"] = reading.rate
    if reading.tax_rate is not None and 0 <= reading.tax_rate <= MAX_TAX_PCT:
        tool_input["property_tax_rate_pct"] = reading.tax_rate
    insurance = reading.amount("insurance")
    if insurance is not None:
        tool_input["insurance_usd_per_year"] = insurance
    if not reading.years:
        return [tool_input]
    return [{**tool_input, "years": years} for years in reading.years]


def plan_follow_up(
    reading: Reading, outcomes: list[Any], available: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Tools to call with what the first round returned (see the module docstring).

    Args:
        reading: What was read of the question.
        outcomes: The first round's tool outcomes (``name``, ``status``, ``text``).
        available: Names of the tools the agent offers.

    Returns:
        ``(tool name, input)`` pairs, or nothing when the first round was enough.
    """
    if (
        reading.kind != "question"
        or reading.zones
        or "zoning_standards" not in available
        or not asks_rules_as_a_whole(reading.question)
        or any(o.name == "zoning_standards" for o in outcomes)
    ):
        return []
    from selador.knowledge.zoning import lookup_zone

    named: list[str] = []
    for outcome in outcomes:
        if outcome.name == "search_knowledge_base" and outcome.status == "success":
            # The first of the top passages whose own text names zones: a neighbourhood's first
            # passage may be about its station, the next about its zoning pattern.
            named = next((z for body in _passage_bodies(outcome.text)[:3] if (z := find_zones(body))), [])
            break
    zones = [zone for zone in named if lookup_zone(zone) is not None][:MAX_ZONES]
    return [("zoning_standards", {"zone": zone}) for zone in zones]


def asks_rules_as_a_whole(question: str) -> bool:
    """Whether a question asks for the rules of building as a whole, naming no particular rule.

    "What are the zoning requirements for a house on Capitol Hill?" does; "What are the rules for
    building a deck?" and "What are the parking requirements …?" ask about one subject.
    """
    return bool(STANDARDS_ASK.search(question)) and not lexicon.names_a_rule(lexicon.words(question))


def _passage_bodies(text: str) -> list[str]:
    """The texts of the search result's passages in rank order, without citation lines or scores.

    Only the bodies: a citation title ("Mid-rise and High-rise zones") names zones the passage
    may not be about.
    """
    blocks = [block.strip().splitlines() for block in text.split("\n\n") if block.strip()]
    return [
        "\n".join(line for line in lines[1:] if not line.startswith("relevance "))
        for lines in blocks
        if lines and lines[0].startswith("[")
    ]
