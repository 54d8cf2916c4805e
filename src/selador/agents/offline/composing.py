"""Writing the offline responder's answers from what the tools returned.

An answer leads with the direct answer (the figure the question asks for, from a calculator or the
zoning table, or the knowledge base's most relevant sentence), then the supporting detail and the
passages that are about the question, then the sources it cites and a one-line disclaimer. A
message that needs no tool (a greeting, thanks, a question outside Selador's scope) gets a short,
honest reply saying what Selador covers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selador.agents.offline.planning import asks_rules_as_a_whole, set_aside
from selador.agents.offline.reading import Reading, read, zone_asks

DISCLAIMER = (
    "This is general information, not legal or financial advice; verify it with the Seattle Department "
    "of Construction and Inspections (SDCI) before you rely on it."
)
COVERS = (
    "I can answer questions about Seattle zoning (what you can build on a lot: height, floor area, "
    "setbacks, ADUs), the building codes, permits and permit fees, and work out monthly mortgage "
    "payments, down payments and property tax for a price you give me."
)
EXAMPLES = (
    'For example: "What is the FAR in LR2?" or "Monthly payment on a $800,000 house with 20% down at 6.5%?"'
)
_SCOPE_REPLIES = {
    "elsewhere": "I only cover Seattle (its zoning, building codes and permits), not other cities.",
    "live_data": (
        "I don't have live market data, today's mortgage rates or price forecasts. Give me a price, a "
        "down payment and a rate, and I'll work out the monthly payment and the down payment."
    ),
    "act": "I can't file, submit or send anything for you; I answer questions so you can do it yourself.",
    "recommend": "I can't recommend businesses, agents or places.",
    "off_topic": "That's outside what I know about.",
}
_CALCULATORS = frozenset({"mortgage_payment", "permit_fee_estimate", "buildable_area"})
_NO_PASSAGE = "- The knowledge base has no passage that answers this directly."
MAX_PASSAGE_BULLETS = 3
"""Passages quoted as bullets at most (the rest only pad long answers)."""
_CITATION = re.compile(r"^\[(\d+)\] (.+)$")
_REFERENCE = re.compile(r"\[(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_SECTION_NUMBER = re.compile(r"\b\d{2}\.\d{2,3}(?:\.\d{3})?\b|\b[RNCM]\d{3}(?:\.\d+)*\b")
_QUANTITY_ASK = re.compile(
    r"\b(how\s+(big|high|tall|wide|deep|much|many|long|far|large|close)|size|minimum|maximum|max|min|"
    r"limit|at\s+least|no\s+more|far\b|height|setbacks?|width|area|"
    r"(bigg|larg|small|tall|wid|high|long|deep)er|enough)\b",
    re.IGNORECASE,
)
_FIGURE = re.compile(
    r"\$\s?\d|\b\d[\d,.]*\s*(%|percent\b|(square\s+)?(feet|foot|ft)\b|inch(es)?\b|sq\.?\s*ft|stories\b|"
    r"story\b|units?\b|years?\b|days?\b|weeks?\b|months?\b)|\bFAR\s+(of\s+)?\d",
    re.IGNORECASE,
)
"""A quantity (a figure with its unit), as opposed to a code section or a zone's number."""
_DEFINITION_ASK = re.compile(
    r"\bwhat\s+(is|are|does)\b|\bhow\s+(is|are)\b[^?]{0,40}\b(calculated|measured|defined|determined|counted)"
    r"|\bmean(s|ing)?\b",
    re.IGNORECASE,
)
_DEFINES = re.compile(
    r"\b(means|is defined as|refers to|is the (ratio|share|amount|total|measure)|divided by|"
    r"(calculated|measured|counted) (as|by|from)|stands for)\b",
    re.IGNORECASE,
)
_RATE_WORDING = re.compile(
    r"\d(?:\.\d+)?\s*(?:%|percent|pct)\s*(?:annual\s+|fixed\s+)?interest\b|\binterest\s+rates?\b", re.I
)
_TABLE_LINES = {
    "height": "Maximum height",
    "FAR": "Floor area ratio",
    "lot coverage": "Maximum lot coverage",
    "setbacks": "Setbacks",
    "minimum lot size": "Minimum lot size",
}
"""The zoning tool's line for each figure a question can ask for (:data:`.reading.ZONE_ASKS`)."""


