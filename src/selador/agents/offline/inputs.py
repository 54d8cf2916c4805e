"""What a question asks and the inputs it gives, named so that a follow-up can take them over.

An *ask* is a figure the question wants: one of the zoning table's (``height``, ``FAR``, ``lot
coverage``, ``setbacks``, ``minimum lot size``), a calculation (``buildable``, ``payment``,
``fee``), or a subject the question names (``zoning`` for a zoning one such as ADUs or parking,
``subject`` for any other). An *input* (a slot) is one figure a calculation or a table lookup
uses: a zone, a lot's area, a FAR, a price, a rate, the value of the work… :mod:`.thread` carries
inputs from one question to the next by these names.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from selador.agents.offline import lexicon
from selador.agents.offline.figures import Money, MoneyRole, areas, normalise_fractions
from selador.agents.offline.reading import ZONE_ASKS, Reading, zone_asks
from selador.agents.offline.recall import clip

_FIGURE_WORDS = frozenset(
    lexicon.words(
        "height heights tall taller far floor area coverage footprint setback setbacks yard yards fee fees"
    )
)
"""Topic words naming a figure :func:`read_asks` reads as such, not as a subject of their own."""
SUBJECTS = frozenset({"zoning", "subject"})
"""The asks that name a subject rather than a figure."""
CALCULATIONS = frozenset({"buildable", "payment", "fee"})
"""The asks a calculator answers."""
ZONING_ASKS = frozenset({label for _, label in ZONE_ASKS} | {"buildable", "zoning"})
"""The asks a zone (or a lot) is an input to."""
_ZONING = ("zones", "lot_area", "far", "coverage")
_PAYMENT = ("price", "down", "rate", "tax_rate", "years", "insurance")
_FEE = ("work", "floor_area")
SLOTS = (*_ZONING, *_PAYMENT, *_FEE)
"""Every input, in the order leads name them."""
REPLACES = {"zones": ("far", "coverage"), "work": ("floor_area",), "floor_area": ("work",)}
"""Inputs a new one replaces: a zone sets its own FAR and coverage; a work's value and floor area
are two ways of giving the same thing."""
_FIELDS: dict[str, tuple[str, ...]] = {
    **{slot: (slot,) for slot in ("zones", "lot_area", "far", "coverage", "rate", "tax_rate", "years")},
    "down": ("down_pct", "down_amount"),
    "work": ("mechanical", "new_work"),
    "floor_area": ("floor_area", "mechanical", "new_work"),
}
"""The reading's fields each input is held in (amounts of money are in ``money``, by role)."""
_OWN_FIELDS = tuple(dict.fromkeys(name for names in _FIELDS.values() for name in names))
_MONEY_SLOT = {"price": "price", "loan": "price", "down": "down", "insurance": "insurance", "work": "work"}
_ASK_NAMES = {
    "height": "the height limit",
    "FAR": "the FAR",
    "lot coverage": "the lot coverage",
    "setbacks": "the setbacks",
    "minimum lot size": "the minimum lot size",
    "buildable": "how much you can build",
    "payment": "the monthly payment",
    "fee": "the permit fee",
}
# How an input reads after "now …" and as a noun ("I've used …"); {} is its value.
_WORDING = {
    "zones": ("in {}", "zone {}"),
    "lot_area": ("on a {} lot", "the {} lot"),
    "far": ("with a FAR of {}", "the FAR of {}"),
    "coverage": ("with {} lot coverage", "the {} lot coverage"),
    "price": ("for a {}", "the {}"),
    "down": ("with {} down", "the {} down payment"),
    "rate": ("at {}", "the {} rate"),
    "tax_rate": ("with {} property tax", "the {} property tax rate"),
    "years": ("over {} years", "the {}-year term"),
    "insurance": ("with {} a year of insurance", "the {} a year of insurance"),
    "work": ("for a {} project", "the {} project value"),
    "floor_area": ("for {} of floor area", "the {} of floor area"),
}
_TERM = re.compile(r"\b(?:for|over|on|across)\s+(?:a\s+)?(\d{1,2})[\s-]*(?:years?|yrs?)\b", re.I)
"""A loan term with no loan named ("and over 15 years?"): one in a thread about a payment."""


