"""The eval runner and report: reading a run's tool calls and rankings, scoring, and three questions
end to end through the real orchestrator (offline responder, bundled knowledge base).

Nothing here asserts what the current method answers: the method will change, the instrument
must not have to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import eval.report as report
import pytest
from eval.__main__ import main
from eval.dataset import SEARCH_TOOL, Fact, Question, SectionRef, known_sections, load_questions
from eval.runner import (
    UNKNOWN_DOC,
    Observation,
    ToolCall,
    build_orchestrator,
    eval_settings,
    parse_search_result,
    read_tool_calls,
    run_questions,
)

from selador.agents.state import INVOCATION_STATE_KEY, RunState
from selador.agents.tools import search_knowledge_base
from selador.knowledge.factory import bundled_knowledge_base

END_TO_END_IDS = ("issue-far-lr2", "issue-mortgage-800k", "issue-hello")


def _search(query: str) -> str:
    state = RunState(knowledge_base=bundled_knowledge_base())
    # Cite something first, so citation numbers and ranks differ.
    state.cite("Seattle zoning standards (bundled summary table)", "SMC 23.45", "LR2: Lowrise 2")
    context = SimpleNamespace(invocation_state={INVOCATION_STATE_KEY: state})
    return str(search_knowledge_base(query=query, tool_context=context))


@pytest.mark.parametrize("query", ["What is the FAR in LR2?", "egress window sill height", "permit fees"])
def test_parsed_ranking_is_the_knowledge_base_rank_order(query: str) -> None:
    expected = [SectionRef(p.document_id, p.section) for p in bundled_knowledge_base().search(query, limit=5)]
    assert expected
    assert parse_search_result(_search(query)) == expected
    assert set(expected) <= known_sections()


def test_parsing_keeps_unknown_passages_and_ignores_text_without_passages() -> None:
    text = (
        '2 passages for "x" (cite them by number):\n\n'
        "[4] Some other title — A section (s3://bucket/doc.pdf)\nrelevance 0.5\nText.\n\n"
        "[1] Land use permits and design review — SEPA environmental review (SMC 25.05) "
        "(https://library.municode.com/wa/seattle/codes/municipal_code)\nrelevance 0.4\nMore text."
    )
    ranked = parse_search_result(text)
    assert ranked[0] == SectionRef(UNKNOWN_DOC, "Some other title — A section (s3://bucket/doc.pdf)")
    assert ranked[1] == SectionRef(
        "smc-23-76-land-use-design-review", "SEPA environmental review (SMC 25.05)"
    )
    assert parse_search_result('No passages in the knowledge base match "hello".') == []


def test_read_tool_calls_pairs_uses_with_results() -> None:
    messages = [
        {"role": "user", "content": [{"text": "q"}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "t1", "name": "zoning_standards", "input": {"zone": "LR2"}}},
                {"toolUse": {"toolUseId": "t2", "name": "mortgage_payment", "input": {"price_usd": 1}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t2", "status": "error", "content": [{"text": "bad"}]}},
                {"toolResult": {"toolUseId": "t1", "status": "success", "content": [{"text": "Zone LR2"}]}},
            ],
        },
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t3", "name": "buildable_area", "input": {}}}],
        },
    ]
    calls = read_tool_calls(messages)
    assert calls == [
        ToolCall("zoning_standards", {"zone": "LR2"}, "success", "Zone LR2"),
        ToolCall("mortgage_payment", {"price_usd": 1}, "error", "bad"),
        ToolCall("buildable_area", {}, "missing", ""),
    ]


def _question(**overrides: object) -> Question:
    fields: dict[str, object] = {
        "id": "q1",
        "question": "What is the FAR in LR2?",
        "query_type": "zoning",
        "kind": "direct",
        "tools": frozenset({SEARCH_TOOL, "zoning_standards"}),
        "args": {"zoning_standards": ({"zone": "LR2"},)},
        "sections": (SectionRef("smc-23-45-lowrise", "Floor area ratio limits in LR zones (SMC 23.45.510)"),),
        "facts": (Fact(r"\b1\.4\b", regex=True), Fact("23.45.510")),
    }
    return Question(**(fields | overrides))


def test_score_and_reasons() -> None:
    lr = SectionRef("smc-23-45-lowrise", "Floor area ratio limits in LR zones (SMC 23.45.510)")
    other = SectionRef("smc-23-45-midrise-highrise", "Floor area ratio in MR zones (SMC 23.45.510)")
    good = Observation(
        "q1",
        answer="LR2: FAR 1.4 (SMC 23.45.510).",
        calls=[
            ToolCall(SEARCH_TOOL, {"query": "far lr2"}, "success", ""),
            ToolCall("zoning_standards", {"zone": "lr 2"}, "success", ""),
        ],
        searches=[[lr, other]],
    )
    s = report.score(_question(), good)
    assert s.passed
    assert (s.tools_ok, s.arg_accuracy, s.recall, s.rr, s.fact_coverage) == (True, 1.0, 1.0, 1.0, 1.0)
    assert s.reasons() == []

    bad = Observation(
        "q1",
        answer="FAR 1.4.",
        calls=[
            ToolCall(SEARCH_TOOL, {"query": "far"}, "success", ""),
            ToolCall("buildable_area", {}, "success", ""),
        ],
        searches=[[other, lr]],
    )
    s = report.score(_question(), bad)
    assert not s.passed
    assert (s.tools_ok, s.arg_accuracy, s.recall, s.rr, s.fact_coverage) == (False, 0.0, 1.0, 0.5, 0.5)
    reasons = "\n".join(s.reasons())
    assert "tool missing: zoning_standards" in reasons
    assert "tool extra: buildable_area" in reasons
    assert "wrong arg zoning_standards.zone: expected LR2, got tool not called" in reasons
    assert "first labelled section at rank 2" in reasons
    assert "missing fact: '23.45.510'" in reasons

    errored = Observation(
        "q1", calls=[ToolCall("zoning_standards", {"zone": "NC1"}, "error", "Error: unknown zone 'NC1'")]
    )
    assert (
        "tool error: zoning_standards({'zone': 'NC1'}): Error: unknown zone 'NC1'"
        in report.score(_question(), errored).reasons()
    )

    no_search = report.score(_question(), Observation("q1", answer="", calls=[], searches=[]))
    assert no_search.recall == 0.0 and no_search.rr == 0.0
    assert any("section no search" in r for r in no_search.reasons())


def test_optional_tools_and_their_arguments() -> None:
    question = _question(
        tools=frozenset({SEARCH_TOOL}),
        optional_tools=frozenset({"zoning_standards"}),
        args={"zoning_standards": ({"zone": "LR2"},)},
    )
    without = report.score(question, Observation("q1", calls=[ToolCall(SEARCH_TOOL, {}, "success", "")]))
    assert without.tools_ok and without.arg_checks == []
    wrong = report.score(
        question,
        Observation(
            "q1",
            calls=[
                ToolCall(SEARCH_TOOL, {}, "success", ""),
                ToolCall("zoning_standards", {"zone": "LR3"}, "success", ""),
            ],
        ),
    )
    assert wrong.tools_ok and wrong.arg_accuracy == 0.0


def test_aggregates_table_and_results_file(tmp_path: Path) -> None:
    lr = SectionRef("smc-23-45-lowrise", "Floor area ratio limits in LR zones (SMC 23.45.510)")
    calls = [
        ToolCall(SEARCH_TOOL, {}, "success", ""),
        ToolCall("zoning_standards", {"zone": "LR2"}, "success", ""),
    ]
    right = report.score(_question(), Observation("q1", answer="1.4 23.45.510", calls=calls, searches=[[lr]]))
    hello = Question("q2", "hello", "general", "greeting", frozenset(), facts=(Fact("zoning"),))
    wrong = report.score(
        hello, Observation("q2", answer="hi", calls=[ToolCall(SEARCH_TOOL, {}, "success", "")])
    )
    scores = [right, wrong]

    tool_metric = report.METRICS[0]
    assert report.aggregate(scores, tool_metric).value == 0.5
    assert report.aggregate(scores, tool_metric).status == "FAIL"
    assert report.aggregate([right], tool_metric).status == "PASS"
    mrr = next(m for m in report.METRICS if m.key == "mrr")
    assert report.aggregate([wrong], mrr).status == "n/a"
    assert report.failed(scores)
    assert not report.failed([right])
    # Judged on the overall scores: a query type below a target is shown, not failed.
    zoning_right = [right] * 19
    general_wrong = report.score(
        Question("q3", "hello", "general", "greeting", frozenset(), facts=(Fact("zoning"),)),
        Observation("q3", answer="zoning", calls=[ToolCall(SEARCH_TOOL, {}, "success", "")]),
    )
    mixed = [*zoning_right, general_wrong]
    assert report.aggregate(mixed, tool_metric).status == "PASS"  # 19 of 20
    assert not report.failed(mixed)
    assert re.search(r"tool selection\s+>= 95%\s+95\.0% PASS\s+0\.0% below", report.table(mixed))

    text = report.table(scores)
    assert re.search(r"tool selection\s+>= 95%\s+50\.0% FAIL", text)
    assert "MRR" in text and "fact coverage" in text
    for query_type in ("general", "zoning", "building_codes", "permits", "financing"):
        assert query_type in text
    assert "greeting" in report.kind_table(scores)
    failures = report.failure_list(scores)
    assert "q2" in failures and "tool extra: search_knowledge_base" in failures and "q1" not in failures

    path = tmp_path / "results.json"
    report.write(scores, path, argv=["--id", "q1"], seconds=0.5, setup={"model": "offline"})
    document = json.loads(path.read_text())
    assert document["schema"] == report.SCHEMA_VERSION
    assert document["passed"] is False
    assert document["summary"]["overall"]["tool_selection"]["status"] == "FAIL"
    assert [q["id"] for q in document["questions"]] == ["q1", "q2"]
    assert document["questions"][1]["extra_tools"] == [SEARCH_TOOL]


def test_three_questions_end_to_end_through_the_real_orchestrator() -> None:
    questions = [q for q in load_questions() if q.id in END_TO_END_IDS]
    assert len(questions) == 3
    settings = eval_settings()
    assert settings.provider == "local" and settings.local_model_token_delay_ms == 0
    orchestrator = build_orchestrator(settings)
    observations = run_questions(questions, orchestrator)

    assert [o.question_id for o in observations] == [q.id for q in questions]
    for question, observation in zip(questions, observations, strict=True):
        assert observation.error is None, observation.error
        assert observation.answer.strip()
        assert observation.agent in ("rag", "finance", "general")
        for call in observation.calls:
            assert call.status in ("success", "error")
            assert isinstance(call.input, dict)
        searches = [c for c in observation.calls if c.name == SEARCH_TOOL and c.status == "success"]
        assert len(observation.searches) == len(searches)
        for call, ranking in zip(searches, observation.searches, strict=True):
            # Every passage block the tool printed was parsed, and each is a real section.
            header = re.match(r"(\d+) passages? for", call.text)
            assert len(ranking) == (int(header.group(1)) if header else 0)
            assert set(ranking) <= known_sections()
        s = report.score(question, observation)
        for key in ("tool_selection", "arg_accuracy", "recall_at_5", "mrr", "fact_coverage"):
            value = s.value(key)
            assert value is None or 0.0 <= value <= 1.0


def test_a_follow_up_runs_on_the_messages_of_its_earlier_turns() -> None:
    (question,) = [q for q in load_questions() if q.id == "fu-floor-area-on-a-lot"]
    orchestrator = build_orchestrator(eval_settings())

    (observation,) = run_questions([question], orchestrator)

    agent = orchestrator.last_agent
    assert agent is not None and observation.error is None
    asked = [i for i, m in enumerate(agent.messages) if m["role"] == "user" and "text" in m["content"][0]]
    # The agent started with the earlier turns (questions, tool rounds, answers), as a session's does.
    assert [agent.messages[i]["content"][0]["text"] for i in asked] == [
        *(turn.question for turn in question.history),
        question.question,
    ]
    assert agent.messages[asked[-1] - 1]["role"] == "assistant"
    # Only the labelled question's own calls are scored, and the history is not left behind.
    assert observation.calls == read_tool_calls(agent.messages[asked[-1] :])
    assert orchestrator.history == ()


def test_the_command_line_writes_results_for_selected_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results.json"
    argv = ["--output", str(output)]
    for qid in END_TO_END_IDS:
        argv += ["--id", qid]
    status = main(argv)
    printed = capsys.readouterr().out
    assert status in (0, 1)
    assert "tool selection" in printed and "recall@5" in printed and "MRR" in printed
    document = json.loads(output.read_text())
    assert sorted(q["id"] for q in document["questions"]) == sorted(END_TO_END_IDS)
    assert document["setup"]["model"] == "offline"
    assert document["passed"] is (status == 0)


def test_the_command_line_rejects_an_unknown_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--id", "no-such-question", "--output", str(tmp_path / "r.json")]) == 2
    assert "unknown question id" in capsys.readouterr().err