@dataclass
class ToolOutcome:
    """What one tool call returned."""

    name: str
    status: str
    text: str


@dataclass
class _Answer:
    lead: list[str] = field(default_factory=list)
    """Direct answers from calculators and the zoning table."""
    passage_lead: str | None = None
    """The knowledge base's most relevant sentence: the lead when no tool answered directly."""
    bullets: list[str] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)
    pool: list[str] = field(default_factory=list)
    """Further sentences (with their citations) used to pad long answers."""


def reply_without_tools(reading: Reading, *, tools_offered: bool = True) -> str:
    """The answer to a message that needs no tool, or that no tool can serve.

    Args:
        reading: What was read.
        tools_offered: Whether the agent had tools at all (when not, say so).

    Returns:
        The reply text.
    """
    if reading.kind == "greeting":
        opening = "Hi, I'm Selador, an assistant for Seattle real estate."
    elif reading.kind == "thanks":
        opening = "You're welcome, glad it helped."
    elif reading.kind == "out_of_scope":
        opening = _SCOPE_REPLIES[reading.scope_reason or "off_topic"]
    elif not tools_offered:
        short = _short(reading.question)
        return (
            f'I have no reference documents or calculators available to answer "{short}", so I cannot '
            f"give specifics.\n\n{DISCLAIMER}"
        )
    else:
        opening = "I could not tell what to look up for that."
    return f"{opening} {COVERS}\n\n{EXAMPLES}"


def compose_answer(
    question: str, outcomes: list[ToolOutcome], min_tokens: int = 0, reading: Reading | None = None
) -> str:
    """Write the answer from the tool outcomes.

    Args:
        question: The user's question.
        outcomes: Tool results since the question, in order.
        min_tokens: Pad with further numbered sentences from the results until the answer has at
            least this many tokens (0: no padding).
        reading: What was read of the question (read again from ``question`` when not given).

    Returns:
        The answer: the direct answer, bullets, optional further detail, sources, disclaimer.
    """
    reading = reading or read(question)
    answer = _Answer()
    terms = _terms(reading.text)
    for outcome in outcomes:
        if outcome.status != "success":
            first = (outcome.text.removeprefix("Error:").strip().splitlines() or [""])[0]
            answer.bullets.append(f"- The {outcome.name} step did not work: {first or 'it failed'}")
        elif outcome.name == "search_knowledge_base":
            _digest_search(outcome.text, terms, reading, answer)
        else:
            _digest_tool(outcome, reading, answer)
    if answer.lead:
        parts = [*answer.lead, ""]
        if answer.passage_lead:
            parts.append(f"- {answer.passage_lead}")
        # A tool answered: a search that found nothing on the question needs no mention.
        answer.bullets = [b for b in answer.bullets if b != _NO_PASSAGE]
    else:
        parts = [answer.passage_lead or _fallback_lead(reading, outcomes, answer), ""]
    parts.extend(answer.bullets)
    parts.extend(f"- I set aside {note}." for note in set_aside(reading))
    _valuation_note(reading, outcomes, parts)
    cited = {int(n) for line in parts for n in _REFERENCE.findall(line)}
    _pad(parts, answer, cited, min_tokens)
    listed = sorted(n for n in cited if n in answer.sources)
    if listed:
        # Only what the answer cites; the result frame's sources list everything retrieved.
        parts.extend(["", "Sources:"])
        parts.extend(answer.sources[n] for n in listed)
    parts.extend(["", DISCLAIMER])
    return "\n".join(parts)


# -- the direct answer -------------------------------------------------------------------------------


def _fallback_lead(reading: Reading, outcomes: list[ToolOutcome], answer: _Answer) -> str:
    short = _short(reading.question)
    if any(o.status == "success" for o in outcomes):
        return f'Here is what the bundled Seattle references and calculators give for "{short}".'
    return f'I could not get reference material for "{short}" just now.'


