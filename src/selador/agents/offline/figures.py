"""Reading the figures in a question: amounts of money and what each is for, percentages, loan terms, areas.

Each pattern is about how people write a kind of figure, and each role about the words people put
next to it ("a $60,000 deck", "$150k down", "I make $150,000 a year"), never about any particular
question. Every number pattern starts only where a number starts (not inside a run of digits), so
a pathological input such as four thousand digits is read in linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MoneyRole = Literal["price", "loan", "work", "down", "insurance", "other", "unknown"]
"""What an amount is for; ``other`` is an amount that is none of the others (a salary, a tax bill,
a monthly budget), ``unknown`` one with no word near it saying."""

_START = r"(?<![\d.,/])"
"""A number starts here (not inside another number): keeps every pattern linear on digit runs."""
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NUMBER = _START + f"({_DIGITS})"
_SCALE = r"(?:k|m|mm|mil+(?:i?ons?)?|millon|thousand|grand)\b"
_MONEY = re.compile(
    r"(?P<dollar>\$)\s*" + _START + rf"(?P<num1>{_DIGITS})" + rf"(?:\s*(?P<scale1>{_SCALE}))?"
    r"|" + _START + rf"(?P<num2>{_DIGITS})" + rf"\s*(?P<scale2>{_SCALE})(?:\s*(?:dollars?|usd))?"
    r"|" + _START + rf"(?P<num3>{_DIGITS})" + r"\s*(?:dollars?|usd|bucks)\b"
    # A bare five-to-nine-digit number right before a kind of property: "an 850000 house".
    r"|" + _START + r"\b(?P<num4>\d{5,9})(?=\s+(?:house|home|condo|townhouse|townhome|property|place)\b)",
    re.IGNORECASE,
)
_SCALES = {"k": 1e3, "thousand": 1e3, "grand": 1e3, "m": 1e6, "mm": 1e6}
_PERCENT = re.compile(_START + r"(\d+(?:\.\d+)?)\s*(?:%|percent\b|pct\b)", re.IGNORECASE)
_BARE_RATE = re.compile(
    r"\bat\s+(\d{1,2}(?:\.\d+)?)(?!\s*(?:%|percent|pct|k\b|m\b|,\d|\d|-?\s*years?|yrs?|sq|ft|feet|am|pm|\.\d))",
    re.IGNORECASE,
)
_FRACTION = re.compile(
    _START + r"(?:(\d{1,2})\s+)?(\d{1,2})/(\d{1,2})(?=\s*(?:%|percent\b|pct\b|-?\s*(?:an?\s+)?acres?\b))",
    re.IGNORECASE,
)
"""A simple fraction of a percent or an acre: "6 7/8%", "1/4 acre"."""
_TERM = re.compile(
    _START + r"(\d{1,2})(?P<joint>\s*-\s*|\s+)(?:years?|yrs?|yr)\b(?=(?P<after>[^.;!?\n]{0,30}))",
    re.IGNORECASE,
)
_TERM_NOUN = re.compile(r"^\s*-?\s*(fixed|loans?|mortgages?|terms?|amortiz\w*|arm|notes?)\b", re.I)
_TERM_LEAD = re.compile(r"\b(for|over|across|term\s+of|amortized\s+over)\s+(a\s+)?$", re.I)
# "…, 10% down, 7% rate, 15 years?": a bare term standing as one item of a list of loan figures.
_LIST_BEFORE = re.compile(r"(,|\band|\bwith)\s*$", re.I)
_LIST_AFTER = re.compile(r"^\s*(,|and\b|$)", re.I)
_LOAN_TALK = re.compile(r"\b(mortgage|loan|payments?|pay|amortiz\w*|financ\w*|borrow\w*)\b", re.I)
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

# What an amount is for, from the words just around it.
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
_DOWN_AFTER = re.compile(
    r"^\s*(?:down\b(?!\s+(?:the|to)\b)|(?:as|for)\s+(?:a|the|my|our)\s+down\s*payment|deposit\b)", re.I
)
_DOWN_BEFORE = re.compile(
    r"\b(?:down\s*payments?|put(?:ting)?\s+down|down|deposit)\s*(?:of|is|was|would\s+be|will\s+be|:|=)?"
    r"\s*(?:a|an|about|around|roughly|only|just)?\s*$",
    re.I,
)
_PER_PERIOD = re.compile(
    r"^\s*(?:(?:a|per|/|each|every)\s*(?:year|yr|month|mo)\b|yearly|annually|monthly|budget|salary|"
    r"income|saved|in\s+savings|(?:of|in)\s+(?:income|savings))",
    re.I,
)
_NOT_A_PRICE_BEFORE = re.compile(
    r"\b(make|makes|making|earn\w*|salary|salaries|income|savings|saved)\b[^$]{0,20}$"
    r"|\b(tax(?:es)?|hoa|dues|rent)\s*(?:bill\s*)?(?:are|is|was|were|of|:|=|runs?|total\w*)\s*"
    r"(?:about|around|roughly)?\s*$",
    re.I,
)
_INSURANCE = re.compile(r"\binsurance\b", re.I)
_YEARLY = re.compile(r"^\s*(?:a|per|/|each)\s*(?:year|yr)\b|^\s*(?:yearly|annually)\b", re.I)
_WORK_BEFORE = re.compile(
    r"\b(bid|quote[ds]?|valu\w*|contract|build\w*|construct\w*|add(?:ing)?)\b[^.]{0,20}$", re.I
)
_PRICE_BEFORE = re.compile(
    r"\b(buy\w*|bought|purchas\w*|paid|price[ds]?|listed|offer\w*|sells?|selling|sold|worth)\b[^.]{0,15}$"
    r"|\b(house|home|condo|townhouse|townhome|property|place)\s+(?:costs?|is|was|for|at)\s*$",
    re.I,
)

# What a percentage is for.
_CHANGE_BEFORE = re.compile(
    r"\b(?:go(?:es)?|went|rises?|rose|falls?|fell|drops?|dropped|increases?d?|decreases?d?|jumps?|climbs?)"
    r"\s+(?:up\s+|down\s+)?(?:by\s+)?(?:another\s+)?$|\bby\s+(?:another\s+)?$",
    re.I,
)
_PCT_DOWN_AFTER = re.compile(r"^\s*(?:down\b|downpayment\b|(?:for|as)\s+(?:a|the|my|our)\s+down)", re.I)
_PCT_DOWN_BEFORE = re.compile(r"\bdown\s*payment\s*(?:of|is|at|:)?\s*(?:only|just|about)?\s*$", re.I)
_DOWN_PAYMENT = re.compile(r"\bdown\s*payment", re.I)
_ADDING = re.compile(r"\b(add|adding|addition|extension|expand\w*|new)\b", re.I)
_LOT_NOUNS = re.compile(r"\b(lot|parcel|site|acre)\b", re.I)
_FLOOR_NOUNS = re.compile(
    r"\b(addition|house|home|adu|dadu|cottage|shed|garage|deck|building|story|basement|unit|"
    r"apartment|condo|remodel|floor|structure)\b",
    re.I,
)


@dataclass(frozen=True)
class Money:
    """An amount of money and what it is for."""

    amount: float
    role: MoneyRole


@dataclass(frozen=True)
class Area:
    """An area in square feet, what it measures (``lot``, ``floor`` or ``unknown``) and whether it is new."""

    position: int
    sqft: float
    role: str
    adding: bool = False


@dataclass(frozen=True)
class Percents:
    """The percentages of a question, by what they are for (``None``: not given)."""

    down: float | None = None
    tax: float | None = None
    rate: float | None = None


def normalise_fractions(text: str) -> str:
    """``6 7/8%`` as ``6.875%`` and ``1/4 acre`` as ``0.25 acre`` (other fractions are left alone)."""

    def decimal(match: re.Match[str]) -> str:
        whole, top, bottom = match.group(1), int(match.group(2)), int(match.group(3))
        if bottom == 0:
            return match.group(0)
        return f"{(int(whole) if whole else 0) + top / bottom:g}"

    return _FRACTION.sub(decimal, text)


def money(text: str) -> list[Money]:
    """Every amount of money in the text with its role, in order."""
    found: list[Money] = []
    for match in _MONEY.finditer(text):
        raw = next(match.group(f"num{i}") for i in range(1, 5) if match.group(f"num{i}") is not None)
        scale_word = (match.group("scale1") or match.group("scale2") or "").lower()
        scale = 1e6 if scale_word.startswith("mil") else _SCALES.get(scale_word, 1.0)
        amount = float(raw.replace(",", "")) * scale
        if amount < 100 and not scale_word:
            continue  # "$5" is not a price, a project or a budget anyone asks about
        found.append(Money(amount, _money_role(text, match)))
    return found


def _money_role(text: str, match: re.Match[str]) -> MoneyRole:
    # The words on each side, up to the clause's end or the next figure: "$800k; I'll do a $100k
    # remodel" says nothing of the $800k by "remodel".
    after = re.split(r"[.;!?\n]|\$|(?<![a-z])\d", text[match.end() : match.end() + 40], maxsplit=1)[0]
    before = re.split(r"[.;!?\n]|\d[a-z]*", text[max(0, match.start() - 40) : match.start()], flags=re.I)[-1]
    if _DOWN_AFTER.search(after) or _DOWN_BEFORE.search(before):
        return "down"
    if _INSURANCE.search(before[-25:]) or (_INSURANCE.search(after[:25]) and _YEARLY.search(after)):
        return "insurance"
    if _PER_PERIOD.search(after) or _NOT_A_PRICE_BEFORE.search(before):
        return "other"
    # What follows the amount says most ("a $60,000 remodel", "a $1.5M house"); then what precedes.
    near_after = after[:25]
    if _LOAN_NOUNS.search(near_after):
        return "loan"
    if _WORK_NOUNS.search(near_after):
        return "work"
    if _PRICE_NOUNS.search(near_after):
        return "price"
    if _WORK_BEFORE.search(before):
        return "work"
    if _PRICE_BEFORE.search(before):
        return "price"
    return "unknown"


def percents(text: str, *, down_amount_given: bool = False) -> Percents:
    """The down payment, tax and interest rate percentages of a text.

    A percentage is a down payment when "down" or "down payment" is next to it, a tax rate when
    "tax" is, a coverage when "coverage" is, and never a rate when it is a change ("goes up 1%").
    An untagged one is the interest rate, except on a question about the down payment that gives
    none: there a percentage of 10 or more is the down payment ("the down payment at 20%").

    Args:
        text: The question and its context.
        down_amount_given: The down payment is given in dollars ("a $50,000 down payment at 6%"):
            no percentage is the down payment then.
    """
    down = tax = rate = None
    untagged: list[float] = []
    for match in _PERCENT.finditer(text):
        value = float(match.group(1))
        before = text[max(0, match.start() - 30) : match.start()]
        after = text[match.end() : match.end() + 25]
        if _CHANGE_BEFORE.search(before):
            continue
        if _PCT_DOWN_AFTER.search(after) or _PCT_DOWN_BEFORE.search(before):
            if down is None and not down_amount_given:
                down = value
                continue
            # "10% down payment at 7%": the second is the rate.
        elif re.search(r"tax", before[-20:], re.I) or re.match(r"\s*(property\s+)?tax", after, re.I):
            tax = value
            continue
        elif re.search(r"coverage", before[-20:], re.I) or re.match(r"\s*(lot\s+)?coverage", after, re.I):
            continue
        untagged.append(value)
    asks_down = bool(_DOWN_PAYMENT.search(text)) and not down_amount_given
    for value in untagged:
        if down is None and asks_down and value >= 10:
            down = value
        elif rate is None and value <= 20:
            rate = value
    if rate is None:
        bare = _BARE_RATE.search(text)
        if bare is not None and 1 <= float(bare.group(1)) <= 15:
            rate = float(bare.group(1))
    return Percents(down=down, tax=tax, rate=rate)


def loan_terms(text: str) -> list[int]:
    """The loan terms a text names, in years (1 to 50), without repeats, smallest first.

    A term is written "30-year", "15 yr fixed", "a 20 year loan", or "over 3 years" or as one item
    of a list ("10% down, 7% rate, 15 years") in a sentence about a loan or a payment; an age ("a
    20 year old house", "I'm 35 years old") or a stay ("we've lived here 10 years") is not one.
    """
    terms: set[int] = set()
    for match in _TERM.finditer(text):
        years = int(match.group(1))
        after = match.group("after")
        if not 1 <= years <= 50 or re.match(r"\s*-?\s*old\b", after, re.I):
            continue
        clause_start = max(text.rfind(mark, 0, match.start()) for mark in ".;!?\n")
        clause = text[clause_start + 1 : match.end()]
        hyphenated = "-" in match.group("joint")
        lead = text[clause_start + 1 : match.start()]
        if (
            hyphenated
            or _TERM_NOUN.search(after)
            or (
                (_TERM_LEAD.search(lead) or (_LIST_BEFORE.search(lead) and _LIST_AFTER.match(after)))
                and _LOAN_TALK.search(clause + after)
            )
        ):
            terms.add(years)
    return sorted(terms)


def areas(text: str) -> list[Area]:
    """Every area in the text in square feet (acres converted), in order."""
    found: list[Area] = []
    for match in _AREA.finditer(text):
        value = float(match.group(1).replace(",", ""))
        acres = match.group(2).lower().startswith("acre")
        # The words of the same sentence either side: "an ADU of 800 sq ft. Permit fee to add a
        # 200 sq ft addition?" adds the 200, not the 800.
        # ("sq ft." may end the sentence: its dot is read as the sentence's end.)
        end = match.end() - 1 if match.group(0).endswith(".") else match.end()
        before = re.split(r"[.;!?\n]", text[max(0, match.start() - 25) : match.start()])[-1]
        after = re.split(r"[.;!?\n]", text[end : end + 25])[0]
        adding = bool(_ADDING.search(before) or _ADDING.search(after))
        role = _area_role(text, match, acres)
        found.append(Area(match.start(), value * 43_560 if acres else value, role, adding))
    for match in _FRACTION_ACRE.finditer(text):
        share = {"half": 0.5, "quarter": 0.25, "third": 1 / 3}[match.group(1).lower()]
        found.append(Area(match.start(), round(share * 43_560, 2), "lot"))
    return sorted(found, key=lambda area: area.position)


def _area_role(text: str, match: re.Match[str], acres: bool) -> str:
    after = text[match.end() : match.end() + 30]
    before = text[max(0, match.start() - 30) : match.start()]
    if acres or _LOT_NOUNS.search(after.split(".")[0][:25]) or re.search(r"\blot\b[^.]{0,15}$", before, re.I):
        return "lot"
    if _FLOOR_NOUNS.search(after[:25]) or _FLOOR_NOUNS.search(before[-20:]):
        return "floor"
    return "unknown"


def far(text: str) -> float | None:
    """A floor area ratio the text states."""
    return _first_float(_FAR, text)


def coverage(text: str) -> float | None:
    """A lot coverage (percent) the text states."""
    return _first_float(_COVERAGE, text)


def _first_float(pattern: re.Pattern[str], text: str) -> float | None:
    match = pattern.search(text)
    if match is None:
        return None
    return float(next(g for g in match.groups() if g is not None))
