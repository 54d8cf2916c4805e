"""Typo tolerance for the bundled knowledge base: the closest vocabulary word within a small edit distance.

A query word that the index has never seen ("setbaks", "hieght", "egres") matches nothing, so the
bundled knowledge base asks :class:`SpellingIndex` for the closest word of the documents and searches
that instead. The rules, and why:

* Only unknown words are corrected: a word the documents contain is never changed, whatever its
  neighbours. Only words of letters are corrected: numbers, zone codes and code sections contain
  digits and are exact by nature (``23.45.510`` and ``23.45.514`` are one edit apart and mean
  different things).
* Distance is the Damerau-Levenshtein distance in its *optimal string alignment* form: inserting,
  deleting or substituting a letter, or swapping two adjacent letters, each costs 1. Swapped
  letters ("hieght") are among the commonest slips, and plain Levenshtein would charge them 2.
* The allowed distance grows with the word: at most 1 for words of 5 and 6 letters, at most 2 from
  :data:`LONG_WORD` (7) letters on. One slip in a short word already changes a large share of it;
  two slips in a long word still leave it recognisable ("maximim", "railngs").
* Words longer than :data:`MAX_LENGTH` (30) letters are never corrected: no word of the documents
  is that long, and the deletions of a long word grow with the cube of its length (an 800-letter
  "word" pasted into the box would take seconds and gigabytes).
* Words shorter than :data:`MIN_LENGTH` (5) letters are never corrected, and no word is corrected
  into one shorter than :data:`MIN_CANDIDATE` (4). Short English words sit densely: most words one
  edit from a four-letter word are other real words ("know"/"known", "load"/"lead", "down"/"don"),
  so an unknown short word is more likely a real word the documents lack than a typo.
* The first letter must match. Slips in the first letter are rare (most studies of typing errors
  put them well under one in ten), and requiring it removes most accidental matches between real
  words ("cost"/"most", "west"/"test", "kitchen"/"pitched").
* The caller may pass other forms of the word to compare too, with the same budget: the bundled
  knowledge base passes the word's stem (when it has five letters or more), because a typo can
  hide the inflection ("railngs" is three edits from "rail", its stem "railng" two).
* Ties are broken deterministically: the smallest distance first, then the word found in the most
  passages (the likelier intended word), then alphabetical order.

Candidates are found with the symmetric-delete method (as in SymSpell): every vocabulary word is
indexed under the strings obtained by deleting up to two of its letters, and a query word's own
deletions are looked up there. Two strings within edit distance *d* always share a string reachable
from both by at most *d* deletions, so no candidate is missed, and each candidate is then checked
with the exact distance, computed only near the diagonal of the table since the budget is at most
2. A lookup is a few hundred dictionary probes and a few dozen short distance computations (well
under a millisecond), not a pass over the vocabulary; corrections are also cached per index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MIN_LENGTH = 5
"""Shortest query word (or other form of it) that is corrected."""

MAX_LENGTH = 30
"""Longest query word that is corrected."""

MIN_CANDIDATE = 4
"""Shortest vocabulary word that a query word may be corrected into."""

LONG_WORD = 7
"""From this length on, two edits are allowed instead of one."""

MAX_DISTANCE = 2
"""The largest edit budget of any word."""

CACHE_SIZE = 4096
"""Corrections remembered per index (the cache is emptied when full; words repeat across queries)."""


def max_distance(word: str) -> int:
    """The edit budget for ``word``: 0 (never corrected), 1 or 2; see the module docstring."""
    if not MIN_LENGTH <= len(word) <= MAX_LENGTH or not word.isalpha():
        return 0
    return MAX_DISTANCE if len(word) >= LONG_WORD else 1


def edit_distance(left: str, right: str, limit: int | None = None) -> int:
    """Damerau-Levenshtein distance (optimal string alignment) between two strings.

    Args:
        left: One string.
        right: The other.
        limit: When given, only distances up to ``limit`` are computed exactly: anything larger is
            returned as ``limit + 1``. Only the band of cells within ``limit`` of the diagonal is
            computed, and the computation stops as soon as a whole row exceeds ``limit``.

    Returns:
        The fewest insertions, deletions, substitutions and swaps of adjacent letters that turn
        ``left`` into ``right`` (or ``limit + 1`` when that is more than ``limit``).
    """
    rows, columns = len(left), len(right)
    if limit is None:
        limit = max(rows, columns)
    too_far = limit + 1
    if abs(rows - columns) > limit:
        return too_far
    before_previous: list[int] = []
    previous = [j if j <= limit else too_far for j in range(columns + 1)]
    for i in range(1, rows + 1):
        a = left[i - 1]
        current = [too_far] * (columns + 1)
        if i <= limit:
            current[0] = i
        best = current[0]
        for j in range(max(1, i - limit), min(columns, i + limit) + 1):
            b = right[j - 1]
            # Plain comparisons rather than min(): this loop is the hot path of typo correction.
            value = previous[j - 1] if a == b else previous[j - 1] + 1
            if previous[j] < value:
                value = previous[j] + 1
            if current[j - 1] < value:
                value = current[j - 1] + 1
            if i > 1 and j > 1 and a == right[j - 2] and left[i - 2] == b and before_previous[j - 2] < value:
                value = before_previous[j - 2] + 1
            current[j] = value if value < too_far else too_far
            if value < best:
                best = value
        if best > limit:
            return too_far
        before_previous, previous = previous, current
    return previous[columns]


def _deletes(word: str, depth: int) -> set[str]:
    """``word`` and every string obtained from it by deleting up to ``depth`` letters."""
    found = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {item[:i] + item[i + 1 :] for item in frontier for i in range(len(item))}
        found |= frontier
    return found


class SpellingIndex:
    """The vocabulary of a knowledge base, searchable by edit distance."""

    def __init__(self, frequencies: Mapping[str, int]) -> None:
        """Index the words.

        Args:
            frequencies: Each vocabulary word and how many passages contain it (for tie-breaking).
        """
        self._frequencies = dict(frequencies)
        self._cache: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self._deletes: dict[str, list[str]] = {}
        for word in sorted(self._frequencies):
            if len(word) < MIN_CANDIDATE or not word.isalpha():
                continue
            for variant in _deletes(word, MAX_DISTANCE):
                self._deletes.setdefault(variant, []).append(word)

    def __contains__(self, word: object) -> bool:
        return word in self._frequencies

    def __len__(self) -> int:
        return len(self._frequencies)

    def candidates(self, word: str, forms: Iterable[str] = ()) -> list[tuple[int, str]]:
        """Vocabulary words within ``word``'s edit budget that start with its letter, best first.

        Args:
            word: A query word; its length sets the edit budget.
            forms: Other forms of the word to compare as well, with the same budget; forms shorter
                than :data:`MIN_LENGTH` are ignored.

        Returns:
            ``(distance, vocabulary word)`` pairs, ordered by distance, then by passage frequency
            (highest first), then alphabetically; empty when ``word`` is not correctable.
        """
        budget = max_distance(word)
        if not budget:
            return []
        best: dict[str, int] = {}
        for form in dict.fromkeys((word, *forms)):
            if len(form) < MIN_LENGTH or form[0] != word[0]:
                continue
            for variant in _deletes(form, budget):
                for candidate in self._deletes.get(variant, ()):
                    if candidate[0] != word[0]:
                        continue
                    distance = edit_distance(form, candidate, budget)
                    if distance <= budget and distance < best.get(candidate, budget + 1):
                        best[candidate] = distance
        found = [(distance, candidate) for candidate, distance in best.items()]
        found.sort(key=lambda item: (item[0], -self._frequencies[item[1]], item[1]))
        return found

    def correct(self, word: str, forms: Iterable[str] = ()) -> str | None:
        """The vocabulary word to search instead of ``word``.

        Args:
            word: A query word.
            forms: Other forms of the word to compare as well (see :meth:`candidates`).

        Returns:
            ``word`` itself when it is in the vocabulary (a known word is never changed), else the
            best candidate within the edit budget, else ``None``.
        """
        if word in self._frequencies:
            return word
        key = (word, tuple(forms))
        if key not in self._cache:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            found = self.candidates(word, key[1])
            self._cache[key] = found[0][1] if found else None
        return self._cache[key]
