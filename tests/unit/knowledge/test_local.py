import math
import re

import pytest

from selador.knowledge import KnowledgeBase, Passage
from selador.knowledge.local import (
    Bm25Index,
    Document,
    LocalKnowledgeBase,
    Section,
    load_bundled_documents,
    parse_document,
    tokenize,
)

CODE_REFERENCE = re.compile(r"\d{2}\.\d{2,3}|\bR\d{3}|\bSBC\b|\bSEC\b|\bSMC\b")


@pytest.fixture(scope="module")
def kb() -> LocalKnowledgeBase:
    return LocalKnowledgeBase()


# --- the bundled documents -------------------------------------------------------------------


def test_bundled_documents_parse_with_title_source_and_id() -> None:
    documents = load_bundled_documents()
    assert 8 <= len(documents) <= 12
    assert len({d.document_id for d in documents}) == len(documents)
    for document in documents:
        assert document.title
        assert document.source.startswith("https://")
        assert document.document_id
        assert len(document.sections) >= 3, document.document_id


def test_bundled_documents_are_300_to_900_words() -> None:
    for document in load_bundled_documents():
        words = sum(len((s.heading or "").split()) + len(s.text.split()) for s in document.sections)
        assert 300 <= words <= 900, (document.document_id, words)


def test_section_headings_carry_code_section_numbers() -> None:
    headings = [s.heading for d in load_bundled_documents() for s in d.sections if s.heading]
    cited = [h for h in headings if CODE_REFERENCE.search(h)]
    assert len(cited) >= 0.9 * len(headings)
    for document in load_bundled_documents():
        assert sum(1 for s in document.sections if s.heading and CODE_REFERENCE.search(s.heading)) >= 3


def test_required_topics_are_covered() -> None:
    ids = {d.document_id for d in load_bundled_documents()}
    text = "\n".join(s.heading or "" for d in load_bundled_documents() for s in d.sections)
    for needle in (
        "23.44.041",
        "23.45.510",
        "23.45.514",
        "23.45.518",
        "23.47A",
        "R310",
        "R311.7",
        "R312",
        "R314",
        "SBC 106.2",
        "22.900",
        "25.09",
        "23.73",
        "23.41.004",
    ):
        assert needle in text, needle
    assert "capitol-hill-neighborhood-note" in ids


def test_bundled_documents_are_cached() -> None:
    assert load_bundled_documents() is load_bundled_documents()


# --- parsing ---------------------------------------------------------------------------------


def test_parse_document_fenced_front_matter_and_sections() -> None:
    doc = parse_document(
        "---\ntitle: 'Quoted title'\nsource: https://example.org/a\ndocument_id: doc-a\n---\n"
        "Intro text.\n\n## First (SMC 1.2)\nOne.\n### Sub\nStill one.\n\n## Empty\n\n## Second\nTwo.\n"
    )
    assert (doc.document_id, doc.title, doc.source) == ("doc-a", "Quoted title", "https://example.org/a")
    assert doc.sections == (
        Section(None, "Intro text."),
        Section("First (SMC 1.2)", "One.\n### Sub\nStill one."),
        Section("Second", "Two."),
    )


def test_parse_document_unfenced_front_matter_h1_title_and_default_id() -> None:
    doc = parse_document(
        "source: https://example.org/b\n\n# Heading title\n\n## Only\nBody.", default_id="file-b"
    )
    assert (doc.document_id, doc.title) == ("file-b", "Heading title")
    assert [s.heading for s in doc.sections] == ["Only"]


@pytest.mark.parametrize(
    "text",
    [
        "title: T\ndocument_id: x\n\n## A\nbody",
        "source: https://x\ndocument_id: x\n\n## A\nbody",
        "title: T\nsource: s\n",
    ],
)
def test_parse_document_requires_title_source_and_id(text: str) -> None:
    with pytest.raises(ValueError):
        parse_document(text)


# --- tokenizer -------------------------------------------------------------------------------


