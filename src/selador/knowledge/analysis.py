"""Text analysis for the bundled knowledge base: turning documents and queries into index terms.

The same :func:`analyse` (and :func:`tokenize`, its flat form) handles documents and queries, so both
sides always agree. The steps, in order, and why each exists:

1. **Acronym plurals** written in capitals with a lowercase "s" become singular (``ADUs`` ->
   ``ADU``, ``ECAs`` -> ``ECA``). The stemmer keeps a final "us" (bonus, status), so without this
   "ADUs" and "ADU" would never meet.
2. **Lowercase; drop thousands separators** (``5,000`` -> ``5000``), so numbers match however they
   are written.
3. **Units.** Area is written "5,000 sq ft", "5000 square feet", "4,000-square-foot", "5000 sf" or
   "ft2"; all become the single term ``sqft`` ("sf" only right after a number, because before a
   number "SF" is a former zone name, below). ``%`` becomes ``percent`` and, after splitting,
   ``feet``/``foot`` become ``ft``, so a question's "sq ft" or "30 ft" meets the documents'
   "square feet" and "30 feet". The number keeps its own term.
4. **Zone names and codes, both ways.** People write a zone by its code or by its name, and the
   documents use both. Every name is rewritten to its code, so either form matches either:
   "Lowrise 2" / "lowrise-2" -> ``lr2``, "Lowrise" / "low-rise" -> ``lr``, "Midrise" -> ``mr``,
   "Highrise" -> ``hr``, "Neighborhood Residential 3" -> ``nr3``, "Neighborhood Commercial" ->
   ``nc``. The pre-2021 names map to the zones that replaced them ("SF 5000" / "Single Family
   5000" -> ``nr3``, 7200 -> ``nr2``, 9600 -> ``nr1``) and also keep a term of their own
   (``sf5000``), so a question about the old name still finds the text that explains the rename;
   "single-family zone(s)" also yields ``nr``. A code written with a space or hyphen is joined
   (``LR-2``, ``LR 2`` -> ``lr2``).
5. **Split** on anything that is not a letter or digit, except that a dot between letters/digits is
   kept, so code sections such as ``23.45.510`` and ``r310.2.1`` stay whole.
6. **Drop stop words and single letters.** The stop-word list stays short on purpose: words such
   as "no" and "not" change the meaning of zoning questions. A stop word with an apostrophe-less
   "'s" ("whats", "theres") is a stop word too; otherwise it would reach typo correction.
7. **Identifiers imply broader ones.** A dotted section yields its parents (``23.45.510`` ->
   ``23.45``; ``r310.2.1`` -> ``r310.2``, ``r310``), because the code is hierarchical: a question
   about chapter 23.45 or "R310" should match text citing a subsection. A pedestrian-designated
   zone yields its base (``nc3p`` -> ``nc3``), and a numbered zone its family (``lr2`` -> ``lr``,
   ``nc3`` -> ``nc``, ``nr1`` -> ``nr``), because most rules are stated for the family ("setbacks
   in LR zones") while questions name the exact zone, and the reverse. An implied term is added
   the first time it is implied in a text only, not at every mention: a heading listing "NC1, NC2
   and NC3" is about NC zones once, not three times over (counting every mention made such
   listing sections win any NC question). Explicit mentions ("NC zones") count as usual.
8. **Light suffix stemming** of plain words (plural -s/-es/-ies, -ing, a final silent -e), so
   "setbacks"/"setback" and "zoning"/"zone" meet; identifiers are never stemmed. A full Porter
   stemmer would conflate more aggressively than a small legal corpus needs. A doubled final
   letter left by "-ing" is undoubled ("setting" -> "set") unless that would leave fewer than
   three letters ("adding" -> "add", not "ad").

:func:`analyse` returns each word with its terms, because the knowledge base treats the two apart:
typo correction compares a misspelt word with the documents' words before stemming (``egres`` is
one edit from ``egress``, its stem ``egr`` three), and implied terms weigh less in a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# A word block is easier to review than 65 one-word lines, hence the noqa.
STOP_WORDS = frozenset(
    """
    a about an and any are as at be been being but by can could did do does for from had has have how
    i if in into is it its me my of on or our should so such than that the their them then there
    these they this those to was we were what when where which who why will with would you your
    """.split()  # noqa: SIM905
)

_ACRONYM_PLURAL = re.compile(r"\b([A-Z]{2,})s\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PERCENT = re.compile(r"(?<=\d)\s*%")
# "sq ft", "sq. ft.", "square feet", "square-foot", "sqft", "ft2", "ft²".
_AREA_UNIT = re.compile(r"(?<![a-z])(?:sq(?:uare)?\.?[\s\-]*(?:feet|foot|ft)\b\.?|sqft\b|ft(?:2\b|²))")
# "sf" is square feet only right after a number; "SF 5000" before one is a former zone name.
_SF_AFTER_NUMBER = re.compile(r"(?<=\d)[\s\-]*sf\b")
_FORMER_ZONE = re.compile(r"\b(?:sf|single[\s\-]*family)[\s\-]*(5000|7200|9600)\b")
_FORMER_ZONES = {"5000": "nr3", "7200": "nr2", "9600": "nr1"}
_SINGLE_FAMILY_ZONE = re.compile(r"\bsingle[\s\-]*family(?=[\s\-]+zon)")
_LOWRISE_ZONE = re.compile(r"\blow[\s\-]?rises?(?:[\s\-]*([123])\b)?")
_MID_HIGH_RISE_ZONE = re.compile(r"\b(mid|high)[\s\-]?rises?\b")
_NEIGHBORHOOD_ZONE = re.compile(r"\bneighbou?rhood[\s\-]+(residential|commercial)(?:[\s\-]*([123])\b)?")
_SPACED_ZONE = re.compile(r"\b(nr|lr|nc|sf)[\s\-]+(\d)\b")
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
_PEDESTRIAN_ZONE = re.compile(r"^(nc[123]|c[12])p$")
_NUMBERED_ZONE = re.compile(r"^(lr|nr|nc)[123]$")
_HAS_LETTER_AND_DIGIT = re.compile(r"^(?=.*[a-z])(?=.*\d)")
_VOWELS = frozenset("aeiouy")
_WORD_FORMS = {"feet": "ft", "foot": "ft"}


def _neighborhood_zone(match: re.Match[str]) -> str:
    return f"n{match.group(1)[0]}{match.group(2) or ''}"


def _former_zone(match: re.Match[str]) -> str:
    return f"sf{match.group(1)} {_FORMER_ZONES[match.group(1)]}"


def normalise(text: str) -> str:
    """Steps 1-4 of the module docstring: acronym plurals, lowercase, numbers, units, zone names.

    Args:
        text: Document or query text.

    Returns:
        The rewritten text, ready to split into tokens.
    """
    text = _THOUSANDS.sub("", _ACRONYM_PLURAL.sub(r"\1", text).lower())
    text = _PERCENT.sub(" percent", text)
    text = _AREA_UNIT.sub(" sqft ", text)
    text = _SF_AFTER_NUMBER.sub(" sqft", text)
    text = _FORMER_ZONE.sub(_former_zone, text)
    text = _SINGLE_FAMILY_ZONE.sub(r"\g<0> nr", text)
    text = _LOWRISE_ZONE.sub(r"lr\1", text)
    text = _MID_HIGH_RISE_ZONE.sub(lambda m: f"{m.group(1)[0]}r", text)
    text = _NEIGHBORHOOD_ZONE.sub(_neighborhood_zone, text)
    return _SPACED_ZONE.sub(r"\1\2", text)


def stem(word: str) -> str:
    """Strip common inflections from a plain word (never from codes or numbers)."""
    if not word.isalpha() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses") or word.endswith(("xes", "ches", "shes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        base = word[:-3]
        if _VOWELS.intersection(base):
            # "setting" -> "sett" -> "set", "permitting" -> "permit"; "ll"/"ss" are real endings,
            # and so is a double letter that would leave fewer than three ("adding" -> "add").
            if base[-1] == base[-2] and base[-1] not in "lsz" and len(base) > 3:
                base = base[:-1]
            word = base
    # Dropping a final silent e lets "zone"/"zoning" and "house"/"housing" share a stem.
    if word.endswith("e") and not word.endswith("ee") and len(word) >= 4:
        word = word[:-1]
    return word


def _expand(token: str) -> Iterable[str]:
    """Yield the token and the broader identifiers it implies (section parents, base zones)."""
    yield token
    if "." in token:
        parts = token.split(".")
        for end in range(len(parts) - 1, 1, -1):
            yield ".".join(parts[:end])
        if _HAS_LETTER_AND_DIGIT.match(parts[0]):
            yield parts[0]
        return
    pedestrian = _PEDESTRIAN_ZONE.match(token)
    if pedestrian:
        token = pedestrian.group(1)
        yield token
    if _NUMBERED_ZONE.match(token):
        yield token[:2]


def _is_stop_word(token: str) -> bool:
    if token in STOP_WORDS or (len(token) == 1 and token.isalpha()):
        return True
    # "whats", "theres": a stop word with the apostrophe of "'s" left out.
    return token.endswith("s") and token[:-1] in STOP_WORDS


def analyse(text: str) -> Iterator[tuple[str, list[str]]]:
    """Each searchable word of ``text`` with the index terms it yields.

    Args:
        text: Document or query text.

    Yields:
        ``(word, terms)``: the word after normalisation but before stemming, and its terms: the
        stemmed word first, then the broader identifiers it implies that the text has not
        implied before.
    """
    implied: set[str] = set()
    for token in _TOKEN.findall(normalise(text)):
        if _is_stop_word(token):
            continue
        token = _WORD_FORMS.get(token, token)
        own, *broader = _expand(token)
        broader = [term for term in broader if term not in implied]
        implied.update(broader)
        yield token, [stem(own), *broader]


def tokenize(text: str) -> list[str]:
    """Turn text into index terms; see the module docstring for the rules and their reasons.

    Args:
        text: Document or query text.

    Returns:
        The terms in text order (with repeats, which BM25 counts).
    """
    return [term for _, terms in analyse(text) for term in terms]
