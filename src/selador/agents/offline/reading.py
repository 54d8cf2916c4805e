"""Reading a question: what kind of message it is, and the figures and zones it gives.

The offline responder is not a language model: it reads with patterns. Each pattern is about how
people write a kind of figure (a price, a rate, a lot size, a zone) or a kind of request (a
greeting, a payment question, a fee question), not about any particular question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from selador.agents.offline import figures, lexicon
from selador.agents.offline.figures import Money
from selador.agents.offline.lexicon import near, words

Kind = Literal["greeting", "thanks", "out_of_scope", "question"]
ScopeReason = Literal["elsewhere", "live_data", "act", "recommend", "off_topic"]

# Zone designations as written in codes ("LR2", "nc2-55", "SF 5000") and in words ("Lowrise 2").
_ZONE_CODE = re.compile(
    r"(?<![\w-])((?:NR|LR)[ -]?[1-3]|NC[ -]?[1-3]P?(?:[ -]?\d{2,3})?|SF[ -]?(?:5000|7200|9600))(?![\w-])",
    re.IGNORECASE,
)
# "MR" and "HR" are also initials ("MR Construction", "our HR department", "10 HR shifts"): a zone
# only when written as one, next to a zone word, a preposition of place or a comparison.
_ZONE_BARE = re.compile(r"(?<![\w-])(MR|HR)(?![\w-])")
_ZONE_BARE_AFTER = re.compile(
    r"^\s*(?:zones?\b|zoned\b|zoning\b|areas?\b|lots?\b|parcels?\b|and\b|or\b|vs\.?|versus\b|[,;:?!)]|\.(?!\w)|$)"
)
_ZONE_BARE_BEFORE = re.compile(r"\b(?:in|zoned|zone|vs\.?|versus|between|comparing|compare)\s+$", re.I)
_ZONE_WORDS = (
    (re.compile(r"\blow[\s-]?rise[\s-]*([1-3])\b", re.IGNORECASE), "LR{}"),
    (re.compile(r"\bmid[\s-]?rise\b", re.IGNORECASE), "MR"),
    (re.compile(r"\bhigh[\s-]?rise\b", re.IGNORECASE), "HR"),
    (re.compile(r"\bneighbou?rhood[\s-]+residential[\s-]*([1-3])\b", re.IGNORECASE), "NR{}"),
    (re.compile(r"\bsingle[\s-]+family[\s-]*(5000|7200|9600)\b", re.IGNORECASE), "SF {}"),
    (
        re.compile(r"\bneighbou?rhood[\s-]+commercial[\s-]*([1-3])(?:[\s-]+(\d{2,3}))?\b", re.IGNORECASE),
        "NC{}",
    ),
)

_MECHANICAL = re.compile(
    r"\b(mechanical|furnace|heat\s*pump|boiler|hvac|air\s*condition\w*|ductwork)\b", re.I
)
_NEW_WORK = re.compile(
    r"\b(addition|new\s+(house|home|building|construction)|build(ing)?\s+a|adu|dadu)\b", re.I
)

# What the question asks for.
_PAYMENT_ASK = re.compile(
    r"\b(per\s+month|a\s+month|each\s+month|how\s+much\s+interest|total\s+interest|"
    r"down\s*payment|property\s*tax|afford|what\s+would\s+\w+\s+cost)\b",
    re.I,
)
_FEE_ASK = re.compile(r"\b(cost|costs|fee|fees|how\s+much|price|charge|estimate)\b", re.I)
_BUILDABLE_ASK = re.compile(
    r"\b(floor\s+area|footprint|buildable|how\s+(much|big|large)\b[^?.!]{0,30}\b(build|house|home|building)"
    r"|what\s+can\s+(i|we)\s+build|lot\s+coverage|how\s+much\s+(could|can)\s+(i|we)\s+build"
    r"|how\s+many\s+(sq\.?\s*f(ee)?t\.?|square\s+f(ee|oo)t)\s*[^?!]{0,30}?\bbuild)",
    re.I,
)
ZONE_ASKS = (
    (re.compile(r"\b(height|tall|taller|high)\b", re.I), "height"),
    (re.compile(r"\b(far|floor\s+area\s+ratio)\b", re.I), "FAR"),
    (re.compile(r"\b(coverage|footprint)\b", re.I), "lot coverage"),
    (re.compile(r"\b(setbacks?|yards?)\b", re.I), "setbacks"),
    (re.compile(r"\b(minimum\s+lot|lot\s+size)\b", re.I), "minimum lot size"),
)
"""The figures of the zoning table a question can ask for, each with its name."""


@dataclass
class Reading:
    """What the offline responder understood of a message.

    Attributes:
        question: The question text.
        text: The question and any context, as one text (figures may be in either).
        kind: ``greeting``, ``thanks``, ``out_of_scope`` or ``question``.
        scope_reason: Why it is out of scope, when it is.
        zones: Every zone named, in the table's codes where they exist (``LR2``, ``NC3-65``, ``MR``).
        lot_area: The lot's area in square feet.
        floor_area: A building's (or an addition's) floor area in square feet.
        unplaced_area: An area with no word near it saying what it measures (placed as a lot or a
            floor area once the question's ask is known).
        far: A floor area ratio the user states.
        coverage: A lot coverage (percent) the user states.
        money: Every amount of money, with its role.
        down_pct: Down payment as a percent of the price.
        down_amount: Down payment in dollars.
        rate: Interest rate in percent.
        tax_rate: Property tax rate in percent of the price a year.
        years: Loan terms named (several for a comparison).
        wants_payment: Asks about a mortgage payment, interest, down payment, tax or affordability.
        wants_fee: Asks what a permit costs (whether or not it gives the work's value).
        wants_buildable: Asks how much can be built.
        asks_payment: Talks about a payment, interest, a down payment, tax or affordability, whether
            or not it gives a price (``wants_payment`` needs one).
        mechanical: The work is mechanical (furnace, heat pump…).
        new_work: The work adds floor area (an addition, a new house, an ADU) rather than altering.
        topical: Shares words with what Selador covers beyond money (zoning, codes, permits).
    """

    question: str
    text: str
    kind: Kind = "question"
    scope_reason: ScopeReason | None = None
    zones: list[str] = field(default_factory=list)
    lot_area: float | None = None
    floor_area: float | None = None
    unplaced_area: float | None = None
    far: float | None = None
    coverage: float | None = None
    money: list[Money] = field(default_factory=list)
    down_pct: float | None = None
    down_amount: float | None = None
    rate: float | None = None
    tax_rate: float | None = None
    years: list[int] = field(default_factory=list)
    wants_payment: bool = False
    wants_fee: bool = False
    wants_buildable: bool = False
    asks_payment: bool = False
    mechanical: bool = False
    new_work: bool = False
    topical: bool = False

    def amount(self, role: str) -> float | None:
        """The first amount with ``role``."""
        return next((m.amount for m in self.money if m.role == role), None)


def read(question: str, context: str = "") -> Reading:
    """Read a question (and its context) into a :class:`Reading`.

    Args:
        question: The user's question.
        context: Anything else the user sent with it.

    Returns:
        What was understood.
    """
    text = f"{question}\n{context}".strip() if context else question.strip()
    reading = Reading(question=question.strip(), text=text)
    text_words = words(text)
    topic = lexicon.has_any(text_words, lexicon.TOPIC_WORDS)
    reading.topical = lexicon.has_any(
        text_words, lexicon.ZONING_WORDS | lexicon.CODE_WORDS | lexicon.PERMIT_WORDS
    )
    _read_figures(reading, text)
    _read_asks(reading, text, text_words)
    reading.kind, reading.scope_reason = _kind(reading, question, text, topic)
    return reading


@dataclass(frozen=True)
class ZoneMention:
    """Where the text names a zone (``text[start:end]``), and the zone's code."""

    start: int
    end: int
    code: str


def find_zones(text: str) -> list[str]:
    """Every zone named in the text, in order of appearance, without repeats."""
    zones: list[str] = []
    for mention in zone_mentions(text):
        if mention.code not in zones:
            zones.append(mention.code)
    return zones


def zone_mentions(text: str) -> list[ZoneMention]:
    """Every place the text names a zone, in order (repeats kept: a follow-up rewrites each)."""
    from selador.knowledge.zoning import normalize_zone_code

    found: list[tuple[int, int, str]] = []
    for match in _ZONE_CODE.finditer(text):
        found.append((match.start(), match.end(), match.group(1)))
    for match in _ZONE_BARE.finditer(text):
        before = text[max(0, match.start() - 12) : match.start()]
        if _ZONE_BARE_AFTER.match(text[match.end() :]) or _ZONE_BARE_BEFORE.search(before):
            found.append((match.start(), match.end(), match.group(1)))
    for pattern, template in _ZONE_WORDS:
        for match in pattern.finditer(text):
            groups = [g for g in match.groups() if g]
            code = template.format(*groups[:1])
            if len(groups) > 1:
                code += f"-{groups[1]}"
            found.append((match.start(), match.end(), code))
    return [
        ZoneMention(start, end, normalize_zone_code(raw) or raw.upper()) for start, end, raw in sorted(found)
    ]


def zone_asks(question: str) -> list[str]:
    """The zoning-table figures a question asks for (``height``, ``FAR``…), in :data:`ZONE_ASKS` order."""
    return [label for pattern, label in ZONE_ASKS if pattern.search(question)]


def find_lot_area(text: str) -> float | None:
    """The first area in the text in square feet (acres converted), or ``None``."""
    found = figures.areas(figures.normalise_fractions(text))
    return found[0].sqft if found else None


def _read_figures(reading: Reading, text: str) -> None:
    reading.zones = find_zones(text)
    text = figures.normalise_fractions(text)
    floors: list[figures.Area] = []
    for area in figures.areas(text):
        if area.role == "lot" and reading.lot_area is None:
            reading.lot_area = area.sqft
        elif area.role == "floor":
            floors.append(area)
        elif area.role == "unknown" and reading.lot_area is None and not floors:
            reading.unplaced_area = area.sqft
    if floors:
        # Of several buildings, the one being added is what a fee or a plan is about.
        reading.floor_area = next((a for a in floors if a.adding), floors[0]).sqft
        reading.unplaced_area = None
    elif reading.unplaced_area is not None and reading.lot_area is not None:
        reading.floor_area, reading.unplaced_area = reading.unplaced_area, None
    reading.far = figures.far(text)
    reading.coverage = figures.coverage(text)
    reading.money = figures.money(text)
    reading.years = figures.loan_terms(text)
    reading.down_amount = reading.amount("down")
    given = figures.percents(text, down_amount_given=reading.down_amount is not None)
    reading.down_pct, reading.tax_rate, reading.rate = given.down, given.tax, given.rate
    reading.mechanical = bool(_MECHANICAL.search(text))
    reading.new_work = bool(_NEW_WORK.search(text))


def _read_asks(reading: Reading, text: str, text_words: list[str]) -> None:
    finance = any(near(w, lexicon.FINANCE_WORDS) is not None for w in text_words)
    priced = any(m.role in ("price", "loan", "unknown") for m in reading.money)
    reading.asks_payment = bool(finance or _PAYMENT_ASK.search(text))
    reading.wants_payment = priced and reading.asks_payment
    permit = any(near(w, frozenset({"permit", "permits", "fee", "fees"})) for w in text_words)
    reading.wants_fee = bool(permit and _FEE_ASK.search(text))
    reading.wants_buildable = bool(_BUILDABLE_ASK.search(text))
    if reading.unplaced_area is not None:
        # An area with nothing around it saying what it measures: a lot when the question is
        # about what can be built on it, else a building's size.
        if reading.wants_buildable or reading.far is not None:
            reading.lot_area = reading.unplaced_area
        else:
            reading.floor_area = reading.unplaced_area
        reading.unplaced_area = None
    if reading.wants_payment:
        # An amount whose role is unknown is the price the payment question is about.
        reading.money = [Money(m.amount, "price") if m.role == "unknown" else m for m in reading.money]
    elif reading.wants_fee:
        # An amount nothing says is for the work is the project's value; a price only when it is
        # the one figure there is ("the permit fee for a $450,000 house"), not when the work's own
        # value or size is given ("I bought a $800k house; the permit for a 400 sq ft addition?").
        no_work = reading.amount("work") is None and not reading.floor_area
        relabel = ("unknown", "price") if no_work else ("unknown",)
        reading.money = [Money(m.amount, "work") if m.role in relabel else m for m in reading.money]


def _kind(reading: Reading, question: str, text: str, topic: bool) -> tuple[Kind, ScopeReason | None]:
    has_figures = bool(reading.money or reading.zones or reading.lot_area or reading.floor_area)
    substantive = topic or has_figures
    short = len(words(question)) <= 6
    if lexicon.THANKS.search(question) and not has_figures and short and ("?" not in question or not topic):
        # A short thanks ("thanks a lot!") even when a word in it could be a topic word; but
        # "Thanks. What about setbacks?" is a question.
        return "thanks", None
    about_you = lexicon.ABOUT_YOU.search(question)
    if not substantive:
        stripped = lexicon.GREETING.sub("", question)
        if lexicon.THANKS.search(question) and not about_you:
            return "thanks", None
        if lexicon.GREETING.search(question) or about_you or not stripped.strip(" !.,?"):
            return "greeting", None
    elif about_you and not has_figures and len(words(question)) <= 8:
        # "What can you do?" is about Selador; "What do you know about egress windows?" is not.
        rest = question[: about_you.start()] + question[about_you.end() :]
        if not lexicon.has_any(words(rest), lexicon.TOPIC_WORDS):
            return "greeting", None
    if _elsewhere(text):
        return "out_of_scope", "elsewhere"
    if lexicon.ACT_FOR_USER.search(question):
        return "out_of_scope", "act"
    if lexicon.LIVE_DATA.search(question) and not has_figures:
        return "out_of_scope", "live_data"
    if lexicon.RECOMMEND.search(question):
        return "out_of_scope", "recommend"
    if not substantive:
        return "out_of_scope", "off_topic"
    return "question", None


def _elsewhere(text: str) -> bool:
    """Whether the text is about another place, not Seattle.

    A place name that is a Seattle street or station ("Bellevue Ave E", "the Spokane Street
    station") is not another place, and a question that names Seattle is about Seattle whatever
    else it mentions ("moving from Portland to Seattle").
    """
    if lexicon.SEATTLE.search(text):
        return False
    return any(not lexicon.STREET_AFTER.match(text[m.end() :]) for m in lexicon.OTHER_PLACES.finditer(text))
