"""Words the offline responder reads questions with, and a small typo-tolerant matcher.

Every list here is about a *topic* (what Selador covers, what it does not), never about a
particular question: the evaluation set is a fixture, and a question it gets wrong shows a gap in
these topics or rules, to be closed in general.
"""

from __future__ import annotations

import functools
import re

from selador.knowledge.spelling import edit_distance

WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")


def _vocabulary(block: str) -> frozenset[str]:
    return frozenset(block.split())


# What Selador covers. A question sharing none of these (typos allowed) is outside its scope.
ZONING_WORDS = _vocabulary(
    """
    zone zones zoned zoning lot lots parcel setback setbacks yard yards height tall taller
    heights far floor area coverage footprint density dwelling dwellings unit units build built
    building buildings construct construction addition additions adu adus dadu dadus aadu
    cottage accessory lowrise midrise highrise residential commercial mixed-use overlay landmark
    historic district design review departure variance rezone mha parking subdivide subdivision
    plat short-plat demolish demolition ordinance smc municipal critical eca slope slopes steep
    wetland wetlands landslide liquefaction flood buffer trees tree station frontage alley
    corner storefront pedestrian nr lr nc
    """
)
CODE_WORDS = _vocabulary(
    """
    door doors blower leakage airtight duct ducts heating cooling ventilation insulated solar
    roofing siding footing footings framing drywall wiring thermal
    code codes irc ibc src sbc sec egress window windows bedroom bedrooms basement attic stair
    stairs stairway railing railings guard guards baluster balusters handrail deck decks smoke
    alarm alarms carbon monoxide energy insulation ventilation sprinkler sprinklers fire
    occupancy story stories habitable ceiling headroom commissioning envelope mechanical
    electrical plumbing structural bearing foundation seismic retrofit
    """
)
PERMIT_WORDS = _vocabulary(
    """
    permit permits permitting fee fees sdci inspection inspections inspector apply application
    applications review sepa appeal appeals mup exemption exempt expire expiration remodel
    remodeling renovation renovate alteration repair replace replacement fence shed garage
    reroof roof certificate occupancy contractor
    """
)
FINANCE_WORDS = _vocabulary(
    """
    mortgage mortgages loan loans payment payments monthly afford affordable affordability
    interest rate rates apr down escrow pmi principal amortization refinance lender property-tax
    tax taxes insurance budget financing finance
    """
)
PROPERTY_WORDS = _vocabulary(
    """
    house houses home homes condo condos property properties townhouse townhouses townhome
    apartment apartments duplex triplex rowhouse cottages
    """
)
"""Kinds of property: in scope, but on their own no reason to search the code documents."""

# Greetings, thanks and questions about the assistant itself (checked as whole phrases).
GREETING = re.compile(
    r"^\s*(hi+|hello+|helo|hey+|hiya|howdy|yo|greetings|good\s+(morning|afternoon|evening|day))\b",
    re.IGNORECASE,
)
THANKS = re.compile(
    r"\b(thanks?|thank\s*(you|u)|thx|ty|cheers|appreciate\s+it|much\s+appreciated)\b", re.IGNORECASE
)
ABOUT_YOU = re.compile(
    r"\b(who|what)\s+(are|r)\s+(you|u)\b|\bwhat\s+(can|do)\s+(you|u)\s+(do|help|know|cover)"
    r"|\bwhat(s|'s| is| does)?\s+(this|the)\s+(app|assistant|bot|tool|thing|service)\b"
    r"|\bhow\s+(can|do)\s+(you|u)\s+help\b|\bwhat\s+is\s+selador\b",
    re.IGNORECASE,
)

