"""DynamoDB-specific behaviour: item layout, table helper, lazy TTL, races, batches and transactions."""

from __future__ import annotations

import math
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from selador.store.base import ConnectionRecord, RunFinish
from selador.store.dynamodb import DynamoDbStore

from .conftest import REGION, T0, FakeClock, LinearizedClient
from .test_contract import full_run_record, run_record

TABLE = "selador-connections"


@pytest.fixture
def store(dynamodb_client: LinearizedClient, clock: FakeClock) -> DynamoDbStore:
    dynamo = DynamoDbStore(dynamodb_client, TABLE, now=clock)
    dynamo.create_table_if_missing()
    return dynamo


def raw_items(client: Any) -> dict[str, dict[str, Any]]:
    return {item["pk"]["S"]: item for item in client.scan(TableName=TABLE)["Items"]}


def conditional_failure(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "no"}}, operation)


def test_item_layout(store: DynamoDbStore, dynamodb_client: LinearizedClient) -> None:
    store.put_connection(
        ConnectionRecord(
            connection_id="abc=", connected_at=T0 + 0.5, expires_at=int(T0) + 60, attributes={"a": "b"}
        )
    )
    owner = store.claim("req", 30)
    store.increment("rate", 45, amount=3)

    items = raw_items(dynamodb_client)
    assert set(items) == {"conn#abc=", "claim#req", "ctr#rate"}
    conn = items["conn#abc="]
    assert conn["connection_id"] == {"S": "abc="}
    assert conn["expires_at"] == {"N": str(int(T0) + 60)}
    assert float(conn["connected_at"]["N"]) == T0 + 0.5
    assert conn["attributes"] == {"M": {"a": {"S": "b"}}}
    assert "principal" not in conn
    # TTL attribute: a whole epoch-seconds number, window counted from the clock.
    assert items["claim#req"] == {
        "pk": {"S": "claim#req"},
        "owner": {"S": owner},
        "expires_at": {"N": str(math.ceil(T0 + 30))},
    }
    assert items["ctr#rate"] == {
        "pk": {"S": "ctr#rate"},
        "v": {"N": "3"},
        "expires_at": {"N": str(math.ceil(T0 + 45))},
    }


def test_expiry_rounds_up_to_whole_seconds(store: DynamoDbStore, dynamodb_client: LinearizedClient) -> None:
    store._now = lambda: T0 + 0.25
    store.claim("k", 10)
    assert raw_items(dynamodb_client)["claim#k"]["expires_at"] == {"N": str(int(T0) + 11)}


