"""The Store contract (connections, claims, counters, runs, frame logs), run against every implementation."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from selador.store.base import RUN_FINAL_STATUSES, ConnectionRecord, RunFinish, RunRecord, Store
from selador.store.dynamodb import DynamoDbStore
from selador.store.sqlite import SqliteStore

from .conftest import T0, FakeClock, LinearizedClient

T = TypeVar("T")

# API Gateway ids end in "=" and are base64-ish; the others make sure keys are not mangled anywhere.
ODD_IDS = ["L0SM9cOFvHcCIhw=", "a/b+c==", "ünï-连接-🚀", "conn#nested", "x" * 200]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Store]:
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


def run_record(run_id: str = "run-1", **overrides: object) -> RunRecord:
    """An active run with every optional field left at its default (``None``, ``()``, ``False``)."""
    fields: dict[str, object] = {
        "run_id": run_id,
        "request_id": "req-1",
        "token_digest": "9f" * 32,
        "status": "pending",
        "created_at": T0 + 0.125,
        "expires_at": int(T0) + 3600,
        "lease_until": T0 + 30.5,
    }
    fields.update(overrides)
    return RunRecord(**fields)  # type: ignore[arg-type]


def full_run_record(run_id: str = "run-full") -> RunRecord:
    """A run with every field set to something other than its default."""
    return run_record(
        run_id,
        request_id="req-ü-🚀",
        status="succeeded",
        principal="user-ünï-42",
        connection_id="L0SM9cOFvHcCIhw=",
        endpoint="https://abc123.execute-api.us-west-2.amazonaws.com/prod",
        cancel_requested=True,
        on_disconnect="cancel",
        frames=7,
        ended_at=T0 + 12.75,
        result='{"answer":"olá 🚀 连接","n":[1,2.5,null]}',
        claims=(("req#user-42#req-1", "owner-a"), ("slot#user-42", "owner-b")),
    )


def run_concurrently(workers: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(i)`` in ``workers`` threads released together by a barrier."""
    barrier = threading.Barrier(workers)

    def task(i: int) -> T:
        barrier.wait(timeout=10)
        return fn(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(task, range(workers)))


# -- connections ---------------------------------------------------------------------------------


def test_round_trip_keeps_every_field(store: Store) -> None:
    original = record()
    store.put_connection(original)
    loaded = store.get_connection(original.connection_id)
    assert loaded == original
    assert loaded is not None
    assert type(loaded.connected_at) is float
    assert type(loaded.expires_at) is int


def test_round_trip_of_minimal_record(store: Store) -> None:
    minimal = ConnectionRecord(connection_id="m=", connected_at=T0, expires_at=int(T0) + 60)
    store.put_connection(minimal)
    loaded = store.get_connection("m=")
    assert loaded == minimal
    assert loaded is not None
    assert loaded.principal is None
    assert loaded.attributes == {}
    assert loaded.domain_name == ""


@pytest.mark.parametrize("connection_id", ODD_IDS)
def test_odd_ids_round_trip_and_stay_distinct(store: Store, connection_id: str) -> None:
    store.put_connection(record(connection_id, principal=None))
    store.put_connection(record(connection_id + "2", principal="other"))
    loaded = store.get_connection(connection_id)
    assert loaded == record(connection_id, principal=None)
    assert store.delete_connection(connection_id) is True
    assert store.get_connection(connection_id) is None
    assert store.get_connection(connection_id + "2") is not None


def test_put_replaces_the_whole_record(store: Store) -> None:
    store.put_connection(record())
    replacement = record(stage="dev", principal=None, attributes={"only": "this"}, user_agent="")
    store.put_connection(replacement)
    assert store.get_connection("abc=") == replacement


def test_delete_reports_whether_a_record_existed(store: Store) -> None:
    store.put_connection(record())
    assert store.delete_connection("abc=") is True
    assert store.get_connection("abc=") is None
    assert store.delete_connection("abc=") is False


def test_unknown_connection_is_none(store: Store) -> None:
    store.put_connection(record("known="))
    assert store.get_connection("unknown=") is None
    assert store.delete_connection("unknown=") is False


def test_expired_record_is_invisible(store: Store, clock: FakeClock) -> None:
    store.put_connection(record(expires_at=int(T0) + 10))
    clock.advance(9.5)
    assert store.get_connection("abc=") is not None
    clock.advance(0.5)  # exactly expires_at: expired
    assert store.get_connection("abc=") is None
    assert store.delete_connection("abc=") is False


def test_put_over_an_expired_record_revives_it(store: Store, clock: FakeClock) -> None:
    store.put_connection(record(expires_at=int(T0) + 10))
    clock.advance(20)
    fresh = record(expires_at=int(T0) + 100, stage="again")
    store.put_connection(fresh)
    assert store.get_connection("abc=") == fresh


# -- claims --------------------------------------------------------------------------------------


