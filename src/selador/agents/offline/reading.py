"""Reading a question: what kind of message it is, and the figures and zones it gives.

The offline responder is not a language model: it reads with patterns. Each pattern is about how
people write a kind of figure (a price, a rate, a lot size, a zone) or a kind of request (a
greeting, a payment question, a fee question), not about any particular question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from selador.agents.offline import lexicon
from selador.agents.offline.lexicon import near, words

Kind = Literal["greeting", "thanks", "out_of_scope", "question"]
ScopeReason = Literal["elsewhere", "live_data", "act", "recommend", "off_topic"]

_NUMBER = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_MONEY = re.compile(
    r"(?P<dollar>\$)\s*" + _NUMBER + r"(?:\s*(?P<scale1>k|m|mm|mil+i?ons?|millon|thousand|grand)\b)?"
    r"|" + _NUMBER + r"\s*(?P<scale2>k|m|mm|mil+i?ons?|millon|thousand|grand)\b"
    r"(?:\s*(?:dollars?|usd))?"
    r"|" + _NUMBER + r"\s*(?:dollars?|usd|bucks)\b",
    re.IGNORECASE,
)
_SCALES = {"k": 1e3, "thousand": 1e3, "grand": 1e3, "m": 1e6, "mm": 1e6}
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b|pct\b)", re.IGNORECASE)
_BARE_RATE = re.compile(
    r"\bat\s+(\d{1,2}(?:\.\d+)?)(?!\s*(?:%|percent|pct|k\b|m\b|,\d|\d|-?\s*years?|yrs?|sq|ft|feet|am|pm|\.\d))",
    re.IGNORECASE,
)
_YEARS = re.compile(r"\b(\d{1,2})[\s-]*(?:years?|yrs?|yr)\b", re.IGNORECASE)
_AREA = re.compile(
    _NUMBER + r"\s*-?\s*(sq\.?\s*f(?:ee)?t\.?|square[\s-]*f(?:ee|oo)t|sf\b|ft2\b|ft²|acres?\b)", re.IGNORECASE
)
_FRACTION_ACRE = re.compile(r"\b(half|quarter|third)[\s-]+(?:an?\s+)?acre\b", re.IGNORECASE)
_FAR = re.compile(
    r"\b(?:FAR|floor[\s-]+area[\s-]+ratio)\s*(?:is|of|=|:|at)?\s*(\d+(?:\.\d+)?)\b"
    r"|\b(\d+(?:\.\d+)?)\s*FAR\b",
    re.IGNORECASE,
)
_COVERAGE = re.compile(
    r"\b(\d+(?:\.\d+)?)\s*(?:%|percent)\s*(?:lot\s+)?coverage\b|\bcoverage\s*(?:is|of|=|:)?\s*(\d+(?:\.\d+)?)\s*%",
    re.IGNORECASE,
)

# Zone designations as written in codes ("LR2", "nc2-55", "SF 5000") and in words ("Lowrise 2").
_ZONE_CODE = re.compile(
    r"(?<![\w-])((?:NR|LR)[ -]?[1-3]|NC[1-3]P?(?:[ -]?\d{2,3})?|SF[ -]?(?:5000|7200|9600))(?![\w-])",
    re.IGNORECASE,
)
_ZONE_BARE = re.compile(r"(?<![\w-])(MR|HR)(?![\w-])")
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

# What a figure is for, from the words just around it.
_PRICE_NOUNS = re.compile(
    r"\b(house|home|condo|townhouse|townhome|property|place|unit|apartment|duplex|purchase|price)\b", re.I
)
_LOAN_NOUNS = re.compile(r"\b(loan|mortgage|borrow\w*|financ\w*)\b", re.I)
_WORK_NOUNS = re.compile(
    r"\b(remodel\w*|renovat\w*|addition|project|work|construction|bid|contract|furnace|boiler|"
    r"heat\s*pump|repair|replacement|story|deck|adu|dadu|garage|basement|kitchen|bathroom|alteration|"
    r"build|new\s+house|new\s+home)\b",
    re.I,
)
_BUDGET = re.compile(r"^\s*(?:a|per|/|each)\s*(?:month|mo)\b|^\s*monthly\b|^\s*budget\b", re.I)
_INSURANCE = re.compile(r"\binsurance\b", re.I)
_YEARLY = re.compile(r"^\s*(?:a|per|/|each)\s*(?:year|yr)\b|^\s*(?:yearly|annually)\b", re.I)
_LOT_NOUNS = re.compile(r"\b(lot|parcel|site|acre)\b", re.I)
_FLOOR_NOUNS = re.compile(
    r"\b(addition|house|home|adu|dadu|cottage|shed|garage|deck|building|story|basement|unit|"
    r"apartment|condo|remodel|floor|structure)\b",
    re.I,
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
    r"|what\s+can\s+(i|we)\s+build|lot\s+coverage|how\s+much\s+(could|can)\s+(i|we)\s+build)",
    re.I,
)


@dataclass(frozen=True)
class Money:
    """An amount of money and what it is for."""

    amount: float
    role: Literal["price", "loan", "work", "budget", "insurance", "unknown"]


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
        far: A floor area ratio the user states.
        coverage: A lot coverage (percent) the user states.
        money: Every amount of money, with its role.
        down_pct: Down payment as a percent of the price.
        down_amount: Down payment in dollars.
        rate: Interest rate in percent.
        tax_rate: Property tax rate in percent of the price a year.
        years: Loan terms named (several for a comparison).
        wants_payment: Asks about a mortgage payment, interest, down payment, tax or affordability.
        wants_fee: Asks what a permit costs.
        wants_buildable: Asks how much can be built.
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


def find_zones(text: str) -> list[str]:
    """Every zone named in the text, in order of appearance, without repeats."""
    from selador.knowledge.zoning import normalize_zone_code

    found: list[tuple[int, str]] = []
    for match in _ZONE_CODE.finditer(text):
        found.append((match.start(), match.group(1)))
    for match in _ZONE_BARE.finditer(text):
        found.append((match.start(), match.group(1)))
    for pattern, template in _ZONE_WORDS:
        for match in pattern.finditer(text):
            groups = [g for g in match.groups() if g]
            code = template.format(*groups[:1])
            if len(groups) > 1:
                code += f"-{groups[1]}"
            found.append((match.start(), code))
    zones: list[str] = []
    for _, raw in sorted(found):
        code = normalize_zone_code(raw) or raw.upper()
        if code not in zones:
            zones.append(code)
    return zones


def find_lot_area(text: str) -> float | None:
    """The first area in the text in square feet (acres converted), or ``None``."""
    areas = _areas(text)
    return areas[0][1] if areas else None


def _areas(text: str) -> list[tuple[int, float, str]]:
    """``(position, square feet, what it measures)`` for every area in the text."""
    found: list[tuple[int, float, str]] = []
    for match in _AREA.finditer(text):
        value = float(match.group(1).replace(",", ""))
        acres = match.group(2).lower().startswith("acre")
        found.append((match.start(), value * 43_560 if acres else value, _area_role(text, match, acres)))
    for match in _FRACTION_ACRE.finditer(text):
        share = {"half": 0.5, "quarter": 0.25, "third": 1 / 3}[match.group(1).lower()]
        found.append((match.start(), round(share * 43_560, 2), "lot"))
    return sorted(found)


def _area_role(text: str, match: re.Match[str], acres: bool) -> str:
    after = text[match.end() : match.end() + 30]
    before = text[max(0, match.start() - 30) : match.start()]
    if acres or _LOT_NOUNS.search(after.split(".")[0][:25]) or re.search(r"\blot\b[^.]{0,15}$", before, re.I):
        return "lot"
    if _FLOOR_NOUNS.search(after[:25]) or _FLOOR_NOUNS.search(before[-20:]):
        return "floor"
    return "unknown"


def _read_figures(reading: Reading, text: str) -> None:
    reading.zones = find_zones(text)
    for _, area, role in _areas(text):
        if role == "lot" and reading.lot_area is None:
            reading.lot_area = area
        elif role == "floor" and reading.floor_area is None:
            reading.floor_area = area
        elif role == "unknown" and reading.lot_area is None and reading.floor_area is None:
            # Decided once the question's ask is known (see _read_asks).
            reading.floor_area = -area
    reading.far = _first_float(_FAR, text)
    reading.coverage = _first_float(_COVERAGE, text)
    reading.money = _money(text)
    reading.years = sorted({int(y) for y in _YEARS.findall(text) if 5 <= int(y) <= 40})
    _read_percents(reading, text)
    reading.mechanical = bool(_MECHANICAL.search(text))
    reading.new_work = bool(_NEW_WORK.search(text))


def _first_float(pattern: re.Pattern[str], text: str) -> float | None:
    match = pattern.search(text)
    if match is None:
        return None
    return float(next(g for g in match.groups() if g is not None))


def _money(text: str) -> list[Money]:
    found: list[Money] = []
    for match in _MONEY.finditer(text):
        raw = next(g for g in (match.group(2), match.group(4), match.group(6)) if g is not None)
        scale_word = (match.group("scale1") or match.group("scale2") or "").lower()
        scale = 1e6 if scale_word.startswith("mil") else _SCALES.get(scale_word, 1.0)
        amount = float(raw.replace(",", "")) * scale
        if amount < 100 and not scale_word:
            continue  # "$5" is not a price, a project or a budget anyone asks about
        found.append(Money(amount, _money_role(text, match)))
    return found


def _money_role(
    text: str, match: re.Match[str]
) -> Literal["price", "loan", "work", "budget", "insurance", "unknown"]:
    after = text[match.end() : match.end() + 40]
    before = text[max(0, match.start() - 40) : match.start()]
    if _BUDGET.search(after):
        return "budget"
    if _INSURANCE.search(before[-25:]) or (_INSURANCE.search(after[:25]) and _YEARLY.search(after)):
        return "insurance"
    near_after = after[:25]
    # What follows the amount says most ("a $60,000 remodel", "a $1.5M house"); then what precedes.
    if _LOAN_NOUNS.search(near_after):
        return "loan"
    if _WORK_NOUNS.search(near_after):
        return "work"
    if _PRICE_NOUNS.search(near_after):
        return "price"
    if re.search(r"\b(bid|quote|value|contract)\b[^.]{0,20}$", before, re.I):
        return "work"
    if re.search(r"\b(buy|purchase|price|costs?|on)\b[^.]{0,15}$", before, re.I):
        return "price"
    return "unknown"


def _read_percents(reading: Reading, text: str) -> None:
    for match in _PERCENT.finditer(text):
        value = float(match.group(1))
        before = text[max(0, match.start() - 30) : match.start()].lower()
        after = text[match.end() : match.end() + 25].lower()
        if re.match(r"\s*(down|downpayment)\b", after) or re.search(
            r"down\s*payment\s*(of|is|at)?\s*$", before
        ):
            reading.down_pct = value if reading.down_pct is None else reading.down_pct
        elif "tax" in before[-20:] or re.match(r"\s*(property\s+)?tax", after):
            reading.tax_rate = value
        elif "coverage" in before[-20:] or re.match(r"\s*(lot\s+)?coverage", after):
            continue
        elif value <= 20 and reading.rate is None:
            reading.rate = value
    if reading.rate is None:
        bare = _BARE_RATE.search(text)
        if bare is not None and 1 <= float(bare.group(1)) <= 15:
            reading.rate = float(bare.group(1))
    down = re.search(r"\$\s*" + _NUMBER + r"\s*(k\b)?\s*down\b", text, re.I)
    if down is not None and reading.down_pct is None:
        reading.down_amount = float(down.group(1).replace(",", "")) * (1e3 if down.group(2) else 1)


def _read_asks(reading: Reading, text: str, text_words: list[str]) -> None:
    finance = any(near(w, lexicon.FINANCE_WORDS) is not None for w in text_words)
    priced = any(m.role in ("price", "loan", "unknown") for m in reading.money)
    reading.wants_payment = bool(priced and (finance or _PAYMENT_ASK.search(text)))
    permit = any(near(w, frozenset({"permit", "permits", "fee", "fees"})) for w in text_words)
    reading.wants_fee = bool(permit and _FEE_ASK.search(text))
    reading.wants_buildable = bool(_BUILDABLE_ASK.search(text))
    if reading.floor_area is not None and reading.floor_area < 0:
        # An area with nothing around it saying what it measures: a lot when the question is
        # about what can be built on it, else a building's size.
        area = -reading.floor_area
        reading.floor_area = None
        if reading.wants_buildable or reading.far is not None:
            reading.lot_area = area
        else:
            reading.floor_area = area
    if reading.wants_payment:
        # An amount whose role is unknown is the price the payment question is about.
        reading.money = [Money(m.amount, "price") if m.role == "unknown" else m for m in reading.money]
    elif reading.wants_fee:
        reading.money = [
            Money(m.amount, "work") if m.role in ("unknown", "price") else m for m in reading.money
        ]


def _kind(reading: Reading, question: str, text: str, topic: bool) -> tuple[Kind, ScopeReason | None]:
    has_figures = bool(reading.money or reading.zones or reading.lot_area or reading.floor_area)
    substantive = topic or has_figures
    if lexicon.THANKS.search(question) and not has_figures and len(words(question)) <= 6:
        # A short thanks ("thanks a lot!") even when a word in it could be a topic word.
        return "thanks", None
    if not substantive:
        stripped = lexicon.GREETING.sub("", question)
        if lexicon.THANKS.search(question) and not lexicon.ABOUT_YOU.search(question):
            return "thanks", None
        if (
            lexicon.GREETING.search(question)
            or lexicon.ABOUT_YOU.search(question)
            or not stripped.strip(" !.,?")
        ):
            return "greeting", None
    elif lexicon.ABOUT_YOU.search(question) and not has_figures and len(words(question)) <= 8:
        return "greeting", None
    if lexicon.OTHER_PLACES.search(text):
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