def test_expired_items_linger_but_are_invisible(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    store.put_connection(ConnectionRecord(connection_id="c", connected_at=T0, expires_at=int(T0) + 5))
    clock.advance(3600)
    # The TTL sweeper has not run (it may take days); the store must not trust the item's presence.
    assert "conn#c" in raw_items(dynamodb_client)
    assert store.get_connection("c") is None
    assert store.delete_connection("c") is False
    assert "conn#c" not in raw_items(dynamodb_client)


def test_create_table_if_missing(dynamodb_client: LinearizedClient) -> None:
    store = DynamoDbStore(dynamodb_client, "fresh")
    assert store.create_table_if_missing() is True
    assert store.create_table_if_missing() is False
    table = dynamodb_client.describe_table(TableName="fresh")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb_client.describe_time_to_live(TableName="fresh")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_create_table_accepts_a_concurrent_creator(dynamodb_client: LinearizedClient) -> None:
    DynamoDbStore(dynamodb_client, "raced").create_table_if_missing()

    class LateDescribe(LinearizedClient):
        """Answers the first DescribeTable as if the table did not exist yet."""

        first = True

        def describe_table(self, **kwargs: Any) -> Any:
            if self.first:
                self.first = False
                raise self._client.exceptions.ResourceNotFoundException(
                    {"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "DescribeTable"
                )
            return self._client.describe_table(**kwargs)

    assert DynamoDbStore(LateDescribe(dynamodb_client._client), "raced").create_table_if_missing() is False


def test_other_client_errors_propagate(dynamodb_client: LinearizedClient) -> None:
    missing = DynamoDbStore(dynamodb_client, "no-such-table")
    for call in (
        lambda: missing.claim("k", 10),
        lambda: missing.increment("k", 10),
        lambda: missing.get_connection("c"),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_counter_reset_race_keeps_both_increments(
    dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    """Another caller restarts the window between our failed update and our reset put.

    Our reset must then fail its condition and add to the fresh counter instead of overwriting it.
    """
    store = DynamoDbStore(dynamodb_client, TABLE, now=clock)
    store.create_table_if_missing()
    for _ in range(4):
        store.increment("c", 10)
    clock.advance(10)
    rival = DynamoDbStore(dynamodb_client, TABLE, now=clock)
    rival_saw: list[int] = []
    real_client = dynamodb_client

    class RivalInterleaves:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_client, name)

        def update_item(self, **kwargs: Any) -> Any:
            try:
                return real_client.update_item(**kwargs)
            except ClientError:
                if not rival_saw:
                    rival_saw.append(rival.increment("c", 10))
                raise

    store._client = RivalInterleaves()
    assert store.increment("c", 10) == 2
    assert rival_saw == [1]
    assert rival.increment("c", 10) == 3


def test_increment_gives_up_under_endless_contention(clock: FakeClock) -> None:
    class AlwaysConflicts:
        calls = 0

        def update_item(self, **_kwargs: Any) -> Any:
            self.calls += 1
            raise conditional_failure("UpdateItem")

        def put_item(self, **_kwargs: Any) -> Any:
            self.calls += 1
            raise conditional_failure("PutItem")

    client = AlwaysConflicts()
    with pytest.raises(RuntimeError, match="contention"):
        DynamoDbStore(client, TABLE, now=clock).increment("c", 10)
    assert client.calls == 16


def test_works_with_a_plain_boto3_client(aws: None, clock: FakeClock) -> None:
    store = DynamoDbStore(boto3.client("dynamodb", region_name=REGION), "plain", now=clock)
    store.create_table_if_missing()
    owner = store.claim("k", 10)
    assert owner is not None
    assert store.claim("k", 10) is None
    assert store.renew("k", owner, 20) is True
    assert store.release("k", owner) is True
    assert store.increment("n", 10) == 1


# -- claims with owners --------------------------------------------------------------------------


def test_claim_item_written_before_owners_existed(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    """A claim item left by the previous version (no owner) blocks until it expires; no token frees it."""
    dynamodb_client.put_item(
        TableName=TABLE, Item={"pk": {"S": "claim#old"}, "expires_at": {"N": str(int(T0) + 10)}}
    )
    assert store.claim("old", 60) is None
    assert store.release("old", "any") is False
    assert store.renew("old", "any", 60) is False
    clock.advance(10)
    assert store.claim("old", 60) is not None


def test_release_deletes_an_expired_claim_of_ours(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    owner = store.claim("k", 10)
    assert owner is not None
    clock.advance(10)
    assert store.release("k", owner) is False  # expired: not reported as released...
    assert "claim#k" not in raw_items(dynamodb_client)  # ...but tidied up, as SQLite does


# -- runs and frames: item layout ----------------------------------------------------------------


def test_run_item_layout(store: DynamoDbStore, dynamodb_client: LinearizedClient) -> None:
    store.create_run(full_run_record("r-full"), name="user-42/req-1")
    store.create_run(run_record("r-min"))
    assert store.append_frame("r-full", 1, '{"a":1}', int(T0) + 99) is True

    items = raw_items(dynamodb_client)
    assert set(items) == {"run#r-full", "run#r-min", "runname#user-42/req-1", "frame#r-full#1"}
    assert items["run#r-full"] == {
        "pk": {"S": "run#r-full"},
        "run_id": {"S": "r-full"},
        "request_id": {"S": "req-ü-🚀"},
        "token_digest": {"S": "9f" * 32},
        "status": {"S": "succeeded"},
        "created_at": {"N": repr(T0 + 0.125)},
        "expires_at": {"N": str(int(T0) + 3600)},
        "lease_until": {"N": repr(T0 + 30.5)},
        "principal": {"S": "user-ünï-42"},
        "connection_id": {"S": "L0SM9cOFvHcCIhw="},
        "endpoint": {"S": "https://abc123.execute-api.us-west-2.amazonaws.com/prod"},
        "cancel_requested": {"BOOL": True},
        "on_disconnect": {"S": "cancel"},
        "frames": {"N": "7"},
        "ended_at": {"N": repr(T0 + 12.75)},
        "result": {"S": '{"answer":"olá 🚀 连接","n":[1,2.5,null]}'},
        "claims": {
            "L": [
                {"L": [{"S": "req#user-42#req-1"}, {"S": "owner-a"}]},
                {"L": [{"S": "slot#user-42"}, {"S": "owner-b"}]},
            ]
        },
    }
    # None fields are absent attributes, so conditions can say attribute_not_exists.
    assert set(items["run#r-min"]) == {
        "pk", "run_id", "request_id", "token_digest", "status", "created_at", "expires_at",
        "lease_until", "cancel_requested", "on_disconnect", "frames", "claims",
    }  # fmt: skip
    assert items["run#r-min"]["claims"] == {"L": []}
    assert items["run#r-min"]["cancel_requested"] == {"BOOL": False}
    assert items["runname#user-42/req-1"] == {
        "pk": {"S": "runname#user-42/req-1"},
        "run_id": {"S": "r-full"},
        "expires_at": {"N": str(int(T0) + 3600)},
    }
    assert items["frame#r-full#1"] == {
        "pk": {"S": "frame#r-full#1"},
        "data": {"S": '{"a":1}'},
        "expires_at": {"N": str(int(T0) + 99)},
    }


def test_update_run_removes_cleared_attributes(
    store: DynamoDbStore, dynamodb_client: LinearizedClient
) -> None:
    store.create_run(full_run_record("r"))
    store.update_run("r", {"connection_id": None, "ended_at": None, "status": "running"})
    item = raw_items(dynamodb_client)["run#r"]
    assert "connection_id" not in item and "ended_at" not in item
    assert item["status"] == {"S": "running"}


def test_run_item_with_attributes_it_does_not_know(
    store: DynamoDbStore, dynamodb_client: LinearizedClient
) -> None:
    """A newer version may add attributes; this one reads the item all the same."""
    store.create_run(run_record("r"))
    dynamodb_client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "run#r"}},
        UpdateExpression="SET added_later = :x",
        ExpressionAttributeValues={":x": {"M": {"a": {"N": "1"}}}},
    )
    assert store.get_run("r") == run_record("r")
    assert store.update_run("r", {"frames": 1}) == run_record("r", frames=1)


def test_expired_runs_and_frames_linger_but_are_invisible(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, clock: FakeClock
) -> None:
    store.create_run(run_record("r", expires_at=int(T0) + 5), name="n")
    store.append_frame("log", 1, "one", int(T0) + 1000)
    store.append_frame("log", 2, "two", int(T0) + 5)
    store.append_frame("log", 3, "three", int(T0) + 1000)
    clock.advance(5)
    # The TTL sweeper has not run; the store must not trust the items' presence.
    assert {"run#r", "runname#n", "frame#log#2"} <= set(raw_items(dynamodb_client))
    assert store.get_run("r") is None
    assert store.find_run("n") is None
    # An expired frame counts as missing: the read stops there.
    assert store.read_frames("log") == [(1, "one")]
    assert store.read_frames("log", after_seq=2) == [(3, "three")]


def test_find_run_with_an_expired_name_item(store: DynamoDbStore, dynamodb_client: LinearizedClient) -> None:
    store.create_run(run_record("r"), name="n")
    dynamodb_client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "runname#n"}},
        UpdateExpression="SET expires_at = :e",
        ExpressionAttributeValues={":e": {"N": str(int(T0))}},
    )
    assert store.find_run("n") is None
    assert store.get_run("r") == run_record("r")


