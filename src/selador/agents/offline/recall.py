"""The user's questions in a conversation, and answers to questions about the conversation itself.

The agent's messages may hold earlier turns of the same session before the current question. Only
the user's questions are read from them, never the earlier answers or tool results: the questions
say what the user wants, whichever agent (or model) answered them. The window may have been trimmed
from the front, so "first" means the earliest question still in it, and answers say so.
"""

from __future__ import annotations

import re

from strands.types.content import Message, Messages

from selador.agents.offline.lexicon import words

MAX_LISTED = 10
"""Earlier questions listed at most when the user asks for all of them."""

_HISTORY_ASK = re.compile(
    r"^\W*(?:(?:so|ok(?:ay)?|and|sorry|remind\s+me|(?:can|could)\s+you\s+remind\s+me|"
    r"do\s+you\s+remember)\b\W*)*(?:what|which)\s+(?:"
    r"(?:did|have)\s+i\s+(?:just\s+|first\s+|last\s+|already\s+)?ask(?:ed)?"
    r"|i\s+(?:just\s+|first\s+|last\s+)?asked"
    r"|(?:was|were)\s+(?:my|the)\s+(?:very\s+)?(?:\w+\s+)?questions?"
    r"|questions?\s+(?:did|have)\s+i\s+(?:just\s+)?ask(?:ed)?)\b",
    re.I,
)
_FIRST = re.compile(r"\b(?:first|start|beginning|original(?:ly)?|initially)\b", re.I)
_ALL = re.compile(r"\b(?:questions|so\s+far|all|everything)\b", re.I)


def question_parts(message: Message) -> tuple[str, str] | None:
    """The question and its context, when the message is a user's question (not tool results)."""
    content = message.get("content", [])
    if message.get("role") != "user" or any("toolResult" in block for block in content):
        return None
    texts = [block["text"] for block in content if "text" in block]
    if not texts:
        return None
    # The orchestrator sends the question, then the context as "Context from the user:\n…".
    context = "\n".join(t.removeprefix("Context from the user:").strip() for t in texts[1:])
    return texts[0].strip(), context


def about_history(question: str) -> bool:
    """Whether the question asks what was asked before ("What did I ask first?").

    Only a short question: a long one that starts so ("what was the question about setbacks in
    LR2 and…") asks something else.
    """
    return bool(_HISTORY_ASK.search(question)) and len(words(question)) <= 10


def history_reply(messages: Messages, index: int, question: str) -> str:
    """The answer to "what did I ask first / before / so far?", quoting the earlier questions.

    Args:
        messages: The conversation.
        index: Where the current question is in it (only the messages before count).
        question: The current question (says first, all, or by default the last one).

    Returns:
        The answer, or a plain statement that there is no earlier question.
    """
    asked = [
        parts[0]
        for message in messages[:index]
        if (parts := question_parts(message)) is not None and not about_history(parts[0])
    ]
    if not asked:
        return "I have no earlier question of yours in this conversation: this is the first one I can see."
    if _FIRST.search(question):
        return f'The earliest question I have from this conversation is: "{clip(asked[0])}"'
    if _ALL.search(question):
        shown = asked[-MAX_LISTED:]
        head = "Your questions so far" if len(shown) == len(asked) else f"Your last {len(shown)} questions"
        return f"{head}, oldest first:\n" + "\n".join(f'{n}. "{clip(q)}"' for n, q in enumerate(shown, 1))
    return f'Just before this, you asked: "{clip(asked[-1])}"'


def clip(text: str, limit: int = 200) -> str:
    """The text on one line, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