def owner_token(value: str | None) -> str:
    """Assert a claim was granted (a non-empty owner token) and return the token."""
    assert isinstance(value, str) and value, value
    return value


def test_claim_is_granted_once(store: Store) -> None:
    first = owner_token(store.claim("req-1", 60))
    assert store.claim("req-1", 60) is None
    assert store.claim("req-1", 60) is None
    second = owner_token(store.claim("req-2", 60))
    assert second != first


@pytest.mark.parametrize("key", ODD_IDS)
def test_claim_with_odd_keys(store: Store, key: str) -> None:
    owner = owner_token(store.claim(key, 60))
    assert store.claim(key, 60) is None
    owner_token(store.claim(key + "/", 60))
    assert store.release(key, owner) is True
    assert store.claim(key + "/", 60) is None


def test_claim_is_granted_again_after_expiry(store: Store, clock: FakeClock) -> None:
    first = owner_token(store.claim("k", 30))
    clock.advance(29.9)
    assert store.claim("k", 30) is None
    clock.advance(0.1)
    second = owner_token(store.claim("k", 30))
    assert second != first
    # The new claim has its own window, starting now.
    clock.advance(29)
    assert store.claim("k", 30) is None


def test_release_frees_a_claim(store: Store) -> None:
    owner = owner_token(store.claim("k", 60))
    assert store.release("k", owner) is True
    owner_token(store.claim("k", 60))
    assert store.claim("k", 60) is None


def test_release_of_absent_claim_is_a_no_op(store: Store) -> None:
    assert store.release("never-claimed", "nobody") is False
    owner_token(store.claim("never-claimed", 60))


def test_claims_counters_and_connections_do_not_share_keys(store: Store) -> None:
    store.put_connection(record("same"))
    assert store.increment("same", 60) == 1
    owner = owner_token(store.claim("same", 60))
    assert store.increment("same", 60) == 2
    assert store.release("same", owner) is True
    assert store.get_connection("same") == record("same")
    assert store.increment("same", 60) == 3
    assert store.delete_connection("same") is True
    owner_token(store.claim("same", 60))


