"""The SessionStore contract, run against every implementation, down to what each leaves in storage."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from selador.store.base import Store
from selador.store.dynamodb import DynamoDbStore
from selador.store.dynamodb_session_items import agent_key, message_key, session_hash, session_key, turn_key
from selador.store.sessions import SessionRecord, TurnCommit, TurnRecord
from selador.store.sqlite import SqliteStore

from .conftest import T0, FakeClock, LinearizedClient

TTL = 3600
OWNER = "p:user-42"
AGENT = "default"


@dataclass
class Backend:
    """A store plus a view of its raw storage, to check what the store really wrote and deleted.

    Attributes:
        store: The store under test.
        stored: ``stored(owner, session_id)``: every row or item of that session (its record and
            children of every generation, expired or not), by :attr:`key`, with its ``expires_at``.
        key: ``key(kind, owner, session_id, generation, agent_id, n)``, the name :attr:`stored`
            gives a child (``kind`` ``agent``, ``message`` or ``turn``; ``agent_id`` ``""`` and
            ``n`` the index for a turn), or the record (``kind`` ``session``).
        total: How many rows or items the storage holds for sessions, all owners together.
    """

    store: Store
    stored: Callable[[str, str], dict[str, float]]
    key: Callable[[str, str, str, str, str, int], str]
    total: Callable[[], int]


def _sqlite_backend(path: Path, clock: FakeClock) -> Iterator[Backend]:
    store = SqliteStore(str(path), now=clock)

    def stored(owner: str, session_id: str) -> dict[str, float]:
        with sqlite3.connect(path) as conn:
            rows: dict[str, float] = {}
            for (expires_at,) in conn.execute(
                "SELECT expires_at FROM sessions WHERE owner = ? AND session_id = ?", (owner, session_id)
            ):
                rows["session"] = float(expires_at)
            for kind, generation, agent_id, n, child_expires_at in conn.execute(
                "SELECT kind, generation, agent_id, n, expires_at FROM session_items "
                "WHERE owner = ? AND session_id = ?",
                (owner, session_id),
            ):
                rows[f"{kind}|{generation}|{agent_id}|{n}"] = float(child_expires_at)
        return rows

    def key(kind: str, owner: str, session_id: str, generation: str, agent_id: str, n: int) -> str:
        return "session" if kind == "session" else f"{kind}|{generation}|{agent_id}|{n}"

    def total() -> int:
        with sqlite3.connect(path) as conn:
            return sum(
                conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("sessions", "session_items")
            )

    yield Backend(store, stored, key, total)
    store.close()


def _dynamodb_backend(client: LinearizedClient, clock: FakeClock) -> Backend:
    store = DynamoDbStore(client, "selador-connections", now=clock)
    assert store.create_table_if_missing() is True

    def scan() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"TableName": store.table_name, "ConsistentRead": True}
        while True:
            answer = client.scan(**params)
            items += answer["Items"]
            if "LastEvaluatedKey" not in answer:
                return items
            params["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def stored(owner: str, session_id: str) -> dict[str, float]:
        digest = session_hash(owner, session_id)
        found = {}
        for item in scan():
            mentions = digest in item["pk"]["S"] or (
                item.get("owner", {}).get("S") == owner and item.get("session_id", {}).get("S") == session_id
            )
            if mentions:
                found[item["pk"]["S"]] = float(item["expires_at"]["N"])
        return found

    def key(kind: str, owner: str, session_id: str, generation: str, agent_id: str, n: int) -> str:
        digest = session_hash(owner, session_id)
        if kind == "session":
            return session_key(owner, session_id)
        if kind == "agent":
            return agent_key(digest, generation, agent_id)
        if kind == "message":
            return message_key(digest, generation, agent_id, n)
        return turn_key(digest, generation, n)

    def total() -> int:
        return sum(
            1 for item in scan() if item["pk"]["S"].startswith(("sess#", "sagent#", "smsg#", "sturn#"))
        )

    return Backend(store, stored, key, total)


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield from _sqlite_backend(tmp_path / "store.sqlite3", clock)
    else:
        yield _dynamodb_backend(request.getfixturevalue("dynamodb_client"), clock)


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


def new_session(
    clock: FakeClock, session_id: str = "chat-1", owner: str = OWNER, *, ttl: int = TTL, **changes: Any
) -> SessionRecord:
    """A fresh record as a caller builds it: used now, a new generation, children living 1.5 TTL."""
    now = clock()
    record = SessionRecord(
        owner=owner,
        session_id=session_id,
        generation=uuid.uuid4().hex,
        created_at=now,
        last_used_at=now,
        expires_at=math.ceil(now + ttl),
        children_expire_at=math.ceil(now + 1.5 * ttl),
    )
    return dataclasses.replace(record, **changes)


def created(store: Store, record: SessionRecord) -> SessionRecord:
    assert store.create_session(record) is True
    return record


def turn(index: int, at: float, question: str = "") -> TurnRecord:
    return TurnRecord(
        index=index,
        question=question or f"question {index} — olá 🚀",
        answer=f"answer {index}",
        agent="selador",
        sources='[{"title":"doc","url":"https://example.com/ü"}]',
        created_at=at,
    )


def commit_for(clock: FakeClock, index: int, messages: int, **changes: Any) -> TurnCommit:
    now = clock()
    return TurnCommit(
        turn=turn(index, now),
        messages=messages,
        last_used_at=now,
        expires_at=math.ceil(now + TTL),
        **changes,
    )


def put_messages(store: Store, record: SessionRecord, ids: range | list[int], agent: str = AGENT) -> None:
    for n in ids:
        store.put_session_message(
            record.owner,
            record.session_id,
            record.generation,
            agent,
            n,
            json.dumps({"n": n, "a": agent}),
            record.children_expire_at,
        )


def messages_of(store: Store, record: SessionRecord, start: int, stop: int, agent: str = AGENT) -> list[int]:
    found = store.read_session_messages(
        record.owner, record.session_id, record.generation, agent, start, stop
    )
    for n, data in found:
        assert json.loads(data) == {"n": n, "a": agent}
    return [n for n, _ in found]


# -- create and get ------------------------------------------------------------------------------


def test_create_then_get_round_trips_every_field(store: Store, clock: FakeClock) -> None:
    clock.advance(0.125)  # fractional epoch seconds survive
    record = created(store, new_session(clock, title="first question ü"))
    loaded = store.get_session(OWNER, "chat-1")
    assert loaded == record
    assert loaded is not None
    assert (type(loaded.created_at), type(loaded.last_used_at)) == (float, float)
    assert (type(loaded.expires_at), type(loaded.children_expire_at), type(loaded.turns)) == (int, int, int)
    assert store.get_session(OWNER, "chat-2") is None
    assert store.get_session("p:someone-else", "chat-1") is None


def test_create_refuses_an_unexpired_duplicate(store: Store, clock: FakeClock) -> None:
    first = created(store, new_session(clock))
    clock.advance(TTL - 1)
    rival = new_session(clock, title="rival")
    assert store.create_session(rival) is False
    assert store.get_session(OWNER, "chat-1") == first


def test_create_again_with_the_same_generation_is_a_resend(store: Store, clock: FakeClock) -> None:
    """The same record again (a retried request) is the caller's own session: True, unchanged."""
    record = created(store, new_session(clock))
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 2)) is True
    assert store.create_session(record) is True
    loaded = store.get_session(OWNER, "chat-1")
    assert loaded is not None and loaded.turns == 1


