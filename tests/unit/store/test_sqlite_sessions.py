"""SQLite-specific session behaviour: files from before sessions, purging, sharing and grouping."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from selador.store.sqlite import SqliteStore

from .conftest import T0, FakeClock
from .test_contract import record
from .test_session_contract import OWNER, commit_for, new_session, put_messages


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "shared.sqlite3")


def test_a_file_from_before_sessions_gains_their_tables(path: str, clock: FakeClock) -> None:
    SqliteStore(path, now=clock).put_connection(record("kept", expires_at=int(T0) + 1000))
    with sqlite3.connect(path) as conn:  # the file as the previous version left it
        conn.execute("DROP TABLE sessions")  # (their indexes go with them)
        conn.execute("DROP TABLE session_items")
    store = SqliteStore(path, now=clock)
    assert store.get_connection("kept") is not None
    session = new_session(clock)
    assert store.create_session(session) is True
    assert store.get_session(OWNER, "chat-1") == session
    with sqlite3.connect(path) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sessions", "session_items", "connections", "runs"} <= tables


def test_purge_expired_deletes_expired_sessions_and_children(path: str, clock: FakeClock) -> None:
    store = SqliteStore(path, now=clock)
    old = new_session(clock, "old", ttl=10)
    new = new_session(clock, "new", ttl=1000)
    for session in (old, new):
        assert store.create_session(session) is True
    put_messages(store, dataclasses.replace(old, children_expire_at=int(T0) + 10), range(2))
    put_messages(store, new, range(2))
    store.put_connection(record("c", expires_at=int(T0) + 1000))
    clock.advance(10)
    # the old session and its two messages
    assert store.purge_expired() == 3
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT session_id FROM sessions")] == ["new"]
        assert {r[0] for r in conn.execute("SELECT session_id FROM session_items")} == {"new"}


def test_two_instances_on_one_file_share_sessions(path: str, clock: FakeClock) -> None:
    a, b = SqliteStore(path, now=clock), SqliteStore(path, now=clock)
    session = new_session(clock)
    assert a.create_session(session) is True
    assert b.create_session(new_session(clock)) is False
    assert b.commit_turn(OWNER, "chat-1", session.generation, commit_for(clock, 0, 2)) is True
    assert a.commit_turn(OWNER, "chat-1", session.generation, commit_for(clock, 0, 2)) is False
    loaded = a.get_session(OWNER, "chat-1")
    assert loaded is not None and loaded.turns == 1


def test_session_writes_in_a_group_roll_back_together(path: str, clock: FakeClock) -> None:
    store = SqliteStore(path, now=clock)
    session = new_session(clock)
    with pytest.raises(RuntimeError), store.grouped():
        assert store.create_session(session) is True
        put_messages(store, session, range(3))
        raise RuntimeError("the route failed")
    assert store.get_session(OWNER, "chat-1") is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM session_items").fetchone()[0] == 0
    with store.grouped():
        assert store.create_session(session) is True
        put_messages(store, session, range(3))
    assert [
        n for n, _ in store.read_session_messages(OWNER, "chat-1", session.generation, "default", 0, 3)
    ] == [
        0,
        1,
        2,
    ]


def test_a_commit_never_overwrites_a_stored_turn(path: str, clock: FakeClock) -> None:
    """A turn row where the record says none is (they disagree) refuses the commit, as in DynamoDB."""
    store = SqliteStore(path, now=clock)
    session = new_session(clock)
    assert store.create_session(session) is True
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO session_items VALUES (?, 'chat-1', ?, 'turn', '', 0, '{}', ?)",
            (OWNER, session.generation, int(T0) + 99_999),
        )
    assert store.commit_turn(OWNER, "chat-1", session.generation, commit_for(clock, 0, 2)) is False
    loaded = store.get_session(OWNER, "chat-1")
    assert loaded is not None and loaded.turns == 0