@pytest.mark.parametrize("ttl", [0, -5])
def test_non_positive_ttl_is_rejected(store: Store, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.claim("k", ttl)
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.increment("k", ttl)
    owner = owner_token(store.claim("k", 60))
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.renew("k", owner, ttl)
    assert store.claim("k", 60) is None  # the refused renew changed nothing


def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    for round_ in range(5):
        key = f"race-{round_}"
        results = run_concurrently(8, lambda _i: store.claim(key, 60))  # noqa: B023 - pool joins first
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, results
        owner_token(winners[0])
        assert len(results) == 8


# -- counters ------------------------------------------------------------------------------------


def test_increment_counts(store: Store) -> None:
    assert [store.increment("c", 60) for _ in range(3)] == [1, 2, 3]
    assert store.increment("other", 60) == 1


def test_increment_by_amount(store: Store) -> None:
    assert store.increment("c", 60, amount=5) == 5
    assert store.increment("c", 60, amount=7) == 12
    assert store.increment("c", 60) == 13
    assert store.increment("c", 60, amount=-3) == 10


def test_counter_restarts_after_its_window(store: Store, clock: FakeClock) -> None:
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


def test_concurrent_increments_are_not_lost(store: Store) -> None:
    def worker(_i: int) -> list[int]:
        return [store.increment("hits", 3600) for _ in range(25)]

    seen = [value for values in run_concurrently(8, worker) for value in values]
    # Each increment observed a distinct value, and none was lost.
    assert sorted(seen) == list(range(1, 201))
    assert store.increment("hits", 3600, amount=0) == 200


def test_concurrent_restart_of_an_expired_counter(store: Store, clock: FakeClock) -> None:
    for _ in range(5):
        store.increment("window", 10)
    clock.advance(10)
    seen = run_concurrently(8, lambda _i: store.increment("window", 10))
    # Exactly one caller restarted the window; everyone else added to the fresh counter.
    assert sorted(seen) == list(range(1, 9))


def test_record_is_a_frozen_value(store: Store) -> None:
    original = record()
    store.put_connection(original)
    loaded = store.get_connection("abc=")
    assert loaded is not None and loaded is not original
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.stage = "x"  # type: ignore[misc]


# -- claim owners --------------------------------------------------------------------------------


def test_release_of_someone_elses_claim_does_nothing(store: Store) -> None:
    owner = owner_token(store.claim("k", 60))
    assert store.release("k", "someone-else") is False
    assert store.claim("k", 60) is None  # still held
    assert store.renew("k", owner, 60) is True  # and still ours
    assert store.release("k", owner) is True


def test_release_twice_reports_false_the_second_time(store: Store) -> None:
    owner = owner_token(store.claim("k", 60))
    assert store.release("k", owner) is True
    assert store.release("k", owner) is False


def test_release_of_own_expired_claim_reports_false(store: Store, clock: FakeClock) -> None:
    owner = owner_token(store.claim("k", 10))
    clock.advance(10)
    assert store.release("k", owner) is False
    owner_token(store.claim("k", 10))


def test_stale_owner_cannot_release_a_retaken_claim(store: Store, clock: FakeClock) -> None:
    old = owner_token(store.claim("k", 10))
    clock.advance(10)
    new = owner_token(store.claim("k", 10))
    assert new != old
    assert store.release("k", old) is False
    assert store.renew("k", old, 60) is False
    assert store.claim("k", 10) is None  # the new owner still holds it
    assert store.release("k", new) is True
    owner_token(store.claim("k", 10))


def test_renew_extends_the_claim(store: Store, clock: FakeClock) -> None:
    owner = owner_token(store.claim("k", 10))
    clock.advance(9)
    assert store.renew("k", owner, 30) is True
    clock.advance(29.5)  # 38.5 s after the claim: only the renewal keeps it
    assert store.claim("k", 10) is None
    clock.advance(0.5)
    owner_token(store.claim("k", 10))


def test_renew_can_shorten_the_claim(store: Store, clock: FakeClock) -> None:
    owner = owner_token(store.claim("k", 600))
    assert store.renew("k", owner, 5) is True
    clock.advance(5)
    owner_token(store.claim("k", 10))


def test_renew_after_expiry_fails_and_does_not_revive(store: Store, clock: FakeClock) -> None:
    owner = owner_token(store.claim("k", 10))
    clock.advance(10)
    assert store.renew("k", owner, 60) is False
    owner_token(store.claim("k", 10))


def test_renew_by_someone_else_changes_nothing(store: Store, clock: FakeClock) -> None:
    owner_token(store.claim("k", 10))
    assert store.renew("k", "someone-else", 600) is False
    clock.advance(10)
    owner_token(store.claim("k", 10))  # the original expiry still applied


def test_renew_of_absent_claim_fails(store: Store) -> None:
    assert store.renew("never-claimed", "nobody", 60) is False
    owner_token(store.claim("never-claimed", 60))


def test_concurrent_retake_of_an_expired_claim(store: Store, clock: FakeClock) -> None:
    old = owner_token(store.claim("k", 10))
    clock.advance(10)

    def contender(i: int) -> str | bool | None:
        # One thread keeps trying the old token while the others race to take the key.
        return store.release("k", old) if i == 0 else store.claim("k", 10)

    results = run_concurrently(8, contender)
    assert results[0] is False
    winners = [r for r in results[1:] if r is not None]
    assert len(winners) == 1, results
    assert store.release("k", owner_token(winners[0])) is True  # type: ignore[arg-type]


def test_concurrent_releases_free_the_claim_once(store: Store) -> None:
    owner = owner_token(store.claim("k", 60))
    results = run_concurrently(8, lambda _i: store.release("k", owner))
    assert results.count(True) == 1, results


# -- runs ----------------------------------------------------------------------------------------


def test_run_round_trip_keeps_every_field(store: Store) -> None:
    original = full_run_record()
    store.create_run(original)
    loaded = store.get_run(original.run_id)
    assert loaded == original
    assert loaded is not None
    assert type(loaded.created_at) is float
    assert type(loaded.lease_until) is float
    assert type(loaded.ended_at) is float
    assert type(loaded.expires_at) is int
    assert type(loaded.frames) is int
    assert type(loaded.cancel_requested) is bool
    assert loaded.claims == (("req#user-42#req-1", "owner-a"), ("slot#user-42", "owner-b"))
    assert all(type(pair) is tuple for pair in loaded.claims)
    assert not loaded.active


def test_run_round_trip_of_minimal_record(store: Store) -> None:
    minimal = run_record()
    store.create_run(minimal)
    loaded = store.get_run("run-1")
    assert loaded == minimal
    assert loaded is not None
    for name in ("principal", "connection_id", "endpoint", "ended_at", "result"):
        assert getattr(loaded, name) is None, name
    assert loaded.claims == ()
    assert loaded.cancel_requested is False
    assert loaded.frames == 0
    assert loaded.on_disconnect == "continue"
    assert loaded.active


def test_run_round_trip_of_empty_strings(store: Store) -> None:
    original = run_record(request_id="", token_digest="", result="", principal="", claims=(("", ""),))
    store.create_run(original)
    assert store.get_run("run-1") == original


@pytest.mark.parametrize("run_id", ODD_IDS)
def test_odd_run_ids_round_trip_and_stay_distinct(store: Store, run_id: str) -> None:
    store.create_run(run_record(run_id), name=run_id)
    store.create_run(run_record(run_id + "#2", request_id="other"), name=run_id + "#2")
    assert store.get_run(run_id) == run_record(run_id)
    assert store.find_run(run_id) == run_record(run_id)
    assert store.find_run(run_id + "#2") == run_record(run_id + "#2", request_id="other")


def test_unknown_run_is_none(store: Store) -> None:
    store.create_run(run_record("known"), name="known")
    assert store.get_run("unknown") is None
    assert store.find_run("unknown") is None
    assert store.find_run("run-1") is None  # a run id is not a name
    assert store.update_run("unknown", {"status": "running"}) is None


def test_find_run_by_name(store: Store) -> None:
    store.create_run(run_record("r1"), name="user-42/req-1")
    store.create_run(run_record("r2"))
    assert store.find_run("user-42/req-1") == run_record("r1")
    assert store.get_run("r2") == run_record("r2")


def test_name_points_to_the_latest_run(store: Store) -> None:
    store.create_run(run_record("first", status="succeeded"), name="req")
    store.create_run(run_record("second"), name="req")
    assert store.find_run("req") == run_record("second")
    # The older run is still there by id, only no longer by name.
    assert store.get_run("first") == run_record("first", status="succeeded")


def test_find_run_sees_updates(store: Store) -> None:
    store.create_run(run_record(), name="req")
    store.update_run("run-1", {"status": "running", "connection_id": "c="})
    assert store.find_run("req") == run_record(status="running", connection_id="c=")


def test_expired_run_is_invisible(store: Store, clock: FakeClock) -> None:
    store.create_run(run_record(expires_at=int(T0) + 10), name="req")
    clock.advance(9.5)
    assert store.get_run("run-1") is not None
    assert store.find_run("req") is not None
    clock.advance(0.5)  # exactly expires_at: expired
    assert store.get_run("run-1") is None
    assert store.find_run("req") is None
    assert store.update_run("run-1", {"status": "running"}) is None
    assert store.update_run("run-1", {"expires_at": int(T0) + 1000}) is None  # no revival either
    assert store.get_run("run-1") is None


def test_name_of_an_expired_latest_run_does_not_fall_back(store: Store, clock: FakeClock) -> None:
    store.create_run(run_record("old", expires_at=int(T0) + 1000), name="req")
    store.create_run(run_record("new", expires_at=int(T0) + 10), name="req")
    clock.advance(10)
    assert store.find_run("req") is None
    assert store.get_run("old") is not None


def test_create_run_over_an_expired_run_revives_it(store: Store, clock: FakeClock) -> None:
    store.create_run(run_record(expires_at=int(T0) + 10), name="req")
    clock.advance(20)
    fresh = run_record(expires_at=int(T0) + 100, status="running")
    store.create_run(fresh, name="req")
    assert store.get_run("run-1") == fresh
    assert store.find_run("req") == fresh


def test_run_ids_names_and_other_keys_do_not_collide(store: Store) -> None:
    store.put_connection(record("same"))
    owner = owner_token(store.claim("same", 60))
    assert store.increment("same", 60) == 1
    store.create_run(run_record("same"), name="same")
    assert store.append_frame("same", 1, '"frame"', int(T0) + 3600) is True
    assert store.get_connection("same") == record("same")
    assert store.get_run("same") == run_record("same")
    assert store.find_run("same") == run_record("same")
    assert store.read_frames("same") == [(1, '"frame"')]
    assert store.release("same", owner) is True
    assert store.increment("same", 60) == 2


def test_a_name_expires_when_the_record_as_created_does(store: Store, clock: FakeClock) -> None:
    """As documented: extending a run does not extend its name; shortening it does hide it."""
    store.create_run(run_record(expires_at=int(T0) + 10), name="req")
    assert store.update_run("run-1", {"expires_at": int(T0) + 1000}) is not None
    clock.advance(20)
    assert store.get_run("run-1") is not None
    assert store.find_run("req") is None
    store.create_run(run_record(run_id="run-2", expires_at=int(T0) + 1000), name="req2")
    assert store.update_run("run-2", {"expires_at": int(T0) + 25}) is not None
    clock.advance(10)
    assert store.find_run("req2") is None  # the run itself has expired


# -- update_run ----------------------------------------------------------------------------------


def test_update_run_returns_the_updated_record(store: Store) -> None:
    store.create_run(run_record())
    changes = {
        "status": "running",
        "lease_until": T0 + 90.25,
        "connection_id": "c=",
        "endpoint": "https://x.execute-api.us-west-2.amazonaws.com/prod",
        "cancel_requested": True,
    }
    updated = store.update_run("run-1", changes)
    assert updated == run_record(**changes)
    assert store.get_run("run-1") == updated


def test_update_run_sets_every_mutable_field(store: Store) -> None:
    store.create_run(run_record())
    changes: dict[str, object] = {
        "status": "failed",
        "lease_until": T0 + 1.5,
        "expires_at": int(T0) + 7200,
        "connection_id": "c=",
        "endpoint": "https://e",
        "cancel_requested": True,
        "frames": 12,
        "ended_at": T0 + 99.5,
        "result": '{"code":"boom","error":"ünï"}',
    }
    updated = store.update_run("run-1", changes)
    assert updated == run_record(**changes)
    assert updated is not None
    assert type(updated.frames) is int and type(updated.expires_at) is int
    assert store.get_run("run-1") == updated


def test_update_run_clears_fields_with_none(store: Store) -> None:
    store.create_run(full_run_record())
    updated = store.update_run("run-full", {"connection_id": None, "endpoint": None, "result": None})
    expected = dataclasses.replace(full_run_record(), connection_id=None, endpoint=None, result=None)
    assert updated == expected
    assert store.get_run("run-full") == expected


def test_update_run_expect_status(store: Store) -> None:
    store.create_run(run_record())
    assert store.update_run("run-1", {"status": "running"}, expect_status={"running"}) is None
    assert store.get_run("run-1") == run_record()
    taken = store.update_run("run-1", {"status": "running"}, expect_status=["pending", "running"])
    assert taken is not None and taken.status == "running"
    # Only one party ends a run: a final status never matches an active expectation.
    assert store.update_run("run-1", {"status": "succeeded"}, expect_status={"running"}) is not None
    assert store.update_run("run-1", {"status": "failed"}, expect_status={"pending", "running"}) is None
    final = store.get_run("run-1")
    assert final is not None and final.status == "succeeded"
    assert store.update_run("run-1", {"frames": 3}, expect_status=RUN_FINAL_STATUSES) is not None


def test_update_run_with_empty_expect_status_matches_nothing(store: Store) -> None:
    store.create_run(run_record())
    assert store.update_run("run-1", {"status": "running"}, expect_status=()) is None
    assert store.get_run("run-1") == run_record()


def test_update_run_expect_fields(store: Store) -> None:
    store.create_run(run_record(connection_id="c1="))
    assert store.update_run("run-1", {"connection_id": "c2="}, expect={"connection_id": "c0="}) is None
    assert store.update_run("run-1", {"connection_id": "c2="}, expect={"connection_id": None}) is None
    moved = store.update_run("run-1", {"connection_id": "c2="}, expect={"connection_id": "c1="})
    assert moved is not None and moved.connection_id == "c2="
    # Every expectation must hold, together with the status.
    both = {"connection_id": "c2=", "cancel_requested": False}
    assert store.update_run("run-1", {"cancel_requested": True}, expect=both, expect_status={"x"}) is None
    assert store.update_run("run-1", {"cancel_requested": True}, expect={**both, "frames": 1}) is None
    cancelled = store.update_run("run-1", {"cancel_requested": True}, expect=both, expect_status={"pending"})
    assert cancelled == run_record(connection_id="c2=", cancel_requested=True)


def test_update_run_expect_none_means_unset(store: Store) -> None:
    store.create_run(run_record())
    listening = store.update_run("run-1", {"connection_id": "c="}, expect={"connection_id": None})
    assert listening is not None and listening.connection_id == "c="
    # Set now, so expecting it unset fails.
    assert store.update_run("run-1", {"connection_id": "d="}, expect={"connection_id": None}) is None
    store.update_run("run-1", {"connection_id": None})
    assert store.update_run("run-1", {"endpoint": "e"}, expect={"connection_id": None}) is not None


def test_update_run_expect_numbers_and_floats(store: Store) -> None:
    store.create_run(run_record(lease_until=T0 + 30.5))
    assert store.update_run("run-1", {"frames": 1}, expect={"lease_until": T0 + 30.25}) is None
    renewed = store.update_run("run-1", {"lease_until": T0 + 60.5}, expect={"lease_until": T0 + 30.5})
    assert renewed is not None and renewed.lease_until == T0 + 60.5
    assert store.update_run("run-1", {"frames": 2}, expect={"frames": 0}) is not None
    assert store.update_run("run-1", {"frames": 3}, expect={"frames": 0}) is None


def test_update_run_with_no_changes_checks_the_conditions(store: Store) -> None:
    store.create_run(run_record())
    assert store.update_run("run-1", {}) == run_record()
    assert store.update_run("run-1", {}, expect_status={"pending"}) == run_record()
    assert store.update_run("run-1", {}, expect_status={"running"}) is None
    assert store.update_run("run-1", {}, expect={"connection_id": "c="}) is None
    assert store.update_run("unknown", {}) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"run_id": "other"},
        {"request_id": "other"},
        {"token_digest": "00"},
        {"created_at": T0},
        {"principal": "someone"},
        {"on_disconnect": "cancel"},
        {"claims": ()},
        {"no_such_field": 1},
        {"status": "running", "claims": ()},
    ],
)
def test_update_run_refuses_fixed_fields(store: Store, changes: dict[str, object]) -> None:
    store.create_run(run_record())
    with pytest.raises(ValueError, match="cannot be changed"):
        store.update_run("run-1", changes)
    with pytest.raises(ValueError, match="cannot be changed"):
        store.update_run("unknown", changes)  # refused before looking the run up
    assert store.get_run("run-1") == run_record()


