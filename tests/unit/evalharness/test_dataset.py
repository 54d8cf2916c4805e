"""The labelled question set: it loads, it is big and varied enough, and every label is real.

A label that names a tool, a parameter or a knowledge-base section that does not exist, or a fact
the labelled sources do not contain, fails here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from eval.dataset import (
    KINDS,
    SEARCH_TOOL,
    DatasetError,
    EarlierTurn,
    Range,
    SectionRef,
    check_fact_support,
    check_question,
    check_questions,
    known_sections,
    labelled_tool_outputs,
    load_questions,
    parse_question,
    tool_parameters,
)
from eval.metrics import fact_coverage

from selador.agents.tools import TOOLS, _compute_mortgage
from selador.protocol import QUERY_TYPES

QUESTIONS = load_questions()
BY_ID = {q.id: q for q in QUESTIONS}

ISSUE_QUESTIONS = [
    (
        "What are the zoning requirements for residential development?",
        "Looking at a property in Capitol Hill area",
        "zoning",
    ),
    ("How much would a permit cost for a 2000 sq ft addition?", None, "permits"),
    ("What is the monthly payment on a 800000 dollar house with 20% down at 6.5%?", None, "financing"),
    ("hello, who are you?", None, "general"),
    ("What is the FAR in LR2?", None, "zoning"),
]


def test_the_set_loads_and_is_large_enough() -> None:
    assert len(QUESTIONS) >= 80
    assert len(BY_ID) == len(QUESTIONS)


def test_every_query_type_and_kind_is_covered() -> None:
    assert set(Counter(q.query_type for q in QUESTIONS)) == set(QUERY_TYPES)
    assert set(Counter(q.kind for q in QUESTIONS)) == set(KINDS)
    for query_type in QUERY_TYPES:
        assert sum(q.query_type == query_type for q in QUESTIONS) >= 10, query_type


def test_every_label_is_sound() -> None:
    assert check_questions(QUESTIONS) == []


def test_the_issue_questions_are_included_verbatim() -> None:
    asked = {(q.question, q.context, q.query_type) for q in QUESTIONS}
    for question in ISSUE_QUESTIONS:
        assert question in asked


def test_issue_labels() -> None:
    far = BY_ID["issue-far-lr2"]
    assert far.tools == {SEARCH_TOOL, "zoning_standards"}
    assert far.args["zoning_standards"] == ({"zone": "LR2"},)
    hello = BY_ID["issue-hello"]
    assert hello.tools == frozenset()
    assert hello.facts
    permit = BY_ID["issue-permit-2000-sqft-addition"]
    assert "permit_fee_estimate" in permit.tools
    assert isinstance(permit.args["permit_fee_estimate"][0]["project_value_usd"], Range)
    capitol = BY_ID["issue-capitol-hill-residential"]
    docs = {ref.doc for ref in capitol.sections}
    assert {"smc-23-45-lowrise", "smc-23-44-neighborhood-residential"} <= docs


def test_the_mortgage_label_is_the_tools_own_figure() -> None:
    question = BY_ID["issue-mortgage-800k"]
    assert question.args["mortgage_payment"] == (
        {"price_usd": 800000, "down_payment_pct": 20, "annual_rate_pct": 6.5},
    )
    b = _compute_mortgage(800_000, 20, 6.5)
    assert (b.principal_and_interest, b.total_monthly) == (4045.24, 4811.91)
    text = f"${b.principal_and_interest:,.2f} and ${b.total_monthly:,.2f}"
    assert fact_coverage(question.facts, text) == 1.0


def test_greetings_and_out_of_scope_expect_no_tools() -> None:
    for q in QUESTIONS:
        if q.kind in ("greeting", "out_of_scope"):
            assert q.tools == frozenset(), q.id
            assert not q.sections, q.id


def test_label_checks_catch_a_section_that_does_not_exist() -> None:
    question = parse_question(
        {
            "id": "bad-section",
            "question": "What is the FAR in LR2?",
            "query_type": "zoning",
            "kind": "direct",
            "tools": [SEARCH_TOOL],
            "sections": [{"doc": "smc-23-45-lowrise", "section": "Floor area ratio in LR zones"}],
            "facts": ["1.4"],
        }
    )
    problems = check_question(question)
    assert any("does not exist" in p for p in problems)
    assert (
        SectionRef("smc-23-45-lowrise", "Floor area ratio limits in LR zones (SMC 23.45.510)")
        in known_sections()
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tools": ["zoning_lookup"]}, "unknown tool"),
        (
            {"tools": ["zoning_standards"], "args": {"zoning_standards": {"zone_code": "LR2"}}},
            "has no parameter",
        ),
        ({"tools": ["zoning_standards"]}, "required argument 'zone'"),
        ({"tools": [SEARCH_TOOL], "args": {"mortgage_payment": {"price_usd": 1}}}, "neither in tools"),
        (
            {"tools": [], "sections": [{"doc": "smc-23-45-lowrise", "section": None}]},
            "search_knowledge_base is not",
        ),
        ({"kind": "greeting"}, "must expect no tools"),
        ({"kind": "banter"}, "kind"),
        ({"kind": "follow_up"}, "needs a history"),
        ({"history": ["What is the FAR in LR1?"]}, "only a follow_up question has one"),
        (
            {"kind": "follow_up", "history": [{"question": "And in LR1?", "query_type": "taxes"}]},
            "history: query_type",
        ),
        ({"kind": "follow_up", "history": ["The FAR was 1.4 in LR2, right?"]}, "already in the question"),
        ({"query_type": "taxes"}, "query_type"),
        ({"facts": ["FAR in LR2"]}, "already in the question"),
        ({"facts": [{"re": "1.4("}]}, "does not compile"),
    ],
)
def test_label_checks_catch_bad_labels(changes: dict[str, object], message: str) -> None:
    raw: dict[str, object] = {
        "id": "bad",
        "question": "What is the FAR in LR2?",
        "query_type": "zoning",
        "kind": "direct",
        "tools": [SEARCH_TOOL],
        "facts": ["1.4"],
    } | changes
    problems = check_question(parse_question(raw))
    assert any(message in p for p in problems), problems


def test_fact_support_catches_a_fact_the_sources_do_not_hold() -> None:
    question = parse_question(
        {
            "id": "untrue",
            "question": "What is the FAR in LR2?",
            "query_type": "zoning",
            "kind": "direct",
            "tools": [SEARCH_TOOL, "zoning_standards"],
            "args": {"zoning_standards": {"zone": "LR2"}},
            "sections": [
                {"doc": "smc-23-45-lowrise", "section": "Floor area ratio limits in LR zones (SMC 23.45.510)"}
            ],
            "facts": [
                {"re": r"\b1\.5\b"},
                {"re": r"\b1\.4\b"},
                {"re": "4,?999", "derived": "made up, but exempt"},
            ],
        }
    )
    problems = check_fact_support(question)
    assert len(problems) == 1
    assert r"\b1\.5\b" in problems[0]


def test_history_turns_take_the_question_s_query_type_unless_they_give_one() -> None:
    question = parse_question(
        {
            "id": "fu",
            "history": [
                "What is the FAR in LR2?",
                {"question": "Payment on $800k?", "query_type": "financing"},
            ],
            "question": "And in LR3?",
            "query_type": "zoning",
            "kind": "follow_up",
            "tools": [SEARCH_TOOL],
        }
    )
    assert question.history == (
        EarlierTurn("What is the FAR in LR2?", "zoning"),
        EarlierTurn("Payment on $800k?", "financing"),
    )
    assert question.history[1].request("r1").query_type == "financing"


def test_a_question_about_the_conversation_finds_its_facts_in_the_history() -> None:
    raw = {
        "id": "fu",
        "history": ["How tall can I build in NR3?"],
        "question": "What did I ask first?",
        "query_type": "general",
        "kind": "follow_up",
        "tools": [],
    }
    assert check_fact_support(parse_question(raw | {"facts": ["How tall can I build in NR3?"]})) == []
    assert check_fact_support(parse_question(raw | {"facts": ["setbacks"]})) == [
        "fu: fact 'setbacks' is not in the earlier questions"
    ]


def test_labelled_tool_outputs_run_the_real_tools() -> None:
    outputs = labelled_tool_outputs(BY_ID["z-floor-area-6000-lr2"])
    assert len(outputs) == 1
    assert "8,400 sq ft" in outputs[0]


def test_parameter_names_come_from_the_tool_schemas() -> None:
    params = tool_parameters()
    assert set(params) == set(TOOLS)
    assert "tool_context" not in params["zoning_standards"]
    assert set(params["mortgage_payment"]) >= {"price_usd", "down_payment_pct", "annual_rate_pct", "years"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a mapping", "must be a mapping"),
        ({"question": "q"}, "no id"),
        ({"id": "x", "question": "q", "query_type": "zoning", "kind": "direct"}, "tools is required"),
        (
            {"id": "x", "question": "q", "query_type": "zoning", "kind": "direct", "tools": [], "extra": 1},
            "unknown fields",
        ),
        (
            {
                "id": "x",
                "question": "q",
                "query_type": "zoning",
                "kind": "direct",
                "tools": [],
                "sections": [{"doc": "d"}],
            },
            "each section",
        ),
        (
            {
                "id": "x",
                "question": "q",
                "query_type": "zoning",
                "kind": "follow_up",
                "tools": [],
                "history": [],
            },
            "non-empty list",
        ),
        (
            {
                "id": "x",
                "question": "q",
                "query_type": "zoning",
                "kind": "follow_up",
                "tools": [],
                "history": [1],
            },
            "an earlier turn is",
        ),
        (
            {
                "id": "x",
                "question": "q",
                "query_type": "zoning",
                "kind": "direct",
                "tools": ["permit_fee_estimate"],
                "args": {"permit_fee_estimate": {"project_value_usd": {"min": 5, "max": 1}}},
            },
            "min <= max",
        ),
    ],
)
def test_malformed_questions_are_rejected(raw: object, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_question(raw)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(
        "- {id: a, question: hi, query_type: general, kind: greeting, tools: []}\n"
        "- {id: a, question: hey, query_type: general, kind: greeting, tools: []}\n"
    )
    with pytest.raises(DatasetError, match="duplicate"):
        load_questions(path)