def test_create_replaces_an_expired_session_with_a_new_generation(
    backend: Backend, store: Store, clock: FakeClock
) -> None:
    old = created(store, new_session(clock))
    store.put_session_agent(OWNER, "chat-1", old.generation, AGENT, '{"agent":"old"}', old.children_expire_at)
    put_messages(store, old, range(3))
    assert store.commit_turn(OWNER, "chat-1", old.generation, commit_for(clock, 0, 3)) is True
    assert any(old.generation in key for key in backend.stored(OWNER, "chat-1"))

    clock.advance(TTL + 1)  # the session expired; its children (1.5 TTL) have not
    assert store.get_session(OWNER, "chat-1") is None
    new = created(store, new_session(clock))
    assert new.generation != old.generation
    loaded = store.get_session(OWNER, "chat-1")
    assert loaded == new and loaded.turns == 0 and loaded.messages == 0
    assert store.get_session_agent(OWNER, "chat-1", new.generation, AGENT) is None
    assert messages_of(store, new, 0, 10) == []
    assert store.read_turns(OWNER, "chat-1", new.generation, 1) == []
    # Both stores delete the old generation's children when they replace it.
    assert not any(old.generation in key for key in backend.stored(OWNER, "chat-1"))


def test_replacing_an_expired_session_clears_its_children_even_of_the_same_generation(
    backend: Backend, store: Store, clock: FakeClock
) -> None:
    record = created(store, new_session(clock))
    store.put_session_agent(OWNER, "chat-1", record.generation, AGENT, "{}", record.children_expire_at)
    put_messages(store, record, range(2))
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 2)) is True
    clock.advance(TTL + 1)
    again = created(store, dataclasses.replace(record, expires_at=math.ceil(clock() + TTL)))
    assert set(backend.stored(OWNER, "chat-1")) == {backend.key("session", OWNER, "chat-1", "", "", 0)}
    assert messages_of(store, again, 0, 2) == []
    assert store.commit_turn(OWNER, "chat-1", again.generation, commit_for(clock, 0, 1)) is True


