"""selador.metrics: what one invocation writes, whatever it adds."""

from __future__ import annotations

import pytest

from selador.metrics import InvocationMetrics, Unit
from selador.settings import Settings


def test_many_values_never_make_powertools_print_early(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = InvocationMetrics("job", invocation="req-1")
    for _ in range(150):
        metrics.add("ThrottledPosts", Unit.Count, 1, route="job")
        metrics.add("TimeToFirstDelta", Unit.Milliseconds, 12.5, agent="rag")
    assert capsys.readouterr().out == "", "nothing may be written before the flush"
    documents = metrics.documents()
    counts = [d for d in documents if "ThrottledPosts" in d]
    assert [d["ThrottledPosts"] for d in counts] == [[150.0]], "counts are summed into one value"
    latencies = [d["TimeToFirstDelta"] for d in documents if "TimeToFirstDelta" in d]
    assert [len(v) for v in latencies] == [99, 51], "at most 99 values of a metric per document"
    assert all(d["invocation"] == "req-1" for d in documents)
    assert metrics.flush(Settings(metrics_output="off")) == []
    assert capsys.readouterr().out == ""
