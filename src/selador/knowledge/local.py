"""Bundled knowledge base: Okapi BM25 over the Markdown documents shipped inside the package.

This is the knowledge base used offline and whenever no Bedrock Knowledge Base is configured.

Why BM25 rather than embeddings:
    * Deterministic and offline: the same query always ranks the same passages, with no service
      call, no credentials and nothing to warm up, which keeps tests and local runs exact.
    * No model weights: the Lambda bundle is capped at 30 MiB and is nearly full, so a vector
      model (or numpy) is not an option; the corpus is tens of documents, so a pure-Python
      inverted index answers in well under a millisecond.
    * Exact identifiers matter: users ask about "SMC 23.45.510" or "R310", and a lexical ranker
      rewards an exact code-section match, where an embedding blurs neighbouring section numbers.

Tokenizer choices (the same function handles documents and queries, so they always agree):
    * Lowercase, then split on anything that is not a letter or digit, except that a dot between
      letters/digits is kept, so code sections such as ``23.45.510`` and ``r310.2.1`` stay whole.
      Thousands separators are removed first so ``5,000`` matches ``5000``.
    * A dotted section also yields its parents (``23.45.510`` -> ``23.45``; ``r310.2.1`` ->
      ``r310.2``, ``r310``), because the code is hierarchical: a question about chapter 23.45 or
      "R310" should match text citing one of its subsections.
    * Zone codes are joined when written with a space or hyphen (``LR-2``, ``LR 2`` -> ``lr2``), and
      a pedestrian-designated zone also yields its base (``nc3p`` -> ``nc3``), so the many ways
      people write a zone match the way the documents write it.
    * A short stop-word list drops words that carry no topic ("the", "what", "how"...). It stays
      short on purpose: words such as "no" and "not" change the meaning of zoning questions.
    * Light suffix stemming of plain words (plural -s/-es/-ies, -ing, a final silent -e), so
      "setbacks"/"setback" and "zoning"/"zone" meet; identifiers are never stemmed. A full
      Porter stemmer would conflate more aggressively than a small legal corpus needs.

Each ``##`` section of a document is one passage; its text is indexed together with the
document title and the section heading, since headings carry the section numbers and topics.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from selador.knowledge.base import KnowledgeBase, KnowledgeBaseError, Passage

DOCUMENTS_PACKAGE = "selador.knowledge.documents"

# Okapi BM25 parameters: the usual defaults. k1 bounds how much repeating a term helps; b sets how
# strongly long passages are penalised. Passages here are one section each and similar in length.
DEFAULT_K1 = 1.5
DEFAULT_B = 0.75

# A word block is easier to review than 65 one-word lines, hence the noqa.
_STOP_WORDS = frozenset(
    """
    a an and any are as at be been being but by can could did do does for from had has have how
    i if in into is it its me my of on or our should so such than that the their them then there
    these they this those to was we were what when where which who why will with would you your
    """.split()  # noqa: SIM905
)

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_SPACED_ZONE = re.compile(r"\b(nr|lr|nc|sf)[\s\-]+(\d)\b")
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
_PEDESTRIAN_ZONE = re.compile(r"^(nc[123]|c[12])p$")
_HAS_LETTER_AND_DIGIT = re.compile(r"^(?=.*[a-z])(?=.*\d)")
_VOWELS = frozenset("aeiouy")


def _stem(word: str) -> str:
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
        stem = word[:-3]
        if _VOWELS.intersection(stem):
            # "setting" -> "sett" -> "set", "permitting" -> "permit"; "ll"/"ss" are real endings.
            if stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]
            word = stem
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
        yield pedestrian.group(1)


def tokenize(text: str) -> list[str]:
    """Turn text into index terms; see the module docstring for the rules and their reasons.

    Args:
        text: Document or query text.

    Returns:
        The terms in text order (with repeats, which BM25 counts).
    """
    lowered = _THOUSANDS.sub("", text.lower())
    lowered = _SPACED_ZONE.sub(r"\1\2", lowered)
    terms: list[str] = []
    for token in _TOKEN.findall(lowered):
        if token in _STOP_WORDS or (len(token) == 1 and token.isalpha()):
            continue
        for term in _expand(token):
            terms.append(_stem(term))
    return terms


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


class Bm25Index:
    """An Okapi BM25 index over pre-tokenized passages.

    ``score(D, Q) = sum over distinct terms t of Q of
    idf(t) * f(t, D) * (k1 + 1) / (f(t, D) + k1 * (1 - b + b * |D| / avgdl))`` with
    ``idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))``, the non-negative form used by Lucene, so a
    term found in most passages still adds a little rather than subtracting.
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
        self.k1 = k1
        self.b = b
        self.size = len(passages)
        self.lengths = [len(terms) for terms in passages]
        self.average_length = (sum(self.lengths) / self.size) if self.size else 0.0
        self._postings: dict[str, list[tuple[int, int]]] = {}
        for position, terms in enumerate(passages):
            for term, count in Counter(terms).items():
                self._postings.setdefault(term, []).append((position, count))

    def idf(self, term: str) -> float:
        """Inverse document frequency of ``term`` (0 when no passage contains it)."""
        postings = self._postings.get(term)
        if not postings:
            return 0.0
        found = len(postings)
        return math.log(1.0 + (self.size - found + 0.5) / (found + 0.5))

    def scores(self, query_terms: Iterable[str]) -> dict[int, float]:
        """Score every passage sharing at least one term with the query.

        Args:
            query_terms: Query terms; repeats are counted once.

        Returns:
            Passage position to score, for the passages that match.
        """
        totals: dict[int, float] = {}
        if not self.average_length:
            return totals
        for term in dict.fromkeys(query_terms):
            postings = self._postings.get(term)
            if not postings:
                continue
            idf = self.idf(term)
            for position, frequency in postings:
                norm = self.k1 * (1.0 - self.b + self.b * self.lengths[position] / self.average_length)
                gain = idf * frequency * (self.k1 + 1.0) / (frequency + norm)
                totals[position] = totals.get(position, 0.0) + gain
        return totals


