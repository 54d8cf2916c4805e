"""selador.limits over the SQLite store with a fake clock: each limit triggers and resets."""

from __future__ import annotations

import calendar

import pytest

from selador.limits import Admission, LimitExceeded, Limits
from selador.settings import Settings
from selador.store.sqlite import SqliteStore

# 2026-03-01 12:00:10 UTC: ten seconds into a minute.
T0 = float(calendar.timegm((2026, 3, 1, 12, 0, 10)))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, tmp_path, **limits: int) -> Limits:
    store = SqliteStore(str(tmp_path / "limits.sqlite3"), now=clock)
    values = {
        "limit_concurrent_per_connection": 3,
        "limit_queries_per_minute": 1000,
        "limit_daily_queries_per_principal": 1000,
    }
    values.update(limits)
    return Limits(store, Settings(**values), now=clock)  # type: ignore[arg-type]


def test_concurrency_cap_and_release(clock: Clock, tmp_path) -> None:
    limits = make(clock, tmp_path, limit_concurrent_per_connection=3)
    running = [limits.admit("c1", None) for _ in range(3)]
    assert all(isinstance(a, Admission) and a.slot for a in running)
    refused = limits.admit("c1", None)
    assert isinstance(refused, LimitExceeded) and refused.limit == "concurrent"
    assert "concurrent limit" in refused.message and "3" in refused.message
    assert isinstance(limits.admit("c2", None), Admission), "another connection has its own slots"
    limits.finish(running[1])  # type: ignore[arg-type]
    assert isinstance(limits.admit("c1", None), Admission)


def test_a_slot_left_by_a_dead_run_expires(clock: Clock, tmp_path) -> None:
    limits = make(clock, tmp_path, limit_concurrent_per_connection=1)
    assert isinstance(limits.admit("c1", None), Admission)  # never finished
    assert isinstance(limits.admit("c1", None), LimitExceeded)
    clock.now += Settings().run_claim_ttl_seconds + 1
    assert isinstance(limits.admit("c1", None), Admission)


def test_per_minute_limit_triggers_and_resets_next_minute(clock: Clock, tmp_path) -> None:
    limits = make(clock, tmp_path, limit_queries_per_minute=20)
    for _ in range(20):
        admitted = limits.admit("c1", "alice")
        assert isinstance(admitted, Admission)
        limits.finish(admitted)
    refused = limits.admit("c1", "alice")
    assert isinstance(refused, LimitExceeded) and refused.limit == "per_minute"
    assert "per_minute limit" in refused.message and "20" in refused.message
    assert refused.retry_after == 50
    # A refusal by the rate limit holds no concurrency slot.
    assert isinstance(make(clock, tmp_path, limit_queries_per_minute=0).admit("c1", None), Admission)
    clock.now += 50
    assert isinstance(limits.admit("c1", "alice"), Admission)


def test_daily_budget_per_principal_triggers_and_resets_next_day(clock: Clock, tmp_path) -> None:
    limits = make(clock, tmp_path, limit_daily_queries_per_principal=3, limit_concurrent_per_connection=0)
    for connection in ("c1", "c2", "c3"):  # the budget follows the user across connections
        assert isinstance(limits.admit(connection, "alice"), Admission)
    refused = limits.admit("c4", "alice")
    assert isinstance(refused, LimitExceeded) and refused.limit == "daily"
    assert "daily limit" in refused.message and "3" in refused.message
    assert isinstance(limits.admit("c4", "bob"), Admission), "budgets are per principal"
    for _ in range(5):
        assert isinstance(limits.admit("c5", None), Admission), "anonymous: no principal, no budget"
    clock.now = float(calendar.timegm((2026, 3, 2, 0, 0, 1)))
    assert isinstance(limits.admit("c1", "alice"), Admission)