# -- what a question asks and gives -------------------------------------------------------------------


def read_asks(reading: Reading) -> frozenset[str]:
    """The figures a question asks for, and ``zoning`` / ``subject`` when it names a subject."""
    words = lexicon.words(reading.question)
    hits = [lexicon.near(word, lexicon.TOPIC_WORDS) for word in words]
    # The table figures asked, typos allowed ("maximim hieght").
    found = set(zone_asks(reading.question)) | set(
        zone_asks(" ".join(h or w for w, h in zip(words, hits, strict=True)))
    )
    found.update(
        name
        for name, wanted in (
            ("buildable", reading.wants_buildable),
            ("payment", reading.asks_payment),
            ("fee", reading.wants_fee),
        )
        if wanted
    )
    for hit in hits:
        if hit is None or hit in _FIGURE_WORDS or hit in lexicon.FINANCE_WORDS:
            continue
        if hit not in lexicon.GENERAL_WORDS and hit not in lexicon.PROPERTY_WORDS:
            found.add("zoning" if hit in lexicon.ZONING_WORDS else "subject")
    return frozenset(found)


def given_inputs(reading: Reading) -> set[str]:
    """The inputs a question gives (``unplaced``: an amount nothing says is a price or a value)."""
    roles = {m.role for m in reading.money}
    present = {
        "zones": bool(reading.zones),
        "lot_area": reading.lot_area is not None,
        "far": reading.far is not None,
        "coverage": reading.coverage is not None,
        "price": bool(roles & {"price", "loan"}),
        "down": reading.down_pct is not None or reading.down_amount is not None,
        "rate": reading.rate is not None,
        "tax_rate": reading.tax_rate is not None,
        # A term with no loan named ("over 15 years") is read once the thread says it is a loan's.
        "years": bool(reading.years or _TERM.search(reading.text)),
        "insurance": "insurance" in roles,
        "work": "work" in roles,
        "floor_area": reading.floor_area is not None,
        "unplaced": "unknown" in roles,
    }
    return {slot for slot, there in present.items() if there}


def is_partial(asks: frozenset[str], given: set[str]) -> bool:
    """Whether a calculation is asked with some of its inputs but not all."""
    if "buildable" in asks and given & set(_ZONING):
        return bool(missing_inputs(frozenset({"buildable"}), given))
    if "payment" in asks and given & set(_PAYMENT):
        return "price" not in given
    return False


def missing_inputs(asks: frozenset[str], given: set[str]) -> set[str]:
    """The inputs the asks need that are not given."""
    lacking: set[str] = set()
    if "buildable" in asks and "lot_area" not in given:
        lacking.add("lot_area")
    if "buildable" in asks and not given & {"zones", "far", "coverage"}:
        lacking.update(("zones", "far", "coverage"))
    # A zone answers a table figure or a zoning subject, unless the figure itself is given.
    covered = {"FAR": "far", "lot coverage": "coverage"}
    asked = [ask for ask in asks & (ZONING_ASKS - {"buildable"}) if covered.get(ask) not in given]
    if asked and "zones" not in given:
        lacking.add("zones")
    if "payment" in asks and "price" not in given:
        lacking.update(set(_PAYMENT) - given)
    if "fee" in asks and not given & set(_FEE):
        lacking.update(_FEE)
    return lacking


def used_inputs(asks: frozenset[str]) -> set[str]:
    """The inputs the asks use."""
    used = [(_ZONING, bool(asks & ZONING_ASKS)), (_PAYMENT, "payment" in asks), (_FEE, "fee" in asks)]
    return {slot for slots, uses in used if uses for slot in slots}


