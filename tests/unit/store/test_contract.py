"""The ConnectionStore contract, run against every implementation."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from selador.store.base import ConnectionRecord, ConnectionStore
from selador.store.dynamodb import DynamoDbStore
from selador.store.sqlite import SqliteStore

from .conftest import T0, FakeClock, LinearizedClient

T = TypeVar("T")

# API Gateway ids end in "=" and are base64-ish; the others make sure keys are not mangled anywhere.
ODD_IDS = ["L0SM9cOFvHcCIhw=", "a/b+c==", "ünï-连接-🚀", "conn#nested", "x" * 200]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[ConnectionStore]:
    if request.param == "sqlite":
        sqlite = SqliteStore(str(tmp_path / "store.sqlite3"), now=clock)
        yield sqlite
        sqlite.close()
    else:
        client: LinearizedClient = request.getfixturevalue("dynamodb_client")
        dynamo = DynamoDbStore(client, "selador-connections", now=clock)
        assert dynamo.create_table_if_missing() is True
        yield dynamo


def record(connection_id: str = "abc=", **overrides: object) -> ConnectionRecord:
    fields: dict[str, object] = {
        "connection_id": connection_id,
        "connected_at": T0 + 0.125,
        "expires_at": int(T0) + 3600,
        "domain_name": "abc123.execute-api.us-west-2.amazonaws.com",
        "stage": "prod",
        "api_id": "abc123",
        "source_ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux) ünï",
        "principal": "user-42",
        "attributes": {"tenant": "acme", "lang": "pt-BR", "emoji": "🚀", "empty": ""},
    }
    fields.update(overrides)
    return ConnectionRecord(**fields)  # type: ignore[arg-type]


def run_concurrently(workers: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(i)`` in ``workers`` threads released together by a barrier."""
    barrier = threading.Barrier(workers)

    def task(i: int) -> T:
        barrier.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(task, range(workers)))


# -- connections ---------------------------------------------------------------------------------


def test_round_trip_keeps_every_field(store: ConnectionStore) -> None:
    original = record()
    store.put_connection(original)
    loaded = store.get_connection(original.connection_id)
    assert loaded == original
    assert loaded is not None
    assert type(loaded.connected_at) is float
    assert type(loaded.expires_at) is int


def test_round_trip_of_minimal_record(store: ConnectionStore) -> None:
    minimal = ConnectionRecord(connection_id="m=", connected_at=T0, expires_at=int(T0) + 60)
    store.put_connection(minimal)
    loaded = store.get_connection("m=")
    assert loaded == minimal
    assert loaded is not None
    assert loaded.principal is None
    assert loaded.attributes == {}
    assert loaded.domain_name == ""


@pytest.mark.parametrize("connection_id", ODD_IDS)
def test_odd_ids_round_trip_and_stay_distinct(store: ConnectionStore, connection_id: str) -> None:
    store.put_connection(record(connection_id, principal=None))
    store.put_connection(record(connection_id + "2", principal="other"))
    loaded = store.get_connection(connection_id)
    assert loaded == record(connection_id, principal=None)
    assert store.delete_connection(connection_id) is True
    assert store.get_connection(connection_id) is None
    assert store.get_connection(connection_id + "2") is not None


def test_put_replaces_the_whole_record(store: ConnectionStore) -> None:
    store.put_connection(record())
    replacement = record(stage="dev", principal=None, attributes={"only": "this"}, user_agent="")
    store.put_connection(replacement)
    assert store.get_connection("abc=") == replacement


def test_delete_reports_whether_a_record_existed(store: ConnectionStore) -> None:
    store.put_connection(record())
    assert store.delete_connection("abc=") is True
    assert store.get_connection("abc=") is None
    assert store.delete_connection("abc=") is False


def test_unknown_connection_is_none(store: ConnectionStore) -> None:
    store.put_connection(record("known="))
    assert store.get_connection("unknown=") is None
    assert store.delete_connection("unknown=") is False


def test_expired_record_is_invisible(store: ConnectionStore, clock: FakeClock) -> None:
    store.put_connection(record(expires_at=int(T0) + 10))
    clock.advance(9.5)
    assert store.get_connection("abc=") is not None
    clock.advance(0.5)  # exactly expires_at: expired
    assert store.get_connection("abc=") is None
    assert store.delete_connection("abc=") is False


def test_put_over_an_expired_record_revives_it(store: ConnectionStore, clock: FakeClock) -> None:
    store.put_connection(record(expires_at=int(T0) + 10))
    clock.advance(20)
    fresh = record(expires_at=int(T0) + 100, stage="again")
    store.put_connection(fresh)
    assert store.get_connection("abc=") == fresh