def test_rate_refusals_do_not_spend_the_daily_budget(clock: Clock, tmp_path) -> None:
    limits = make(clock, tmp_path, limit_queries_per_minute=1, limit_daily_queries_per_principal=2)
    assert isinstance(limits.admit("c1", "alice"), Admission)
    for _ in range(5):
        assert limits.admit("c1", "alice").limit == "per_minute"  # type: ignore[union-attr]
    assert isinstance(limits.admit("c2", "alice"), Admission), "second of two daily queries"
    assert limits.admit("c3", "alice").limit == "daily"  # type: ignore[union-attr]


def test_daily_refusal_releases_the_slot(clock: Clock, tmp_path) -> None:
    limits = make(clock, tmp_path, limit_concurrent_per_connection=1, limit_daily_queries_per_principal=1)
    first = limits.admit("c1", "alice")
    assert isinstance(first, Admission)
    limits.finish(first)
    assert limits.admit("c1", "alice").limit == "daily"  # type: ignore[union-attr]
    assert isinstance(limits.admit("c1", None), Admission), "the refused query left the slot free"


def test_zero_turns_a_limit_off(clock: Clock, tmp_path) -> None:
    limits = make(
        clock,
        tmp_path,
        limit_concurrent_per_connection=0,
        limit_queries_per_minute=0,
        limit_daily_queries_per_principal=0,
    )
    admissions = [limits.admit("c1", "alice") for _ in range(50)]
    assert all(isinstance(a, Admission) and a.slot is None for a in admissions)


def test_default_limits() -> None:
    settings = Settings()
    assert settings.limit_concurrent_per_connection == 3
    assert settings.limit_queries_per_minute == 20
    assert settings.limit_daily_queries_per_principal == 500


def test_an_asynchronous_job_releases_the_slot_its_route_claimed(context) -> None:
    from selador.deps import get_dependencies
    from selador.limits import slot_key
    from selador.protocol import QueryRequest
    from selador.runs.jobs import run_job
    from selador.runs.model import Started
    from selador.runs.service import Runs

    from .conftest import recording_handler

    with recording_handler() as client:
        deps = get_dependencies()
        store = deps.store
        request = QueryRequest(question="What is the FAR in LR2?", request_id="j-1")
        # What the invoke route does before handing off: the run holds a concurrency slot.
        started = Runs(deps).start(
            request,
            principal=None,
            scope="c:conn-1",
            limit_subject="conn-1",
            connection_id="conn-1",
            endpoint="https://api.example/production",
        )
        assert isinstance(started, Started)
        slot = slot_key("conn-1", 0)
        assert slot in dict(started.run.claims)
        assert store.claim(slot, 900) is None, "the run holds the slot"
        job = {"run_id": started.run.run_id, "request": request.model_dump(mode="json")}
        assert run_job(job, context, deps)["statusCode"] == 200
        assert client.posts["conn-1"][-1]["type"] == "result"
        newer = store.claim(slot, 900)
        assert newer is not None, "the slot is free again"
        # A duplicate delivery runs nothing and must not free a slot a newer run holds.
        assert run_job(job, context, deps)["statusCode"] == 200
        assert store.claim(slot, 900) is None
        assert store.release(slot, newer)


def test_a_store_failure_while_counting_releases_the_slot(tmp_path) -> None:
    """Found in review: the slot was claimed, then an increment raised and the slot leaked."""
    from selador.limits import Admission, Limits, slot_key
    from selador.settings import Settings
    from selador.store.sqlite import SqliteStore

    class FailingCounters(SqliteStore):
        def increment(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
            raise RuntimeError("throttled")

    store = FailingCounters(str(tmp_path / "s.sqlite3"))
    limits = Limits(store, Settings(limit_concurrent_per_connection=1))
    with pytest.raises(RuntimeError, match="throttled"):
        limits.admit("c", None)
    assert store.claim(slot_key("c", 0), 60) is not None, "the slot is free again"
    assert isinstance(
        Limits(SqliteStore(str(tmp_path / "t.sqlite3")), Settings()).admit("c", None), Admission
    )
