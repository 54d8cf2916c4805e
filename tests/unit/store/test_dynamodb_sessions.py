"""DynamoDB-specific session behaviour: item layout, the index, batches, resends and IAM coverage."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from selador.local.template import load_yaml
from selador.store.dynamodb import DynamoDbStore
from selador.store.dynamodb_session_items import SESSIONS_INDEX, SESSIONS_INDEX_NAME

from .conftest import T0, FakeClock, LinearizedClient
from .test_session_contract import OWNER, commit_for, new_session, put_messages

TABLE = "selador-connections"
TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


@pytest.fixture
def store(dynamodb_client: LinearizedClient, clock: FakeClock) -> DynamoDbStore:
    dynamo = DynamoDbStore(dynamodb_client, TABLE, now=clock)
    dynamo.create_table_if_missing()
    dynamo._sleep = lambda _s: None
    return dynamo


def raw_items(client: Any) -> dict[str, dict[str, Any]]:
    return {item["pk"]["S"]: item for item in client.scan(TableName=TABLE)["Items"]}


def test_session_item_layout(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    owner, session_id = "p:a#b", "chat ü"
    record = new_session(clock, session_id, owner, title="t")
    assert store.create_session(record) is True
    store.put_session_agent(
        owner, session_id, record.generation, "agent#1", '{"a":1}', record.children_expire_at
    )
    put_messages(store, record, range(2), agent="agent#1")
    clock.advance(2.5)
    commit = commit_for(clock, 0, 2)
    assert store.commit_turn(owner, session_id, record.generation, commit) is True

    digest = hashlib.sha256(f"{owner}\x00{session_id}".encode()).hexdigest()
    gen = record.generation
    items = raw_items(dynamodb_client)
    assert set(items) == {
        f"sess#{digest}",
        f"sagent#{digest}#{gen}#agent#1",
        f"smsg#{digest}#{gen}#agent#1#0",
        f"smsg#{digest}#{gen}#agent#1#1",
        f"sturn#{digest}#{gen}#0",
    }
    session = items[f"sess#{digest}"]
    assert session == {
        "pk": {"S": f"sess#{digest}"},
        "owner": {"S": owner},
        "session_id": {"S": session_id},
        "generation": {"S": gen},
        "title": {"S": "t"},
        "created_at": {"N": str(int(T0))},
        "last_used_at": {"N": repr(T0 + 2.5)},
        "expires_at": {"N": str(commit.expires_at)},
        "children_expire_at": {"N": str(record.children_expire_at)},
        "turns": {"N": "1"},
        "messages": {"N": "2"},
        "agents": {"SS": ["agent#1"]},
        # the index keys: sess_used follows last_used_at
        "sess_owner": {"S": owner},
        "sess_used": {"N": repr(T0 + 2.5)},
    }
    assert items[f"smsg#{digest}#{gen}#agent#1#1"] == {
        "pk": {"S": f"smsg#{digest}#{gen}#agent#1#1"},
        "data": {"S": '{"n": 1, "a": "agent#1"}'},
        "expires_at": {"N": str(record.children_expire_at)},
    }
    turn = items[f"sturn#{digest}#{gen}#0"]
    assert {k: v for k, v in turn.items() if k not in ("pk", "expires_at", "created_at")} == {
        "index": {"N": "0"},
        "question": {"S": commit.turn.question},
        "answer": {"S": commit.turn.answer},
        "agent": {"S": commit.turn.agent},
        "sources": {"S": commit.turn.sources},
    }
    # Only session items are in the sparse index.
    for pk, item in items.items():
        assert ("sess_owner" in item) == pk.startswith("sess#"), pk


def test_create_table_builds_the_sessions_index(
    store: DynamoDbStore, dynamodb_client: LinearizedClient
) -> None:
    table = dynamodb_client.describe_table(TableName=TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == SESSIONS_INDEX_NAME
    assert index["KeySchema"] == SESSIONS_INDEX["KeySchema"]
    assert index["Projection"] == {"ProjectionType": "ALL"}


def test_a_table_from_before_sessions_gains_the_index(
    dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    dynamodb_client.create_table(
        TableName="old",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoDbStore(dynamodb_client, "old", now=clock)
    assert store.create_table_if_missing() is False  # the table existed...
    indexes = dynamodb_client.describe_table(TableName="old")["Table"]["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in indexes] == [SESSIONS_INDEX_NAME]  # ...and gained the index
    assert store.create_table_if_missing() is False  # idempotent
    assert store.create_session(new_session(clock)) is True
    assert [r.session_id for r in store.list_sessions(OWNER, 5)[0]] == ["chat-1"]


class Unreliable:
    """Passes calls to a client, but the first batch call of each kind leaves half its work undone."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.flaky = {"batch_get_item", "batch_write_item"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> Any:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        if "batch_get_item" not in self.flaky or len(keys) < 2:
            return self._client.batch_get_item(RequestItems=RequestItems)
        self.flaky.discard("batch_get_item")
        done, left = keys[: len(keys) // 2], keys[len(keys) // 2 :]
        answer = self._client.batch_get_item(RequestItems={table: {**request, "Keys": done}})
        answer["UnprocessedKeys"] = {table: {**request, "Keys": left}}
        return answer

    def batch_write_item(self, RequestItems: dict[str, Any]) -> Any:
        ((table, requests),) = RequestItems.items()
        if "batch_write_item" not in self.flaky or len(requests) < 2:
            return self._client.batch_write_item(RequestItems=RequestItems)
        self.flaky.discard("batch_write_item")
        self._client.batch_write_item(RequestItems={table: requests[:1]})
        return {"UnprocessedItems": {table: requests[1:]}}


def test_batches_retry_what_dynamodb_left_unprocessed(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    pauses: list[float] = []
    store._sleep = pauses.append
    record = new_session(clock)
    assert store.create_session(record) is True
    store.put_session_agent(OWNER, "chat-1", record.generation, "default", "{}", record.children_expire_at)
    put_messages(store, record, range(40))
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 40)) is True
    flaky = Unreliable(dynamodb_client)
    store._client = flaky
    assert [
        n for n, _ in store.read_session_messages(OWNER, "chat-1", record.generation, "default", 0, 40)
    ] == list(range(40))
    assert store.delete_session(OWNER, "chat-1") is True
    assert flaky.flaky == set()  # both kinds of batch really did leave work undone once
    assert len(pauses) == 2
    assert raw_items(dynamodb_client) == {}


