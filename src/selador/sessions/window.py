"""A Strands conversation manager that keeps the last N *turns* of a conversation in the prompt.

Strands' sliding window counts messages; a turn here is one question with everything that answered
it (tool calls, tool results, the answer), which may be two messages or eight. Counting turns
keeps whole turns: the model never sees a tool result without the question that asked for it.

The window is applied *before* each question is added, on the committed history only (what the
session's repository listed), so the prompt holds at most ``max_turns`` turns including the new
question. What leaves the prompt stays stored; ``removed_message_count`` (persisted with the agent
record) tells the repository where the prompt starts next time, so older messages are not even read.

Tool results of turns before the latest one are also left out of the prompt (each replaced by a
one-line note, so every tool use keeps its result, as Bedrock requires). They are most of a
turn's size (knowledge-base passages run to kilobytes), the answers that used them are still in
the prompt, and a follow-up that needs them again calls the tool again. Measured: with 20 turns of
history, Strands' own per-call copies and trace serialisation of the prompt took ~15 ms of a
turn; the prompt's tokens, on Bedrock, are what a conversation costs. The stored messages keep
the results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from strands.agent.conversation_manager import ConversationManager
from strands.hooks import BeforeInvocationEvent, HookRegistry

if TYPE_CHECKING:
    from strands.agent.agent import Agent
    from strands.types.content import ContentBlock, Message, Messages


def is_question(message: Message) -> bool:
    """Whether a message opens a turn: a user message with text and no tool results."""
    content = message.get("content", [])
    return (
        message.get("role") == "user"
        and any("text" in block for block in content)
        and not any("toolResult" in block for block in content)
    )


def turn_starts(messages: Messages) -> list[int]:
    """The indexes of the messages that open a turn, in order."""
    return [index for index, message in enumerate(messages) if is_question(message)]


LEFT_OUT = "[This tool result from an earlier turn is left out; call the tool again if you need it.]"


def leave_out_old_tool_results(messages: Messages, keep_turns: int = 1) -> int:
    """Replace the tool results of all but the last ``keep_turns`` turns with :data:`LEFT_OUT`.

    Messages are replaced, not changed in place: the session manager holds the originals.

    Returns:
        How many tool results were left out now.
    """
    starts = turn_starts(messages)
    end = starts[len(starts) - keep_turns] if 0 < keep_turns <= len(starts) else 0
    if keep_turns == 0:
        end = len(messages)
    left_out = 0
    for index in range(end):
        message = messages[index]
        content = message.get("content", [])
        if not any("toolResult" in block and not _is_left_out(block) for block in content):
            continue
        blocks: list[ContentBlock] = []
        for block in content:
            if "toolResult" in block and not _is_left_out(block):
                result = block["toolResult"]
                block = {"toolResult": {**result, "content": [{"text": LEFT_OUT}]}}
                left_out += 1
            blocks.append(block)
        messages[index] = cast("Message", {**message, "content": blocks})
    return left_out


def _is_left_out(block: ContentBlock) -> bool:
    content = block["toolResult"].get("content", [])
    return len(content) == 1 and content[0].get("text") == LEFT_OUT


class TurnWindowConversationManager(ConversationManager):
    """Keep at most ``max_turns`` turns in the model's context, the current question included.

    Args:
        max_turns: Turns the prompt holds (``SESSION_MAX_TURNS``), at least 1.
    """

    def __init__(self, max_turns: int) -> None:
        super().__init__()
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.max_turns = max_turns

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """Trim before each invocation, when the agent's messages are the committed history."""
        super().register_hooks(registry, **kwargs)
        registry.add_callback(BeforeInvocationEvent, self._before_invocation)

    def _before_invocation(self, event: BeforeInvocationEvent) -> None:
        self._keep_last(event.agent, self.max_turns - 1)
        leave_out_old_tool_results(event.agent.messages)

    def _keep_last(self, agent: Agent, turns: int) -> int:
        """Drop every message before the last ``turns`` turns; return how many were dropped."""
        messages = agent.messages
        starts = turn_starts(messages)
        if len(starts) <= turns:
            # Anything before the first question (a history that began mid-turn) is dropped too.
            cut = starts[0] if starts else 0
        else:
            cut = starts[len(starts) - turns] if turns > 0 else len(messages)
        if cut:
            del messages[:cut]
            self.removed_message_count += cut
        return cut

    def apply_management(self, agent: Agent, **kwargs: Any) -> None:
        """Nothing after an invocation: the window is applied before the next one.

        Trimming here would count the turn just asked even when it fails and is never committed.
        """

    def reduce_context(self, agent: Agent, e: Exception | None = None, **kwargs: Any) -> None:
        """On a context overflow, drop the oldest turn; with only the current one left, give up.

        Raises:
            Exception: ``e`` again when nothing can be dropped.
        """
        starts = turn_starts(agent.messages)
        if len(starts) >= 2 and self._keep_last(agent, len(starts) - 1):
            return
        if e is not None:
            raise e
