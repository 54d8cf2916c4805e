"""Review findings on the offline responder: inputs a real user would send that it once misread.

Each test pins one finding of the issue-12 review, fixed. How fast adversarial input is read is a
``make bench`` target (``responder.adversarial_worst``), not a timed test here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from strands import Agent

from selador.agents.offline import OfflineResponder, find_zones, plan_tool_calls, read
from selador.agents.offline.composing import ToolOutcome, compose_answer
from selador.agents.specs import AGENT_SPECS
from selador.agents.state import INVOCATION_STATE_KEY, RunState
from selador.agents.tools import TOOLS
from selador.knowledge.local import LocalKnowledgeBase

ALL = set(TOOLS)


def planned(question: str, available: set[str] = ALL) -> dict[str, list[dict[str, Any]]]:
    calls: dict[str, list[dict[str, Any]]] = {}
    for name, tool_input in plan_tool_calls(question, question, available):
        calls.setdefault(name, []).append(tool_input)
    return calls


def run(question: str, agent_name: str = "rag") -> tuple[str, list[tuple[str, dict[str, Any], str]]]:
    """The answer and the (tool, input, status) calls of a real agent run on the bundled KB."""
    spec = AGENT_SPECS[agent_name]
    agent = Agent(
        model=OfflineResponder(),
        tools=[TOOLS[name] for name in spec.tool_names],
        callback_handler=None,
    )
    state = RunState(knowledge_base=LocalKnowledgeBase())
    result = asyncio.run(agent.invoke_async(question, invocation_state={INVOCATION_STATE_KEY: state}))
    uses: dict[str, tuple[str, dict[str, Any]]] = {}
    calls = []
    for message in agent.messages:
        for block in message.get("content", []):
            if "toolUse" in block:
                uses[block["toolUse"]["toolUseId"]] = (block["toolUse"]["name"], block["toolUse"]["input"])
            elif "toolResult" in block:
                name, tool_input = uses[block["toolResult"]["toolUseId"]]
                calls.append((name, tool_input, block["toolResult"]["status"]))
    return str(result), calls


# -- money given the wrong role ------------------------------------------------------------------


def test_down_payment_named_before_the_price_is_not_the_price() -> None:
    calls = planned("With a down payment of $100,000 on a $600,000 house, what's the monthly payment at 6%?")
    assert calls["mortgage_payment"][0]["price_usd"] == 600_000


def test_cash_down_named_first_is_not_the_price() -> None:
    calls = planned("I have $150k down for a $750,000 house at 6%. Monthly payment?")
    assert calls["mortgage_payment"][0]["price_usd"] == 750_000


def test_salary_is_not_the_price() -> None:
    calls = planned("I make $150,000 a year. Can I afford a $800,000 home at 6.5%?")
    assert calls["mortgage_payment"][0]["price_usd"] == 800_000


def test_tax_bill_is_not_the_price() -> None:
    calls = planned(
        "My property taxes are $8,000 a year on a $700,000 house. What's my monthly payment at 6%?"
    )
    assert calls["mortgage_payment"][0]["price_usd"] == 700_000


def test_house_price_is_not_the_project_value() -> None:
    calls = planned(
        "We paid $900,000 for our house and want to add a $60,000 deck. What will the permit cost?"
    )
    assert calls["permit_fee_estimate"][0]["project_value_usd"] == 60_000


def test_purchase_price_is_not_the_value_of_an_addition() -> None:
    calls = planned("I bought a $800k house. How much is the permit for a 400 sq ft addition?")
    assert calls["permit_fee_estimate"][0]["project_value_usd"] < 800_000


def test_price_followed_by_a_remodel_still_gets_a_payment() -> None:
    calls = planned("The house costs $800k; I'll do a $100k remodel. What is the monthly payment at 6.5%?")
    assert calls.get("mortgage_payment", [{}])[0].get("price_usd") == 800_000


def test_put_down_amount_is_read() -> None:
    calls = planned("What's the monthly payment on a $700k house if I put down $140k?")
    assert calls["mortgage_payment"][0].get("down_payment_pct") == pytest.approx(20.0)
    calls = planned("Payment on a $750,000 home with a $50,000 down payment at 6%")
    assert calls["mortgage_payment"][0].get("down_payment_pct") == pytest.approx(6.6667, rel=1e-3)


def test_common_price_spellings() -> None:
    assert planned("Monthly payment on a $1.2 mil house with 20% down?")["mortgage_payment"][0][
        "price_usd"
    ] == (1_200_000)
    assert planned("payment on 850000 house at 6%")["mortgage_payment"][0]["price_usd"] == 850_000


# -- percentages given the wrong role -----------------------------------------------------------


def test_down_payment_percent_is_not_a_rate() -> None:
    tool_input = planned("How much is the down payment on a $950,000 home at 20%?")["mortgage_payment"][0]
    assert tool_input.get("annual_rate_pct") != 20.0
    assert tool_input.get("down_payment_pct") == 20.0


def test_down_payment_percent_is_used() -> None:
    assert (
        planned("How much is the down payment on a $950,000 home at 25%?")["mortgage_payment"][0].get(
            "down_payment_pct"
        )
        == 25.0
    )


def test_percent_for_a_down_payment() -> None:
    tool_input = planned("I have 10% for a down payment on a $700,000 house. Monthly payment at 6.5%?")[
        "mortgage_payment"
    ][0]
    assert (tool_input.get("down_payment_pct"), tool_input.get("annual_rate_pct")) == (10.0, 6.5)


def test_rate_after_down_payment_is_read() -> None:
    tool_input = planned("What's the payment on a $600,000 house with 10% down payment at 7%?")[
        "mortgage_payment"
    ][0]
    assert tool_input.get("annual_rate_pct") == 7.0


def test_rate_change_is_not_the_rate() -> None:
    tool_input = planned(
        "What would the payment be on a $700,000 home with 20% down if the rate goes up 1%?"
    )["mortgage_payment"][0]
    assert tool_input.get("annual_rate_pct") != 1.0


def test_fractional_rate() -> None:
    tool_input = planned("Monthly payment for a 850k house, 20 percent down, 30-year at 6 7/8%?")[
        "mortgage_payment"
    ][0]
    assert tool_input.get("annual_rate_pct") in (None, 6.875)


# -- years and areas ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "Monthly payment on a $600,000 20 year old house at 6%?",
        "We've lived in Seattle 10 years; what's the payment on a $700k house at 6%?",
        "I'm 35 years old; what is the payment on a $700k home?",
    ],
)
def test_ages_are_not_loan_terms(question: str) -> None:
    assert "years" not in planned(question)["mortgage_payment"][0]


def test_short_term_is_not_silently_dropped() -> None:
    assert (
        planned("Monthly payment on a $500,000 house over 3 years?")["mortgage_payment"][0].get("years") == 3
    )
    assert (
        planned("Monthly payment for a $650k condo, 10% down, 7% rate, 15 years?")["mortgage_payment"][0].get(
            "years"
        )
        == 15
    )


def test_quarter_acre_written_as_a_fraction() -> None:
    assert read("I have a 1/4 acre lot in NR1. What's the max footprint?").lot_area == pytest.approx(10_890)


def test_fee_uses_the_addition_area() -> None:
    calls = planned("I have a 3 year old ADU of 800 sq ft. Permit fee to add a 200 sq ft addition?")
    assert calls["permit_fee_estimate"][0]["project_value_usd"] == 50_000


def test_how_many_square_feet_can_i_build() -> None:
    assert "buildable_area" in planned("How many sq ft can I build on a 7500 sq. ft. lot in NR2?")


# -- zones ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "My contractor, MR Construction, quoted $80,000 for an addition. Permit fee?",
        "Our HR department asked whether I need a permit for a home office remodel",
        "I work 10 HR shifts; can I build a DADU myself?",
    ],
)
def test_mr_hr_in_prose_are_not_zones(question: str) -> None:
    assert "zoning_standards" not in planned(question)


def test_spaced_nc_codes() -> None:
    assert find_zones("What is the height limit in NC 2-55?") == ["NC2-55"]
    assert find_zones("What is the height limit in NC-2-55?") == ["NC2-55"]


# -- kinds of message ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "Can I build a deck near the shoreline of Lake Washington?",
        "My house is on Bellevue Ave E on Capitol Hill; can I add a DADU?",
        "Is parking required near the Spokane Street station?",
        "I'm moving from Portland to Seattle; what are the ADU rules here?",
        "My lot is zoned NR3 in Seattle; I used to live in Texas. Can I build an ADU?",
    ],
)
def test_seattle_questions_mentioning_other_places_are_answered(question: str) -> None:
    assert read(question).kind == "question"


@pytest.mark.parametrize(
    "question",
    [
        "Thanks. What about setbacks?",
        "Thanks, what are the setback rules?",
        "cheers, is a permit needed?",
    ],
)
def test_thanks_followed_by_a_question(question: str) -> None:
    assert read(question).kind == "question"


def test_what_do_you_know_about_a_topic() -> None:
    assert read("What do you know about egress windows?").kind == "question"


@pytest.mark.parametrize(
    "question",
    ["Could you list the setbacks in LR1?", "Can you list the permits I need for a DADU?"],
)
def test_can_you_list(question: str) -> None:
    assert read(question).kind == "question"


def test_zone_families_are_in_scope() -> None:
    assert read("What's the difference between NR and LR?").kind == "question"


# -- planning --------------------------------------------------------------------------------------


def test_lot_times_far_on_the_general_agent_gets_a_tool() -> None:
    available = set(AGENT_SPECS["general"].tool_names)
    assert planned("How much floor area can I build on a 5000 sq ft lot with FAR 1.2?", available)


def test_out_of_range_figures_never_reach_a_tool() -> None:
    for question in (
        "How much can I build on a 0 sq ft lot in LR2?",
        "How much floor area on a 5000 sq ft lot with an FAR of 45?",
        "How much floor area on a 5000 sq ft lot with 0% coverage?",
        "How much floor area on a 5000 sq ft lot with 150% coverage?",
    ):
        _, calls = run(question)
        assert all(status == "success" for _, _, status in calls), (question, calls)


def test_building_code_question_does_not_get_zone_tables() -> None:
    answer, calls = run("What are the rules for building a deck?")
    assert not [c for c in calls if c[0] == "zoning_standards"]
    assert not answer.startswith("In MR")


def test_parking_question_leads_with_parking() -> None:
    answer, _ = run("What are the parking requirements for new development near light rail?")
    assert "parking" in answer.split("\n")[0].lower()


# -- composition -----------------------------------------------------------------------------------


def test_rate_written_with_interest_leads_with_the_payment() -> None:
    answer, _ = run("Monthly payment on a $500k house at 6% interest?", "finance")
    assert answer.startswith("Estimated monthly payment")


def test_empty_error_message_does_not_raise() -> None:
    compose_answer("Payment on a $500k house?", [ToolOutcome("mortgage_payment", "error", "Error: ")])


# -- adversarial input -----------------------------------------------------------------------------


def test_long_digit_run_names_no_figure_and_calls_no_tool() -> None:
    # A bare digit run says neither what it measures nor that it is money: nothing is read from it.
    reading = read("9" * 4000)
    assert reading.money == []
    assert (reading.lot_area, reading.floor_area, reading.unplaced_area, reading.rate) == (None,) * 4
    assert planned("9" * 4000) == {}


def test_a_digit_run_named_as_money_is_one_amount() -> None:
    # A number starts only where no digit, separator or slash precedes it: one run, one amount.
    assert [m.amount for m in read("9" * 40 + " dollars").money] == [float("9" * 40)]