def test_tokenize_keeps_code_sections_and_zone_codes_whole() -> None:
    terms = tokenize("See SMC 23.45.510 for LR2 and R310.2.1.")
    assert "23.45.510" in terms
    assert "lr2" in terms
    assert "r310.2.1" in terms
    # parents of dotted sections are added; a trailing full stop is not part of a token
    assert {"23.45", "r310.2", "r310"} <= set(terms)
    assert "smc" in terms and "see" in terms


def test_tokenize_joins_spaced_zone_codes_and_pedestrian_zones() -> None:
    assert tokenize("LR-2") == tokenize("lr 2") == ["lr2"]
    assert tokenize("NC3P-75") == ["nc3p", "nc3", "75"]


def test_tokenize_drops_stop_words_and_single_letters() -> None:
    assert tokenize("What is the height of a house in I zone?") == ["height", "hous", "zon"]


def test_tokenize_light_stemming() -> None:
    assert tokenize("setbacks setback") == ["setback", "setback"]
    assert tokenize("zoning zones zone") == ["zon", "zon", "zon"]
    assert tokenize("stories inches fees permitting") == ["story", "inch", "fee", "permit"]
    # words ending in ss/us/is are not plurals; numbers are never stemmed
    assert tokenize("class bonus analysis 1,000 5000s") == ["class", "bonus", "analysis", "1000", "5000s"]


def test_tokenize_removes_thousands_separators() -> None:
    assert tokenize("5,000 square feet") == tokenize("5000 square feet")


# --- BM25 ------------------------------------------------------------------------------------


def test_bm25_matches_hand_computed_values() -> None:
    # N = 3, lengths 2, 3, 2 -> avgdl = 7/3; k1 = 1.5, b = 0.75.
    index = Bm25Index([["apple", "banana"], ["apple", "apple", "cherry"], ["cherry", "date"]], k1=1.5, b=0.75)
    # "banana" is in 1 of 3 passages: idf = ln(1 + (3 - 1 + 0.5) / (1 + 0.5)) = ln(8/3) = 0.98083
    assert index.idf("banana") == pytest.approx(math.log(8 / 3))
    # "apple" is in 2 of 3: idf = ln(1 + 1.5 / 2.5) = ln(1.6) = 0.47000
    assert index.idf("apple") == pytest.approx(math.log(1.6))
    assert index.idf("missing") == 0.0
    # d0: tf 1, |d| 2: norm = 1.5 * (0.25 + 0.75 * 2 / (7/3)) = 1.3392857
    #     apple:  0.4700036 * 1 * 2.5 / (1 + 1.3392857) = 0.5022940
    #     banana: 0.9808293 * 1 * 2.5 / (1 + 1.3392857) = 1.0482145
    # d1: tf 2, |d| 3: norm = 1.5 * (0.25 + 0.75 * 3 / (7/3)) = 1.8214286
    #     apple:  0.4700036 * 2 * 2.5 / (2 + 1.8214286) = 0.6149580
    assert index.scores(["apple"]) == pytest.approx({0: 0.5022940, 1: 0.6149580}, abs=1e-6)
    assert index.scores(["banana"]) == pytest.approx({0: 1.0482145}, abs=1e-6)
    scores = index.scores(["apple", "banana", "apple"])  # a repeated query term counts once
    assert scores == pytest.approx({0: 0.5022940 + 1.0482145, 1: 0.6149580}, abs=1e-6)
    assert index.scores(["zzz"]) == {}


def test_bm25_empty_index() -> None:
    assert Bm25Index([]).scores(["apple"]) == {}


def _doc(doc_id: str, *sections: tuple[str, str]) -> Document:
    return Document(
        doc_id, f"Title {doc_id}", f"https://example.org/{doc_id}", tuple(Section(h, t) for h, t in sections)
    )


def test_search_over_custom_documents_ranks_and_breaks_ties_in_document_order() -> None:
    kb = LocalKnowledgeBase(
        [
            _doc("a", ("Same", "gravel driveway"), ("Other", "unrelated words here")),
            _doc("b", ("Same", "gravel driveway"), ("Best", "gravel gravel gravel")),
        ]
    )
    results = kb.search("gravel")
    assert [(p.document_id, p.section) for p in results] == [("b", "Best"), ("a", "Same"), ("b", "Same")]
    assert results[1].score == results[2].score
    assert results[0] == Passage(
        "gravel gravel gravel", "Title b", "https://example.org/b", results[0].score, "Best", "b"
    )