def test_expiry_is_exact_to_the_second(store: Store, clock: FakeClock) -> None:
    created(store, new_session(clock, expires_at=int(T0) + 10))
    clock.advance(9.5)
    assert store.get_session(OWNER, "chat-1") is not None
    clock.advance(0.5)  # exactly expires_at: expired
    assert store.get_session(OWNER, "chat-1") is None


@pytest.mark.parametrize("generation", ["", "a#b", "g 1", "x" * 65])
def test_a_malformed_generation_is_refused_everywhere(
    backend: Backend, store: Store, clock: FakeClock, generation: str
) -> None:
    """A ``#`` in a generation could make two children's keys collide; no method takes one."""
    with pytest.raises(ValueError, match="generation"):
        store.create_session(new_session(clock, generation=generation))
    args = (OWNER, "chat-1", generation)
    calls: list[Callable[[], object]] = [
        lambda: store.commit_turn(*args, commit_for(clock, 0, 1)),
        lambda: store.put_session_agent(*args, AGENT, "{}", int(T0) + 60),
        lambda: store.get_session_agent(*args, AGENT),
        lambda: store.put_session_message(*args, AGENT, 0, "{}", int(T0) + 60),
        lambda: store.read_session_messages(*args, AGENT, 0, 0),
        lambda: store.read_turns(*args, 0),
        lambda: store.refresh_children(*args, agent_ids=(), messages=0, turns=0, expires_at=int(T0) + 60),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="generation"):
            call()
    assert backend.total() == 0


ODD_SESSIONS = [
    ("p:a#b", "c"),
    ("p:a", "b#c"),  # would share a naive "owner#id" key with the one above
    ("t:" + "ab" * 32, "olá mundo 🚀 连接"),
    ("p:user with spaces", "  spaced id  "),
    ("p:x", "#"),
]


def test_odd_owners_and_ids_stay_apart(store: Store, clock: FakeClock) -> None:
    records = [created(store, new_session(clock, session_id, owner)) for owner, session_id in ODD_SESSIONS]
    for record in records:
        store.put_session_agent(
            record.owner,
            record.session_id,
            record.generation,
            "a#1",
            record.session_id,
            record.children_expire_at,
        )
        put_messages(store, record, range(2), agent="a#1")
    for record in records:
        assert store.get_session(record.owner, record.session_id) == record
        assert (
            store.get_session_agent(record.owner, record.session_id, record.generation, "a#1")
            == record.session_id
        )
        assert messages_of(store, record, 0, 5, agent="a#1") == [0, 1]
        page, _ = store.list_sessions(record.owner, 10)
        assert [r.session_id for r in page] == [record.session_id]
    assert store.delete_session("p:a#b", "c") is True
    assert store.get_session("p:a", "b#c") == records[1]
    assert messages_of(store, records[1], 0, 5, agent="a#1") == [0, 1]