def test_update_run_refuses_to_clear_fields_every_run_has(store: DynamoDbStore) -> None:
    store.create_run(run_record("r"))
    for name in ("status", "lease_until", "expires_at", "cancel_requested", "frames"):
        with pytest.raises(ValueError, match="cannot be cleared"):
            store.update_run("r", {name: None})
        with pytest.raises(ValueError, match="cannot be cleared"):
            store.append_frame("r", 1, "{}", int(T0) + 60, finish=RunFinish({"pending"}, {name: None}))
    assert store.get_run("r") == run_record("r")
    assert store.read_frames("r") == []


def test_update_run_refuses_values_of_the_wrong_type(store: DynamoDbStore) -> None:
    store.create_run(run_record("r"))
    for changes in ({"frames": "3"}, {"cancel_requested": 1}, {"frames": True}, {"status": 1}):
        with pytest.raises(TypeError, match="cannot hold"):
            store.update_run("r", changes)
    assert store.get_run("r") == run_record("r")


def test_update_run_refuses_conditions_on_unknown_fields(store: DynamoDbStore) -> None:
    store.create_run(run_record("r"))
    with pytest.raises(ValueError, match="unknown run fields"):
        store.update_run("r", {"frames": 1}, expect={"nope": None})
    assert store.get_run("r") == run_record("r")