# --- search over the bundled corpus ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "document_id", "section"),
    [
        ("lot coverage NR3", "smc-23-44-neighborhood-residential", "lot coverage"),
        ("egress window", "seattle-residential-building-code", "R310"),
        ("23.45.510", "smc-23-45-lowrise", "23.45.510"),
        ("How tall can I build in LR2?", "smc-23-45-lowrise", "23.45.514"),
        ("LR setbacks 23.45.518", "smc-23-45-lowrise", "23.45.518"),
        ("backyard cottage DADU size", "smc-23-44-neighborhood-residential", "23.44.041"),
        ("stair riser and tread", "seattle-residential-building-code", "R311.7"),
        ("guard height on a deck", "seattle-residential-building-code", "R312"),
        ("where do smoke alarms go", "seattle-residential-building-code", "R314"),
        ("do I need a permit to build a fence", "sdci-building-permits", "106.2"),
        ("how much are permit fees", "sdci-building-permits", "22.900"),
        ("NC3-75 floor area ratio", "smc-23-47a-neighborhood-commercial", "23.47A.013"),
        ("Pike/Pine conservation overlay", "capitol-hill-neighborhood-note", "23.73"),
        (
            "steep slope landslide geotechnical report",
            "smc-25-09-environmentally-critical-areas",
            "Steep slope",
        ),
        ("when is design review required", "smc-23-76-land-use-design-review", "23.41.004"),
        ("heat pump requirement energy code", "seattle-energy-code", "Heat pumps"),
        ("highrise tower FAR", "smc-23-45-midrise-highrise", "Highrise"),
        ("midrise height limit", "smc-23-45-midrise-highrise", "Height in MR"),
    ],
)
def test_known_queries_rank_the_right_section_first(
    kb: LocalKnowledgeBase, query: str, document_id: str, section: str
) -> None:
    top = kb.search(query, limit=3)[0]
    assert top.document_id == document_id
    assert top.section is not None and section.lower() in top.section.lower()


def test_limit_is_respected_and_scores_descend(kb: LocalKnowledgeBase) -> None:
    for limit in (1, 2, 5, 20):
        results = kb.search("permit height setback zone floor area", limit=limit)
        assert len(results) == limit
        scores = [p.score for p in results]
        assert scores == sorted(scores, reverse=True)
        assert all(s > 0 for s in scores)


def test_limit_below_one_and_unsearchable_queries_return_nothing(kb: LocalKnowledgeBase) -> None:
    assert kb.search("egress window", limit=0) == []
    assert kb.search("") == []
    assert kb.search("   ?! the of a ") == []
    assert kb.search("xylophone quasar") == []


def test_search_is_deterministic_across_instances(kb: LocalKnowledgeBase) -> None:
    query = "what zone allows apartments near Capitol Hill"
    assert kb.search(query, 10) == kb.search(query, 10) == LocalKnowledgeBase().search(query, 10)


def test_passages_carry_document_metadata(kb: LocalKnowledgeBase) -> None:
    documents = {d.document_id: d for d in load_bundled_documents()}
    for passage in kb.search("permit zoning code height", limit=15):
        document = documents[passage.document_id]
        assert passage.title == document.title
        assert passage.source == document.source
        assert any(s.heading == passage.section and s.text == passage.text for s in document.sections)


def test_index_is_built_once_and_reused() -> None:
    kb = LocalKnowledgeBase()
    assert kb._index is None  # nothing is read until the first search
    kb.search("egress")
    index = kb._index
    kb.search("stairs")
    assert index is not None and kb._index is index


def test_is_a_knowledge_base_named_bundled(kb: LocalKnowledgeBase) -> None:
    assert isinstance(kb, KnowledgeBase)
    assert kb.name == "bundled"
