"""DynamoDB-specific behaviour: item layout, table helper, lazy TTL and the counter-reset race."""

from __future__ import annotations

import math
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from selador.store.base import ConnectionRecord
from selador.store.dynamodb import DynamoDbStore

from .conftest import REGION, T0, FakeClock, LinearizedClient

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
    store.claim("req", 30)
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
    assert items["claim#req"]["expires_at"] == {"N": str(math.ceil(T0 + 30))}
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
    assert store.claim("k", 10) is True
    assert store.claim("k", 10) is False
    assert store.increment("n", 10) == 1
