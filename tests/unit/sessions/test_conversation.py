"""Owners, tokens and a conversation's turns over both stores, with real Strands agents.

The Strands ``RepositorySessionManager`` runs over :class:`StoreSessionRepository`; the agents are
real ``Agent`` objects with the offline responder, so what Strands writes and reads back is what
the product writes and reads back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from strands import Agent

from selador.agents.offline import OfflineResponder
from selador.protocol import QueryRequest, ResultData
from selador.sessions.conversation import Conversation
from selador.sessions.service import (
    AGENT_ID,
    Opening,
    Sessions,
    fresh_token,
    principal_owner,
    token_owner,
)
from selador.sessions.window import turn_starts
from selador.settings import Settings
from selador.store.base import Store
from selador.store.dynamodb import DynamoDbStore
from selador.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    if request.param == "sqlite":
        sqlite = SqliteStore(str(tmp_path / "store.sqlite3"))
        yield sqlite
        sqlite.close()
        return
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        dynamo = DynamoDbStore(boto3.client("dynamodb", region_name="us-west-2"), "sessions-test")
        dynamo.create_table_if_missing()
        yield dynamo


def settings(**overrides: Any) -> Settings:
    return Settings(**({"session_max_turns": 20, "session_ttl_seconds": 3600} | overrides))


def query(question: str, **fields: Any) -> QueryRequest:
    return QueryRequest(question=question, **fields)


# -- owners and tokens -----------------------------------------------------------------------


def test_only_well_formed_tokens_stand_for_an_owner() -> None:
    token, owner = fresh_token()
    assert token_owner(token) == owner and owner.startswith("t:") and token not in owner
    assert token_owner(fresh_token()[0]) != owner
    for bad in (
        "",
        "st1.",
        "st1.short",
        "xx1." + "A" * 32,
        "st1." + "A" * 200,
        "st1." + "é" * 20,
        "st1.a b" * 5,
    ):
        assert token_owner(bad) is None, bad
    assert principal_owner("alice") == "p:alice" != token_owner(token)


def test_resolve_adopts_only_tokens_that_own_something(store: Store) -> None:
    sessions = Sessions(store, settings())
    fresh = sessions.resolve(query("q", session_id="a"), None)
    assert fresh.token is not None and fresh.record is None and fresh.session_id == "a"
    sessions.create(fresh, "q")

    again = sessions.resolve(query("q", session_id="a", session_token=fresh.token), None)
    assert again.owner == fresh.owner and again.token == fresh.token and again.record is not None
    second = sessions.resolve(query("q", session_id="b", session_token=fresh.token), None)
    assert second.owner == fresh.owner and second.record is None  # same owner, new session

    made_up = "st1." + "Q" * 32
    planted = sessions.resolve(query("q", session_id="a", session_token=made_up), None)
    assert planted.token not in (made_up, fresh.token) and planted.owner != fresh.owner
    tokenless = sessions.resolve(query("q", session_id="a"), None)
    assert tokenless.owner not in (fresh.owner, planted.owner) and tokenless.record is None

    generated = sessions.resolve(query("q", session_id="new"), "alice")
    assert generated.session_id.startswith("s-") and generated.token is None
    assert generated.owner == "p:alice"


def test_erase_is_refused_while_a_question_runs(store: Store) -> None:
    sessions = Sessions(store, settings())
    opening = sessions.resolve(query("q", session_id="x"), "bob")
    sessions.create(opening, "q")
    claim = store.claim(opening.busy_key, 60)
    assert claim is not None
    assert sessions.erase("p:bob", "x") == "busy"
    store.release(opening.busy_key, claim)
    assert sessions.erase("p:alice", "x") == "unknown"
    assert sessions.erase("p:bob", "x") == "deleted"
    assert sessions.erase("p:bob", "x") == "unknown"


# -- turns ---------------------------------------------------------------------------------------


def turn(store: Store, conf: Settings, owner: str, question: str, *, commit: bool = True) -> Agent:
    """One question as the orchestrator asks it: open, build the agent, run, commit."""
    conversation = Conversation(store, conf, owner, "chat")
    conversation.open(question)
    agent = Agent(model=OfflineResponder(), callback_handler=None, **conversation.agent_options())
    result = agent(question)
    if commit:
        data = ResultData(
            content=str(result).strip(), agent="rag", query_type="zoning", tools_available=0, tools_used=0
        )
        assert conversation.commit(question, data) is True
    return agent


def test_a_turn_sees_only_committed_history(store: Store) -> None:
    conf = settings()
    Sessions(store, conf).create(Opening("p:u", "chat", None, None), "What is the FAR in LR2?")
    turn(store, conf, "p:u", "What is the FAR in LR2?")
    record = store.get_session("p:u", "chat")
    assert record is not None and record.turns == 1 and record.messages == 2
    assert record.title == "What is the FAR in LR2?"

    # A turn that never commits writes its messages, but they are never read back...
    turn(store, conf, "p:u", "What is the height limit in NC2?", commit=False)
    after_failure = store.get_session("p:u", "chat")
    assert after_failure is not None and after_failure.messages == 2
    stray = store.read_session_messages("p:u", "chat", record.generation, AGENT_ID, 2, 10)
    assert [i for i, _ in stray] == [2, 3]
    # ...and the next turn writes over them.
    agent = turn(store, conf, "p:u", "What did I ask first?")
    texts = [b["text"] for m in agent.messages for b in m["content"] if "text" in b and m["role"] == "user"]
    assert texts == ["What is the FAR in LR2?", "What did I ask first?"]
    final = store.get_session("p:u", "chat")
    assert final is not None and final.turns == 2 and final.messages == 4
    stored = store.read_session_messages("p:u", "chat", final.generation, AGENT_ID, 0, final.messages)
    assert [json.loads(d)["message"]["role"] for _, d in stored] == ["user", "assistant"] * 2
    turns = store.read_turns("p:u", "chat", final.generation, final.turns)
    assert [t.question for t in turns] == ["What is the FAR in LR2?", "What did I ask first?"]


def test_the_window_keeps_old_turns_stored_but_out_of_the_prompt(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = settings(session_max_turns=2)
    Sessions(store, conf).create(Opening("p:u", "chat", None, None), "q0")
    for n in range(4):
        agent = turn(store, conf, "p:u", f"Tell me about zoning, part {n}")
        assert len(turn_starts(agent.messages)) <= 2
    reads: list[tuple[int, int]] = []
    original = store.read_session_messages

    def spy(*args: Any) -> Any:
        reads.append((args[-2], args[-1]))
        return original(*args)

    monkeypatch.setattr(store, "read_session_messages", spy)
    agent = turn(store, conf, "p:u", "What did I ask first?")
    # Only the window is read: the first turns are not even fetched.
    assert reads and min(start for start, _ in reads) >= 4
    assert len(turn_starts(agent.messages)) == 2
    record = store.get_session("p:u", "chat")
    assert record is not None and record.turns == 5
    assert len(store.read_turns("p:u", "chat", record.generation, record.turns)) == 5


def test_a_long_lived_session_refreshes_its_children_before_they_expire(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = settings(session_ttl_seconds=3600)
    record = Sessions(store, conf).create(Opening("p:u", "chat", None, None), "q")
    turn(store, conf, "p:u", "first")
    calls: list[dict[str, Any]] = []
    original = store.refresh_children

    def spy(*args: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        original(*args, **kwargs)

    monkeypatch.setattr(store, "refresh_children", spy)
    turn(store, conf, "p:u", "second")
    assert calls == []  # children written 1.5 TTLs ahead: nothing to do yet
    # Half a TTL later the session would outlive its first children: they are extended first.
    import selador.sessions.conversation as conversation_module

    later = record.created_at + 2000
    monkeypatch.setattr(conversation_module.time, "time", lambda: later)
    turn(store, conf, "p:u", "third")
    assert len(calls) == 1 and calls[0]["messages"] == 6 and calls[0]["turns"] == 2
    refreshed = store.get_session("p:u", "chat")
    assert refreshed is not None and refreshed.children_expire_at == int(later + 3600 * 1.5)
