import dataclasses
import json
from importlib import resources

import pytest

from selador.knowledge.local import load_bundled_documents
from selador.knowledge.zoning import ZoneStandard, load_zoning_standards, lookup_zone, normalize_zone_code

FIELDS = {
    "name",
    "max_height_ft",
    "far",
    "max_lot_coverage",
    "front_setback_ft",
    "side_setback_ft",
    "rear_setback_ft",
    "min_lot_size_sqft",
    "notes",
    "source",
}


def _document_text(document_id: str) -> str:
    (document,) = [d for d in load_bundled_documents() if d.document_id == document_id]
    return "\n".join(s.text for s in document.sections)


def test_json_file_has_exactly_the_documented_fields() -> None:
    raw = json.loads(resources.files("selador.knowledge.data").joinpath("zoning_standards.json").read_text())
    assert raw
    for code, entry in raw.items():
        assert set(entry) == FIELDS, code
    assert {f.name for f in dataclasses.fields(ZoneStandard)} == FIELDS | {"code"}


def test_expected_zones_are_present() -> None:
    table = load_zoning_standards()
    for code in (
        "NR1",
        "NR2",
        "NR3",
        "LR1",
        "LR2",
        "LR3",
        "MR",
        "HR",
        "NC1-30",
        "NC2-40",
        "NC2-55",
        "NC3-75",
    ):
        assert code in table
        assert table[code].code == code


def test_values_are_in_range() -> None:
    for code, zone in load_zoning_standards().items():
        assert zone.name and zone.notes
        assert zone.source.startswith("SMC "), code
        assert zone.max_height_ft is None or 20 <= zone.max_height_ft <= 500
        assert zone.far is None or 0 < zone.far <= 20
        assert zone.max_lot_coverage is None or 0 < zone.max_lot_coverage <= 1
        assert min(zone.front_setback_ft, zone.side_setback_ft, zone.rear_setback_ft) >= 0
        assert zone.min_lot_size_sqft is None or zone.min_lot_size_sqft > 0


@pytest.mark.parametrize(("code", "min_lot"), [("NR1", 9600), ("NR2", 7200), ("NR3", 5000)])
def test_neighborhood_residential_standards(code: str, min_lot: int) -> None:
    zone = load_zoning_standards()[code]
    assert zone.max_height_ft == 30
    assert zone.max_lot_coverage == 0.35
    assert (zone.front_setback_ft, zone.side_setback_ft, zone.rear_setback_ft) == (20, 5, 25)
    assert zone.min_lot_size_sqft == min_lot
    assert "23.44" in zone.source


def test_multifamily_standards() -> None:
    table = load_zoning_standards()
    assert [(table[z].max_height_ft, table[z].far) for z in ("LR1", "LR2", "LR3")] == [
        (30, 1.3),
        (40, 1.4),
        (40, 1.8),
    ]
    assert "50 ft" in table["LR3"].notes and "2.3" in table["LR3"].notes
    assert (table["MR"].max_height_ft, table["MR"].far) == (80, 4.5)
    assert table["HR"].max_height_ft is None and table["HR"].far == 7
    for code in ("LR1", "LR2", "LR3", "MR", "HR"):
        assert "23.45.510" in table[code].source


def test_neighborhood_commercial_height_is_the_suffix_and_far_grows_with_height() -> None:
    nc = {code: zone for code, zone in load_zoning_standards().items() if code.startswith("NC")}
    assert len(nc) >= 5
    for code, zone in nc.items():
        assert zone.max_height_ft == float(code.split("-")[1])
        assert zone.max_lot_coverage is None
        assert "23.47A.013" in zone.source
    by_height = sorted({(z.max_height_ft, z.far) for z in nc.values() if z.far is not None})
    fars = [far for _, far in by_height]
    assert fars == sorted(fars)


def test_table_agrees_with_the_documents() -> None:
    nr = _document_text("smc-23-44-neighborhood-residential")
    assert "35 percent" in nr and "30 feet" in nr and "20 feet" in nr and "25 feet" in nr
    lr = _document_text("smc-23-45-lowrise")
    assert "1.3 in LR1, 1.4 in LR2, and 1.8 in LR3" in lr and "2.3" in lr
    mr = _document_text("smc-23-45-midrise-highrise")
    assert "MR FAR limit is 4.5" in mr and "80 feet" in mr
    nc = _document_text("smc-23-47a-neighborhood-commercial")
    for code, zone in load_zoning_standards().items():
        if code.startswith("NC"):
            height = int(zone.max_height_ft or 0)
            assert f"{zone.far} in {height} foot zones" in nc, code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("LR2", "LR2"),
        ("lr2", "LR2"),
        ("lr-2", "LR2"),
        ("lr 2", "LR2"),
        ("  LR2 (M1) ", "LR2"),
        ("nr3", "NR3"),
        ("SF 5000", "NR3"),
        ("sf-7200", "NR2"),
        ("SF9600", "NR1"),
        ("MR (M)", "MR"),
        ("hr", "HR"),
        ("NC2-55", "NC2-55"),
        ("nc2 55", "NC2-55"),
        ("NC2P-55 (M)", "NC2-55"),
        ("nc3p75", "NC3-75"),
    ],
)
def test_lookup_zone_normalizes_designations(text: str, code: str) -> None:
    zone = lookup_zone(text)
    assert zone is not None and zone.code == code
    assert normalize_zone_code(text) == code


@pytest.mark.parametrize(
    "text", ["", "   ", "C1-65", "NC2-999", "LR9", "IG1", "lot coverage", "LR3 RC", "!!"]
)
def test_lookup_zone_unknown_returns_none(text: str) -> None:
    assert lookup_zone(text) is None


def test_table_is_cached_and_callers_cannot_corrupt_it() -> None:
    first = load_zoning_standards()
    first.pop("NR3")
    first["XX"] = first["LR1"]
    second = load_zoning_standards()
    assert "NR3" in second and "XX" not in second
    assert second["LR1"] is load_zoning_standards()["LR1"]  # parsed once, entries shared
    with pytest.raises(dataclasses.FrozenInstanceError):
        second["LR1"].far = 9.0  # type: ignore[misc]