# -- claims --------------------------------------------------------------------------------------


def test_claim_is_granted_once(store: ConnectionStore) -> None:
    assert store.claim("req-1", 60) is True
    assert store.claim("req-1", 60) is False
    assert store.claim("req-1", 60) is False
    assert store.claim("req-2", 60) is True


@pytest.mark.parametrize("key", ODD_IDS)
def test_claim_with_odd_keys(store: ConnectionStore, key: str) -> None:
    assert store.claim(key, 60) is True
    assert store.claim(key, 60) is False
    assert store.claim(key + "/", 60) is True


def test_claim_is_granted_again_after_expiry(store: ConnectionStore, clock: FakeClock) -> None:
    assert store.claim("k", 30) is True
    clock.advance(29.9)
    assert store.claim("k", 30) is False
    clock.advance(0.1)
    assert store.claim("k", 30) is True
    # The new claim has its own window, starting now.
    clock.advance(29)
    assert store.claim("k", 30) is False


def test_release_frees_a_claim(store: ConnectionStore) -> None:
    assert store.claim("k", 60) is True
    store.release("k")
    assert store.claim("k", 60) is True
    assert store.claim("k", 60) is False


def test_release_of_absent_claim_is_a_no_op(store: ConnectionStore) -> None:
    store.release("never-claimed")
    assert store.claim("never-claimed", 60) is True


def test_claims_counters_and_connections_do_not_share_keys(store: ConnectionStore) -> None:
    store.put_connection(record("same"))
    assert store.increment("same", 60) == 1
    assert store.claim("same", 60) is True
    assert store.increment("same", 60) == 2
    store.release("same")
    assert store.get_connection("same") == record("same")
    assert store.increment("same", 60) == 3
    assert store.delete_connection("same") is True
    assert store.claim("same", 60) is True


@pytest.mark.parametrize("ttl", [0, -5])
def test_non_positive_ttl_is_rejected(store: ConnectionStore, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.claim("k", ttl)
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.increment("k", ttl)


def test_concurrent_claims_have_exactly_one_winner(store: ConnectionStore) -> None:
    for round_ in range(5):
        key = f"race-{round_}"
        results = run_concurrently(8, lambda _i: store.claim(key, 60))  # noqa: B023 - pool joins first
        assert results.count(True) == 1, results
        assert len(results) == 8


# -- counters ------------------------------------------------------------------------------------


def test_increment_counts(store: ConnectionStore) -> None:
    assert [store.increment("c", 60) for _ in range(3)] == [1, 2, 3]
    assert store.increment("other", 60) == 1


def test_increment_by_amount(store: ConnectionStore) -> None:
    assert store.increment("c", 60, amount=5) == 5
    assert store.increment("c", 60, amount=7) == 12
    assert store.increment("c", 60) == 13
    assert store.increment("c", 60, amount=-3) == 10


def test_counter_restarts_after_its_window(store: ConnectionStore, clock: FakeClock) -> None:
    assert store.increment("c", 60) == 1
    clock.advance(30)
    assert store.increment("c", 60) == 2
    # Later increments do not extend the window: it still ends 60 s after the first one.
    clock.advance(29.9)
    assert store.increment("c", 60) == 3
    clock.advance(0.1)
    assert store.increment("c", 60, amount=4) == 4
    clock.advance(59.9)
    assert store.increment("c", 60) == 5
    clock.advance(0.1)
    assert store.increment("c", 60) == 1


def test_concurrent_increments_are_not_lost(store: ConnectionStore) -> None:
    def worker(_i: int) -> list[int]:
        return [store.increment("hits", 3600) for _ in range(25)]

    seen = [value for values in run_concurrently(8, worker) for value in values]
    # Each increment observed a distinct value, and none was lost.
    assert sorted(seen) == list(range(1, 201))
    assert store.increment("hits", 3600, amount=0) == 200


def test_concurrent_restart_of_an_expired_counter(store: ConnectionStore, clock: FakeClock) -> None:
    for _ in range(5):
        store.increment("window", 10)
    clock.advance(10)
    seen = run_concurrently(8, lambda _i: store.increment("window", 10))
    # Exactly one caller restarted the window; everyone else added to the fresh counter.
    assert sorted(seen) == list(range(1, 9))


def test_record_is_a_frozen_value(store: ConnectionStore) -> None:
    original = record()
    store.put_connection(original)
    loaded = store.get_connection("abc=")
    assert loaded is not None and loaded is not original
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.stage = "x"  # type: ignore[misc]
