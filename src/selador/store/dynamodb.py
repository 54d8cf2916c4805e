"""DynamoDB store: one table, string partition key ``pk``, TTL attribute ``expires_at``.

Item layout (every item carries ``expires_at``, whole epoch seconds, which doubles as its TTL):

* ``conn#<connection id>``: one attribute per :class:`ConnectionRecord` field (``principal`` omitted
  when ``None``, ``attributes`` a map of strings).
* ``claim#<key>``: ``owner`` (the token :meth:`DynamoDbStore.claim` returned) and ``expires_at``.
* ``ctr#<key>``: ``v`` (the count) and ``expires_at``.
* ``run#<run id>``: one attribute per :class:`RunRecord` field, so conditions can test them;
  a ``None`` field is an absent attribute, ``cancel_requested`` a boolean, ``claims`` a list of
  ``[key, owner]`` string lists, ``result`` the JSON text as a string.
* ``runname#<name>``: ``run_id`` (the run last created under that name) and the run's ``expires_at``.
* ``frame#<run id>#<seq>``: ``data`` (the frame's JSON text) and ``expires_at``. ``seq`` is written in
  plain decimal; it is the part after the last ``#``, so keys stay unique whatever the run id holds.

Sessions key everything by ``<h>``, the SHA-256 hex of ``owner``, NUL, ``session_id`` (owners and ids
may hold ``#``), and their children also by the session's ``<generation>`` (letters, digits, ``-``,
``_``: never ``#``):

* ``sess#<h>``: one attribute per :class:`~selador.store.sessions.SessionRecord` field; ``agents``, a
  string set of the agent ids stored so far (so a delete finds their items); and ``sess_owner``
  (the owner) and ``sess_used`` (``last_used_at``), the keys of the sparse global secondary index
  ``SessionsByOwner`` (HASH ``sess_owner``, RANGE ``sess_used``, projection ALL) that lists an
  owner's sessions, newest first. Only session items have those two attributes.
* ``sagent#<h>#<generation>#<agent id>``: ``data`` (the Strands agent record's JSON text).
* ``smsg#<h>#<generation>#<agent id>#<message id>``: ``data`` (one Strands message's JSON text).
* ``sturn#<h>#<generation>#<index>``: one attribute per :class:`~selador.store.sessions.TurnRecord`
  field (``index``, ``question``, ``answer``, ``agent``, ``sources``, ``created_at``), written in
  one transaction with the session item's update.

DynamoDB's TTL sweeper deletes expired items lazily (often within minutes, sometimes days later), so
every read and every conditional write here compares ``expires_at`` with the clock itself. An item
is expired when ``expires_at <= now``, the same rule as the SQLite store.

Module layout: this module holds :class:`DynamoDbStore` with the connection, claim and counter
methods; the run and frame-log methods come from :class:`~selador.store.dynamodb_runs.DynamoRunsMixin`,
run items and expressions from :mod:`selador.store.dynamodb_run_items`, the session methods from
:class:`~selador.store.dynamodb_sessions.DynamoSessionsMixin`, session keys, items and the index from
:mod:`selador.store.dynamodb_session_items`, and the helpers every part shares from
:mod:`selador.store._dynamo`. Callers import everything from this module, which
re-exports the public run-item helpers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from selador.store._dynamo import (
    _CLAIM,
    _CONN,
    _COUNTER,
    _expires_at,
    _expiry,
    _is_conditional_failure,
    _number,
)
from selador.store.base import ConnectionRecord, Store
from selador.store.dynamodb_run_items import run_from_item, run_to_item
from selador.store.dynamodb_runs import DynamoRunsMixin
from selador.store.dynamodb_session_items import (
    SESSIONS_INDEX,
    SESSIONS_INDEX_ATTRIBUTES,
    ensure_sessions_index,
)
from selador.store.dynamodb_sessions import DynamoSessionsMixin
from selador.store.runs import new_owner

__all__ = ["DynamoDbStore", "record_from_item", "record_to_item", "run_from_item", "run_to_item"]

# Rounds of "update, else reset" increment() tries before giving up; each lost round means another
# writer made progress, so running out takes pathological contention.
_INCREMENT_ROUNDS = 8

_STRING_FIELDS = ("domain_name", "stage", "api_id", "source_ip", "user_agent")


def record_to_item(record: ConnectionRecord) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute-value form) for a connection record.

    Args:
        record: The record.

    Returns:
        The item, keyed ``conn#<connection id>``.
    """
    item: dict[str, Any] = {
        "pk": {"S": _CONN + record.connection_id},
        "connection_id": {"S": record.connection_id},
        "connected_at": _number(record.connected_at),
        "expires_at": _number(record.expires_at),
        "attributes": {"M": {k: {"S": v} for k, v in record.attributes.items()}},
    }
    for name in _STRING_FIELDS:
        item[name] = {"S": getattr(record, name)}
    if record.principal is not None:
        item["principal"] = {"S": record.principal}
    return item


