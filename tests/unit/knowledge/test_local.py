import math
import re

import pytest

from selador.knowledge import KnowledgeBase, Passage
from selador.knowledge.analysis import analyse
from selador.knowledge.local import (
    HEADING_WEIGHT,
    IMPLIED_WEIGHT,
    TITLE_WEIGHT,
    Bm25Index,
    Document,
    FieldedBm25Index,
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
    # a numbered zone also implies its family (lr2 -> lr), a pedestrian zone its base and family
    assert tokenize("LR-2") == tokenize("lr 2") == ["lr2", "lr"]
    assert tokenize("NC3P-75") == ["nc3p", "nc3", "nc", "75"]


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


# --- normalisation: zone names and codes, units, acronyms --------------------------------------


@pytest.mark.parametrize(
    ("forms", "terms"),
    [
        (["LR2", "LR-2", "lr 2", "Lowrise 2", "lowrise-2", "Lowrise2", "low-rise 2"], ["lr2", "lr"]),
        (["LR", "Lowrise", "lowrise", "low-rise", "Low rise", "lowrises"], ["lr"]),
        (["MR", "Midrise", "mid-rise", "Mid rise"], ["mr"]),
        (["HR", "Highrise", "high-rise", "High rise"], ["hr"]),
        (["NR", "Neighborhood Residential", "neighbourhood residential"], ["nr"]),
        (["NR3", "NR-3", "Neighborhood Residential 3", "neighborhood residential-3"], ["nr3", "nr"]),
        (["NC", "Neighborhood Commercial"], ["nc"]),
        (["NC2", "NC 2", "Neighborhood Commercial 2"], ["nc2", "nc"]),
    ],
)
def test_zone_names_and_codes_normalise_to_the_same_terms(forms: list[str], terms: list[str]) -> None:
    for form in forms:
        assert tokenize(form) == terms, form


@pytest.mark.parametrize(
    ("forms", "zone"),
    [
        (["SF 5000", "SF-5000", "sf5000", "Single Family 5000", "single-family 5000"], "nr3"),
        (["SF 7200", "Single Family 7200"], "nr2"),
        (["SF 9600", "single family 9600"], "nr1"),
    ],
)
def test_former_zone_names_map_to_their_nr_zone_and_keep_their_own_term(forms: list[str], zone: str) -> None:
    number = zone[-1]
    former = {"3": "sf5000", "2": "sf7200", "1": "sf9600"}[number]
    for form in forms:
        assert tokenize(form) == [former, zone, "nr"], form


def test_single_family_zones_are_nr_zones_but_single_family_houses_are_not() -> None:
    assert "nr" in tokenize("Did Seattle change the single-family zones?")
    assert "nr" in tokenize("single family zoning")
    assert "nr" not in tokenize("single-family houses")


def test_zone_names_match_codes_both_ways_in_search() -> None:
    kb = LocalKnowledgeBase(
        [
            _doc("names", ("Building height in Midrise zones", "Midrise buildings may be 80 feet.")),
            _doc("codes", ("Setbacks in LR2", "LR2 setbacks are 7 feet.")),
            _doc("other", ("Unrelated", "Height and setbacks of fences.")),
        ]
    )
    assert kb.search("MR height")[0].document_id == "names"  # code in the query, name in the text
    assert kb.search("lowrise 2 setbacks")[0].document_id == "codes"  # name in the query, code in the text
    assert kb.search("SF 5000") == kb.search("sf5000") == []  # a former name matches only NR3 text


def test_former_name_finds_the_rename_section_in_the_bundled_corpus(kb: LocalKnowledgeBase) -> None:
    for query in ("SF 5000", "single family 5000", "what is NR3 formerly"):
        top = kb.search(query, 1)[0]
        assert top.section is not None and top.section.startswith("Zone names and purpose"), query


@pytest.mark.parametrize(
    "form",
    [
        "5,000 sq ft",
        "5000 sq. ft.",
        "5000 square feet",
        "5,000-square-foot",
        "5000 sf",
        "5000 SF",
        "5000sqft",
        "5000 ft2",
    ],
)
def test_area_units_normalise_to_sqft(form: str) -> None:
    assert tokenize(form) == ["5000", "sqft"]


def test_other_units_and_what_is_not_a_unit() -> None:
    assert tokenize("35%") == tokenize("35 percent") == ["35", "percent"]
    assert tokenize("30 feet") == tokenize("30 ft") == tokenize("30-foot") == ["30", "ft"]
    # "SF" before a number is a former zone, not square feet
    assert "sqft" not in tokenize("SF 5000")


def test_acronym_plurals_and_stop_word_contractions() -> None:
    assert tokenize("ADUs and DADUs") == tokenize("ADU and DADU") == ["adu", "dadu"]
    assert tokenize("ECAs") == ["eca"]
    assert tokenize("whats the height, theres a slope") == ["height", "slop"]


def test_ing_undoubling_keeps_three_letters() -> None:
    assert tokenize("adding setting permitting") == ["add", "set", "permit"]


def test_implied_terms_are_added_once_per_text_explicit_mentions_always() -> None:
    assert tokenize("NC1, NC2 and NC3") == ["nc1", "nc", "nc2", "nc3"]
    assert tokenize("NC zones: NC2 and NC zones") == ["nc", "zon", "nc2", "nc", "nc", "zon"]
    assert tokenize("23.45.510 and 23.45.514") == ["23.45.510", "23.45", "23.45.514"]
    # each text starts afresh: documents are analysed field by field, a query as a whole
    assert [terms for _, terms in analyse("LR2 LR3")] == [["lr2", "lr"], ["lr3"]]


def test_query_terms_weigh_implied_identifiers_less(kb: LocalKnowledgeBase) -> None:
    assert kb.query_terms("LR2 setbacks") == {"lr2": 1.0, "lr": IMPLIED_WEIGHT, "setback": 1.0}
    # a term the query names itself keeps its full weight
    assert kb.query_terms("LR2 and other LR zones")["lr"] == 1.0
    assert kb.query_terms("SMC 23.45.510") == {"smc": 1.0, "23.45.510": 1.0, "23.45": IMPLIED_WEIGHT}


# --- typo tolerance --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "term"),
    [
        ("setbaks", "setback"),
        ("hieght", "height"),
        ("hight", "height"),
        ("maximim", "maximum"),
        ("egres", "egress"),
        ("parkng", "park"),
        ("railngs", "rail"),  # through its stem: "railngs" is 3 edits from "rail", "railng" 2
    ],
)
def test_misspelt_query_words_are_corrected(kb: LocalKnowledgeBase, typo: str, term: str) -> None:
    assert kb.query_terms(typo) == {term: 1.0}