def test_expected_claims_compare_as_lists(store: DynamoDbStore) -> None:
    store.create_run(full_run_record("r"))
    claims = full_run_record().claims
    assert store.update_run("r", {"frames": 8}, expect={"claims": claims}) is not None
    assert store.update_run("r", {"frames": 9}, expect={"claims": claims[:1]}) is None


# -- read_frames: batches and unprocessed keys ---------------------------------------------------


class RecordingBatches(LinearizedClient):
    """Records every BatchGetItem request; ``unprocess`` picks keys to answer as unprocessed."""

    def __init__(self, client: Any, unprocess: Any = None) -> None:
        super().__init__(client)
        self.batches: list[dict[str, Any]] = []
        self.unprocess = unprocess or (lambda _round, _pk: False)

    def batch_get_item(self, **kwargs: Any) -> Any:
        request = kwargs["RequestItems"][TABLE]
        self.batches.append(request)
        keys = request["Keys"]
        held = [k for k in keys if self.unprocess(len(self.batches), k["pk"]["S"])]
        asked = {**request, "Keys": [k for k in keys if k not in held]}
        answer = (
            self._client.batch_get_item(RequestItems={TABLE: asked})
            if asked["Keys"]
            else {"Responses": {TABLE: []}}
        )
        if held:
            answer["UnprocessedKeys"] = {TABLE: {**request, "Keys": held}}
        return answer


@pytest.fixture
def sleeps(store: DynamoDbStore) -> list[float]:
    pauses: list[float] = []
    store._sleep = pauses.append
    return pauses


def test_read_frames_asks_for_at_most_100_keys_consistently(
    store: DynamoDbStore, dynamodb_client: LinearizedClient
) -> None:
    for seq in range(1, 251):
        store.append_frame("r", seq, str(seq), int(T0) + 60)
    client = RecordingBatches(dynamodb_client._client)
    store._client = client
    assert [s for s, _ in store.read_frames("r", limit=250)] == list(range(1, 251))
    assert [len(b["Keys"]) for b in client.batches] == [100, 100, 50]
    assert all(b["ConsistentRead"] is True for b in client.batches)
    assert client.batches[0]["Keys"][0] == {"pk": {"S": "frame#r#1"}}
    assert client.batches[2]["Keys"][-1] == {"pk": {"S": "frame#r#250"}}


