"""Session items of the DynamoDB store: keys, the listing index, item (de)serialisation, batches.

Used by :class:`~selador.store.dynamodb_sessions.DynamoSessionsMixin`; the item layout is
documented in :mod:`selador.store.dynamodb`. The listing index is defined here once:
:meth:`~selador.store.dynamodb.DynamoDbStore.create_table_if_missing` builds it from
:data:`SESSIONS_INDEX` and :data:`SESSIONS_INDEX_ATTRIBUTES`, and a unit test holds
``template.yaml`` to the same definition.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from selador.store._dynamo import (
    _SESSION,
    _SESSION_AGENT,
    _SESSION_MESSAGE,
    _SESSION_TURN,
    _number,
)
from selador.store.dynamodb_runs import _BATCH_GET_KEYS, _BATCH_ROUNDS, _FIRST_PAUSE, _MAX_PAUSE
from selador.store.session_records import check_generation, session_from_dict
from selador.store.sessions import SessionRecord, TurnRecord

SESSIONS_INDEX_NAME = "SessionsByOwner"
INDEX_OWNER = "sess_owner"
INDEX_USED = "sess_used"
SESSIONS_INDEX_ATTRIBUTES: list[dict[str, str]] = [
    {"AttributeName": INDEX_OWNER, "AttributeType": "S"},
    {"AttributeName": INDEX_USED, "AttributeType": "N"},
]
"""The attribute definitions the index adds to the table's (``pk`` S)."""
SESSIONS_INDEX: dict[str, Any] = {
    "IndexName": SESSIONS_INDEX_NAME,
    "KeySchema": [
        {"AttributeName": INDEX_OWNER, "KeyType": "HASH"},
        {"AttributeName": INDEX_USED, "KeyType": "RANGE"},
    ],
    # ALL: a listing page is whole SessionRecords, read from the index without a GetItem each.
    "Projection": {"ProjectionType": "ALL"},
}
"""The sparse global secondary index listing an owner's sessions by ``last_used_at``.

Only session items carry ``sess_owner`` and ``sess_used``, so no other item is in it.
"""

_BATCH_WRITE_ITEMS = 25  # BatchWriteItem's cap per request
_SESSION_FIELDS_N = ("created_at", "last_used_at", "expires_at", "children_expire_at", "turns", "messages")
_SESSION_FIELDS_S = ("owner", "session_id", "generation", "title")


def session_hash(owner: str, session_id: str) -> str:
    """The key part naming one session: SHA-256 hex of ``owner``, NUL, ``session_id``.

    Owners and ids may hold ``#`` (and ids spaces and any printable character); a fixed-length
    digest keeps every child key unambiguous and short whatever they hold.
    """
    return hashlib.sha256(f"{owner}\x00{session_id}".encode()).hexdigest()


def session_key(owner: str, session_id: str) -> str:
    """``sess#<hash>``: the session item's ``pk``."""
    return _SESSION + session_hash(owner, session_id)


def agent_key(digest: str, generation: str, agent_id: str) -> str:
    """``sagent#<hash>#<generation>#<agent id>``; the agent id is last, so it may hold ``#``.

    Raises:
        ValueError: ``generation`` could make keys ambiguous.
    """
    check_generation(generation)
    return f"{_SESSION_AGENT}{digest}#{generation}#{agent_id}"


def message_key(digest: str, generation: str, agent_id: str, message_id: int) -> str:
    """``smsg#<hash>#<generation>#<agent id>#<message id>`` (the id in decimal, after the last ``#``).

    Raises:
        ValueError: ``generation`` could make keys ambiguous.
    """
    check_generation(generation)
    return f"{_SESSION_MESSAGE}{digest}#{generation}#{agent_id}#{int(message_id)}"


def turn_key(digest: str, generation: str, index: int) -> str:
    """``sturn#<hash>#<generation>#<turn index>``.

    Raises:
        ValueError: ``generation`` could make keys ambiguous.
    """
    check_generation(generation)
    return f"{_SESSION_TURN}{digest}#{generation}#{int(index)}"


def session_to_item(record: SessionRecord) -> dict[str, Any]:
    """The session item (attribute-value form), with the index attributes that list it.

    Args:
        record: The record.

    Returns:
        The item, keyed ``sess#<hash>``; no ``agents`` set (agents are added as they are stored).
    """
    item: dict[str, Any] = {"pk": {"S": session_key(record.owner, record.session_id)}}
    for name in _SESSION_FIELDS_S:
        item[name] = {"S": getattr(record, name)}
    for name in _SESSION_FIELDS_N:
        item[name] = _number(getattr(record, name))
    item[INDEX_OWNER] = {"S": record.owner}
    item[INDEX_USED] = _number(record.last_used_at)
    return item


def session_from_item(item: dict[str, Any]) -> SessionRecord:
    """Parse a session item (from the table or the index).

    Args:
        item: The item in attribute-value form.

    Returns:
        The record.
    """
    fields: dict[str, Any] = {name: item[name]["S"] for name in _SESSION_FIELDS_S if name in item}
    fields.update({name: item[name]["N"] for name in _SESSION_FIELDS_N if name in item})
    return session_from_dict(fields)


