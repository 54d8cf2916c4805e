"""The offline responder's reading of questions and its choice of tools (rules, not cases)."""

from __future__ import annotations

import pytest

from selador.agents.offline import plan_tool_calls, read
from selador.agents.offline.composing import COVERS, reply_without_tools
from selador.agents.offline.lexicon import near
from selador.agents.tools import TOOLS, estimated_project_value
from selador.knowledge.spelling import edit_distance

ALL = set(TOOLS)


def calls(question: str, context: str = "", available: set[str] = ALL) -> dict[str, list[dict]]:
    planned: dict[str, list[dict]] = {}
    for name, tool_input in plan_tool_calls(
        question, f"{question}\n{context}" if context else question, available
    ):
        planned.setdefault(name, []).append(tool_input)
    return planned


# -- kinds of message --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("hi", "greeting", None),
        ("Good evening! What can you do?", "greeting", None),
        ("helo whats this app do", "greeting", None),
        ("who are you", "greeting", None),
        ("thanks a lot!", "thanks", None),
        ("Thank you, that helps", "thanks", None),
        ("What's the weather like this weekend?", "out_of_scope", "off_topic"),
        ("What are the setback rules in Tacoma?", "out_of_scope", "elsewhere"),
        ("What are mortgage rates doing right now?", "out_of_scope", "live_data"),
        ("Could you submit my building permit for me?", "out_of_scope", "act"),
        ("Can you recommend an architect?", "out_of_scope", "recommend"),
        ("What is the FAR in LR2?", "question", None),
        ("hi, what is the height limit in NR3?", "question", None),
        ("whats the maximim hieght in NC2-55?", "question", None),
        ("do i need a permt for a new deck", "question", None),
        ("What is a blower door test?", "question", None),
    ],
)
def test_kinds_of_message(text: str, kind: str, reason: str | None) -> None:
    reading = read(text)
    assert (reading.kind, reading.scope_reason) == (kind, reason)


def test_messages_outside_scope_call_nothing_and_say_what_is_covered() -> None:
    for text in ("hello", "thanks!", "Did the Mariners win?", "Zoning in Portland?"):
        assert plan_tool_calls(text, text, ALL) == []
        reply = reply_without_tools(read(text))
        assert COVERS in reply and "zoning" in reply and "permit" in reply
    assert "Seattle" in reply_without_tools(read("Zoning in Portland?")).split(".")[0]


def test_live_market_questions_offer_the_calculator_instead() -> None:
    reply = reply_without_tools(read("What's the 30-year mortgage rate today?"))
    assert "monthly payment" in reply and "down payment" in reply


# -- figures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("payment on a 800000 dollar house with 20% down", 800_000),
        ("payment on a $650k condo", 650_000),
        ("mortgage on 1.1 million", 1_100_000),
        ("monthly cost of a $1.5M house", 1_500_000),
        ("mortage on a $1.2 milion home", 1_200_000),
        ("What would a $600,000 house cost per month?", 600_000),
    ],
)
def test_prices_in_the_ways_people_write_them(text: str, price: float) -> None:
    (mortgage,) = calls(text)["mortgage_payment"]
    assert mortgage["price_usd"] == price


def test_each_amount_is_read_for_what_it_is() -> None:
    text = (
        "Can I afford a $900k home on a $4,500 a month budget with 20% down at 6.5%? "
        "Insurance is about $1,800 a year and property tax 0.9%."
    )
    (mortgage,) = calls(text)["mortgage_payment"]
    assert mortgage == {
        "price_usd": 900_000,
        "down_payment_pct": 20,
        "annual_rate_pct": 6.5,
        "property_tax_rate_pct": 0.9,
        "insurance_usd_per_year": 1_800,
    }


def test_a_loan_amount_has_nothing_down_and_terms_compared_get_one_call_each() -> None:
    assert calls("Monthly principal and interest on a $400,000 loan at 7%?")["mortgage_payment"] == [
        {"price_usd": 400_000, "down_payment_pct": 0.0, "annual_rate_pct": 7}
    ]
    compared = calls("Compare a 15-year and a 30-year loan on $700,000 with 20% down at 6%.")
    assert [c.get("years") for c in compared["mortgage_payment"]] == [15, 30]