def test_typo_queries_find_the_right_section(kb: LocalKnowledgeBase) -> None:
    top = kb.search("setbaks for lowrise 2 zone", 1)[0]
    assert top.section is not None and top.section.startswith("Setbacks and separations in LR zones")
    top = kb.search("egres window sill hight", 1)[0]
    assert top.section is not None and "R310" in top.section
    best_two = kb.search("whats the maximim hieght in NC2-55?", 2)
    assert any(p.section and p.section.startswith("Height limits in NC zones") for p in best_two)


def test_no_word_of_the_corpus_is_ever_corrected(kb: LocalKnowledgeBase) -> None:
    words = {
        word
        for document in load_bundled_documents()
        for text in (
            document.title,
            *(s.heading or "" for s in document.sections),
            *(s.text for s in document.sections),
        )
        for word, _ in analyse(text)
    }
    assert len(words) > 1000
    for word in words:
        expected = next(terms[0] for _, terms in analyse(word))
        assert next(iter(kb.query_terms(word))) == expected, word


def test_unknown_words_with_no_close_match_numbers_and_codes_are_left_alone(kb: LocalKnowledgeBase) -> None:
    # no corpus word within reach: the word is kept and matches nothing
    assert kb.query_terms("mortage") == {"mortag": 1.0}
    assert kb.search("mortage xylophone") == []
    # numbers and codes are never fuzzed: 23.45.519 is one edit from 23.45.518 and means another section
    assert "23.45.519" in kb.query_terms("23.45.519")
    assert kb.query_terms("lr4") == {"lr4": 1.0}
    assert kb.query_terms("5001") == {"5001": 1.0}
    # short words are not corrected ("know" is one edit from the corpus word "known")
    assert kb.query_terms("know") == {"know": 1.0}


def test_an_unknown_plural_is_searched_as_its_singular(kb: LocalKnowledgeBase) -> None:
    assert kb.query_terms("how many adus") == {"many": 1.0, "adu": 1.0}