def test_read_frames_stops_asking_after_a_gap(
    store: DynamoDbStore, dynamodb_client: LinearizedClient
) -> None:
    for seq in [*range(1, 121), *range(122, 300)]:
        store.append_frame("r", seq, str(seq), int(T0) + 60)
    client = RecordingBatches(dynamodb_client._client)
    store._client = client
    assert len(store.read_frames("r", limit=1000)) == 120
    assert [len(b["Keys"]) for b in client.batches] == [100, 100]  # the batch with the gap is the last


def test_read_frames_retries_unprocessed_keys(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, sleeps: list[float]
) -> None:
    for seq in range(1, 151):
        store.append_frame("r", seq, str(seq), int(T0) + 60)
    # The first answer leaves every odd seq unprocessed, the second a few of those again.
    client = RecordingBatches(
        dynamodb_client._client,
        unprocess=lambda round_, pk: (
            (round_ == 1 and int(pk.rsplit("#", 1)[1]) % 2 == 1)
            or (round_ == 2 and pk in {"frame#r#1", "frame#r#99"})
        ),
    )
    store._client = client
    assert store.read_frames("r", limit=150) == [(s, str(s)) for s in range(1, 151)]
    assert [len(b["Keys"]) for b in client.batches] == [100, 50, 2, 50]
    assert {k["pk"]["S"] for k in client.batches[2]["Keys"]} == {"frame#r#1", "frame#r#99"}
    assert all(b["ConsistentRead"] is True for b in client.batches)
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] > 0


def test_read_frames_gives_up_on_keys_that_stay_unprocessed(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, sleeps: list[float]
) -> None:
    for seq in range(1, 4):
        store.append_frame("r", seq, str(seq), int(T0) + 60)
    client = RecordingBatches(dynamodb_client._client, unprocess=lambda _round, pk: pk == "frame#r#2")
    store._client = client
    with pytest.raises(RuntimeError, match="unprocessed"):
        store.read_frames("r")
    assert len(client.batches) == 8
    assert sum(sleeps) < 3  # bounded: a Lambda must not hang here


def test_read_frames_does_not_wait_for_keys_past_a_gap(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, sleeps: list[float]
) -> None:
    for seq in (1, 2, 4, 5):
        store.append_frame("r", seq, str(seq), int(T0) + 60)
    # Seq 3 is missing; what DynamoDB did not get round to after it cannot change the answer.
    client = RecordingBatches(dynamodb_client._client, unprocess=lambda _round, pk: pk == "frame#r#5")
    store._client = client
    assert store.read_frames("r") == [(1, "1"), (2, "2")]
    assert len(client.batches) == 1 and sleeps == []


def test_read_frames_past_the_16_mb_response_cap(
    store: DynamoDbStore, dynamodb_client: LinearizedClient
) -> None:
    """100 frames of ~200 KB exceed BatchGetItem's 16 MB answer: the rest come back unprocessed."""
    big = "ü" * 100_000  # 200 KB of UTF-8
    for seq in range(1, 101):
        store.append_frame("r", seq, f"{seq}{big}", int(T0) + 60)
    client = RecordingBatches(dynamodb_client._client)
    store._client = client
    store._sleep = lambda _s: None
    frames = store.read_frames("r", limit=100)
    assert [s for s, _ in frames] == list(range(1, 101))
    assert all(data == f"{s}{big}" for s, data in frames)
    assert len(client.batches) >= 2  # moto, like DynamoDB, split the answer


# -- transactions --------------------------------------------------------------------------------


def cancelled(*codes: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": code} for code in codes],
        },
        "TransactWriteItems",
    )


def test_transaction_cancelled_for_another_reason_propagates(aws: None, clock: FakeClock) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    store = DynamoDbStore(client, TABLE, now=clock)
    with Stubber(client) as stub:
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            service_message="Transaction cancelled [None, ThrottlingError]",
            modeled_fields={
                "CancellationReasons": [
                    {"Code": "None"},
                    {"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity"},
                ]
            },
        )
        with pytest.raises(ClientError) as info:
            store.append_frame(
                "r", 1, "{}", int(T0) + 60, finish=RunFinish({"running"}, {"status": "failed"})
            )
        stub.assert_no_pending_responses()
    assert info.value.response["CancellationReasons"][1]["Code"] == "ThrottlingError"


