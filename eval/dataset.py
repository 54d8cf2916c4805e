"""The labelled question set: parsing ``questions.yaml`` and checking every label against the code.

:func:`load_questions` turns the file into :class:`Question` records and rejects malformed ones.
:func:`check_questions` goes further and checks the labels against what exists: tool names,
parameter names, document sections, compilable fact regexes, required arguments. The unit tests
run it, so a label that names a section or a parameter that does not exist fails the build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from eval.metrics import fact_present
from selador.protocol import QUERY_TYPES, QueryRequest

QUESTIONS_PATH = Path(__file__).resolve().parents[1] / "tests" / "eval" / "questions.yaml"
"""The default question set."""

KINDS: tuple[str, ...] = (
    "direct",
    "paraphrase",
    "typo",
    "with_context",
    "greeting",
    "out_of_scope",
    "multi_tool",
    "follow_up",
)
"""Every ``kind`` a question may have (``follow_up``: asked after the earlier turns in its ``history``)."""

SEARCH_TOOL = "search_knowledge_base"

_QUESTION_KEYS = frozenset(
    {"id", "question", "context", "query_type", "kind", "tools", "optional_tools", "args", "sections"}
    | {"facts", "note", "history"}
)


class DatasetError(ValueError):
    """The question file is malformed (the message names the question and the field)."""


@dataclass(frozen=True)
class SectionRef:
    """One knowledge-base section: a document id and a ``##`` heading (``None``: the intro text).

    Attributes:
        doc: The document's ``document_id``.
        section: The heading exactly as written after ``## ``, or ``None`` for the text before it.
    """

    doc: str
    section: str | None

    def label(self) -> str:
        """``doc § heading``, for tables and failure lists."""
        return f"{self.doc} § {self.section if self.section is not None else '(introduction)'}"


@dataclass(frozen=True)
class Range:
    """An accepted interval for a numeric argument (both ends included)."""

    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g}"


ArgValue = float | int | str | bool | Range


@dataclass(frozen=True)
class Fact:
    """Something the answer must contain.

    Attributes:
        pattern: The substring or regex.
        regex: ``True``: ``pattern`` is a regex (searched case-insensitively); ``False``: a
            case-insensitive substring, with runs of whitespace treated as one space.
        derived: How the fact follows from the sources when it is computed rather than quoted
            (empty for quoted facts).
    """

    pattern: str
    regex: bool = False
    derived: str = ""

    def __str__(self) -> str:
        return f"/{self.pattern}/" if self.regex else repr(self.pattern)


@dataclass(frozen=True)
class EarlierTurn:
    """A question asked earlier in the same conversation (sent, answered, not scored).

    Attributes:
        question: The user's text.
        query_type: The client's choice for it (the labelled question's when not given).
        context: Optional ``QueryRequest.context``.
    """

    question: str
    query_type: str
    context: str | None = None

    def request(self, request_id: str) -> QueryRequest:
        """The request the earlier question is sent as."""
        return QueryRequest(
            question=self.question, context=self.context, query_type=self.query_type, request_id=request_id
        )


@dataclass(frozen=True)
class Question:
    """One labelled question (see the header of ``questions.yaml`` for the meaning of each field)."""

    id: str
    question: str
    query_type: str
    kind: str
    tools: frozenset[str]
    optional_tools: frozenset[str] = frozenset()
    args: Mapping[str, tuple[Mapping[str, ArgValue], ...]] = field(default_factory=dict)
    sections: tuple[SectionRef, ...] = ()
    facts: tuple[Fact, ...] = ()
    context: str | None = None
    note: str = ""
    history: tuple[EarlierTurn, ...] = ()

    def request(self) -> QueryRequest:
        """The request the question is sent as."""
        return QueryRequest(
            question=self.question,
            context=self.context,
            query_type=self.query_type,
            request_id=f"eval-{self.id}"[:64],
        )


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _fail(qid: str, message: str) -> DatasetError:
    return DatasetError(f"question {qid!r}: {message}")


def _string_list(qid: str, raw: Any, name: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise _fail(qid, f"{name} must be a list of strings")
    return list(raw)


def _arg_value(qid: str, tool: str, name: str, raw: Any) -> ArgValue:
    if isinstance(raw, bool | int | float | str):
        return raw
    if isinstance(raw, dict) and set(raw) == {"min", "max"}:
        low, high = raw["min"], raw["max"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low > high:
            raise _fail(qid, f"args.{tool}.{name}: min and max must be numbers with min <= max")
        return Range(float(low), float(high))
    raise _fail(qid, f"args.{tool}.{name}: expected a number, a string, a bool or {{min, max}}")


def _args(qid: str, raw: Any) -> dict[str, tuple[Mapping[str, ArgValue], ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(qid, "args must map tool names to arguments")
    parsed: dict[str, tuple[Mapping[str, ArgValue], ...]] = {}
    for tool, calls in raw.items():
        call_list = calls if isinstance(calls, list) else [calls]
        if not call_list or not all(isinstance(c, dict) and c for c in call_list):
            raise _fail(qid, f"args.{tool} must be a non-empty mapping or a list of them")
        parsed[str(tool)] = tuple(
            {str(name): _arg_value(qid, str(tool), str(name), value) for name, value in call.items()}
            for call in call_list
        )
    return parsed


def _sections(qid: str, raw: Any) -> tuple[SectionRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(qid, "sections must be a list")
    refs = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"doc", "section"}:
            raise _fail(qid, f"each section must be {{doc, section}} (got {item!r})")
        doc, section = item["doc"], item["section"]
        if not isinstance(doc, str) or not (section is None or isinstance(section, str)):
            raise _fail(qid, f"section doc must be a string and section a string or null (got {item!r})")
        refs.append(SectionRef(doc, section))
    return tuple(refs)


def _facts(qid: str, raw: Any) -> tuple[Fact, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(qid, "facts must be a list")
    facts = []
    for item in raw:
        if isinstance(item, str):
            facts.append(Fact(item))
        elif isinstance(item, dict) and "re" in item and set(item) <= {"re", "derived"}:
            facts.append(Fact(str(item["re"]), regex=True, derived=str(item.get("derived", ""))))
        elif isinstance(item, dict) and "text" in item and set(item) <= {"text", "derived"}:
            facts.append(Fact(str(item["text"]), derived=str(item.get("derived", ""))))
        else:
            raise _fail(qid, f"a fact is a string, {{re: ...}} or {{text: ...}} (got {item!r})")
    return tuple(facts)


def _history(qid: str, raw: Any, query_type: str) -> tuple[EarlierTurn, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise _fail(qid, "history must be a non-empty list of earlier questions")
    turns = []
    for item in raw:
        if isinstance(item, str) and item.strip():
            turns.append(EarlierTurn(item, query_type))
        elif (
            isinstance(item, dict)
            and isinstance(item.get("question"), str)
            and set(item) <= {"question", "query_type", "context"}
            and all(isinstance(item.get(k, ""), str) for k in ("query_type", "context"))
        ):
            turns.append(
                EarlierTurn(item["question"], item.get("query_type", query_type), item.get("context"))
            )
        else:
            raise _fail(
                qid, f"an earlier turn is a string or {{question, query_type?, context?}} (got {item!r})"
            )
    return tuple(turns)


def parse_question(raw: Any) -> Question:
    """Build one :class:`Question` from its YAML mapping.

    Raises:
        DatasetError: for a missing or malformed field.
    """
    if not isinstance(raw, dict):
        raise DatasetError(f"each question must be a mapping (got {raw!r:.80})")
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid:
        raise DatasetError(f"a question has no id: {raw!r:.80}")
    unknown = set(raw) - _QUESTION_KEYS
    if unknown:
        raise _fail(qid, f"unknown fields {sorted(unknown)}")
    for key in ("question", "query_type", "kind"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _fail(qid, f"{key} must be a non-empty string")
    if "tools" not in raw:
        raise _fail(qid, "tools is required (an empty list for no tools)")
    context = raw.get("context")
    if context is not None and not isinstance(context, str):
        raise _fail(qid, "context must be a string")
    return Question(
        id=qid,
        question=raw["question"],
        query_type=raw["query_type"],
        kind=raw["kind"],
        tools=frozenset(_string_list(qid, raw["tools"], "tools")),
        optional_tools=frozenset(_string_list(qid, raw.get("optional_tools"), "optional_tools")),
        args=_args(qid, raw.get("args")),
        sections=_sections(qid, raw.get("sections")),
        facts=_facts(qid, raw.get("facts")),
        context=context,
        note=str(raw.get("note") or ""),
        history=_history(qid, raw.get("history"), raw["query_type"]),
    )


def load_questions(path: Path = QUESTIONS_PATH) -> list[Question]:
    """Read and parse the question file.

    Args:
        path: A YAML file holding a list of questions.

    Returns:
        The questions in file order.

    Raises:
        DatasetError: when the file is not a list of well-formed questions or ids repeat.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DatasetError(f"{path} must hold a list of questions")
    questions = [parse_question(item) for item in data]
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise DatasetError(f"duplicate question id {question.id!r}")
        seen.add(question.id)
    return questions