def test_a_rate_without_a_percent_sign_and_a_down_payment_in_dollars() -> None:
    (mortgage,) = calls("whats the monthy on a 500k condo with $50,000 down at 6.5")["mortgage_payment"]
    assert mortgage == {"price_usd": 500_000, "down_payment_pct": 10.0, "annual_rate_pct": 6.5}


def test_pure_calculations_do_not_search_but_rules_questions_do() -> None:
    assert "search_knowledge_base" not in calls("Payment on a $500,000 house at 6%?")
    assert set(calls("My lot is 4,500 sq ft and the FAR is 1.3. How much floor area is that?")) == {
        "buildable_area"
    }
    assert calls("My lot is 4,500 sq ft and the FAR is 1.3. How much floor area is that?")[
        "buildable_area"
    ] == [{"lot_area_sqft": 4_500, "far": 1.3}]
    assert "search_knowledge_base" in calls("Payment on a $500,000 house, and can I add an ADU there?")


# -- areas, zones, fees -----------------------------------------------------------------------------


def test_a_lot_is_built_on_only_when_the_question_asks_how_much() -> None:
    planned = calls("What can I build on a 7,200 sq ft NR2 lot?")
    assert planned["buildable_area"] == [{"lot_area_sqft": 7_200, "zone": "NR2"}]
    assert planned["zoning_standards"] == [{"zone": "NR2"}]
    assert "buildable_area" not in calls("What should I check before I buy a 5,000 sq ft NR3 lot?")
    # A lot with neither a zone nor a FAR: nothing says how much, so the calculator is not called.
    assert "buildable_area" not in calls("How much floor area can I build on a 6,000 sq ft lot?")


def test_a_building_size_is_not_a_lot() -> None:
    planned = calls("Do I need a permit for a 100 sq ft garden shed?")
    assert set(planned) == {"search_knowledge_base"}


def test_zones_named_in_words_and_several_zones_are_looked_up() -> None:
    assert calls("setbacks in a Midrise zone?")["zoning_standards"] == [{"zone": "MR"}]
    assert calls("lowrise 2 vs LR3 height")["zoning_standards"] == [{"zone": "LR2"}, {"zone": "LR3"}]
    # A zone the table does not hold as such (NC1 comes with a height: NC1-30, NC1-40) is searched only.
    assert "zoning_standards" not in calls("What is NC1 for?")


def test_fees_need_a_value_or_a_floor_area_to_value() -> None:
    assert calls("What permit fees apply to a $120,000 kitchen remodel?")["permit_fee_estimate"] == [
        {"project_value_usd": 120_000}
    ]
    assert calls("How much is a mechanical permit for a $12,000 furnace replacement?")[
        "permit_fee_estimate"
    ] == [{"project_value_usd": 12_000, "permit_type": "mechanical"}]
    assert calls("How much would a permit cost for a 2000 sq ft addition?")["permit_fee_estimate"] == [
        {"project_value_usd": estimated_project_value(2_000, "new")}
    ]
    assert "permit_fee_estimate" not in calls("a $120,000 remodel")
    assert "permit_fee_estimate" not in calls("How much does a permit cost?")


def test_only_offered_tools_are_planned() -> None:
    text = "What can I build on a 7,200 sq ft NR2 lot?"
    assert calls(text, available={"search_knowledge_base"}) == {"search_knowledge_base": [{"query": text}]}


# -- typo tolerance ----------------------------------------------------------------------------------


def test_typos_meet_the_word_they_misspell_and_real_words_stay_themselves() -> None:
    vocabulary = frozenset({"mortgage", "cottage", "cooling", "setbacks", "railings", "height"})
    assert near("mortage", vocabulary) == "mortgage"  # one edit beats two
    assert near("setbaks", vocabulary) == "setbacks"
    assert near("hieght", vocabulary) == "height"  # a swap of neighbours is one edit
    assert near("looking", vocabulary) is None  # a real word two edits from "cooling" is not it
    assert near("town", frozenset({"down"})) is None  # four letters: never guessed at
    assert near("2024", frozenset({"2025"})) is None
    assert edit_distance("abcd", "badc", 3) == 2