def test_batch_get_gives_up_when_keys_stay_unprocessed(store: DynamoDbStore, clock: FakeClock) -> None:
    class NeverDone:
        calls = 0

        def batch_get_item(self, RequestItems: dict[str, Any]) -> Any:
            self.calls += 1
            return {"Responses": {TABLE: []}, "UnprocessedKeys": RequestItems}

    client = NeverDone()
    store._client = client
    with pytest.raises(RuntimeError, match="unprocessed"):
        store.read_turns(OWNER, "chat-1", "g", 3)
    assert client.calls == 8


def test_a_resent_create_is_recognised_as_ours(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    """botocore resends a put whose answer was lost; the resend fails its condition, yet we created it."""

    class LostAnswer:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb_client, name)

        def put_item(self, **kwargs: Any) -> Any:
            dynamodb_client.put_item(**kwargs)  # the first attempt lands, its answer is lost
            return dynamodb_client.put_item(**kwargs)  # the resend

    store._client = LostAnswer()
    record = new_session(clock)
    assert store.create_session(record) is True
    assert store.create_session(new_session(clock)) is False  # a rival's generation
    assert store.get_session(OWNER, "chat-1") == record


def test_an_agent_is_recorded_once_and_never_creates_a_session(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    updates: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb_client, name)

        def update_item(self, **kwargs: Any) -> Any:
            updates.append(kwargs["Key"]["pk"]["S"])
            return dynamodb_client.update_item(**kwargs)

    store._client = Counting()
    store.put_session_agent(OWNER, "ghost", "g1", "default", "{}", int(T0) + 60)
    assert not [pk for pk in raw_items(dynamodb_client) if pk.startswith("sess#")]
    record = new_session(clock)
    assert store.create_session(record) is True
    for _ in range(3):
        store.put_session_agent(
            OWNER, "chat-1", record.generation, "default", "{}", record.children_expire_at
        )
    assert len([pk for pk in updates if pk.startswith("sess#")]) == 2  # the ghost's attempt, then one