def _digest_tool(outcome: ToolOutcome, reading: Reading, answer: _Answer) -> None:
    lines = [line.strip() for line in outcome.text.splitlines() if line.strip()]
    if not lines:
        return
    numbers: list[int] = []
    details: list[str] = []
    for line in lines[1:]:
        match = _CITATION.match(line)
        if match:
            numbers.append(int(match.group(1)))
            answer.sources.setdefault(int(match.group(1)), line)
        else:
            details.append(line[2:] if line.startswith("- ") else line)
    refs = "".join(f" [{n}]" for n in numbers)
    details = [d for d in details if not d.endswith(": not set")]
    lead = _tool_lead(outcome.name, lines[0], details, reading)
    if lead:
        answer.lead.append(lead + refs)
    if lead and outcome.name in _CALCULATORS:
        # The lead already is the calculator's headline: its workings follow as bullets.
        answer.bullets.extend(f"- {detail}" for detail in details[:8])
    else:
        answer.bullets.append(f"- {lines[0].rstrip(':')}{refs}")
        answer.bullets.extend(f"  - {detail}" for detail in details[:8])
    answer.pool.extend(f"{detail}{refs}" for detail in details)


def _tool_lead(name: str, first: str, details: list[str], reading: Reading) -> str | None:
    """The sentence that answers the question from one tool's output, if it answers it."""
    question = reading.question
    if name == "mortgage_payment":
        asked = [
            (r"\bdown\s*payment\b", "Down payment"),
            (r"\binterest\b", "Total interest"),
            (r"\bproperty\s*tax", "Property tax"),
        ]
        # "at 6% interest" and "the interest rate" give the rate; they do not ask for the interest.
        plain = _RATE_WORDING.sub(" ", question)
        for pattern, prefix in asked:
            if re.search(pattern, plain, re.I):
                line = next((d for d in details if d.startswith(prefix)), None)
                if line:
                    return f"{line} ({first[0].lower() + first[1:]})."
        return f"{first}."
    if name == "permit_fee_estimate":
        return f"{first}."
    if name == "buildable_area":
        return f"{first.rstrip(':')}: {details[0]}." if details else f"{first.rstrip(':')}."
    if name == "zoning_standards":
        zone = first.split(" ")[1] if first.startswith("Zone ") else ""
        figures = zone_asks(question)
        if asks_rules_as_a_whole(question) and not figures:
            # The rules as a whole: the headline figures of each zone.
            main = [
                d
                for d in details
                if d.startswith(("Maximum height", "Floor area ratio", "Maximum lot")) and "not set" not in d
            ]
            return f"In {zone}: " + "; ".join(line[0].lower() + line[1:] for line in main) + "."
        lines = [d for label in figures for d in details if d.startswith(_TABLE_LINES[label])]
        if lines:
            return f"In {zone}: " + "; ".join(line[0].lower() + line[1:] for line in lines) + "."
    return None


def _valuation_note(reading: Reading, outcomes: list[ToolOutcome], parts: list[str]) -> None:
    if (
        reading.amount("work") is None
        and reading.floor_area
        and any(o.name == "permit_fee_estimate" and o.status == "success" for o in outcomes)
    ):
        from selador.agents.tools import VALUATION_BASIS

        parts.append(f"- No project value was given: {VALUATION_BASIS}")


# -- passages ---------------------------------------------------------------------------------------


def _terms(text: str) -> set[str]:
    from selador.knowledge.local import tokenize

    return set(tokenize(text))


def _sentences(text: str) -> list[str]:
    flat = " ".join(line.strip().lstrip("#").strip() for line in text.splitlines() if line.strip())
    return [s.strip() for s in _SENTENCE_END.split(flat) if len(s.strip()) > 3]