def test_update_run_can_extend_the_expiry(store: Store, clock: FakeClock) -> None:
    store.create_run(run_record(expires_at=int(T0) + 10))
    assert store.update_run("run-1", {"expires_at": int(T0) + 100}) is not None
    clock.advance(50)
    assert store.get_run("run-1") == run_record(expires_at=int(T0) + 100)


def test_concurrent_conditional_updates_have_one_winner(store: Store) -> None:
    for round_ in range(3):
        run_id = f"race-{round_}"
        store.create_run(run_record(run_id))
        results = run_concurrently(
            8,
            lambda i: store.update_run(
                run_id,  # noqa: B023 - pool joins first
                {"status": "running", "lease_until": T0 + i},
                expect_status={"pending"},
            ),
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, results
        assert store.get_run(run_id) == winners[0]


# -- frame log -----------------------------------------------------------------------------------

FRAME_TTL = int(T0) + 3600


def frame(seq: int) -> str:
    return f'{{"type":"text","seq":{seq},"text":"chunk {seq} ünï 🚀"}}'


def append_frames(store: Store, run_id: str, seqs: range | list[int]) -> None:
    for seq in seqs:
        assert store.append_frame(run_id, seq, frame(seq), FRAME_TTL) is True


def test_frames_are_read_back_in_order(store: Store) -> None:
    store.create_run(run_record())
    append_frames(store, "run-1", [3, 1, 2])  # written out of order, read in order
    assert store.read_frames("run-1") == [(1, frame(1)), (2, frame(2)), (3, frame(3))]


def test_read_frames_after_seq_and_limit(store: Store) -> None:
    append_frames(store, "run-1", range(1, 11))
    assert store.read_frames("run-1", after_seq=4) == [(s, frame(s)) for s in range(5, 11)]
    assert store.read_frames("run-1", after_seq=4, limit=3) == [(s, frame(s)) for s in (5, 6, 7)]
    assert store.read_frames("run-1", after_seq=9, limit=5) == [(10, frame(10))]
    assert store.read_frames("run-1", after_seq=10) == []
    assert store.read_frames("run-1", limit=1) == [(1, frame(1))]
    assert store.read_frames("run-1", limit=0) == []


def test_read_frames_across_the_batch_boundary(store: Store) -> None:
    append_frames(store, "run-1", range(1, 251))
    everything = [(s, frame(s)) for s in range(1, 251)]
    assert store.read_frames("run-1", limit=250) == everything
    assert store.read_frames("run-1", limit=1000) == everything
    assert store.read_frames("run-1") == everything[:100]  # the default limit
    assert store.read_frames("run-1", after_seq=99, limit=2) == everything[99:101]
    assert store.read_frames("run-1", after_seq=50, limit=150) == everything[50:200]
    assert store.read_frames("run-1", after_seq=150, limit=101) == everything[150:250]
    assert store.read_frames("run-1", after_seq=200, limit=100) == everything[200:]
    # Paging from the last seq, as callers do.
    pages: list[tuple[int, str]] = []
    while page := store.read_frames("run-1", after_seq=pages[-1][0] if pages else 0, limit=70):
        pages.extend(page)
    assert pages == everything


def test_read_frames_stops_at_the_first_gap(store: Store) -> None:
    append_frames(store, "run-1", [1, 2, 3, 5, 6])
    assert store.read_frames("run-1") == [(1, frame(1)), (2, frame(2)), (3, frame(3))]
    assert store.read_frames("run-1", after_seq=3) == []
    assert store.read_frames("run-1", after_seq=4) == [(5, frame(5)), (6, frame(6))]
    assert store.read_frames("run-1", after_seq=7) == []


def test_read_frames_gap_after_the_first_batch(store: Store) -> None:
    append_frames(store, "run-1", [*range(1, 151), *range(152, 160)])
    assert store.read_frames("run-1", limit=500) == [(s, frame(s)) for s in range(1, 151)]
    assert store.read_frames("run-1", after_seq=151, limit=500) == [(s, frame(s)) for s in range(152, 160)]


def test_read_frames_of_unknown_run_is_empty(store: Store) -> None:
    append_frames(store, "run-1", [1])
    assert store.read_frames("run-2") == []
    assert store.read_frames("run-") == []
    assert store.read_frames("run-1#") == []


def test_duplicate_seq_is_refused(store: Store) -> None:
    assert store.append_frame("run-1", 1, frame(1), FRAME_TTL) is True
    assert store.append_frame("run-1", 1, '{"type":"other"}', FRAME_TTL) is False
    assert store.append_frame("run-1", 2, frame(2), FRAME_TTL) is True
    assert store.read_frames("run-1") == [(1, frame(1)), (2, frame(2))]


def test_frames_of_runs_stay_separate(store: Store) -> None:
    # Run ids that prefix each other, with separators in them: the keys must not run together.
    run_ids = ["a", "a#1", "a#1#2", "a1", "ünï-🚀", "x" * 200]
    for run_id in run_ids:
        for seq in (1, 2, 12):
            assert store.append_frame(run_id, seq, f"{run_id}/{seq}", FRAME_TTL) is True
    for run_id in run_ids:
        assert store.read_frames(run_id) == [(1, f"{run_id}/1"), (2, f"{run_id}/2")]
        assert store.read_frames(run_id, after_seq=11) == [(12, f"{run_id}/12")]


def test_large_frame_round_trips_byte_identical(store: Store) -> None:
    # ~120 KB of JSON text with multi-byte characters, escapes and whitespace as posted.
    chunk = 'olá "mundo" 连接 🚀 \\\\n \t tab\n'
    text = '{"type":"result","data":"' + chunk * (120_000 // len(chunk.encode())) + '"}  '
    assert 110_000 < len(text.encode()) < 130_000
    assert store.append_frame("run-1", 1, text, FRAME_TTL) is True
    assert store.append_frame("run-1", 2, text[::-1], FRAME_TTL) is True
    frames = store.read_frames("run-1")
    assert frames == [(1, text), (2, text[::-1])]
    assert frames[0][1].encode() == text.encode()


def test_many_large_frames_read_back(store: Store) -> None:
    text = "x" * 100_000
    for seq in range(1, 121):
        assert store.append_frame("run-1", seq, f"{seq}:{text}", FRAME_TTL) is True
    frames = store.read_frames("run-1", limit=120)
    assert [s for s, _ in frames] == list(range(1, 121))
    assert all(data == f"{s}:{text}" for s, data in frames)


def test_empty_and_unicode_frame_data(store: Store) -> None:
    for seq, data in enumerate(["", " ", "ünï 连接 🚀", '"\\u0000"', "\n"], start=1):
        assert store.append_frame("run-1", seq, data, FRAME_TTL) is True
    assert [data for _, data in store.read_frames("run-1")] == ["", " ", "ünï 连接 🚀", '"\\u0000"', "\n"]


def test_concurrent_appends_of_one_seq_have_one_winner(store: Store) -> None:
    for seq in range(1, 4):
        results = run_concurrently(8, lambda i: store.append_frame("run-1", seq, f"{seq}/{i}", FRAME_TTL))  # noqa: B023
        assert results.count(True) == 1, results
        winner = results.index(True)
        assert store.read_frames("run-1", after_seq=seq - 1, limit=1) == [(seq, f"{seq}/{winner}")]


def test_concurrent_appends_of_distinct_seqs_all_land(store: Store) -> None:
    results = run_concurrently(
        8,
        lambda i: [
            store.append_frame("run-1", 8 * k + i + 1, frame(8 * k + i + 1), FRAME_TTL) for k in range(10)
        ],
    )
    assert all(all(r) for r in results)
    assert store.read_frames("run-1", limit=200) == [(s, frame(s)) for s in range(1, 81)]


# -- ending a run with its terminal frame --------------------------------------------------------

END = RunFinish(
    expect_status={"pending", "running"},
    changes={
        "status": "succeeded",
        "frames": 3,
        "ended_at": T0 + 5.5,
        "result": '{"answer":"42 ünï"}',
        "connection_id": None,
    },
)


def ended(run: RunRecord) -> RunRecord:
    return dataclasses.replace(run, **END.changes)  # type: ignore[arg-type]


def test_finish_is_applied_with_the_frame(store: Store) -> None:
    store.create_run(run_record(status="running", connection_id="c="))
    append_frames(store, "run-1", [1, 2])
    assert store.append_frame("run-1", 3, '{"type":"result"}', FRAME_TTL, finish=END) is True
    assert store.get_run("run-1") == ended(run_record(status="running", connection_id="c="))
    assert store.read_frames("run-1") == [(1, frame(1)), (2, frame(2)), (3, '{"type":"result"}')]


def test_finish_refused_by_status_writes_neither(store: Store) -> None:
    done = run_record(status="cancelled", ended_at=T0 + 1, frames=2)
    store.create_run(done)
    append_frames(store, "run-1", [1, 2])
    assert store.append_frame("run-1", 3, '{"type":"result"}', FRAME_TTL, finish=END) is False
    assert store.get_run("run-1") == done
    assert store.read_frames("run-1") == [(1, frame(1)), (2, frame(2))]
    # The seq is still free: a plain append (or a later, valid finish) can take it.
    assert store.append_frame("run-1", 3, '{"type":"late"}', FRAME_TTL) is True


def test_finish_refused_by_a_taken_seq_changes_nothing(store: Store) -> None:
    store.create_run(run_record(status="running"))
    append_frames(store, "run-1", [1])
    assert store.append_frame("run-1", 1, '{"type":"result"}', FRAME_TTL, finish=END) is False
    assert store.get_run("run-1") == run_record(status="running")
    assert store.read_frames("run-1") == [(1, frame(1))]


def test_finish_of_unknown_or_expired_run_writes_nothing(store: Store, clock: FakeClock) -> None:
    assert store.append_frame("ghost", 1, "{}", FRAME_TTL, finish=END) is False
    assert store.read_frames("ghost") == []
    store.create_run(run_record(expires_at=int(T0) + 10))
    clock.advance(10)
    assert store.append_frame("run-1", 1, "{}", FRAME_TTL, finish=END) is False
    assert store.read_frames("run-1") == []


def test_finish_with_empty_expect_status_writes_nothing(store: Store) -> None:
    store.create_run(run_record())
    assert (
        store.append_frame("run-1", 1, "{}", FRAME_TTL, finish=RunFinish((), {"status": "failed"})) is False
    )
    assert store.get_run("run-1") == run_record()
    assert store.read_frames("run-1") == []


def test_finish_without_changes_only_checks_the_status(store: Store) -> None:
    store.create_run(run_record(status="succeeded"))
    check = RunFinish(expect_status={"succeeded"}, changes={})
    assert store.append_frame("run-1", 1, "{}", FRAME_TTL, finish=check) is True
    assert store.append_frame("run-1", 2, "{}", FRAME_TTL, finish=RunFinish({"running"}, {})) is False
    assert store.get_run("run-1") == run_record(status="succeeded")
    assert store.read_frames("run-1") == [(1, "{}")]


def test_finish_refuses_fixed_fields_and_writes_nothing(store: Store) -> None:
    store.create_run(run_record(status="running"))
    bad = RunFinish(expect_status={"running"}, changes={"status": "failed", "claims": ()})
    with pytest.raises(ValueError, match="cannot be changed"):
        store.append_frame("run-1", 1, "{}", FRAME_TTL, finish=bad)
    assert store.get_run("run-1") == run_record(status="running")
    assert store.read_frames("run-1") == []


def test_concurrent_finishes_have_one_winner(store: Store) -> None:
    store.create_run(run_record(status="running"))
    append_frames(store, "run-1", [1])

    def finish(i: int) -> bool:
        # Every contender tries to end the run with its own terminal frame at seq 2.
        changes = {**END.changes, "result": f'{{"by":{i}}}'}
        return store.append_frame(
            "run-1", 2, f'{{"end":{i}}}', FRAME_TTL, finish=RunFinish(END.expect_status, changes)
        )

    results = run_concurrently(8, finish)
    assert results.count(True) == 1, results
    winner = results.index(True)
    final = store.get_run("run-1")
    assert final is not None and final.status == "succeeded" and final.result == f'{{"by":{winner}}}'
    assert store.read_frames("run-1") == [(1, frame(1)), (2, f'{{"end":{winner}}}')]


def test_concurrent_finishes_at_different_seqs_have_one_winner(store: Store) -> None:
    store.create_run(run_record(status="running"))

    def finish(i: int) -> bool:
        # A cancel, a failure and a success racing: each would end the run at a seq of its own.
        status = ("cancelled", "failed", "succeeded")[i % 3]
        changes = {"status": status, "frames": i + 1, "result": f'{{"by":{i}}}'}
        return store.append_frame(
            "run-1", i + 1, f'{{"end":{i}}}', FRAME_TTL, finish=RunFinish({"running"}, changes)
        )

    results = run_concurrently(8, finish)
    assert results.count(True) == 1, results
    winner = results.index(True)
    final = store.get_run("run-1")
    assert final is not None and final.frames == winner + 1 and final.result == f'{{"by":{winner}}}'
    # Only the winner's terminal frame was logged.
    assert store.read_frames("run-1", after_seq=winner, limit=1) == [(winner + 1, f'{{"end":{winner}}}')]
    for seq in range(1, 9):
        if seq != winner + 1:
            assert store.read_frames("run-1", after_seq=seq - 1, limit=1) == []


def test_finish_racing_a_conditional_update(store: Store) -> None:
    """A cancel request and the executor's finish race: whichever lands first, the record is consistent."""
    for round_ in range(4):
        run_id = f"race-{round_}"
        store.create_run(run_record(run_id, status="running"))

        def contender(i: int, run_id: str = run_id) -> object:
            if i % 2:
                return store.update_run(run_id, {"status": "cancelled"}, expect_status={"running"})
            end = RunFinish({"running"}, {"status": "succeeded"})
            return store.append_frame(run_id, 1, f"{i}", FRAME_TTL, finish=end)

        results = run_concurrently(6, contender)
        wins = [r for r in results if r not in (None, False)]
        assert len(wins) == 1, results
        final = store.get_run(run_id)
        assert final is not None
        if wins[0] is True:
            assert final.status == "succeeded"
            assert len(store.read_frames(run_id)) == 1
        else:
            assert final.status == "cancelled"
            assert store.read_frames(run_id) == []