# -- commit_turn ---------------------------------------------------------------------------------


def test_commit_turn_advances_the_record(store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    clock.advance(30.5)
    commit = commit_for(clock, 0, 4, title="the first question")
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit) is True
    assert store.get_session(OWNER, "chat-1") == dataclasses.replace(
        record,
        turns=1,
        messages=4,
        last_used_at=commit.last_used_at,
        expires_at=commit.expires_at,
        title="the first question",
    )
    assert store.read_turns(OWNER, "chat-1", record.generation, 1) == [commit.turn]

    clock.advance(10)
    second = commit_for(clock, 1, 6, children_expire_at=int(T0) + 99_999)
    assert store.commit_turn(OWNER, "chat-1", record.generation, second) is True
    loaded = store.get_session(OWNER, "chat-1")
    assert loaded is not None
    # title None keeps the title; children_expire_at moves only when the commit says so.
    assert (loaded.turns, loaded.messages, loaded.title) == (2, 6, "the first question")
    assert loaded.children_expire_at == int(T0) + 99_999


@pytest.mark.parametrize(
    "failure", ["generation", "index-behind", "index-ahead", "expired", "missing", "deleted"]
)
def test_commit_turn_conditions(backend: Backend, store: Store, clock: FakeClock, failure: str) -> None:
    record = created(store, new_session(clock))
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 2)) is True
    generation, index, session_id = record.generation, 1, "chat-1"
    if failure == "generation":
        generation = uuid.uuid4().hex
    elif failure == "index-behind":
        index = 0
    elif failure == "index-ahead":
        index = 2
    elif failure == "expired":
        clock.advance(TTL + 5)
    elif failure == "missing":
        session_id = "chat-never"
    else:
        assert store.delete_session(OWNER, "chat-1") is True
    before = backend.stored(OWNER, session_id)
    commit = commit_for(clock, index, 9, title="changed", children_expire_at=int(T0) + 99_999)
    assert store.commit_turn(OWNER, session_id, generation, commit) is False
    assert backend.stored(OWNER, session_id) == before  # nothing written, nothing moved
    if failure not in ("expired", "missing", "deleted"):
        loaded = store.get_session(OWNER, "chat-1")
        assert loaded is not None and (loaded.turns, loaded.messages, loaded.title) == (1, 2, "")


def test_a_turn_is_committed_once(store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 2)) is True
    assert (
        store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 3, title="again")) is False
    )
    loaded = store.get_session(OWNER, "chat-1")
    assert loaded is not None and (loaded.turns, loaded.messages, loaded.title) == (1, 2, "")


def test_read_turns_oldest_first(store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    commits = []
    for index in range(4):
        clock.advance(1.25)
        commits.append(commit_for(clock, index, 2 * (index + 1)))
        assert store.commit_turn(OWNER, "chat-1", record.generation, commits[-1]) is True
    assert store.read_turns(OWNER, "chat-1", record.generation, 4) == [c.turn for c in commits]
    assert store.read_turns(OWNER, "chat-1", record.generation, 2) == [c.turn for c in commits[:2]]
    assert store.read_turns(OWNER, "chat-1", record.generation, 0) == []
    assert store.read_turns(OWNER, "chat-1", uuid.uuid4().hex, 4) == []


def test_turn_items_outlive_the_session_they_extend(backend: Backend, store: Store, clock: FakeClock) -> None:
    """A turn item, like every child, is written to expire 1.5 session TTLs after its commit."""
    record = created(store, new_session(clock))
    clock.advance(100)
    commit = commit_for(clock, 0, 2)
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit) is True
    key = backend.key("turn", OWNER, "chat-1", record.generation, "", 0)
    assert backend.stored(OWNER, "chat-1")[key] == math.ceil(clock() + 1.5 * TTL)


