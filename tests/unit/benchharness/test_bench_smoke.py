"""The benchmark harness's own helpers: statistics and the results file (no timings asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# `bench/` lives at the repository root, which the pytest entry point does not put on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.results import SCHEMA_VERSION, judged, skipped, table, write
from bench.stats import percentile, ratio_samples, summarize


def test_percentile_interpolates_between_ranks() -> None:
    samples = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(samples, 50) == 3.0
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 5.0
    assert percentile(samples, 25) == 2.0
    assert percentile([10.0, 20.0], 99) == pytest.approx(19.9)


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 101)


def test_summarize_reports_median_and_spread() -> None:
    summary = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert summary == {"n": 5, "median": 3.0, "p25": 2.0, "p75": 4.0, "p99": 4.96, "min": 1.0, "max": 5.0}


def test_ratio_samples_pairs_runs_and_skips_zero_baselines() -> None:
    assert ratio_samples([2.0, 3.0, 4.0], [1.0, 0.0, 2.0]) == [2.0, 2.0]


def test_judged_and_skipped_statuses() -> None:
    assert judged("a", 1.2, "x", 1.3).status == "PASS"
    assert judged("a", 1.4, "x", 1.3).status == "FAIL"
    skip = skipped("b", "MiB", 30.0, "no build")
    assert skip.status == "SKIP"
    assert skip.ratio is None


def test_results_file_schema_and_table(tmp_path: Path) -> None:
    results = [
        judged("cold_start.connect", 0.9, "x", 1.3, detail={"n": 7}),
        skipped("bundle.zipped", "MiB", 30, "why"),
    ]
    path = tmp_path / "results.json"
    write(results, path, argv=["--quick"], seconds=1.5)
    document = json.loads(path.read_text())
    assert document["schema"] == SCHEMA_VERSION
    assert document["argv"] == ["--quick"]
    first = document["results"][0]
    assert {"name", "measured", "unit", "target", "op", "status", "ratio", "detail", "note"} <= set(first)
    assert first["ratio"] == pytest.approx(0.9 / 1.3, abs=1e-4)
    rendered = table(results)
    assert "cold_start.connect" in rendered
    assert "SKIP" in rendered
