"""The offline responder: a deterministic stand-in for a model, used when no Bedrock model is set.

:class:`OfflineResponder` is **not a language model**. It implements Strands' ``Model`` interface
with fixed rules so the whole stack (agent loop, tools, streaming, frames) runs offline, in tests
and in local development, with answers built from real tool output:

1. On the user's question it asks for tools, chosen by patterns in the text: always
   ``search_knowledge_base``; ``zoning_standards`` for a zone code (NR3, LR2, NC2-55…);
   ``buildable_area`` for a lot size ("5,000 sq ft"); ``mortgage_payment`` for a price with
   mortgage/payment/afford words; ``permit_fee_estimate`` for a project value with permit/fee words.
2. Once the tool results are in the conversation it writes the answer from them: a lead sentence,
   bullet points (each passage's most relevant sentence, the zoning numbers, the calculations),
   a "Sources:" list and a one-line disclaimer, streamed word by word with ``token_delay_ms``
   between words.

It never calls tools a second time, so a run takes two model turns. Same conversation in, same
events out (only the latency in the metadata event varies).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from strands.models import Model
from strands.types.content import Messages, SystemContentBlock
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolChoice, ToolSpec

if TYPE_CHECKING:
    from strands.agent.agent_metadata import AgentMetadata

T = TypeVar("T", bound=BaseModel)

OFFLINE_MODEL_ID = "offline"
"""What results report as ``model`` for this responder."""

DISCLAIMER = (
    "This is general information, not legal or financial advice; verify it with the Seattle Department "
    "of Construction and Inspections (SDCI) before you rely on it."
)

_TOKEN = re.compile(r"\S+\s*|\s+")
_CITATION = re.compile(r"^\[(\d+)\] (.+)$")
_REFERENCE = re.compile(r"\[(\d+)\]")
MAX_PASSAGE_BULLETS = 3
"""Passages quoted as bullets at most (the rest only pad long answers)."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")

# Zone codes of the bundled table's families: numbered ones in any case ("nr3", "NC2-55", "SF 5000");
# bare MR/HR only in capitals, so "Mr." or "24 hr" are not zones.
_ZONE_NUMBERED = re.compile(
    r"(?<![\w-])((?:NR|LR)[1-3]|NC[1-3]P?(?:[ -]?\d{2,3})?|SF[ -]?(?:5000|7200|9600))(?![\w-])", re.IGNORECASE
)
_ZONE_NAMED = re.compile(r"(?<![\w-])(MR|HR)(?![\w-])")
_NUMBER = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_LOT_SIZE = re.compile(
    _NUMBER + r"\s*-?\s*(sq\.?\s*f(?:ee)?t\.?|square[\s-]*f(?:ee|oo)t|sf\b|ft2\b|ft²|acres?\b)", re.IGNORECASE
)
_MONEY = re.compile(
    r"\$\s*" + _NUMBER + r"\s*(k|m|mm|million|thousand)?\b"
    r"|" + _NUMBER + r"\s*(k|million|thousand|dollars|usd)\b",
    re.IGNORECASE,
)
_DOWN = re.compile(
    r"(\d+(?:\.\d+)?)\s*%\s*down|down(?:\s*payment)?\s*(?:of\s*)?(\d+(?:\.\d+)?)\s*%", re.IGNORECASE
)
_RATE = re.compile(
    r"(\d+(?:\.\d+)?)\s*%\s*(?:interest|rate|apr|fixed|mortgage)"
    r"|(?:rate|interest|apr)\D{0,15}?(\d+(?:\.\d+)?)\s*%",
    re.IGNORECASE,
)
_YEARS = re.compile(r"\b(\d{1,2})[\s-]*(?:years?|yrs?)\b", re.IGNORECASE)
_MORTGAGE_WORDS = re.compile(r"\b(mortgage|payments?|afford\w*|loan|monthly|down\s*payment)\b", re.IGNORECASE)
_PERMIT_WORDS = re.compile(r"\b(permits?|fees?)\b", re.IGNORECASE)
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "my",
        "of",
        "on",
        "or",
        "the",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "me",
        "we",
        "our",
        "this",
        "that",
        "there",
        "these",
        "those",
        "much",
        "many",
        "any",
        "about",
        "into",
    }
)