# -- messages and agents -------------------------------------------------------------------------


def test_agent_record_round_trip(store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    args = (OWNER, "chat-1", record.generation)
    assert store.get_session_agent(*args, AGENT) is None
    store.put_session_agent(*args, AGENT, '{"state":1,"ü":"🚀"}', record.children_expire_at)
    store.put_session_agent(*args, "other", '{"other":true}', record.children_expire_at)
    assert store.get_session_agent(*args, AGENT) == '{"state":1,"ü":"🚀"}'
    store.put_session_agent(*args, AGENT, '{"state":2}', record.children_expire_at)
    assert store.get_session_agent(*args, AGENT) == '{"state":2}'
    assert store.get_session_agent(*args, "other") == '{"other":true}'
    assert store.get_session_agent(OWNER, "chat-1", uuid.uuid4().hex, AGENT) is None


def test_expired_children_are_invisible(store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    args = (OWNER, "chat-1", record.generation)
    store.put_session_agent(*args, AGENT, "{}", int(T0) + 10)
    store.put_session_message(*args, AGENT, 0, '{"n":0,"a":"default"}', int(T0) + 10)
    store.put_session_message(*args, AGENT, 1, '{"n":1,"a":"default"}', int(T0) + 1000)
    clock.advance(10)
    assert store.get_session_agent(*args, AGENT) is None
    assert messages_of(store, record, 0, 2) == [1]


def test_read_messages_respects_start_and_stop_and_skips_missing(store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    put_messages(store, record, [0, 1, 2, 4, 5, 7])
    put_messages(store, record, range(10), agent="other")
    assert messages_of(store, record, 0, 8) == [0, 1, 2, 4, 5, 7]
    assert messages_of(store, record, 2, 5) == [2, 4]
    assert messages_of(store, record, 3, 4) == []
    assert messages_of(store, record, 5, 5) == []
    assert messages_of(store, record, 6, 100) == [7]
    assert messages_of(store, record, 0, 10, agent="other") == list(range(10))
    other_generation = dataclasses.replace(record, generation=uuid.uuid4().hex)
    assert messages_of(store, other_generation, 0, 10) == []


def test_a_message_is_replaced_in_place(store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    args = (OWNER, "chat-1", record.generation, AGENT)
    store.put_session_message(*args, 0, '{"v":1}', record.children_expire_at)
    store.put_session_message(*args, 0, '{"v":2}', record.children_expire_at)
    assert store.read_session_messages(*args, 0, 1) == [(0, '{"v":2}')]


def test_read_many_messages(store: Store, clock: FakeClock) -> None:
    """More than one BatchGetItem's worth (100 keys) comes back complete and in order."""
    record = created(store, new_session(clock))
    put_messages(store, record, range(230))
    assert messages_of(store, record, 0, 230) == list(range(230))
    assert messages_of(store, record, 95, 205) == list(range(95, 205))


def test_uncommitted_messages_are_seen_only_past_the_committed_count(store: Store, clock: FakeClock) -> None:
    """A failed turn's messages are stored, but a caller reading up to ``messages`` never sees them."""
    record = created(store, new_session(clock))
    put_messages(store, record, range(4))
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 4)) is True
    put_messages(store, record, [4, 5, 6])  # the next turn failed before committing
    loaded = store.get_session(OWNER, "chat-1")
    assert loaded is not None and loaded.messages == 4
    assert messages_of(store, loaded, 0, loaded.messages) == [0, 1, 2, 3]
    assert messages_of(store, loaded, loaded.messages, loaded.messages + 10) == [4, 5, 6]


# -- listing -------------------------------------------------------------------------------------


def sessions_used_in_order(store: Store, clock: FakeClock, count: int, owner: str = OWNER) -> list[str]:
    """Create ``count`` sessions, each used after the previous one; their ids, newest first."""
    ids = []
    for i in range(count):
        clock.advance(1.5)
        ids.append(created(store, new_session(clock, f"s-{i:02d}", owner)).session_id)
    return ids[::-1]


def all_pages(store: Store, owner: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = store.list_sessions(owner, limit, cursor)
        pages.append([record.session_id for record in page])
        assert len(page) <= limit
        if cursor is None:
            return pages
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), "a cursor must be safe in a URL"
        assert len(pages) < 50, "paging does not end"


def test_list_newest_first_over_several_pages(store: Store, clock: FakeClock) -> None:
    newest_first = sessions_used_in_order(store, clock, 7)
    sessions_used_in_order(store, clock, 3, owner="p:someone-else")
    assert all_pages(store, OWNER, 3) == [newest_first[0:3], newest_first[3:6], newest_first[6:7]]
    assert all_pages(store, OWNER, 100) == [newest_first]
    page, cursor = store.list_sessions(OWNER, 1)
    assert [r.session_id for r in page] == [newest_first[0]] and cursor is not None
    assert page[0] == store.get_session(OWNER, newest_first[0])


def test_the_last_full_page_has_no_cursor(store: Store, clock: FakeClock) -> None:
    newest_first = sessions_used_in_order(store, clock, 4)
    assert all_pages(store, OWNER, 2) == [newest_first[:2], newest_first[2:]]
    assert all_pages(store, OWNER, 4) == [newest_first]
    assert store.list_sessions("p:nobody", 5) == ([], None)


def test_a_cursor_outlives_the_session_it_points_after(store: Store, clock: FakeClock) -> None:
    newest_first = sessions_used_in_order(store, clock, 5)
    page, cursor = store.list_sessions(OWNER, 2)
    assert [r.session_id for r in page] == newest_first[:2] and cursor is not None
    assert store.delete_session(OWNER, newest_first[1]) is True
    page, cursor = store.list_sessions(OWNER, 2, cursor)
    assert [r.session_id for r in page] == newest_first[2:4] and cursor is not None
    assert store.list_sessions(OWNER, 2, cursor) == ([store.get_session(OWNER, newest_first[4])], None)


def test_a_committed_turn_moves_a_session_to_the_front(store: Store, clock: FakeClock) -> None:
    newest_first = sessions_used_in_order(store, clock, 3)
    oldest = store.get_session(OWNER, newest_first[-1])
    assert oldest is not None
    clock.advance(5)
    assert store.commit_turn(OWNER, oldest.session_id, oldest.generation, commit_for(clock, 0, 2)) is True
    page, _ = store.list_sessions(OWNER, 10)
    assert [r.session_id for r in page] == [newest_first[-1], *newest_first[:-1]]
    assert page[0].turns == 1


def test_list_skips_expired_sessions_even_when_a_page_comes_up_short(store: Store, clock: FakeClock) -> None:
    """The newest sessions expired first (short TTL): pages must still fill up and chain correctly."""
    live = []
    for i in range(5):
        clock.advance(1)
        live.append(created(store, new_session(clock, f"live-{i}")).session_id)
    for i in range(6):
        clock.advance(1)
        created(store, new_session(clock, f"brief-{i}", ttl=30))
    clock.advance(40)  # every brief-* session expired; all are newer than every live-* one
    assert all_pages(store, OWNER, 2) == [live[4:2:-1], live[2:0:-1], live[0:1]]
    assert all_pages(store, OWNER, 5) == [live[::-1]]


def test_paging_visits_sessions_used_at_the_same_instant_once(store: Store, clock: FakeClock) -> None:
    clock.advance(1)
    for i in range(5):
        created(store, new_session(clock, f"tie-{i}"))
    pages = all_pages(store, OWNER, 2)
    listed = [session_id for page in pages for session_id in page]
    assert sorted(listed) == [f"tie-{i}" for i in range(5)]
    if isinstance(store, SqliteStore):
        # Ties go by id in SQLite; the DynamoDB index orders them its own way (best effort).
        assert listed == [f"tie-{i}" for i in range(5)]


def encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        "abcde",  # not base64: no encoding is 4n+1 characters long
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),  # not UTF-8
        encoded({"used": 1, "id": "x"}),
        encoded([1]),
        encoded([True, "x"]),
        encoded(["1", "x"]),
        encoded([1, ""]),
        encoded([1, 2]),
        encoded([1e309, "x"]),  # json.dumps writes Infinity
        # Never a time: DynamoDB refuses such numbers in a key (past 1E+125, or under 1E-130).
        encoded([1e300, "x"]),
        encoded([1e-300, "x"]),
        encoded([-1.5, "x"]),
        "A" * 5000,
    ],
)
def test_a_malformed_cursor_is_a_value_error(store: Store, clock: FakeClock, cursor: str) -> None:
    sessions_used_in_order(store, clock, 2)
    with pytest.raises(ValueError):
        store.list_sessions(OWNER, 1, cursor)


