"""Following the thread of a conversation: a follow-up question read with the questions before it.

A question *follows on* from the thread when it cannot stand alone:

1. It is a fragment: figures (a zone, a lot size, a price, a rate, a down payment) and the little
   words that join them, asking nothing ("And in LR3?", "on a 5,000 sq ft lot?", "at 7%?"). The
   thread's question is asked again with them, if it can use them (a down payment cannot follow a
   question about FAR).
2. It leads on ("and …", "what about …", "how about …", "what if …") or points back ("there"
   when it names no zone, "that" / "it" when it names no subject of its own).
3. It asks for a calculation with some of its inputs but not all (a lot size and no zone, a down
   payment and no price).

A follow-up that asks nothing beyond the thread's question is that question again: the thread's
figures it does not replace carry over. One that asks something new gets only the inputs it lacks
(the zone for "what about the setbacks?"). Only figures the ask uses ever carry over, and there
must be some: otherwise, and for any question complete on its own, the answer is exactly the one
given without history.

"The thread" is where the conversation stood at the latest earlier question with an ask, itself
resolved against its predecessors: after "What is the FAR in LR2?" and "And in LR3?", "How much
floor area is that on a 5,000 sq ft lot?" computes LR3's. At most :data:`MAX_QUESTIONS_READ`
earlier questions are read, walking back only to the latest one that stands alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strands.types.content import Messages

from selador.agents.offline import inputs, lexicon
from selador.agents.offline.reading import Reading, read, zone_mentions
from selador.agents.offline.recall import about_history, history_reply, question_parts

MAX_QUESTIONS_READ = 8
"""Earlier questions read at most to find where the thread stands."""

_LEADS_ON = re.compile(
    r"^\W*(?:(?:ok(?:ay)?|so|then|now|alright|right)\b\W*)?"
    r"(?:and|or|also|plus|(?:what|how)\s+about|what\s+if|same\s+(?:for|in|with|but|question))\b",
    re.I,
)
# Not "is there" / "there is" (existence), "that" opening a clause ("a rule that ADUs need…") or
# "it" in "is it possible to…".
_THERE = re.compile(r"(?<!\bis\s)(?<!\bare\s)\bthere\b(?!\s+(?:is|are|was|were|'s)\b)", re.I)
_THING = re.compile(
    r"\b(?:it|the\s+same)\b(?!\s+(?:is\s+|'s\s+)?(?:possible|true|allowed|legal|ok|okay|required|worth)\b)"
    r"|\b(?:that|this|these|those)\b(?=\s*(?:[?.!,;]|$|(?:one|lot|zone|house|home|property|place|"
    r"project|loan|price|on|in|for|with|at|be|is|was|would|will|cost|costs)\b))",
    re.I,
)
_JOINER_BEFORE = re.compile(r"\s*(?:,|/|&|\b(?:and|or|vs\.?|versus|to)\b)?\s*$", re.I)
_JOINING_WORDS = frozenset(
    lexicon.words(
        "and or also plus what how about if then so ok okay now instead again same but in on for with at "
        "over of to by from a an the my our this that it there one is be would say put putting sq ft "
        "square feet foot sf acre acres year years yr yrs percent pct k dollars usd"
    )
)
"""The little words a fragment joins its figures with ("and what about 20% down on it?")."""


@dataclass(frozen=True)
class Followed:
    """The current question as it stands in the thread.

    Attributes:
        reading: What to answer: the question's own reading when it stands alone, else the
            thread's question with this one's figures.
        lead: One sentence saying what was taken from earlier (empty when nothing was).
        reply: The whole answer to a question about the conversation itself (no tool needed).
    """

    reading: Reading
    lead: str = ""
    reply: str | None = None


@dataclass(frozen=True)
class _Point:
    """Where the thread stands after one question."""

    asked: str
    """The question as the user wrote it (quoted when its ask has no short name)."""
    question: str
    """The question as it stands in the thread: a fragment's is its predecessor's, rezoned."""
    reading: Reading
    asks: frozenset[str]


def follow(messages: Messages, index: int, reading: Reading) -> Followed:
    """Read the question at ``messages[index]`` in the light of the questions before it.

    Args:
        messages: The conversation.
        index: Where the current question is in it.
        reading: What the current question says on its own.

    Returns:
        What to answer (see :class:`Followed`).
    """
    if about_history(reading.question):
        return Followed(reading, reply=history_reply(messages, index, reading.question))
    if not _may_follow(reading):
        return Followed(reading)  # stands alone: the history is not even read
    point = _thread(messages, index)
    step = None if point is None else _step(reading, point)
    return Followed(reading) if step is None else Followed(step[0].reading, lead=step[1])


def _thread(messages: Messages, index: int) -> _Point | None:
    chain: list[Reading] = []
    for position in range(index - 1, -1, -1):
        parts = question_parts(messages[position])
        if parts is None or about_history(parts[0]):
            continue
        earlier = read(*parts)
        if not _on_topic(earlier):
            continue  # greetings, thanks, questions outside the scope take no part in the thread
        chain.append(earlier)
        if not _may_follow(earlier) or len(chain) == MAX_QUESTIONS_READ:
            break  # a question that stands alone: nothing before it matters
    point: _Point | None = None
    for earlier in reversed(chain):
        step = None if point is None else _step(earlier, point)
        if step is not None:
            point = step[0]
        elif inputs.read_asks(earlier) or inputs.given_inputs(earlier):
            point = _Point(earlier.question, earlier.question, earlier, inputs.read_asks(earlier))
    return point


def _step(own: Reading, point: _Point) -> tuple[_Point, str] | None:
    """The thread after ``own`` and the lead saying so, or ``None`` when ``own`` stands alone."""
    own_asks = inputs.read_asks(own)
    leads_on = bool(_LEADS_ON.search(own.question))
    # The thread's question again: nothing asked beyond it and no subject of its own, except one
    # describing a calculation's case ("how about a 400 sq ft addition?" after a permit fee).
    case = leads_on and bool(
        inputs.given_inputs(inputs.placed(own, point.asks))
        & inputs.used_inputs(point.asks & inputs.CALCULATIONS)
    )
    same = own_asks - inputs.SUBJECTS <= point.asks and (not own_asks & inputs.SUBJECTS or case)
    asks = point.asks if same else own_asks
    own = inputs.placed(own, asks)
    given = inputs.given_inputs(own)
    if (
        not asks
        or not _may_follow(own, own_asks, given)
        or (not own_asks and not given & inputs.used_inputs(asks))
    ):
        return None  # nothing to ask, or a fragment whose figures the thread's question cannot use
    wanted = inputs.used_inputs(asks) - given if same else inputs.missing_inputs(own_asks, given)
    wanted -= {slot for new in given for slot in inputs.REPLACES.get(new, ())}
    carried = [slot for slot in inputs.SLOTS if slot in wanted and slot in inputs.given_inputs(point.reading)]
    if not (same or carried):
        return None

    own_context = own.text[len(own.question) :].strip()
    if same:
        question = _rezone(point.question, own.zones) if "zones" in given else point.question
        # The rewritten question says it all when a new zone was all the fragment said.
        whole = question != point.question and given <= {"zones"} and not own_asks
        context = [own_context] if whole else [own.question, own_context]
    else:
        question = own.question
        context = [own_context, *(inputs.in_words(point.reading, slot, 1) for slot in carried)]
    base = read(question, "\n".join(c for c in context if c))
    merged = inputs.merged(base, own, point.reading, carried, asks)
    return _Point(own.question, question, merged, asks), _lead(point, own, carried if not same else None)


def _lead(point: _Point, own: Reading, carried: list[str] | None) -> str:
    """The sentence before the answer: what it follows on from, and what changed or was kept.

    ``carried`` is ``None`` when the thread's question is asked again (then the lead names what
    the follow-up changes), else the inputs taken over into a question of its own.
    """
    about = inputs.about(point.asked, point.reading, point.asks)
    if carried is None:
        changed = inputs.given_inputs(own) & inputs.used_inputs(point.asks)
        new = inputs.join([inputs.in_words(own, slot, 0) for slot in inputs.SLOTS if slot in changed])
        return f"Following on from {about}" + (f", now {new}." if new else ".")
    used = inputs.join([inputs.in_words(point.reading, slot, 1) for slot in carried])
    return f"Following on from {about}, I've used {used} from it."


def _on_topic(reading: Reading) -> bool:
    """A question, or figures with no topic word around them ("at 7%?"): a thread gives them one."""
    return reading.kind == "question" or (
        reading.scope_reason == "off_topic" and bool(inputs.given_inputs(reading))
    )


def _may_follow(reading: Reading, asks: frozenset[str] | None = None, given: set[str] | None = None) -> bool:
    """Whether a question could follow on (before any history is read: rules 1 to 3 above)."""
    if not _on_topic(reading):
        return False
    asks = inputs.read_asks(reading) if asks is None else asks
    given = inputs.given_inputs(reading) if given is None else given
    if not asks:
        return bool(given) and _fragment(reading)
    question = reading.question
    subject = bool(asks & inputs.SUBJECTS)
    return bool(
        _LEADS_ON.search(question)
        or (_THERE.search(question) and not reading.zones)
        or (_THING.search(question) and not subject)
        or inputs.is_partial(asks, given)
    )


def _fragment(reading: Reading) -> bool:
    """Whether the question is only figures and the words joining them (no verb, no subject)."""
    pieces, end = [], 0
    for mention in zone_mentions(reading.question):  # the zones' own words are figures
        pieces.append(reading.question[end : mention.start])
        end = max(end, mention.end)
    text = " ".join([*pieces, reading.question[end:]])
    vocabulary = _JOINING_WORDS | lexicon.GENERAL_WORDS | lexicon.PROPERTY_WORDS | lexicon.FINANCE_WORDS
    return all(word[0].isdigit() or word in vocabulary for word in lexicon.words(text))


def _rezone(question: str, zones: list[str]) -> str:
    """The question with the zones it names replaced by ``zones``."""
    mentions = zone_mentions(question)
    if not mentions:
        return question
    text = question
    for mention in reversed(mentions[1:]):
        if mention.start >= mentions[0].end:
            joiner = _JOINER_BEFORE.search(text[: mention.start])
            text = text[: joiner.start() if joiner else mention.start] + text[mention.end :]
    first = mentions[0]
    return text[: first.start] + " and ".join(zones) + text[first.end :]