# --------------------------------------------------------------------------------------------
# Checking the labels against the code
# --------------------------------------------------------------------------------------------


@cache
def tool_parameters() -> dict[str, dict[str, Any]]:
    """Every tool's input parameters as the model sees them: name → JSON-schema property."""
    from selador.agents.tools import TOOLS

    return {
        name: dict(tool.tool_spec["inputSchema"]["json"].get("properties", {}))
        for name, tool in TOOLS.items()
    }


@cache
def required_parameters() -> dict[str, tuple[str, ...]]:
    """Every tool's required parameters."""
    from selador.agents.tools import TOOLS

    return {
        name: tuple(tool.tool_spec["inputSchema"]["json"].get("required", ())) for name, tool in TOOLS.items()
    }


@cache
def known_sections() -> frozenset[SectionRef]:
    """Every section of the bundled knowledge base."""
    from selador.knowledge.local import load_bundled_documents

    return frozenset(
        SectionRef(document.document_id, section.heading)
        for document in load_bundled_documents()
        for section in document.sections
    )


def _compiles(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


def check_question(question: Question) -> list[str]:
    """Everything wrong with one question's labels (empty when it is sound)."""
    problems: list[str] = []
    params = tool_parameters()
    required = required_parameters()

    def bad(message: str) -> None:
        problems.append(f"{question.id}: {message}")

    if question.query_type not in QUERY_TYPES:
        bad(f"query_type {question.query_type!r} is not one of {QUERY_TYPES}")
    if question.kind not in KINDS:
        bad(f"kind {question.kind!r} is not one of {KINDS}")
    for tool in sorted(question.tools | question.optional_tools):
        if tool not in params:
            bad(f"unknown tool {tool!r} (tools: {sorted(params)})")
    if question.tools & question.optional_tools:
        bad(f"tools and optional_tools overlap: {sorted(question.tools & question.optional_tools)}")
    for tool, calls in question.args.items():
        if tool not in question.tools | question.optional_tools:
            bad(f"args for {tool!r}, which is neither in tools nor in optional_tools")
        for call in calls:
            for name in call:
                if tool in params and name not in params[tool]:
                    bad(f"args.{tool}.{name}: {tool} has no parameter {name!r} ({sorted(params[tool])})")
    for tool in sorted(question.tools - {SEARCH_TOOL}):
        for name in required.get(tool, ()):
            if not any(name in call for call in question.args.get(tool, ())):
                bad(f"{tool} is expected but its required argument {name!r} is not labelled")
    known = known_sections()
    for ref in question.sections:
        if ref not in known:
            bad(f"section {ref.label()!r} does not exist in the bundled knowledge base")
    if question.sections and SEARCH_TOOL not in question.tools:
        bad("sections are labelled but search_knowledge_base is not an expected tool")
    if question.kind in ("greeting", "out_of_scope") and question.tools:
        bad(f"a {question.kind} question must expect no tools")
    if (
        question.kind == "multi_tool"
        and len(question.tools) + sum(len(calls) - 1 for calls in question.args.values()) < 2
    ):
        bad("a multi_tool question must expect at least two tool calls")
    if (question.kind == "follow_up") != bool(question.history):
        bad("a follow_up question needs a history, and only a follow_up question has one")
    for turn in question.history:
        if turn.query_type not in QUERY_TYPES:
            bad(f"history: query_type {turn.query_type!r} is not one of {QUERY_TYPES}")
    # An answer echoing an earlier question must not pass either, unless the question is about the
    # conversation itself (no tool), whose answer is meant to quote them.
    earlier = [text for turn in question.history for text in (turn.question, turn.context) if text]
    asked = " ".join(
        filter(None, (question.question, question.context, *(earlier if question.tools else ())))
    )
    for fact in question.facts:
        if fact.regex and (error := _compiles(fact.pattern)):
            bad(f"fact {fact} does not compile: {error}")
            continue
        if fact_present(fact, asked):
            bad(
                f"fact {fact} is already in the question, its context or an earlier question "
                "(an echo would pass it)"
            )
    return problems


@cache
def capabilities_text() -> str:
    """What Selador says it covers: every agent's prompt and description and every tool's description.

    The facts of greetings and out-of-scope questions (what the assistant covers) must be found here.
    """
    from selador.agents.specs import AGENT_SPECS
    from selador.agents.tools import TOOLS

    parts = [f"{spec.description}\n{spec.system_prompt}" for spec in AGENT_SPECS.values()]
    parts.extend(str(tool.tool_spec.get("description", "")) for tool in TOOLS.values())
    return "\n".join(parts)


@cache
def _section_texts() -> dict[SectionRef, str]:
    from selador.knowledge.local import load_bundled_documents

    return {
        SectionRef(document.document_id, section.heading): (
            f"{document.title}\n{section.heading or ''}\n{section.text}"
        )
        for document in load_bundled_documents()
        for section in document.sections
    }


def labelled_tool_outputs(question: Question) -> list[str]:
    """The text each labelled call returns, run through the real tool (a range runs at its low end).

    Raises:
        ValueError: when a tool rejects the labelled arguments.
    """
    import inspect
    from types import SimpleNamespace

    from selador.agents.state import INVOCATION_STATE_KEY, RunState
    from selador.agents.tools import TOOLS
    from selador.knowledge.factory import bundled_knowledge_base

    outputs = []
    for tool_name, calls in question.args.items():
        tool = TOOLS.get(tool_name)
        if tool is None:
            continue
        for call in calls:
            kwargs: dict[str, Any] = {
                name: value.low if isinstance(value, Range) else value for name, value in call.items()
            }
            if "tool_context" in inspect.signature(tool).parameters:
                state = RunState(knowledge_base=bundled_knowledge_base())
                kwargs["tool_context"] = SimpleNamespace(invocation_state={INVOCATION_STATE_KEY: state})
            outputs.append(str(tool(**kwargs)))
    return outputs


def check_fact_support(question: Question) -> list[str]:
    """Facts that the labelled sources do not contain (empty when every fact is grounded).

    A fact must be found in the labelled sections or in the labelled tool calls' output; for a
    question that expects no tools (greetings, out of scope), in :func:`capabilities_text`, or for
    one about the conversation itself ("What did I ask first?"), in its history. Facts marked
    ``derived`` (computed from the sources) are exempt: their working is in the label.
    """
    try:
        outputs = labelled_tool_outputs(question)
    except ValueError as exc:
        return [f"{question.id}: a tool rejects the labelled arguments: {exc}"]
    texts = _section_texts()
    if question.tools:
        sources = "\n".join([*(texts.get(ref, "") for ref in question.sections), *outputs])
        where = "the labelled sections or tool outputs"
    elif question.history:
        sources = "\n".join(turn.question for turn in question.history)
        where = "the earlier questions"
    else:
        sources = capabilities_text()
        where = ""
    return [
        f"{question.id}: fact {fact} is not in {where}"
        if where
        else f"{question.id}: fact {fact} is not something Selador says it covers"
        for fact in question.facts
        if not fact.derived and not fact_present(fact, sources)
    ]


def check_questions(questions: Iterable[Question]) -> list[str]:
    """Every problem with every question's labels, grounding of facts included (empty when sound)."""
    problems = []
    for question in questions:
        found = check_question(question)
        problems.extend(found or check_fact_support(question))
    return problems


def by_id(questions: Sequence[Question]) -> dict[str, Question]:
    """The questions keyed by id."""
    return {q.id: q for q in questions}