@pytest.mark.parametrize("limit", [0, -1, 101])
def test_a_limit_out_of_range_is_a_value_error(store: Store, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_sessions(OWNER, limit)


def test_owner_has_sessions(store: Store, clock: FakeClock) -> None:
    assert store.owner_has_sessions(OWNER) is False
    created(store, new_session(clock, "brief", ttl=10))
    created(store, new_session(clock, "other", "p:someone-else"))
    assert store.owner_has_sessions(OWNER) is True
    clock.advance(10)
    assert store.owner_has_sessions(OWNER) is False  # only an expired one left
    created(store, new_session(clock, "kept"))
    assert store.owner_has_sessions(OWNER) is True
    assert store.delete_session(OWNER, "kept") is True
    assert store.owner_has_sessions(OWNER) is False
    assert store.owner_has_sessions("p:someone-else") is True


def test_owner_has_sessions_looks_past_many_expired_ones(store: Store, clock: FakeClock) -> None:
    created(store, new_session(clock, "old-but-live", ttl=10_000))
    for i in range(25):
        clock.advance(1)
        created(store, new_session(clock, f"brief-{i}", ttl=30))
    clock.advance(60)
    assert store.owner_has_sessions(OWNER) is True


# -- delete --------------------------------------------------------------------------------------


def test_delete_leaves_nothing_of_the_session(backend: Backend, store: Store, clock: FakeClock) -> None:
    keep = created(store, new_session(clock, "keep"))
    put_messages(store, keep, range(2))
    record = created(store, new_session(clock))
    for agent in (AGENT, "helper"):
        store.put_session_agent(OWNER, "chat-1", record.generation, agent, "{}", record.children_expire_at)
    put_messages(store, record, range(5))
    put_messages(store, record, range(2), agent="helper")
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 2)) is True
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 1, 3)) is True
    put_messages(store, record, range(5, 8))  # a failed turn's messages, past the committed 3
    stored = backend.stored(OWNER, "chat-1")
    # session, 2 agents, 8 + 2 messages, 2 turns
    assert len(stored) == 15, sorted(stored)
    assert backend.key("message", OWNER, "chat-1", record.generation, AGENT, 7) in stored
    kept = backend.stored(OWNER, "keep")
    total = backend.total()

    assert store.delete_session(OWNER, "chat-1") is True
    assert backend.stored(OWNER, "chat-1") == {}
    assert backend.total() == total - 15
    assert backend.stored(OWNER, "keep") == kept
    assert store.get_session(OWNER, "chat-1") is None
    assert messages_of(store, record, 0, 10) == []
    assert store.read_turns(OWNER, "chat-1", record.generation, 2) == []
    assert store.get_session_agent(OWNER, "chat-1", record.generation, AGENT) is None
    assert [r.session_id for r in store.list_sessions(OWNER, 10)[0]] == ["keep"]
    assert store.delete_session(OWNER, "chat-1") is False


