"""The executor: takes a pending run once, holds its claims for as long as it can live, ends it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from selador.deps import Dependencies
from selador.protocol import QueryRequest, ResultData, ResultFrame
from selador.runs.executor import execute
from selador.runs.model import Started
from selador.runs.service import Runs
from selador.settings import Settings
from selador.store.sqlite import SqliteStore


class Context:
    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._end - time.monotonic()) * 1000)


class Quiet:
    def __call__(self, endpoint: str) -> Quiet:
        return self

    def post(self, connection_id: str, data: bytes) -> None:
        pass


def setup(tmp_path: Path, claim_ttl: int) -> tuple[SqliteStore, Dependencies, Started, QueryRequest]:
    store = SqliteStore(str(tmp_path / "x.sqlite3"))
    deps = Dependencies(
        settings=Settings(run_claim_ttl_seconds=claim_ttl, limit_concurrent_per_connection=1),
        store_factory=lambda _: store,
        management_factory=Quiet(),
    )
    request = QueryRequest(question="What is the FAR in LR2?", request_id="q-1")
    started = Runs(deps).start(request, principal=None, scope="c:c1", limit_subject="c1", connection_id="c1")
    assert isinstance(started, Started) and len(started.run.claims) == 2
    return store, deps, started, request


def claim_expiries(store: SqliteStore) -> list[float]:
    with store._lock:
        return [row[0] for row in store._conn.execute("SELECT expires_at FROM claims").fetchall()]


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """Replaces the agent with one that records the claims' expiry while it runs."""
    seen: list[list[float]] = []

    def run_query(request: Any, sink: Any, **kwargs: Any) -> None:
        seen.append(claim_expiries(sink._store))
        data = ResultData(content="ok", agent="rag", query_type="general", tools_available=0, tools_used=0)
        sink.send(ResultFrame(data=data))

    monkeypatch.setattr("selador.agents.orchestrator.run_query", run_query)
    return seen


def test_claims_shorter_than_the_invocation_are_renewed_for_its_whole_life(
    tmp_path: Path, agent: list[list[float]]
) -> None:
    store, deps, started, request = setup(tmp_path, claim_ttl=60)
    assert max(claim_expiries(store)) < time.time() + 61
    assert execute(deps, Context(900), started.run.run_id, request) is True
    (during,) = agent
    assert len(during) == 2 and min(during) >= time.time() + 900  # the invocation plus the margin
    assert claim_expiries(store) == []  # released when the run ended


def test_claims_that_already_outlast_the_invocation_are_left_alone(
    tmp_path: Path, agent: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, deps, started, request = setup(tmp_path, claim_ttl=960)
    before = sorted(claim_expiries(store))
    renewed: list[str] = []
    monkeypatch.setattr(store, "renew", lambda key, *a, **k: renewed.append(key) or True)
    assert execute(deps, Context(60), started.run.run_id, request) is True
    assert renewed == [] and sorted(agent[0]) == before


def test_a_run_is_executed_once(tmp_path: Path, agent: list[list[float]]) -> None:
    store, deps, started, request = setup(tmp_path, claim_ttl=960)
    assert execute(deps, Context(60), started.run.run_id, request) is True
    assert execute(deps, Context(60), started.run.run_id, request) is False  # a second delivery
    assert len(agent) == 1
    run = store.get_run(started.run.run_id)
    assert run is not None and run.status == "succeeded"