def test_typo_correction_can_be_switched_off() -> None:
    kb = LocalKnowledgeBase(correct_typos=False)
    assert kb.query_terms("setbaks") == {"setbak": 1.0}
    assert kb.search("setbaks") == []


# --- field weighting -------------------------------------------------------------------------


def test_fielded_bm25_matches_hand_computed_values() -> None:
    # Two fields, weights 2 and 1; k1 = 1.5, b = 0.75. Field 0 lengths 1, 0 (avg 0.5); field 1
    # lengths 2, 2 (avg 2).
    index = FieldedBm25Index([(["gravel"], ["gravel", "road"]), ([], ["gravel", "path"])], weights=(2.0, 1.0))
    idf_gravel = math.log(1 + 0.5 / 2.5)  # in both passages
    idf_road = math.log(2.0)  # in one of two
    # field 0 of passage 0: norm = 1.5 * (0.25 + 0.75 * 1 / 0.5) = 2.625 -> 2 * 2.5 / 3.625
    heading_gain = 2 * 2.5 / 3.625
    # field 1, either passage: norm = 1.5 * (0.25 + 0.75 * 2 / 2) = 1.5 -> 2.5 / 2.5 = 1
    assert index.scores(["gravel"]) == pytest.approx({0: idf_gravel * (heading_gain + 1.0), 1: idf_gravel})
    assert index.scores(["road"]) == pytest.approx({0: idf_road})
    # query weights multiply a term's contribution
    assert index.scores({"gravel": 0.5, "road": 1.0}) == pytest.approx(
        {0: 0.5 * idf_gravel * (heading_gain + 1.0) + idf_road, 1: 0.5 * idf_gravel}
    )
    with pytest.raises(ValueError):
        FieldedBm25Index([(["a"],)], weights=(1.0, 1.0))


def test_bm25_is_the_one_field_case_of_fielded_bm25() -> None:
    passages = [["apple", "banana"], ["apple", "apple", "cherry"], ["cherry", "date"]]
    fielded = FieldedBm25Index([(p,) for p in passages], weights=(1.0,))
    for query in (["apple"], ["banana", "cherry"], ["date", "apple"]):
        assert fielded.scores(query) == pytest.approx(Bm25Index(passages).scores(query))


def test_a_heading_match_outranks_the_same_match_in_the_body() -> None:
    documents = [
        _doc("a", ("Driveways", "Paving rules for gravel surfaces and slopes.")),
        _doc("b", ("Gravel", "Paving rules for driveway surfaces and slopes.")),
    ]
    assert [p.document_id for p in LocalKnowledgeBase(documents).search("gravel")] == ["b", "a"]
    # the order comes from the heading weight: without it, only the body match counts
    unweighted = LocalKnowledgeBase(documents, heading_weight=0.0)
    assert [p.document_id for p in unweighted.search("gravel")] == ["a"]


def test_title_matches_count_but_a_heading_outweighs_them() -> None:
    documents = [
        Document("t", "Gravel guide", "https://example.org/t", (Section("Paving", "Rules for surfaces."),)),
        Document("h", "Paving guide", "https://example.org/h", (Section("Gravel", "Rules for surfaces."),)),
        Document("n", "Paving guide", "https://example.org/n", (Section("Paving", "Rules for surfaces."),)),
    ]
    assert TITLE_WEIGHT < HEADING_WEIGHT
    assert [p.document_id for p in LocalKnowledgeBase(documents).search("gravel")] == ["h", "t"]


def test_heading_weighting_ranks_the_topic_section_of_the_bundled_corpus(kb: LocalKnowledgeBase) -> None:
    for query, heading in (
        ("setbacks in LR zones", "Setbacks and separations in LR zones"),
        ("SEPA review", "SEPA environmental review"),
        ("how tall can buildings be in midrise zones", "Height in MR zones"),
    ):
        top = kb.search(query, 1)[0]
        assert top.section is not None and top.section.startswith(heading), query


# --- determinism -----------------------------------------------------------------------------


def test_typo_corrected_and_normalised_searches_are_deterministic(kb: LocalKnowledgeBase) -> None:
    for query in ("setbaks for lowrise 2 zone", "hieght NC2-55", "SF 5000 lot of 5,000 sq ft", "egres"):
        first = kb.search(query, 10)
        assert first == kb.search(query, 10) == LocalKnowledgeBase().search(query, 10)
        assert kb.query_terms(query) == LocalKnowledgeBase().query_terms(query)