def _passage_terms(question_words: list[str], passage: str) -> set[str]:
    """The question's index terms, with its typos read as the passage's words they misspell."""
    from selador.agents.offline.lexicon import near, words

    vocabulary = frozenset(words(passage))
    corrected = [w if w in vocabulary else (near(w, vocabulary) or w) for w in question_words]
    return _terms(" ".join(corrected))


def _digest_search(text: str, terms: set[str], reading: Reading, answer: _Answer) -> None:
    from selador.agents.offline.lexicon import words

    question_words = words(reading.text)
    quantity = bool(_QUANTITY_ASK.search(reading.question))
    definition = bool(_DEFINITION_ASK.search(reading.question))
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
        if cited >= MAX_PASSAGE_BULLETS:
            continue
        passage_terms = _passage_terms(question_words, "\n".join(body))
        # The top passage (the best match as a whole) gives up to three sentences, its figures
        # first when the question asks for one; the others one each, and only when clearly about
        # the question (a passage sharing one common word is not quoted out of context).
        top = passages == 1
        count = 3 if top else 2 if passages == 2 else 1
        picked = _pick(sentences, passage_terms, quantity, definition, count, strict=not top)
        if not picked:
            continue
        cited += 1
        if top:
            answer.passage_lead = f"{picked[0]} [{number}]"
            picked = picked[1:]
        answer.bullets.extend(f"- {sentence} [{number}]" for sentence in picked)
    if passages == 0:
        first = text.splitlines()[0] if text else "The knowledge base returned nothing."
        answer.bullets.append(f"- {first}")
    elif cited == 0:
        answer.bullets.append(_NO_PASSAGE)


def _pick(
    sentences: list[str], terms: set[str], quantity: bool, definition: bool, count: int, *, strict: bool
) -> list[str]:
    """The sentences most about the question: the best first, then the others in the passage's order.

    A sentence scores one point per question term it shares (two for a number the question gives),
    one more when the question asks for a figure and the sentence has one, or asks what something
    is and the sentence defines it.
    """
    scored = []
    numbers = {term for term in terms if term.replace(".", "").isdigit()}
    for index, sentence in enumerate(sentences):
        shared = terms & _terms(sentence)
        # A figure the question itself gives ("a 4,000 sq ft lot") counts twice: it is the case asked.
        overlap = len(shared) + len(shared & numbers)
        figure = bool(quantity and _FIGURE.search(sentence))
        if strict and overlap < min(2 if len(terms) >= 4 else 1, len(terms)):
            continue
        if overlap == 0 and not figure:
            continue
        score = overlap + (1.0 if figure else 0.0) + (0.25 if _SECTION_NUMBER.search(sentence) else 0.0)
        score += 1.0 if definition and _DEFINES.search(sentence) else 0.0
        scored.append((score, -index, sentence))
    best = sorted(scored, reverse=True)[:count]
    # The best sentence first (it may lead the answer), the others in the passage's order.
    ordered = best[:1] + sorted(best[1:], key=lambda item: -item[1])
    return [_clip(sentence) for _, _, sentence in ordered]


def _clip(sentence: str) -> str:
    return sentence if len(sentence) <= 360 else sentence[:357].rsplit(" ", 1)[0] + "…"


# -- length -------------------------------------------------------------------------------------------


def _pad(parts: list[str], answer: _Answer, cited: set[int], min_tokens: int) -> None:
    words = sum(len(p.split()) for p in parts) + len(DISCLAIMER.split()) + 1
    words += sum(len(answer.sources[n].split()) for n in cited if n in answer.sources)
    if min_tokens <= words:
        return
    pool = answer.pool or [DISCLAIMER]
    parts.extend(["", "Further detail:"])
    words += 2
    index = 0
    while words < min_tokens:
        line = f"{index + 1}. {pool[index % len(pool)]}"
        parts.append(line)
        words += len(line.split())
        for n in map(int, _REFERENCE.findall(line)):
            if n not in cited and n in answer.sources:
                cited.add(n)
                words += len(answer.sources[n].split())
        index += 1


def _short(question: str) -> str:
    return question if len(question) <= 120 else question[:117].rsplit(" ", 1)[0] + "…"