def test_transaction_cancelled_by_conditions_only_is_false(aws: None, clock: FakeClock) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    store = DynamoDbStore(client, TABLE, now=clock)
    with Stubber(client) as stub:
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}]},
        )
        assert store.append_frame("r", 1, "{}", int(T0) + 60, finish=RunFinish({"running"}, {})) is False
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    "reasons",
    [("ConditionalCheckFailed", "ValidationError"), ("None", "None"), ()],
)
def test_other_cancellations_propagate(store: DynamoDbStore, reasons: tuple[str, ...]) -> None:
    class Cancels:
        def transact_write_items(self, **_kwargs: Any) -> Any:
            raise cancelled(*reasons)

    store._client = Cancels()
    with pytest.raises(ClientError):
        store.append_frame("r", 1, "{}", int(T0) + 60, finish=RunFinish({"running"}, {"frames": 1}))


def test_transaction_conflict_is_sent_again(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, sleeps: list[float]
) -> None:
    store.create_run(run_record("r", status="running"))

    class ConflictsOnce(LinearizedClient):
        conflicts = 2

        def transact_write_items(self, **kwargs: Any) -> Any:
            if self.conflicts:
                self.conflicts -= 1
                raise cancelled("None", "TransactionConflict")
            return self._client.transact_write_items(**kwargs)

    store._client = ConflictsOnce(dynamodb_client._client)
    assert (
        store.append_frame("r", 1, "end", int(T0) + 60, finish=RunFinish({"running"}, {"status": "failed"}))
        is True
    )
    assert len(sleeps) == 2
    run = store.get_run("r")
    assert run is not None and run.status == "failed"
    assert store.read_frames("r") == [(1, "end")]


def test_endless_transaction_conflicts_give_up(store: DynamoDbStore, sleeps: list[float]) -> None:
    class AlwaysConflicts:
        calls = 0

        def transact_write_items(self, **_kwargs: Any) -> Any:
            self.calls += 1
            raise cancelled("TransactionConflict", "ConditionalCheckFailed")

    client = AlwaysConflicts()
    store._client = client
    with pytest.raises(ClientError) as info:
        store.append_frame("r", 1, "{}", int(T0) + 60, finish=RunFinish({"running"}, {"frames": 1}))
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert client.calls == 5
    assert len(sleeps) == 4


def test_update_racing_a_transaction_is_sent_again(
    store: DynamoDbStore, dynamodb_client: LinearizedClient, sleeps: list[float]
) -> None:
    store.create_run(run_record("r"))
    real = dynamodb_client

    class ConflictsOnce:
        conflicted = False

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def update_item(self, **kwargs: Any) -> Any:
            if not self.conflicted:
                self.conflicted = True
                raise ClientError(
                    {"Error": {"Code": "TransactionConflictException", "Message": "in a transaction"}},
                    "UpdateItem",
                )
            return real.update_item(**kwargs)

    store._client = ConflictsOnce()
    assert store.update_run("r", {"status": "running"}, expect_status={"pending"}) == run_record(
        "r", status="running"
    )
    assert len(sleeps) == 1


def test_run_and_frame_errors_propagate(dynamodb_client: LinearizedClient) -> None:
    missing = DynamoDbStore(dynamodb_client, "no-such-table")
    missing._sleep = lambda _s: None
    for call in (
        lambda: missing.release("k", "o"),
        lambda: missing.renew("k", "o", 10),
        lambda: missing.create_run(run_record()),
        lambda: missing.get_run("r"),
        lambda: missing.find_run("n"),
        lambda: missing.update_run("r", {"status": "running"}),
        lambda: missing.append_frame("r", 1, "{}", int(T0) + 60),
        lambda: missing.append_frame("r", 1, "{}", int(T0) + 60, finish=RunFinish({"running"}, {})),
        lambda: missing.read_frames("r"),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