def tokenize(text: str) -> list[str]:
    """Split text into streaming tokens: each word with the whitespace after it.

    Joining the tokens gives the text back unchanged.
    """
    return _TOKEN.findall(text)


def _words(text: str) -> int:
    return len(text.split())


def _to_number(raw: str) -> float:
    return float(raw.replace(",", ""))


def _money_amount(text: str) -> float | None:
    match = _MONEY.search(text)
    if match is None:
        return None
    raw, suffix = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    value = _to_number(raw)
    scale = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mm": 1e6, "million": 1e6}.get((suffix or "").lower(), 1.0)
    return value * scale


def _first_group(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    if match is None:
        return None
    return next(group for group in match.groups() if group is not None)


def find_zone(text: str) -> str | None:
    """The first zone code in the text, upper-cased, or ``None``."""
    candidates = [m for m in (_ZONE_NUMBERED.search(text), _ZONE_NAMED.search(text)) if m is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda m: m.start()).group(1).upper()


def find_lot_area(text: str) -> float | None:
    """The first lot size in the text in square feet (acres converted), or ``None``."""
    match = _LOT_SIZE.search(text)
    if match is None:
        return None
    value = _to_number(match.group(1))
    return value * 43_560 if match.group(2).lower().startswith("acre") else value


def plan_tool_calls(question: str, context: str, available: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The tools to call for a question, in order, with their inputs.

    Args:
        question: The question (used as the search query).
        context: All the user's text (question and any context), scanned for zones, sizes and amounts.
        available: Names of the tools the agent offers.

    Returns:
        ``(tool name, input)`` pairs; tools not in ``available`` are left out.
    """
    calls: list[tuple[str, dict[str, Any]]] = []
    if question:
        calls.append(("search_knowledge_base", {"query": question[:500]}))
    zone = find_zone(context)
    if zone:
        calls.append(("zoning_standards", {"zone": zone}))
    lot_area = find_lot_area(context)
    if lot_area:
        area_input: dict[str, Any] = {"lot_area_sqft": lot_area}
        if zone:
            area_input["zone"] = zone
        calls.append(("buildable_area", area_input))
    amount = _money_amount(context)
    if amount and _MORTGAGE_WORDS.search(context):
        mortgage_input: dict[str, Any] = {"price_usd": amount}
        down = _first_group(_DOWN, context)
        rate = _first_group(_RATE, context)
        years = _first_group(_YEARS, context)
        if down is not None and 0 <= float(down) < 100:
            mortgage_input["down_payment_pct"] = float(down)
        if rate is not None and 0 <= float(rate) <= 30:
            mortgage_input["annual_rate_pct"] = float(rate)
        if years is not None and 1 <= int(years) <= 50:
            mortgage_input["years"] = int(years)
        calls.append(("mortgage_payment", mortgage_input))
    if amount and _PERMIT_WORDS.search(context):
        calls.append(("permit_fee_estimate", {"project_value_usd": amount}))
    return [(name, tool_input) for name, tool_input in calls if name in available]


# --------------------------------------------------------------------------------------------
# Reading the conversation
# --------------------------------------------------------------------------------------------


@dataclass
class _ToolOutcome:
    name: str
    status: str
    text: str


@dataclass
class _Turn:
    """The latest question and what the tools returned since it."""

    question: str = ""
    user_text: str = ""
    outcomes: list[_ToolOutcome] = field(default_factory=list)


def _read_turn(messages: Messages) -> _Turn:
    # The question is the latest user message with text; tool results come back as user messages
    # too, but carry toolResult blocks only.
    question_index = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if messages[i].get("role") == "user"
            and any("text" in b for b in messages[i].get("content", []))
            and not any("toolResult" in b for b in messages[i].get("content", []))
        ),
        None,
    )
    if question_index is None:
        return _Turn()
    texts = [b["text"] for b in messages[question_index]["content"] if "text" in b]
    turn = _Turn(question=texts[0].strip(), user_text="\n".join(texts))

    names: dict[str, str] = {}
    for message in messages[question_index + 1 :]:
        for block in message.get("content", []):
            if "toolUse" in block:
                names[block["toolUse"]["toolUseId"]] = block["toolUse"]["name"]
            elif "toolResult" in block:
                result = block["toolResult"]
                parts = []
                for item in result.get("content", []):
                    if "text" in item:
                        parts.append(item["text"])
                    elif "json" in item:
                        parts.append(json.dumps(item["json"]))
                turn.outcomes.append(
                    _ToolOutcome(
                        name=names.get(result["toolUseId"], "tool"),
                        status=result.get("status", "success"),
                        text="\n".join(parts).strip(),
                    )
                )
    return turn


def _keywords(text: str) -> set[str]:
    """Topic words for matching sentences to the question.

    Dotted code sections stay whole; plain numbers are dropped ("$850,000" must not match "5,000");
    a plural "s" is stripped so "houses" meets "house".
    """
    words = set()
    for word in re.findall(r"[a-z0-9]+(?:\.[a-z0-9]+)*", text.lower()):
        if len(word) <= 2 or word in _STOPWORDS or re.fullmatch(r"\d+(?:\.\d+)?", word):
            continue
        words.add(word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word)
    return words


def _sentences(text: str) -> list[str]:
    flat = " ".join(line.strip().lstrip("#").strip() for line in text.splitlines() if line.strip())
    return [s.strip() for s in _SENTENCE_END.split(flat) if len(s.strip()) > 3]


def _best_sentence(sentences: list[str], keywords: set[str]) -> str:
    """The sentence sharing most topic words with the question (earliest on ties), or "".

    A sentence must share two topic words when the question has four or more, so one common word
    ("house") does not pull in an unrelated passage.
    """
    overlap, index = max((len(_keywords(s) & keywords), -i) for i, s in enumerate(sentences))
    if overlap < min(2 if len(keywords) >= 4 else 1, len(keywords)) or overlap == 0:
        return ""
    best = sentences[-index]
    return best if len(best) <= 320 else best[:317].rsplit(" ", 1)[0] + "…"


@dataclass
class _Answer:
    bullets: list[str] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)
    pool: list[str] = field(default_factory=list)
    """Further sentences (with their citations) used to pad long answers."""


def _digest_search(text: str, keywords: set[str], answer: _Answer) -> None:
    passages = 0
    cited = 0
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        match = _CITATION.match(lines[0]) if lines else None
        if match is None:
            continue
        passages += 1
        number = int(match.group(1))
        answer.sources.setdefault(number, lines[0])
        body = [line for line in lines[1:] if not line.startswith("relevance ")]
        sentences = _sentences("\n".join(body))
        if not sentences:
            continue
        answer.pool.extend(f"{s} [{number}]" for s in sentences)
        # Passages stay in the knowledge base's rank order; one that shares no word with the
        # question is skipped rather than quoted out of context.
        best = _best_sentence(sentences, keywords) if cited < MAX_PASSAGE_BULLETS else ""
        if best:
            cited += 1
            answer.bullets.append(f"- {best} [{number}]")
    if passages == 0:
        # "No passages match…": say so rather than staying silent about the search.
        first = text.splitlines()[0] if text else "The knowledge base returned nothing."
        answer.bullets.append(f"- {first}")
    elif cited == 0:
        answer.bullets.append("- The knowledge base has no passage that answers this directly.")


def _digest_tool(text: str, answer: _Answer) -> None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return
    numbers = []
    details = []
    for line in lines[1:]:
        match = _CITATION.match(line)
        if match:
            numbers.append(int(match.group(1)))
            answer.sources.setdefault(int(match.group(1)), line)
        else:
            details.append(line[2:] if line.startswith("- ") else line)
    refs = "".join(f" [{n}]" for n in numbers)
    answer.bullets.append(f"- {lines[0].rstrip(':')}{refs}")
    answer.bullets.extend(f"  - {detail}" for detail in details[:6])
    answer.pool.extend(f"{detail}{refs}" for detail in details)


def compose_answer(question: str, outcomes: list[_ToolOutcome], min_tokens: int = 0) -> str:
    """Write the answer text from the tool outcomes.

    Args:
        question: The user's question.
        outcomes: Tool results since the question, in order.
        min_tokens: Pad with further numbered sentences from the results until the answer has at
            least this many tokens (0: no padding).

    Returns:
        The answer: lead sentence, bullets, optional further detail, sources, disclaimer.
    """
    keywords = _keywords(question)
    answer = _Answer()
    for outcome in outcomes:
        if outcome.status != "success":
            reason = (
                outcome.text.removeprefix("Error:").strip().splitlines()[0] if outcome.text else "it failed"
            )
            answer.bullets.append(f"- The {outcome.name} step did not work: {reason}")
        elif outcome.name == "search_knowledge_base":
            _digest_search(outcome.text, keywords, answer)
        else:
            _digest_tool(outcome.text, answer)

    short = question if len(question) <= 120 else question[:117].rsplit(" ", 1)[0] + "…"
    if answer.sources or any(o.status == "success" for o in outcomes):
        lead = f'Here is what the bundled Seattle references and calculators give for "{short}".'
    elif outcomes:
        lead = f'I could not get reference material for "{short}" just now.'
    else:
        lead = (
            f'I have no reference documents or calculators available to answer "{short}", so I cannot give '
            "specifics."
        )

    parts = [lead, ""]
    parts.extend(answer.bullets)
    cited = {int(n) for line in answer.bullets for n in _REFERENCE.findall(line)}
    words = sum(_words(p) for p in parts) + _words(DISCLAIMER) + 1
    words += sum(_words(answer.sources[n]) for n in cited if n in answer.sources)
    if min_tokens > words:
        pool = answer.pool or [DISCLAIMER]
        parts.extend(["", "Further detail:"])
        words += 2
        index = 0
        while words < min_tokens:
            line = f"{index + 1}. {pool[index % len(pool)]}"
            parts.append(line)
            words += _words(line)
            for n in map(int, _REFERENCE.findall(line)):
                if n not in cited and n in answer.sources:
                    cited.add(n)
                    words += _words(answer.sources[n])
            index += 1
    listed = sorted(n for n in cited if n in answer.sources)
    if listed:
        # Only what the answer cites; the result frame's sources list everything retrieved.
        parts.extend(["", "Sources:"])
        parts.extend(answer.sources[n] for n in listed)
    parts.extend(["", DISCLAIMER])
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class OfflineResponder(Model):
    """Deterministic offline stand-in for a language model (see the module docstring).

    Args:
        token_delay_ms: Pause between streamed words, in milliseconds (0: no pause, but control
            still returns to the event loop between words so cancellation is seen).
        min_answer_tokens: For benchmarks: pad every answer with further numbered sentences from
            the tool results (cycling through them) until it has at least this many tokens, for
            example 2,000 tokens or about 1 MB of text (~170,000 tokens). 0 leaves answers at their
            natural length.
        tokens_per_delta: Tokens per text delta (1: word by word). Raise it for very long answers:
            Strands accumulates streamed text by string concatenation, so its cost grows with
            deltas x answer length (1 MB in one-word deltas spends about a minute there; in
            16-word deltas, a few seconds). The delay applies per delta.
        sleep: The coroutine used to pause between deltas; tests pass a counting one.
    """

    def __init__(
        self,
        *,
        token_delay_ms: float = 0.0,
        min_answer_tokens: int = 0,
        tokens_per_delta: int = 1,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.config: dict[str, Any] = {}
        self._sleep = sleep
        self.update_config(
            model_id=OFFLINE_MODEL_ID,
            token_delay_ms=token_delay_ms,
            min_answer_tokens=min_answer_tokens,
            tokens_per_delta=tokens_per_delta,
        )

    def update_config(self, **model_config: Any) -> None:
        """Update ``model_id``, ``token_delay_ms``, ``min_answer_tokens`` or ``tokens_per_delta``.

        Raises:
            ValueError: for an unknown key or an out-of-range value.
        """
        unknown = set(model_config) - {"model_id", "token_delay_ms", "min_answer_tokens", "tokens_per_delta"}
        if unknown:
            raise ValueError(f"unknown offline responder settings: {', '.join(sorted(unknown))}")
        for key in ("token_delay_ms", "min_answer_tokens"):
            if key in model_config and model_config[key] < 0:
                raise ValueError(f"{key} must not be negative")
        if "tokens_per_delta" in model_config and int(model_config["tokens_per_delta"]) < 1:
            raise ValueError("tokens_per_delta must be at least 1")
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        """The current settings (``model_id``, the pacing and the answer-size knobs)."""
        return dict(self.config)

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Not supported: the responder cannot fill an arbitrary schema.

        Raises:
            ValueError: always. Nothing in Selador asks for structured output; failing loudly beats
                returning a made-up object.
        """
        raise ValueError("the offline responder does not produce structured output")
        yield {}  # unreachable; makes this an async generator, as the interface requires

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: ToolChoice | None = None,
        system_prompt_content: list[SystemContentBlock] | None = None,
        invocation_state: dict[str, Any] | None = None,
        cancel_signal: threading.Event | None = None,
        agent_metadata: AgentMetadata | None = None,
        structured_output_model: type[BaseModel] | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream a tool request or an answer, as Bedrock's ConverseStream events would.

        Args:
            messages: The conversation.
            tool_specs: Tools the agent offers.
            system_prompt: Counted in the usage only.
            tool_choice: Ignored.
            system_prompt_content: Counted in the usage only (when ``system_prompt`` is not given).
            invocation_state: Ignored.
            cancel_signal: Checked before every token; when set, the stream ends early.
            agent_metadata: Ignored.
            structured_output_model: Ignored.
            **kwargs: Ignored.

        Yields:
            Stream events: messageStart, content blocks, messageStop, metadata.
        """
        started = time.monotonic()
        turn = _read_turn(messages)
        input_tokens = _count_input_words(messages, system_prompt, system_prompt_content)
        available = {spec["name"] for spec in tool_specs or []}

        calls = [] if turn.outcomes else plan_tool_calls(turn.question, turn.user_text, available)
        yield {"messageStart": {"role": "assistant"}}
        if calls:
            output_tokens = 0
            digest = hashlib.sha256(turn.user_text.encode()).hexdigest()[:12]
            for index, (name, tool_input) in enumerate(calls, start=1):
                payload = json.dumps(tool_input, sort_keys=True)
                output_tokens += _words(payload)
                # Split the JSON like a real model streams it, so consumers see partial input.
                half = len(payload) // 2
                yield {
                    "contentBlockStart": {
                        "start": {"toolUse": {"name": name, "toolUseId": f"tooluse_{digest}_{index}"}}
                    }
                }
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": payload[:half]}}}}
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": payload[half:]}}}}
                yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
            yield _metadata(input_tokens, output_tokens, started)
            return

        text = compose_answer(turn.question, turn.outcomes, int(self.config["min_answer_tokens"]))
        delay = float(self.config["token_delay_ms"]) / 1000
        step = int(self.config["tokens_per_delta"])
        tokens = tokenize(text)
        emitted = 0
        yield {"contentBlockStart": {"start": {}}}
        for start in range(0, len(tokens), step):
            if cancel_signal is not None and cancel_signal.is_set():
                # No messageStop: Strands reports a stream that ends early under a set signal as
                # stop_reason "cancelled".
                return
            chunk = tokens[start : start + step]
            yield {"contentBlockDelta": {"delta": {"text": "".join(chunk)}}}
            emitted += len(chunk)
            await self._sleep(delay)
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield _metadata(input_tokens, emitted, started)


def _count_input_words(
    messages: Messages, system_prompt: str | None, system_prompt_content: list[SystemContentBlock] | None
) -> int:
    total = _words(system_prompt or "")
    if not system_prompt:
        total += sum(_words(block.get("text", "")) for block in system_prompt_content or [])
    for message in messages:
        for block in message.get("content", []):
            if "text" in block:
                total += _words(block["text"])
            elif "toolUse" in block:
                total += _words(json.dumps(block["toolUse"].get("input", {})))
            elif "toolResult" in block:
                total += sum(_words(item.get("text", "")) for item in block["toolResult"].get("content", []))
    return total


def _metadata(input_tokens: int, output_tokens: int, started: float) -> StreamEvent:
    return {
        "metadata": {
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": int((time.monotonic() - started) * 1000)},
        }
    }
