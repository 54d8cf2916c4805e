"""SQLite-specific behaviour: a file shared by instances, threads and processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from selador.store.base import ConnectionRecord
from selador.store.sqlite import SqliteStore, record_from_json, record_to_json

from .conftest import T0, FakeClock
from .test_contract import record, run_concurrently, run_record


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "shared.sqlite3")


def test_two_instances_on_one_file_share_everything(path: str, clock: FakeClock) -> None:
    a = SqliteStore(path, now=clock)
    b = SqliteStore(path, now=clock)
    a.put_connection(record("x="))
    assert b.get_connection("x=") == record("x=")
    assert b.delete_connection("x=") is True
    assert a.get_connection("x=") is None

    owner = a.claim("k", 60)
    assert owner is not None
    assert b.claim("k", 60) is None
    assert b.release("k", "not-the-owner") is False
    assert a.claim("k", 60) is None
    assert b.release("k", owner) is True
    assert a.claim("k", 60) is not None

    assert a.increment("n", 60) == 1
    assert b.increment("n", 60) == 2
    assert a.increment("n", 60) == 3


def test_claim_is_atomic_across_instances_and_threads(path: str) -> None:
    stores = [SqliteStore(path) for _ in range(4)]
    for round_ in range(5):
        key = f"k{round_}"
        results = run_concurrently(8, lambda i: stores[i % 4].claim(key, 60))  # noqa: B023 - pool joins first
        assert sum(r is not None for r in results) == 1, results


def test_increments_across_instances_and_threads(path: str) -> None:
    stores = [SqliteStore(path) for _ in range(2)]
    seen = run_concurrently(8, lambda i: [stores[i % 2].increment("n", 600) for _ in range(25)])
    assert sorted(v for values in seen for v in values) == list(range(1, 201))


_WORKER = textwrap.dedent(
    """
    import sys, time
    from selador.store.sqlite import SqliteStore

    path, start = sys.argv[1], float(sys.argv[2])
    store = SqliteStore(path)
    while time.time() < start:
        time.sleep(0.001)
    won = store.claim("once", 600)
    values = [store.increment("hits", 600) for _ in range(50)]
    print(int(won is not None), *values)
    """
)


def test_claim_and_increment_are_atomic_across_processes(path: str) -> None:
    SqliteStore(path).close()  # create the schema up front; the workers race on data, not DDL
    start = time.time() + 1.0  # every worker imported and connected before anyone writes
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, path, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append([int(v) for v in out.split()])
    assert sum(o[0] for o in outputs) == 1
    assert sorted(v for o in outputs for v in o[1:]) == list(range(1, 201))


def test_writer_waits_for_another_connections_lock(path: str) -> None:
    store = SqliteStore(path, busy_timeout_ms=5000)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    timer.start()
    began = time.monotonic()
    try:
        assert store.claim("k", 60) is not None
    finally:
        timer.join()
        other.close()
    assert time.monotonic() - began >= 0.25


def test_writer_gives_up_after_busy_timeout(path: str) -> None:
    store = SqliteStore(path, busy_timeout_ms=100)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.claim("k", 60)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.claim("k", 60) is not None


def _hold_write_lock_on_new_file(path: str) -> sqlite3.Connection:
    """Another connection in the middle of creating the file (rollback journal, RESERVED lock).

    That is the state a connection switching a new file to WAL is in; SQLite then refuses a second
    connection's switch at once, without calling its busy handler.
    """
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE unrelated (x)")
    other.execute("BEGIN IMMEDIATE")
    return other


def test_opening_waits_for_another_connections_lock_on_a_new_file(path: str) -> None:
    other = _hold_write_lock_on_new_file(path)
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    timer.start()
    began = time.monotonic()
    try:
        store = SqliteStore(path, busy_timeout_ms=5000)
    finally:
        timer.join()
        other.close()
    assert time.monotonic() - began >= 0.25
    assert store.claim("k", 60) is not None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_gives_up_after_busy_timeout(path: str) -> None:
    other = _hold_write_lock_on_new_file(path)
    began = time.monotonic()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            SqliteStore(path, busy_timeout_ms=200)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert time.monotonic() - began >= 0.15
    assert SqliteStore(path).claim("k", 60) is not None


def test_file_is_in_wal_mode(path: str) -> None:
    SqliteStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_memory_stores_are_private(clock: FakeClock) -> None:
    a = SqliteStore(":memory:", now=clock)
    b = SqliteStore(":memory:", now=clock)
    a.put_connection(record("m"))
    assert a.get_connection("m") == record("m")
    assert b.get_connection("m") is None
    assert a.claim("k", 10) is not None
    assert b.claim("k", 10) is not None


def test_missing_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "store.sqlite3"
    SqliteStore(str(path)).put_connection(record("p"))
    assert path.exists()


def test_purge_expired_deletes_only_expired_rows(path: str, clock: FakeClock) -> None:
    store = SqliteStore(path, now=clock)
    store.put_connection(record("old", expires_at=int(T0) + 10))
    store.put_connection(record("new", expires_at=int(T0) + 1000))
    store.claim("old-claim", 10)
    store.claim("new-claim", 1000)
    store.increment("old-counter", 10)
    store.increment("new-counter", 1000)
    store.create_run(run_record("old-run", expires_at=int(T0) + 10), name="old-name")
    store.create_run(run_record("new-run", expires_at=int(T0) + 1000), name="new-name")
    store.append_frame("old-run", 1, "{}", int(T0) + 10)
    store.append_frame("new-run", 1, "{}", int(T0) + 1000)
    clock.advance(10)
    # connection, claim, counter, run, run name and frame: one expired row each
    assert store.purge_expired() == 6
    assert store.purge_expired() == 0
    with sqlite3.connect(path) as conn:
        assert {r[0] for r in conn.execute("SELECT id FROM connections")} == {"new"}
        assert {r[0] for r in conn.execute("SELECT key FROM claims")} == {"new-claim"}
        assert {r[0] for r in conn.execute("SELECT key FROM kv")} == {"ctr#new-counter"}
        assert {r[0] for r in conn.execute("SELECT run_id FROM runs")} == {"new-run"}
        assert {r[0] for r in conn.execute("SELECT name FROM run_names")} == {"new-name"}
        assert {r[0] for r in conn.execute("SELECT run_id FROM run_frames")} == {"new-run"}


def test_opening_purges_expired_rows(path: str, clock: FakeClock) -> None:
    SqliteStore(path, now=clock).put_connection(record("old", expires_at=int(T0) + 10))
    clock.advance(10)
    SqliteStore(path, now=clock)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM connections").fetchone()[0] == 0


def test_json_ignores_fields_it_does_not_know() -> None:
    original = record("fwd")
    data = json.loads(record_to_json(original))
    data["added_in_a_later_version"] = 1
    assert record_from_json(json.dumps(data)) == original


def test_json_round_trip_is_exact() -> None:
    original = ConnectionRecord(
        connection_id="ü=", connected_at=T0 + 0.1, expires_at=int(T0), principal=None, attributes={"k": "v"}
    )
    assert record_from_json(record_to_json(original)) == original


def test_closed_store_refuses_work(path: str) -> None:
    store = SqliteStore(path)
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.claim("k", 10)


# -- grouped writes and group commit -----------------------------------------------------------------


def test_grouped_calls_commit_together_or_not_at_all(path: str, clock: FakeClock) -> None:
    store = SqliteStore(path, now=clock)
    with store.grouped():
        owner = store.claim("a", 60)
        store.create_run(run_record("r-1"), name="n-1")
        assert store.append_frame("r-1", 1, "one", 2**31) is True
        assert store.append_frame("r-1", 1, "again", 2**31) is False  # a savepoint inside the group
        assert store.get_run("r-1") is not None  # reads inside the group see its writes
    assert owner is not None and store.find_run("n-1") is not None
    with pytest.raises(RuntimeError, match="boom"), store.grouped():
        store.claim("b", 60)
        store.create_run(run_record("r-2"))
        raise RuntimeError("boom")
    assert store.claim("b", 60) is not None, "the failed group's claim was rolled back"
    assert store.get_run("r-2") is None
    assert store.read_frames("r-1") == [(1, "one")]


def test_a_finish_refused_inside_a_group_rolls_back_only_its_own_frame(path: str, clock: FakeClock) -> None:
    from selador.store.base import RunFinish

    store = SqliteStore(path, now=clock)
    store.create_run(run_record("r-1", status="succeeded"))
    with store.grouped():
        assert store.append_frame("r-1", 1, "kept", 2**31) is True
        finish = RunFinish(expect_status={"running"}, changes={"status": "failed"})
        assert store.append_frame("r-1", 2, "refused", 2**31, finish=finish) is False
    assert store.read_frames("r-1") == [(1, "kept")]


def test_other_threads_appends_never_ride_on_a_group_that_rolls_back(path: str, clock: FakeClock) -> None:
    store = SqliteStore(path, now=clock)
    store.create_run(run_record("r-1"))
    entered = threading.Event()
    results: list[bool] = []

    def other() -> None:
        entered.wait(5)
        results.append(store.append_frame("r-1", 2, "other thread", 2**31))

    thread = threading.Thread(target=other)
    thread.start()
    with pytest.raises(RuntimeError), store.grouped():
        store.append_frame("r-1", 1, "grouped", 2**31)
        entered.set()
        time.sleep(0.1)  # the other thread queues its frame meanwhile
        raise RuntimeError("roll back")
    thread.join(5)
    assert results == [True]
    assert store.read_frames("r-1", 1) == [(2, "other thread")]
    assert store.read_frames("r-1") == []  # seq 1 was rolled back: the log starts with a gap


def test_concurrent_appends_are_written_in_batches_with_each_answer_right(
    path: str, clock: FakeClock
) -> None:
    store = SqliteStore(path, now=clock)
    store.create_run(run_record("r-1"))
    store.append_frame("r-1", 5, "already there", 2**31)
    answers = run_concurrently(
        32, lambda i: (i + 1, store.append_frame("r-1", i + 1, f"frame {i + 1}", 2**31))
    )
    assert dict(answers) == {seq: seq != 5 for seq in range(1, 33)}
    frames = store.read_frames("r-1", 0, 100)
    assert [seq for seq, _ in frames] == list(range(1, 33))
    assert frames[4] == (5, "already there")


def test_a_failed_batch_raises_in_every_caller(path: str) -> None:
    class Failing(SqliteStore):
        def _append_batch(self, batch):  # type: ignore[no-untyped-def]
            for item in batch:
                item.written, item.error = False, sqlite3.OperationalError("disk I/O error")

    store = Failing(path)
    errors = run_concurrently(4, lambda i: _raises(lambda: store.append_frame("r", i + 1, "x", 2**31)))
    assert errors == ["disk I/O error"] * 4


def _raises(call) -> str | None:  # type: ignore[no-untyped-def]
    try:
        call()
    except sqlite3.OperationalError as exc:
        return str(exc)
    return None


def test_writers_in_other_processes_wait_on_the_writer_lock_file(path: str) -> None:
    """The lock file is what makes writers queue instead of sleeping in SQLite's busy handler."""
    import fcntl
    import os

    SqliteStore(path).close()
    fd = os.open(path + "-writer.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    script = textwrap.dedent(
        f"""
        import time
        from selador.store.sqlite import SqliteStore
        store = SqliteStore({path!r})
        store.claim("k", 60)
        print(time.time())
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert child.poll() is None, "the write went ahead while another process held the writer lock"
    released = time.time()
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    out, _ = child.communicate(timeout=30)
    assert float(out) >= released
