"""The offline responder: a deterministic stand-in for a model, used when no real model is set.

:class:`OfflineResponder` is **not a language model**. It implements Strands' ``Model`` interface
with fixed rules so the whole stack (agent loop, tools, streaming, frames) runs offline, in tests
and in local development, with answers built from real tool output:

1. On the user's message it reads what kind of message it is and the figures it gives
   (:mod:`.reading`), in the light of the user's earlier questions when it follows on from them
   ("And in LR3?", :mod:`.thread`), and asks for the tools that can answer it, with those figures
   as inputs (:mod:`.planning`); a greeting, a question outside Selador's scope or one about the
   conversation itself ("What did I ask first?") gets a direct reply.
2. Once the tool results are in the conversation it writes the answer from them (:mod:`.composing`):
   the direct answer first, then the supporting detail and passages, the sources and a one-line
   disclaimer, streamed word by word with ``token_delay_ms`` between words.

Tools whose input comes from another tool's output are called in a second round (the zones a
search names, looked up in the zoning table), so a run takes at most three model turns. Same
conversation in, same events out (only the latency in the metadata event varies).
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

from selador.agents.offline.composing import ToolOutcome, compose_answer, reply_without_tools
from selador.agents.offline.planning import plan, plan_follow_up
from selador.agents.offline.reading import Reading, read
from selador.agents.offline.recall import question_parts
from selador.agents.offline.thread import Followed, follow

if TYPE_CHECKING:
    from strands.agent.agent_metadata import AgentMetadata

T = TypeVar("T", bound=BaseModel)

OFFLINE_MODEL_ID = "offline"
"""What results report as ``model`` for this responder."""

_TOKEN = re.compile(r"\S+\s*|\s+")


def tokenize(text: str) -> list[str]:
    """Split text into streaming tokens: each word with the whitespace after it.

    Joining the tokens gives the text back unchanged.
    """
    return _TOKEN.findall(text)


def _words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------------------------
# Reading the conversation
# --------------------------------------------------------------------------------------------


@dataclass
class _Turn:
    """The latest question and what the tools returned since it."""

    question: str = ""
    user_text: str = ""
    context: str = ""
    outcomes: list[ToolOutcome] = field(default_factory=list)
    rounds: int = 0
    """Tool rounds since the question (assistant messages that asked for tools)."""
    index: int = -1
    """Where the question is in the messages (-1: there is none)."""

    def reading(self) -> Reading:
        """What the question (and its context) says."""
        return read(self.question, self.context)


def _read_turn(messages: Messages) -> _Turn:
    # The question is the latest user message with text; tool results come back as user messages
    # too, but carry toolResult blocks only. Earlier turns (before it) are read by .thread.
    question_index = next(
        (i for i in range(len(messages) - 1, -1, -1) if question_parts(messages[i]) is not None), None
    )
    if question_index is None:
        return _Turn()
    question, context = question_parts(messages[question_index]) or ("", "")
    texts = [b["text"] for b in messages[question_index]["content"] if "text" in b]
    turn = _Turn(question=question, user_text="\n".join(texts), context=context, index=question_index)

    names: dict[str, str] = {}
    for message in messages[question_index + 1 :]:
        if message.get("role") == "assistant" and any("toolUse" in b for b in message.get("content", [])):
            turn.rounds += 1
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
                    ToolOutcome(
                        name=names.get(result["toolUseId"], "tool"),
                        status=result.get("status", "success"),
                        text="\n".join(parts).strip(),
                    )
                )
    return turn


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

        # A follow-up ("And in LR3?") is answered as the thread's question with its figures.
        followed = (
            follow(messages, turn.index, turn.reading()) if turn.index >= 0 else Followed(turn.reading())
        )
        reading = followed.reading
        if followed.reply is not None:
            calls = []  # a question about the conversation: answered from the history
        elif not turn.outcomes:
            calls = plan(reading, available)
        elif turn.rounds == 1:
            calls = plan_follow_up(reading, turn.outcomes, available)
        else:
            calls = []
        yield {"messageStart": {"role": "assistant"}}
        if calls:
            output_tokens = 0
            digest = hashlib.sha256(turn.user_text.encode()).hexdigest()[:12]
            for index, (name, tool_input) in enumerate(calls, start=len(turn.outcomes) + 1):
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

        if followed.reply is not None:
            text = followed.reply
        elif turn.outcomes:
            text = compose_answer(
                reading.question, turn.outcomes, int(self.config["min_answer_tokens"]), reading
            )
        else:
            text = reply_without_tools(reading, tools_offered=bool(available))
        if followed.lead and followed.reply is None:
            text = f"{followed.lead}\n\n{text}"
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
