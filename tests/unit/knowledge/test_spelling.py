import pytest

from selador.knowledge import spelling as spelling_module
from selador.knowledge.spelling import SpellingIndex, edit_distance, max_distance


@pytest.mark.parametrize(
    ("left", "right", "distance"),
    [
        ("height", "height", 0),
        ("hieght", "height", 1),  # adjacent swap costs 1 (plain Levenshtein would say 2)
        ("hight", "height", 1),  # insertion
        ("egress", "egres", 1),  # deletion
        ("maximim", "maximum", 1),  # substitution
        ("setbaks", "setbacks", 1),
        ("railngs", "railings", 1),
        ("railng", "rail", 2),
        ("ca", "abc", 3),  # optimal string alignment: a swapped pair is not edited again
        ("", "abc", 3),
        ("kitten", "sitting", 3),
    ],
)
def test_edit_distance(left: str, right: str, distance: int) -> None:
    assert edit_distance(left, right) == distance
    assert edit_distance(right, left) == distance


def test_edit_distance_limit_stops_early() -> None:
    assert edit_distance("kitten", "sitting", limit=1) == 2
    assert edit_distance("a", "abcdef", limit=2) == 3  # length difference alone exceeds the limit
    assert edit_distance("hieght", "height", limit=1) == 1


@pytest.mark.parametrize(
    ("word", "budget"),
    [("know", 0), ("adu", 0), ("egres", 1), ("parkng", 1), ("setbaks", 2), ("maximim", 2), ("lr2x5", 0)],
)
def test_edit_budget_grows_with_length_and_excludes_short_words_and_digits(word: str, budget: int) -> None:
    assert max_distance(word) == budget


@pytest.fixture
def spelling() -> SpellingIndex:
    return SpellingIndex(
        {
            "setback": 9,
            "setbacks": 4,
            "height": 7,
            "heights": 1,
            "egress": 3,
            "parking": 2,
            "parting": 2,
            "most": 5,
            "known": 2,
            "rail": 2,
            "stair": 1,
            "stain": 1,
        }
    )


def test_known_words_are_never_changed(spelling: SpellingIndex) -> None:
    # "setbacks" is one edit from the more frequent "setback", but it is a word of the vocabulary
    assert spelling.correct("setbacks") == "setbacks"
    assert spelling.correct("rail") == "rail"


def test_unknown_words_are_corrected_to_the_closest_word(spelling: SpellingIndex) -> None:
    assert spelling.correct("hieght") == "height"
    assert spelling.correct("egres") == "egress"
    # the nearest word first: "setbaks" is one edit from "setbacks", two from "setback"
    assert spelling.candidates("setbaks") == [(1, "setbacks"), (2, "setback")]
    assert spelling.correct("setbaks") == "setbacks"
    # equally near: the word found in more passages wins ("height" 7, "heights" 1)
    assert spelling.candidates("heighs") == [(1, "height"), (1, "heights")]


def test_ties_on_distance_and_frequency_are_alphabetical(spelling: SpellingIndex) -> None:
    # "parring" is one substitution from both, and they are equally frequent
    assert spelling.candidates("parring") == [(1, "parking"), (1, "parting")]
    assert spelling.correct("parring") == "parking"
    assert spelling.correct("stait") == "stain"  # stain and stair: 1 edit, frequency 1, "stain" < "stair"


def test_short_words_first_letters_and_digits(spelling: SpellingIndex) -> None:
    assert spelling.correct("know") is None  # four letters: never corrected, though "known" is 1 away
    assert spelling.correct("cost") is None  # and "most" would need a new first letter anyway
    assert spelling.correct("pheight") is None  # "height" is one edit away but starts differently
    assert spelling.correct("heig5t") is None  # words with digits are exact
    assert spelling.correct("xylophone") is None


def test_other_forms_are_compared_with_the_words_budget(spelling: SpellingIndex) -> None:
    # "railngs" is three edits from "rail"; its stem "railng" is two, within the 7-letter budget
    assert spelling.correct("railngs") is None
    assert spelling.correct("railngs", ["railng"]) == "rail"
    # a form shorter than five letters is ignored, and so is one with another first letter
    assert spelling.correct("raiiings", ["rai"]) is None
    assert spelling.correct("railngs", ["xailng"]) is None


def test_candidates_are_complete_against_a_brute_force_scan(spelling: SpellingIndex) -> None:
    vocabulary = ["setback", "setbacks", "height", "heights", "egress", "parking", "parting", "known"]
    for word in ("setbaks", "hieghts", "egrss", "parkign", "knwon", "heihgt", "setbcaks", "xparking"):
        budget = max_distance(word)
        expected = {
            candidate
            for candidate in vocabulary
            if candidate[0] == word[0] and edit_distance(word, candidate) <= budget
        }
        assert {candidate for _, candidate in spelling.candidates(word)} == expected, word


def test_corrections_are_deterministic() -> None:
    words = {"setback": 1, "setbacks": 1, "height": 1, "heights": 1}
    first = SpellingIndex(words)
    second = SpellingIndex(dict(reversed(list(words.items()))))
    for word in ("setbaks", "hieghts", "heihgt"):
        assert first.candidates(word) == second.candidates(word)
    assert "height" in first and "hieght" not in first and len(first) == 4


def test_corrections_are_cached_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spelling_module, "CACHE_SIZE", 2)
    index = SpellingIndex({"height": 1, "egress": 1})
    assert index.correct("hieght") == "height"
    assert index.correct("hieght") == "height"  # from the cache
    assert index.correct("egres") == "egress"
    assert index.correct("xylophone") is None  # the cache was full: emptied, then filled again
    assert len(index._cache) <= 2