def agents_of(item: dict[str, Any]) -> list[str]:
    """The agent ids a session item records (its ``agents`` string set), sorted."""
    return sorted(item.get("agents", {}).get("SS", []))


def turn_to_item(pk: str, turn: TurnRecord, expires_at: int) -> dict[str, Any]:
    """A turn item: one attribute per :class:`TurnRecord` field, plus ``expires_at``."""
    return {
        "pk": {"S": pk},
        "index": _number(turn.index),
        "question": {"S": turn.question},
        "answer": {"S": turn.answer},
        "agent": {"S": turn.agent},
        "sources": {"S": turn.sources},
        "created_at": _number(turn.created_at),
        "expires_at": _number(expires_at),
    }


def turn_from_item(item: dict[str, Any]) -> TurnRecord:
    """Parse an item written by :func:`turn_to_item`."""
    return TurnRecord(
        index=int(item["index"]["N"]),
        question=item["question"]["S"],
        answer=item["answer"]["S"],
        agent=item["agent"]["S"],
        sources=item["sources"]["S"],
        created_at=float(item["created_at"]["N"]),
    )


def batch_get(
    client: Any, table: str, pks: Iterable[str], sleep: Callable[[float], None]
) -> dict[str, dict[str, Any]]:
    """Strongly consistent reads of many items, 100 keys per ``BatchGetItem``.

    Args:
        client: The DynamoDB client.
        table: The table.
        pks: Partition keys (duplicates are read once).
        sleep: Pause between rounds that left keys unprocessed.

    Returns:
        The items found, by ``pk`` (expired ones included: the caller compares ``expires_at``).

    Raises:
        RuntimeError: DynamoDB kept leaving keys unprocessed (not expected in practice).
    """
    keys = list(dict.fromkeys(pks))
    found: dict[str, dict[str, Any]] = {}
    for first in range(0, len(keys), _BATCH_GET_KEYS):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"pk": {"S": pk}} for pk in keys[first : first + _BATCH_GET_KEYS]],
                "ConsistentRead": True,
            }
        }
        pause = _FIRST_PAUSE
        for round_ in range(_BATCH_ROUNDS):
            if round_:
                sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            answer = client.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(table, []):
                found[item["pk"]["S"]] = item
            request = answer.get("UnprocessedKeys") or {}
            if not request.get(table, {}).get("Keys"):
                break
        else:
            raise RuntimeError(f"BatchGetItem left keys unprocessed after {_BATCH_ROUNDS} rounds")
    return found


def batch_delete(client: Any, table: str, pks: Iterable[str], sleep: Callable[[float], None]) -> None:
    """Delete many items (absent ones are fine), 25 per ``BatchWriteItem``.

    Args:
        client: The DynamoDB client.
        table: The table.
        pks: Partition keys (duplicates are deleted once).
        sleep: Pause between rounds that left items unprocessed.

    Raises:
        RuntimeError: DynamoDB kept leaving items unprocessed (not expected in practice).
    """
    keys = list(dict.fromkeys(pks))
    for first in range(0, len(keys), _BATCH_WRITE_ITEMS):
        request: dict[str, Any] = {
            table: [
                {"DeleteRequest": {"Key": {"pk": {"S": pk}}}}
                for pk in keys[first : first + _BATCH_WRITE_ITEMS]
            ]
        }
        pause = _FIRST_PAUSE
        for round_ in range(_BATCH_ROUNDS):
            if round_:
                sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request.get(table):
                break
        else:
            raise RuntimeError(f"BatchWriteItem left items unprocessed after {_BATCH_ROUNDS} rounds")


def ensure_sessions_index(client: Any, table: str, *, wait_seconds: float = 300) -> bool:
    """Add the listing index to a table created before sessions existed, and wait until it is usable.

    For the same tables :meth:`~selador.store.dynamodb.DynamoDbStore.create_table_if_missing`
    serves (moto, DynamoDB Local, ad-hoc accounts; deployed stacks get it from the template). An
    on-demand table is assumed, as that method creates. Safe to race: a concurrent creator's
    index is accepted.

    Args:
        client: The DynamoDB client.
        table: The table.
        wait_seconds: How long to wait for a new index to finish backfilling.

    Returns:
        ``True`` when this call added the index.

    Raises:
        TimeoutError: The index was not active within ``wait_seconds``.
    """
    created = False
    if not _index_status(client, table):
        try:
            client.update_table(
                TableName=table,
                AttributeDefinitions=SESSIONS_INDEX_ATTRIBUTES,
                GlobalSecondaryIndexUpdates=[{"Create": SESSIONS_INDEX}],
            )
            created = True
        except ClientError:
            if not _index_status(client, table):
                raise  # not a concurrent creator: a real error
    deadline = time.monotonic() + wait_seconds
    while _index_status(client, table) != "ACTIVE":
        if time.monotonic() >= deadline:
            raise TimeoutError(f"index {SESSIONS_INDEX_NAME} of {table} not active after {wait_seconds} s")
        time.sleep(1)
    return created


def _index_status(client: Any, table: str) -> str | None:
    description = client.describe_table(TableName=table)["Table"]
    for index in description.get("GlobalSecondaryIndexes") or []:
        if index["IndexName"] == SESSIONS_INDEX_NAME:
            return str(index.get("IndexStatus", "ACTIVE"))
    return None