def test_delete_after_recreating_with_the_same_generation_leaves_nothing(
    backend: Backend, store: Store, clock: FakeClock
) -> None:
    """The agent of a session created again (a reused generation) is found by the next delete too."""
    record = created(store, new_session(clock))
    for _ in range(2):
        store.put_session_agent(OWNER, "chat-1", record.generation, AGENT, "{}", record.children_expire_at)
        assert store.delete_session(OWNER, "chat-1") is True
        assert backend.stored(OWNER, "chat-1") == {}
        created(store, record)
    store.put_session_agent(OWNER, "chat-1", record.generation, AGENT, "{}", record.children_expire_at)
    assert len(backend.stored(OWNER, "chat-1")) == 2
    assert store.delete_session(OWNER, "chat-1") is True
    assert backend.stored(OWNER, "chat-1") == {}


def test_delete_of_a_missing_session_is_false(backend: Backend, store: Store, clock: FakeClock) -> None:
    created(store, new_session(clock, "other"))
    total = backend.total()
    assert store.delete_session(OWNER, "chat-1") is False
    assert store.delete_session("p:someone-else", "other") is False
    assert backend.total() == total


def test_delete_of_an_expired_session_is_true(backend: Backend, store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    store.put_session_agent(OWNER, "chat-1", record.generation, AGENT, "{}", record.children_expire_at)
    put_messages(store, record, range(3))
    clock.advance(TTL)
    assert store.delete_session(OWNER, "chat-1") is True
    assert backend.stored(OWNER, "chat-1") == {}


# -- refresh_children ----------------------------------------------------------------------------


def test_refresh_children_moves_their_expiry(backend: Backend, store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    first_expiry = int(T0) + 100
    args = (OWNER, "chat-1", record.generation)
    for agent in (AGENT, "unlisted"):
        store.put_session_agent(*args, agent, "{}", first_expiry)
    put_messages(store, dataclasses.replace(record, children_expire_at=first_expiry), range(4))
    store.put_session_message(*args, AGENT, 2, '{"n":2,"a":"default"}', int(T0) + 5)  # expires first
    assert store.commit_turn(*args, commit_for(clock, 0, 3)) is True
    assert store.commit_turn(*args, commit_for(clock, 1, 3)) is True

    def key(kind: str, agent: str, n: int) -> str:
        return backend.key(kind, OWNER, "chat-1", record.generation, agent, n)

    clock.advance(10)  # message 2 expired
    new_expiry = int(T0) + 50_000
    store.refresh_children(*args, agent_ids=(AGENT,), messages=3, turns=1, expires_at=new_expiry)
    stored = backend.stored(OWNER, "chat-1")
    refreshed = {
        key("agent", AGENT, 0),
        key("message", AGENT, 0),
        key("message", AGENT, 1),
        key("turn", "", 0),
    }
    assert {k for k, e in stored.items() if e == new_expiry} == refreshed
    assert stored[key("message", AGENT, 3)] == first_expiry  # past the committed count
    assert stored[key("agent", "unlisted", 0)] == first_expiry  # not listed
    assert stored[key("message", AGENT, 2)] == int(T0) + 5  # expired stays expired
    assert stored[key("turn", "", 1)] != new_expiry  # past the given turn count

    clock.t = first_expiry + 1.0  # past the old expiry: only what was refreshed is left
    assert store.get_session_agent(*args, AGENT) == "{}"
    assert store.get_session_agent(*args, "unlisted") is None
    assert messages_of(store, record, 0, 10) == [0, 1]
    assert [t.index for t in store.read_turns(*args, 2)] == [0, 1]  # turn 1 lives 1.5 TTL anyway


def test_refresh_of_nothing_changes_nothing(backend: Backend, store: Store, clock: FakeClock) -> None:
    record = created(store, new_session(clock))
    put_messages(store, record, range(2))
    before = backend.stored(OWNER, "chat-1")
    store.refresh_children(
        OWNER, "chat-1", record.generation, agent_ids=(), messages=2, turns=0, expires_at=1
    )
    assert backend.stored(OWNER, "chat-1") == before