def placed(reading: Reading, asks: frozenset[str]) -> Reading:
    """A follow-up's unlabelled figures read for the thread's ask ("what about $900k?", "6,000 sq ft?")."""
    role: MoneyRole | None = "price" if "payment" in asks else "work" if "fee" in asks else None
    money = [Money(m.amount, role) if role and m.role == "unknown" else m for m in reading.money]
    years = reading.years
    if "payment" in asks and not years:
        years = sorted({int(m.group(1)) for m in _TERM.finditer(reading.text) if 1 <= int(m.group(1)) <= 50})
    lot, floor = reading.lot_area, reading.floor_area
    found = areas(normalise_fractions(reading.text))
    if asks & ZONING_ASKS and lot is None and found and all(a.role == "unknown" for a in found):
        lot, floor = floor, None  # an area asked of a zoning question is the lot's
    return replace(reading, money=money, lot_area=lot, floor_area=floor, years=years)


# -- the thread's question with a follow-up's figures ---------------------------------------------------


def merged(
    base: Reading, own: Reading, earlier: Reading, carried: list[str], asks: frozenset[str]
) -> Reading:
    """``base`` with the figures of ``own`` and those ``carried`` over from ``earlier``."""
    fields: dict[str, Any] = {name: getattr(own, name) for name in _OWN_FIELDS}
    for slot in carried:
        fields.update({name: getattr(earlier, name) for name in _FIELDS.get(slot, ())})
    money = [*own.money, *(m for m in earlier.money if _MONEY_SLOT.get(m.role) in carried)]
    return replace(
        base,
        **fields,
        money=money,
        unplaced_area=None,
        kind="question",
        scope_reason=None,
        asks_payment="payment" in asks,
        wants_payment="payment" in asks and any(m.role in ("price", "loan") for m in money),
        wants_fee="fee" in asks,
        # A FAR or a coverage asked of a given lot is how much can be built on it.
        wants_buildable="buildable" in asks
        or bool(asks & {"FAR", "lot coverage"} and fields["lot_area"] is not None),
    )


# -- words ----------------------------------------------------------------------------------------------


def about(asked: str, reading: Reading, asks: frozenset[str]) -> str:
    """What a question was about, for a lead: its asks and main figures, or the question quoted."""
    # A buildable area is its FAR and coverage at work: naming them too would say it twice.
    asks = asks - {"FAR", "lot coverage"} if "buildable" in asks else asks
    names = [name for ask, name in _ASK_NAMES.items() if ask in asks]
    if not names:
        return f'your question "{clip(asked)}"'
    shown = [in_words(reading, slot, 0) for slot in ("lot_area", "zones", "price", "work", "floor_area")]
    return " ".join([f"your question about {join(names)}", *(s for s in shown if s)])


def in_words(reading: Reading, slot: str, form: int) -> str:
    """An input in words: form 0 as it reads after "now" ("in LR3"), 1 as a noun ("zone LR3")."""
    value = _value(reading, slot)
    return "" if value is None else _WORDING[slot][form].format(value)


def _value(reading: Reading, slot: str) -> str | None:
    if slot == "zones":
        return " and ".join(reading.zones) or None
    if slot == "years":
        return " or ".join(str(y) for y in reading.years) or None
    if slot in ("lot_area", "floor_area"):
        area = getattr(reading, slot)
        return None if area is None else f"{_number(area)} sq ft"
    if slot in ("far", "rate", "tax_rate", "coverage"):
        figure = getattr(reading, slot)
        return None if figure is None else f"{figure:g}" + ("" if slot == "far" else "%")
    if slot == "down" and reading.down_pct is not None:
        return f"{reading.down_pct:g}%"
    if slot == "price":
        price, loan = reading.amount("price"), reading.amount("loan")
        return f"${_number(price)} home" if price else f"${_number(loan)} loan" if loan else None
    amount = reading.amount(slot)  # down (in dollars), insurance, work
    return None if amount is None else f"${_number(amount)}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")


def join(parts: list[str]) -> str:
    """The non-empty parts as a list in words: "a, b and c"."""
    parts = [p for p in parts if p]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)