@dataclass(frozen=True)
class _Entry:
    document: Document
    section: Section


class LocalKnowledgeBase(KnowledgeBase):
    """BM25 search over the bundled documents (or over documents given by a test).

    The index is built on the first search and kept for the life of the instance; the factory
    keeps one instance per container, so warm invocations reuse it.
    """

    name = "bundled"

    def __init__(
        self, documents: Sequence[Document] | None = None, *, k1: float = DEFAULT_K1, b: float = DEFAULT_B
    ) -> None:
        """Create the knowledge base; nothing is read or indexed until the first search.

        Args:
            documents: Documents to search; ``None`` means the bundled documents.
            k1: BM25 term-frequency saturation.
            b: BM25 length normalisation.
        """
        self._documents = tuple(documents) if documents is not None else None
        self._k1 = k1
        self._b = b
        self._lock = threading.Lock()
        self._entries: tuple[_Entry, ...] | None = None
        self._index: Bm25Index | None = None

    def _ensure_index(self) -> tuple[tuple[_Entry, ...], Bm25Index]:
        with self._lock:
            if self._entries is None or self._index is None:
                try:
                    documents = self._documents if self._documents is not None else load_bundled_documents()
                except (OSError, ValueError, ModuleNotFoundError) as exc:
                    raise KnowledgeBaseError("the bundled knowledge base could not be loaded") from exc
                entries = tuple(_Entry(doc, section) for doc in documents for section in doc.sections)
                index = Bm25Index(
                    [
                        tokenize(f"{e.document.title}\n{e.section.heading or ''}\n{e.section.text}")
                        for e in entries
                    ],
                    k1=self._k1,
                    b=self._b,
                )
                self._entries, self._index = entries, index
            return self._entries, self._index

    def search(self, query: str, limit: int = 5) -> list[Passage]:
        """Return up to ``limit`` passages sharing terms with ``query``, best first.

        Passages with equal scores keep document order (file name, then section order), so the
        result is fully deterministic. A query with no searchable terms returns nothing.

        Args:
            query: Free-text question or keywords.
            limit: Maximum number of passages; below 1 returns nothing.

        Returns:
            The ranked passages; ``score`` is the BM25 score.

        Raises:
            KnowledgeBaseError: when the bundled documents cannot be loaded.
        """
        if limit < 1:
            return []
        terms = tokenize(query)
        if not terms:
            return []
        entries, index = self._ensure_index()
        ranked = sorted(index.scores(terms).items(), key=lambda item: (-item[1], item[0]))[:limit]
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