def test_a_commit_that_loses_a_transaction_race_is_sent_again(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    attempts: list[int] = []

    class ConflictOnce:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb_client, name)

        def transact_write_items(self, **kwargs: Any) -> Any:
            attempts.append(1)
            if len(attempts) == 1:
                raise ClientError(
                    {
                        "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                        "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                    },
                    "TransactWriteItems",
                )
            return dynamodb_client.transact_write_items(**kwargs)

    record = new_session(clock)
    assert store.create_session(record) is True
    store._client = ConflictOnce()
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 2)) is True
    assert len(attempts) == 2
    assert store.read_turns(OWNER, "chat-1", record.generation, 1)[0].index == 0


# -- IAM -----------------------------------------------------------------------------------------

# What each client call is authorised as; a transaction has no action of its own (each of its
# items is authorised as PutItem/UpdateItem/ConditionCheckItem).
_ACTIONS = {
    "get_item": ["GetItem"],
    "put_item": ["PutItem"],
    "update_item": ["UpdateItem"],
    "delete_item": ["DeleteItem"],
    "batch_get_item": ["BatchGetItem"],
    "batch_write_item": ["BatchWriteItem"],
    "transact_write_items": ["PutItem", "UpdateItem"],
    "query": ["Query"],
}


def _granted(sid: str) -> set[str]:
    statements = load_yaml(TEMPLATE)["Resources"]["MainLambdaRole"]["Properties"]["Policies"]
    for policy in statements:
        for statement in policy["PolicyDocument"]["Statement"]:
            if isinstance(statement, dict) and statement.get("Sid") == sid:
                actions = statement["Action"]
                return {
                    a.removeprefix("dynamodb:") for a in ([actions] if isinstance(actions, str) else actions)
                }
    raise AssertionError(f"no statement {sid}")


def test_every_call_a_session_makes_is_granted_by_the_template(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            real = getattr(dynamodb_client, name)

            def call(**kwargs: Any) -> Any:
                calls.append((name, kwargs))
                return real(**kwargs)

            return call

    store._client = Recording()
    expired = new_session(clock, "expired", ttl=10)
    assert store.create_session(expired) is True
    store.put_session_agent(OWNER, "expired", expired.generation, "default", "{}", expired.children_expire_at)
    clock.advance(20)
    record = new_session(clock)
    assert store.create_session(record) is True
    assert store.create_session(new_session(clock, "expired")) is True  # replaces, deletes old children
    args = (OWNER, "chat-1", record.generation)
    store.put_session_agent(*args, "default", "{}", record.children_expire_at)
    assert store.get_session_agent(*args, "default") == "{}"
    put_messages(store, record, range(3))
    store.read_session_messages(*args, "default", 0, 3)
    assert store.commit_turn(*args, commit_for(clock, 0, 2)) is True
    store.read_turns(*args, 1)
    store.refresh_children(*args, agent_ids=("default",), messages=2, turns=1, expires_at=int(T0) + 99_999)
    store.list_sessions(OWNER, 1)
    store.owner_has_sessions(OWNER)
    assert store.get_session(*args[:2]) is not None
    assert store.delete_session(*args[:2]) is True

    table_actions, index_actions = (
        _granted("ConnectionsTableItems"),
        _granted("ConnectionsTableSessionsIndex"),
    )
    used = {name for name, _ in calls}
    assert used == set(_ACTIONS), used  # every kind of call was exercised
    for name, kwargs in calls:
        granted = index_actions if "IndexName" in kwargs else table_actions
        for action in _ACTIONS[name]:
            assert action in granted, f"{name} needs dynamodb:{action}"
        if name == "query":
            assert kwargs["IndexName"] == SESSIONS_INDEX_NAME
    assert re.fullmatch(r"[A-Za-z]+", SESSIONS_INDEX_NAME)


def test_a_commit_never_overwrites_a_stored_turn(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    """A turn item where the record says none is (they disagree) cancels the whole transaction."""
    record = new_session(clock)
    assert store.create_session(record) is True
    digest = hashlib.sha256(f"{OWNER}\x00chat-1".encode()).hexdigest()
    planted = {
        "pk": {"S": f"sturn#{digest}#{record.generation}#0"},
        "expires_at": {"N": str(int(T0) + 99_999)},
    }
    dynamodb_client.put_item(TableName=TABLE, Item=planted)
    assert store.commit_turn(OWNER, "chat-1", record.generation, commit_for(clock, 0, 2)) is False
    assert store.get_session(OWNER, "chat-1") == record
    assert raw_items(dynamodb_client)[planted["pk"]["S"]] == planted
