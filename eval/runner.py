"""Run questions through the real orchestrator and record what happened.

The orchestrator is the production one, built as the container builds it (``build_model`` and
``build_knowledge_base`` from the settings). :class:`RecordingOrchestrator` only keeps the Strands
``Agent`` each request builds, so that after the run the conversation (``agent.messages``) can be
read: every ``toolUse`` block gives a tool call and its input, every ``toolResult`` block its status
and text.

Where the retrieval ranking comes from: the text of each ``search_knowledge_base`` result, parsed by
:func:`parse_search_result`. The tool prints its passages in the knowledge base's rank order, one
block each, headed by a ``[n] Title — section (location)`` line. The ``[n]`` there is a citation
number, not a rank (numbers stay the same for a source across searches and are shared with the
zoning-table and fee citations), and ``RunState.sources`` is in citation order, deduplicated across
searches, with only the best score kept: it cannot tell the rank of a passage in a given search.
The block order can, and it is exactly what the model was shown.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from eval.dataset import SEARCH_TOOL, Question, SectionRef
from selador.agents.orchestrator import Orchestrator, run_coroutine
from selador.protocol import ErrorFrame
from selador.settings import Settings
from selador.sink import CollectingSink

if TYPE_CHECKING:
    from strands import Agent
    from strands.types.content import Message

    from selador.agents.specs import AgentSpec
    from selador.sessions.conversation import Conversation

QUESTION_TIMEOUT_S = 30.0
"""Deadline per question (the offline responder answers in milliseconds)."""

UNKNOWN_DOC = "(unknown)"
"""``SectionRef.doc`` of a passage that is not in the bundled knowledge base (e.g. Bedrock's)."""

_CITATION = re.compile(r"^\[(\d+)\] (.+)$")


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a run.

    Attributes:
        name: Tool name.
        input: The arguments the model passed.
        status: ``success`` or ``error`` (``missing``: no result came back).
        text: The result text.
    """

    name: str
    input: dict[str, Any]
    status: str
    text: str


@dataclass
class Observation:
    """What one question's run produced.

    Attributes:
        question_id: The question.
        answer: The final answer text (empty when the run ended with an error frame).
        calls: Every tool call, in the order the model made them.
        searches: Per ``search_knowledge_base`` call, the passages it returned, in rank order.
        error: ``code: text`` of the error frame, when the run failed.
        stop_reason: The result's stop reason.
        agent: The agent the query was routed to.
        seconds: Wall time of the run.
    """

    question_id: str
    answer: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    searches: list[list[SectionRef]] = field(default_factory=list)
    error: str | None = None
    stop_reason: str | None = None
    agent: str | None = None
    seconds: float = 0.0

    @property
    def tools_called(self) -> list[str]:
        """Names of the tools called, in order (repeats kept)."""
        return [call.name for call in self.calls]


class RecordingOrchestrator(Orchestrator):
    """The production orchestrator, keeping the agent it builds for the latest request.

    For a follow-up question, ``history`` holds the messages of the earlier turns: the agent
    starts with them, as a session's agent starts with its stored messages.
    """

    last_agent: Agent | None = None
    history: Sequence[Message] = ()

    def build_agent(self, spec: AgentSpec, conversation: Conversation | None = None) -> Agent:
        """Build the agent exactly as the parent does, seed it with the history, and remember it."""
        agent = super().build_agent(spec, conversation)
        agent.messages.extend(copy.deepcopy(list(self.history)))
        self.last_agent = agent
        return agent


def eval_settings(*, from_env: bool = False) -> Settings:
    """The settings the evaluation runs with.

    Args:
        from_env: Read the model and knowledge-base choice from the environment (to evaluate a
            Bedrock model or knowledge base); otherwise force the offline responder and the bundled
            knowledge base. Either way the offline responder streams with no token delay.

    Returns:
        The settings.
    """
    if from_env:
        from selador.settings import load_settings

        settings = load_settings()
        return settings.model_copy(
            update={"local_model_token_delay_ms": 0.0, "local_model_min_answer_tokens": 0}
        )
    return Settings(
        model_provider="local",
        knowledge_base_id="",
        local_model_token_delay_ms=0,
        local_model_min_answer_tokens=0,
    )


def build_orchestrator(settings: Settings) -> RecordingOrchestrator:
    """The orchestrator as the container builds it: model and knowledge base from the settings."""
    from selador.agents.models import build_model
    from selador.knowledge.factory import build_knowledge_base

    return RecordingOrchestrator(
        settings=settings, model=build_model(settings), knowledge_base=build_knowledge_base(settings)
    )


@cache
def _citation_catalog() -> dict[str, SectionRef]:
    """``Title — section (location)`` (as the search tool prints it) → section, for the bundled documents."""
    from selador.agents.tools import citation_line
    from selador.knowledge.local import load_bundled_documents

    catalog: dict[str, SectionRef] = {}
    for document in load_bundled_documents():
        for section in document.sections:
            line = citation_line(0, document.title, document.source, section.heading)
            catalog[line.removeprefix("[0] ")] = SectionRef(document.document_id, section.heading)
    return catalog


def parse_search_result(text: str) -> list[SectionRef]:
    """The passages of one ``search_knowledge_base`` result, in the order printed (= rank order).

    Args:
        text: The tool result text.

    Returns:
        One :class:`SectionRef` per passage block; a passage not in the bundled knowledge base gets
        ``doc`` :data:`UNKNOWN_DOC` and its citation text as ``section``.
    """
    catalog = _citation_catalog()
    ranked: list[SectionRef] = []
    for block in text.split("\n\n"):
        first = block.strip().splitlines()[0] if block.strip() else ""
        match = _CITATION.match(first)
        if match is None:
            continue
        tail = match.group(2).strip()
        ranked.append(catalog.get(tail, SectionRef(UNKNOWN_DOC, tail)))
    return ranked


def _result_text(result: dict[str, Any]) -> str:
    parts = []
    for item in result.get("content", []):
        if "text" in item:
            parts.append(str(item["text"]))
        elif "json" in item:
            parts.append(str(item["json"]))
    return "\n".join(parts)


def read_tool_calls(messages: Sequence[Mapping[str, Any]]) -> list[ToolCall]:
    """The tool calls of a conversation, in order, with their results.

    Args:
        messages: ``agent.messages`` (Bedrock Converse format).

    Returns:
        One :class:`ToolCall` per ``toolUse`` block.
    """
    uses: list[tuple[str, str, dict[str, Any]]] = []
    results: dict[str, tuple[str, str]] = {}
    for message in messages:
        for block in message.get("content", []):
            if "toolUse" in block:
                use = block["toolUse"]
                raw_input = use.get("input")
                uses.append(
                    (
                        str(use.get("toolUseId")),
                        str(use.get("name")),
                        raw_input if isinstance(raw_input, dict) else {},
                    )
                )
            elif "toolResult" in block:
                result = block["toolResult"]
                results[str(result.get("toolUseId"))] = (
                    str(result.get("status", "success")),
                    _result_text(result),
                )
    calls = []
    for use_id, name, tool_input in uses:
        status, text = results.get(use_id, ("missing", ""))
        calls.append(ToolCall(name=name, input=dict(tool_input), status=status, text=text))
    return calls


async def run_question(
    orchestrator: RecordingOrchestrator, question: Question, *, timeout_s: float = QUESTION_TIMEOUT_S
) -> Observation:
    """Send one question through the orchestrator and record the run.

    A follow-up's earlier questions are sent first, each on the messages of the turns before (not
    observed); the question's agent starts with all of them, and only its own turn is recorded.

    Args:
        orchestrator: The recording orchestrator.
        question: The question.
        timeout_s: Deadline for the run (and for each earlier turn).

    Returns:
        The observation.
    """
    orchestrator.history = await _earlier_turns(orchestrator, question, timeout_s)
    request = question.request()
    sink = CollectingSink(request.request_id)
    orchestrator.last_agent = None
    started = time.monotonic()
    try:
        data = await orchestrator.run(request, sink, deadline=started + timeout_s)
    finally:
        orchestrator.history = ()
    observation = Observation(question_id=question.id, seconds=time.monotonic() - started)
    agent = orchestrator.last_agent
    if agent is not None:
        observation.calls = read_tool_calls(agent.messages[_latest_question(agent.messages) :])
    observation.searches = [
        parse_search_result(call.text)
        for call in observation.calls
        if call.name == SEARCH_TOOL and call.status == "success"
    ]
    if data is not None:
        observation.answer = data.content
        observation.stop_reason = data.stop_reason
        observation.agent = data.agent
    else:
        terminal = sink.terminal
        if isinstance(terminal, ErrorFrame):
            observation.error = f"{terminal.code}: {terminal.error}"
        else:
            observation.error = "the run ended without a terminal frame"
    return observation


async def _earlier_turns(
    orchestrator: RecordingOrchestrator, question: Question, timeout_s: float
) -> list[Message]:
    """Run a follow-up's earlier turns, each on the messages of those before; return the messages."""
    history: list[Message] = []
    for number, turn in enumerate(question.history, start=1):
        orchestrator.history = history
        orchestrator.last_agent = None
        request = turn.request(f"eval-{question.id}"[:58] + f"-h{number}")
        await orchestrator.run(
            request, CollectingSink(request.request_id), deadline=time.monotonic() + timeout_s
        )
        if orchestrator.last_agent is not None:
            history = list(orchestrator.last_agent.messages)
    orchestrator.history = ()
    return history


def _latest_question(messages: Sequence[Mapping[str, Any]]) -> int:
    """Where the latest user question is (tool results come back as user messages too)."""
    for index in range(len(messages) - 1, -1, -1):
        content = messages[index].get("content", [])
        if messages[index].get("role") == "user" and not any("toolResult" in block for block in content):
            return index
    return 0


def run_questions(
    questions: Sequence[Question],
    orchestrator: RecordingOrchestrator,
    *,
    timeout_s: float = QUESTION_TIMEOUT_S,
) -> list[Observation]:
    """Run the questions one after another on one event loop.

    Args:
        questions: The questions.
        orchestrator: The recording orchestrator.
        timeout_s: Deadline per question.

    Returns:
        One observation per question, in order.
    """

    async def run_all() -> list[Observation]:
        return [await run_question(orchestrator, q, timeout_s=timeout_s) for q in questions]

    return run_coroutine(run_all())