def record_from_item(item: dict[str, Any]) -> ConnectionRecord:
    """Parse an item written by :func:`record_to_item`.

    Args:
        item: The item in attribute-value form.

    Returns:
        The record.
    """
    return ConnectionRecord(
        connection_id=item["connection_id"]["S"],
        connected_at=float(item["connected_at"]["N"]),
        expires_at=int(float(item["expires_at"]["N"])),
        principal=item["principal"]["S"] if "principal" in item else None,
        attributes={k: v["S"] for k, v in item.get("attributes", {}).get("M", {}).items()},
        **{name: item[name]["S"] for name in _STRING_FIELDS if name in item},
    )


class DynamoDbStore(DynamoRunsMixin, DynamoSessionsMixin, Store):
    """A :class:`~selador.store.base.Store` in one DynamoDB table.

    Args:
        client: A boto3 DynamoDB *client* (thread-safe; shared by all invocations of the container).
        table_name: The table; partition key ``pk`` (string), TTL on ``expires_at``, and the
            ``SessionsByOwner`` index.
        now: Clock returning epoch seconds; tests inject a fake one.
    """

    def __init__(self, client: Any, table_name: str, *, now: Callable[[], float] = time.time) -> None:
        self._client = client
        self.table_name = table_name
        self._now = now
        # Pauses between retries of unprocessed keys and transaction conflicts; tests replace it.
        self._sleep: Callable[[float], None] = time.sleep
        # Session hash -> (generation, agent id) pairs this process recorded on the session item.
        self._recorded_agents: dict[str, set[tuple[str, str]]] = {}

    def create_table_if_missing(self) -> bool:
        """Create the table (on-demand, ``pk`` HASH, the sessions index) with TTL on ``expires_at``.

        Deployed stacks create the table in their template; this is for moto, DynamoDB Local and
        ad-hoc accounts. Safe to race: a concurrent creator's table is accepted. A table created
        before sessions existed gains the ``SessionsByOwner`` index.

        Returns:
            ``True`` when this call created the table.
        """
        client = self._client
        created = False
        try:
            client.describe_table(TableName=self.table_name)
        except client.exceptions.ResourceNotFoundException:
            try:
                client.create_table(
                    TableName=self.table_name,
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        *SESSIONS_INDEX_ATTRIBUTES,
                    ],
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                    GlobalSecondaryIndexes=[SESSIONS_INDEX],
                    BillingMode="PAY_PER_REQUEST",
                )
                created = True
            except client.exceptions.ResourceInUseException:
                pass
            client.get_waiter("table_exists").wait(
                TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        ensure_sessions_index(client, self.table_name)
        ttl = client.describe_time_to_live(TableName=self.table_name)["TimeToLiveDescription"]
        # Enabling twice is a ValidationException, hence the check; ENABLING counts as done.
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )
        return created

    def put_connection(self, record: ConnectionRecord) -> None:
        """Create or replace a connection record.

        Args:
            record: The record; its ``expires_at`` doubles as the item's TTL.
        """
        self._client.put_item(TableName=self.table_name, Item=record_to_item(record))

    def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        """Read a connection record (strongly consistent: a message can follow $connect at once).

        Args:
            connection_id: API Gateway's connection id.

        Returns:
            The record, or ``None`` when absent or expired.
        """
        item = self._client.get_item(
            TableName=self.table_name, Key={"pk": {"S": _CONN + connection_id}}, ConsistentRead=True
        ).get("Item")
        if not item or _expires_at(item) <= self._now():
            return None
        return record_from_item(item)

    def delete_connection(self, connection_id: str) -> bool:
        """Delete a connection record.

        Args:
            connection_id: API Gateway's connection id.

        Returns:
            ``True`` when an unexpired record existed (an expired one is deleted too, silently).
        """
        old = self._client.delete_item(
            TableName=self.table_name, Key={"pk": {"S": _CONN + connection_id}}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return bool(old) and _expires_at(old) > self._now()

    def claim(self, key: str, ttl_seconds: int) -> str | None:
        """Atomically create ``key`` if absent or expired (a conditional ``PutItem``).

        Args:
            key: The claim's name.
            ttl_seconds: How long the claim holds (positive).

        Returns:
            The new owner token for the first caller, ``None`` while an unexpired claim exists.

        Raises:
            ValueError: ``ttl_seconds`` is not positive.
        """
        now = self._now()
        expires_at = _expiry(now, ttl_seconds)
        owner = new_owner()
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={"pk": {"S": _CLAIM + key}, "owner": {"S": owner}, "expires_at": _number(expires_at)},
                ConditionExpression="attribute_not_exists(pk) OR #e <= :now",
                ExpressionAttributeNames={"#e": "expires_at"},
                ExpressionAttributeValues={":now": _number(now)},
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            # botocore resends a put whose answer was lost; the resend then fails its own
            # condition. The claim is ours if it carries our (fresh, unique) owner token.
            item = self._client.get_item(
                TableName=self.table_name, Key={"pk": {"S": _CLAIM + key}}, ConsistentRead=True
            ).get("Item")
            return owner if item and item.get("owner", {}).get("S") == owner else None
        return owner

    def release(self, key: str, owner: str) -> bool:
        """Remove ``owner``'s claim (no error when absent or someone else's).

        Args:
            key: The claim's name.
            owner: The token :meth:`claim` returned.

        Returns:
            ``True`` when this owner's unexpired claim was removed (an expired one of ours is
            deleted too, silently, as in the SQLite store).
        """
        try:
            old = self._client.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": _CLAIM + key}},
                # Whoever took the key after our claim expired owns it now: only our token deletes.
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": owner}},
                ReturnValues="ALL_OLD",
            ).get("Attributes")
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return bool(old) and _expires_at(old) > self._now()

    def renew(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """Extend ``owner``'s unexpired claim to ``ttl_seconds`` from now.

        Args:
            key: The claim's name.
            owner: The token :meth:`claim` returned.
            ttl_seconds: The new lifetime (positive).

        Returns:
            ``False`` when the claim is gone, expired or someone else's (nothing changed then).

        Raises:
            ValueError: ``ttl_seconds`` is not positive.
        """
        now = self._now()
        expires_at = _expiry(now, ttl_seconds)
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": _CLAIM + key}},
                UpdateExpression="SET #e = :exp",
                # An expired claim is free for anyone to take; renewing it would revive it behind
                # the back of a caller that may already have seen it lapse.
                ConditionExpression="#o = :o AND #e > :now",
                ExpressionAttributeNames={"#o": "owner", "#e": "expires_at"},
                ExpressionAttributeValues={
                    ":o": {"S": owner},
                    ":exp": _number(expires_at),
                    ":now": _number(now),
                },
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def increment(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
        """Atomically add to a counter that expires ``ttl_seconds`` after its creation.

        Args:
            key: The counter's name.
            ttl_seconds: The counter's window (positive); later increments do not extend it.
            amount: What to add.

        Returns:
            The counter's value after the increment (an expired counter restarts at ``amount``).

        Raises:
            ValueError: ``ttl_seconds`` is not positive.
            RuntimeError: Contention kept every round from landing (not expected in practice).
        """
        pk = {"S": _COUNTER + key}
        for _ in range(_INCREMENT_ROUNDS):
            now = self._now()
            expires_at = _number(_expiry(now, ttl_seconds))
            # A plain ADD would keep counting on an item the TTL sweeper has not removed yet, so the
            # window would never restart. The update therefore only applies to a missing or live
            # counter (creating it with a fresh window); an expired one fails the condition and is
            # replaced by a put conditioned on it *still* being expired (or gone), so among racing
            # resetters exactly one wins and the others loop back to add to the fresh counter.
            try:
                answer = self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": pk},
                    UpdateExpression="SET #e = if_not_exists(#e, :exp) ADD #v :amt",
                    ConditionExpression="attribute_not_exists(pk) OR #e > :now",
                    ExpressionAttributeNames={"#v": "v", "#e": "expires_at"},
                    ExpressionAttributeValues={
                        ":amt": {"N": str(amount)},
                        ":exp": expires_at,
                        ":now": _number(now),
                    },
                    ReturnValues="ALL_NEW",  # UPDATED_NEW omits v when amount is 0
                )
                return int(answer["Attributes"]["v"]["N"])
            except ClientError as exc:
                if not _is_conditional_failure(exc):
                    raise
            try:
                self._client.put_item(
                    TableName=self.table_name,
                    Item={"pk": pk, "v": {"N": str(amount)}, "expires_at": expires_at},
                    ConditionExpression="attribute_not_exists(pk) OR #e <= :now",
                    ExpressionAttributeNames={"#e": "expires_at"},
                    ExpressionAttributeValues={":now": _number(now)},
                )
                return amount
            except ClientError as exc:
                if not _is_conditional_failure(exc):
                    raise
        raise RuntimeError(f"increment of {key!r} lost {_INCREMENT_ROUNDS} rounds of contention")