# What is outside: other places, live market data, acting for the user, recommendations.
OTHER_PLACES = re.compile(
    r"\b(portland|oregon|tacoma|bellevue|redmond|kirkland|everett|spokane|bothell|renton|kent|"
    r"burien|olympia|vancouver|san francisco|los angeles|california|new york|texas|"
    r"king county|snohomish|pierce county|idaho|canada)\b",
    re.IGNORECASE,
)
SEATTLE = re.compile(r"\bseattle\b", re.IGNORECASE)
STREET_AFTER = re.compile(
    r"\s+(ave|avenue|st|street|way|blvd|boulevard|rd|road|pl|place|dr|drive|ct|court|park|station)\b",
    re.IGNORECASE,
)
"""A word after a place name that makes it a Seattle street, park or station."""
LIVE_DATA = re.compile(
    r"\b(right now|today'?s?|currently|current|this week|at the moment|these days|latest)\b"
    r"[^.?!]{0,40}\b(rates?|prices?|market|values?|inventory)\b"
    r"|\b(rates?|prices?|market)\b[^.?!]{0,30}\b(right now|today|currently|these days)\b"
    r"|\b(rent or buy|buy or rent|housing market|market (going|heading)|will prices|prices (go|rise|fall))\b",
    re.IGNORECASE,
)
ACT_FOR_USER = re.compile(
    r"\b(can|could|would|will)\s+(you|u)\s+(please\s+)?(file|submit|send|email|call|book|schedule|"
    r"apply|sign|pay|order|contact|buy|sell|list\s+(?:my|our|the)\s+(?:house|home|property|condo))\b",
    re.IGNORECASE,
)
RECOMMEND = re.compile(
    r"\b(recommend|suggest|referral)\w*\b|\bbest\s+(\w+\s+){0,2}(place|restaurant|agent|realtor|"
    r"contractor|builder|architect|lender|neighbou?rhood|school)s?\b",
    re.IGNORECASE,
)

TOPIC_WORDS = ZONING_WORDS | CODE_WORDS | PERMIT_WORDS | FINANCE_WORDS | PROPERTY_WORDS
GENERAL_WORDS = _vocabulary(
    """
    zone zones zoned zoning lot lots parcel build built building buildings construct construction
    residential commercial mixed-use dwelling dwellings unit units lowrise midrise highrise nr lr nc
    """
)
"""Topic words that name no particular rule: "the zoning rules for building here" asks for them all."""

# Common words that are never typos of a topic word (and need no search for one).
_PLAIN = _vocabulary(
    """
    about above after again also another around because before being below between both could
    does doing down during each every from have having here into just like more most much must
    need only other over same should some such than that their them then there these they this
    those through under until very want what when where which while will with would your
    """
)


def words(text: str) -> list[str]:
    """Lower-case words of a text (apostrophes and inner dots kept: ``what's``, ``23.45``)."""
    return WORD.findall(text.lower())


@functools.lru_cache(maxsize=4096)
def near(word: str, vocabulary: frozenset[str]) -> str | None:
    """The vocabulary word ``word`` is, allowing a typo; ``None`` when it is none of them.

    An exact match wins. Otherwise a word of 5-8 letters may be one edit (insertion, deletion,
    substitution or swap of neighbours) away from a vocabulary word, a longer one two (two edits
    turn too many short real words into others: "looking" into "cooling"); numbers,
    words of four letters or fewer ("town" is not a typo of "down") and common words are never
    guessed at. Ties go to the alphabetically first candidate, so
    the answer is deterministic.

    Args:
        word: A lower-case word.
        vocabulary: The words to match against.

    Returns:
        The matched vocabulary word.
    """
    if word in vocabulary:
        return word
    if len(word) < 5 or not word.isalpha() or word in _PLAIN:
        return None
    budget = 1 if len(word) <= 8 else 2
    best: tuple[int, str] | None = None
    for candidate in vocabulary:
        if abs(len(candidate) - len(word)) > budget or not candidate.isalpha() or len(candidate) < 5:
            continue
        if candidate[0] != word[0] and candidate[1] != word[1]:
            continue  # typos rarely touch both of the first two letters; this keeps the search cheap
        distance = edit_distance(word, candidate, budget)
        if distance <= budget and (best is None or (distance, candidate) < best):
            best = (distance, candidate)
    return best[1] if best else None


def names_a_rule(text_words: list[str]) -> bool:
    """Whether the words name a particular rule or subject (parking, a deck, setbacks, a permit).

    Words about zoning or building in general ("zoning", "lot", "building") and kinds of property
    ("house") do not: a question with only those asks about the rules as a whole.
    """
    for word in text_words:
        hit = near(word, TOPIC_WORDS)
        if hit is not None and hit not in GENERAL_WORDS and hit not in PROPERTY_WORDS:
            return True
    return False


def has_any(text_words: list[str], vocabulary: frozenset[str]) -> bool:
    """Whether any of the words is (a typo of) a vocabulary word.

    A typo is read as the closest of *all* topic words first ("mortage" is "mortgage", not
    "cottage"), then checked against ``vocabulary``.
    """
    for word in text_words:
        hit = near(word, TOPIC_WORDS)
        if hit is not None and hit in vocabulary:
            return True
    return False
