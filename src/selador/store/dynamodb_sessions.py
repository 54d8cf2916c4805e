"""The session half of the DynamoDB store.

:class:`DynamoSessionsMixin` holds the :class:`~selador.store.sessions.SessionStore` methods; it is
mixed into :class:`~selador.store.dynamodb.DynamoDbStore`, whose module documents the item layout
(keys, index and batches in :mod:`selador.store.dynamodb_session_items`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from botocore.exceptions import ClientError

from selador.store._dynamo import _expires_at, _is_conditional_failure, _number
from selador.store.dynamodb_runs import _is_condition_cancel
from selador.store.dynamodb_session_children import DynamoSessionChildrenMixin
from selador.store.dynamodb_session_items import (
    INDEX_OWNER,
    INDEX_USED,
    SESSIONS_INDEX_NAME,
    session_from_item,
    session_hash,
    session_key,
    session_to_item,
    turn_key,
    turn_to_item,
)
from selador.store.session_records import (
    check_generation,
    check_limit,
    decode_cursor,
    encode_cursor,
    turn_expiry,
)
from selador.store.sessions import SessionRecord, TurnCommit

# owner_has_sessions reads the index this many items first (the newest is nearly always live),
# then bigger pages while it meets only expired ones the sweeper has not removed yet.
_HAS_SESSIONS_FIRST_PAGE = 10
_HAS_SESSIONS_PAGE = 100


class DynamoSessionsMixin(DynamoSessionChildrenMixin):
    """Session items in the DynamoDB table (listed through the ``SessionsByOwner`` index).

    Not a store on its own: see :class:`~selador.store.dynamodb_session_children.DynamoSessionChildrenMixin`,
    which holds the children's methods and whose attributes these use too.
    """

    def get_session(self, owner: str, session_id: str) -> SessionRecord | None:
        """Read a session (strongly consistent).

        Args:
            owner: The owner.
            session_id: The client's id.

        Returns:
            The record, or ``None`` when absent or expired.
        """
        item = self._get_item(session_key(owner, session_id))
        if not item or _expires_at(item) <= self._now():
            return None
        return session_from_item(item)

    def create_session(self, record: SessionRecord) -> bool:
        """Store a new session: a ``PutItem`` conditioned on no unexpired session having its key.

        Replacing an expired session then deletes the old session's children (best effort: they
        are invisible under the new generation anyway, and expire on their own).

        Args:
            record: The record, stored as given.

        Returns:
            ``False`` when an unexpired session of another generation exists (nothing changed).
            One of the same generation counts as created: it is this record, stored by an earlier
            call or by botocore's resend of this one.

        Raises:
            ValueError: ``record.generation`` is not a token of letters, digits, ``-`` and ``_``.
        """
        check_generation(record.generation)
        now = self._now()
        item = session_to_item(record)
        # A new session item has no agents recorded yet, whatever this process remembers.
        self._recorded_agents.pop(session_hash(record.owner, record.session_id), None)
        try:
            answer = self._client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #e <= :now",
                ExpressionAttributeNames={"#e": "expires_at"},
                ExpressionAttributeValues={":now": _number(now)},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            # botocore resends a put whose answer was lost, and the resend fails its own condition:
            # the session is ours if it carries our (fresh, random) generation.
            current = self._get_item(item["pk"]["S"])
            return current is not None and current["generation"]["S"] == record.generation
        old = answer.get("Attributes")
        if old:
            # The replaced session's children, whatever their generation (one a caller reused
            # included: the new session has none yet, its creator not having been told it exists).
            # The new session stands whatever happens here; what is left behind expires by TTL.
            with contextlib.suppress(ClientError):
                self._delete_children(old)
        return True

    def commit_turn(self, owner: str, session_id: str, generation: str, commit: TurnCommit) -> bool:
        """Write a turn item and advance the session item in one ``TransactWriteItems``.

        The turn ``Put`` requires its key to be free; the session ``Update`` requires this
        generation, ``turns == commit.turn.index`` and an unexpired session. The turn item expires
        as :func:`~selador.store.session_records.turn_expiry` says.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The generation the caller read.
            commit: The change.

        Returns:
            ``True`` when committed; ``False`` when a condition failed (nothing written).
        """
        check_generation(generation)
        pk = session_key(owner, session_id)
        turn = turn_to_item(
            turn_key(session_hash(owner, session_id), generation, commit.turn.index),
            commit.turn,
            turn_expiry(commit),
        )
        names = {
            "#g": "generation",
            "#n": "turns",
            "#m": "messages",
            "#u": "last_used_at",
            "#iu": INDEX_USED,
            "#e": "expires_at",
        }
        values: dict[str, Any] = {
            ":g": {"S": generation},
            ":idx": _number(commit.turn.index),
            ":next": _number(commit.turn.index + 1),
            ":m": _number(commit.messages),
            ":u": _number(commit.last_used_at),
            ":e": _number(commit.expires_at),
        }
        sets = ["#n = :next", "#m = :m", "#u = :u", "#iu = :u", "#e = :e"]
        if commit.children_expire_at is not None:
            names["#c"] = "children_expire_at"
            values[":c"] = _number(commit.children_expire_at)
            sets.append("#c = :c")
        if commit.title is not None:
            names["#t"] = "title"
            values[":t"] = {"S": commit.title}
            sets.append("#t = :t")

        def attempt() -> None:
            # The clock is read per attempt: a resend after a conflict judges expiry afresh.
            update = {
                "TableName": self.table_name,
                "Key": {"pk": {"S": pk}},
                "UpdateExpression": "SET " + ", ".join(sets),
                # generation = :g also proves the item exists.
                "ConditionExpression": "#g = :g AND #n = :idx AND #e > :now",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {**values, ":now": _number(self._now())},
            }
            put = {
                "TableName": self.table_name,
                "Item": turn,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            # botocore fills in ClientRequestToken and keeps it across its own retries, so a resend
            # of a transaction that landed is a no-op rather than a failed condition.
            self._client.transact_write_items(TransactItems=[{"Put": put}, {"Update": update}])

        try:
            self._retry_conflicts(attempt)
        except ClientError as exc:
            if _is_condition_cancel(exc):
                return False
            raise
        return True

    def delete_session(self, owner: str, session_id: str) -> bool:
        """Delete the session item, then every child of its generation.

        The session item goes first, so the session is gone the moment this starts; should a child
        delete then fail, the leftovers are unreachable (a new session gets a new generation) and
        expire by their TTL.

        Args:
            owner: The owner.
            session_id: The client's id.

        Returns:
            ``True`` when a session (expired or not) existed.
        """
        old = self._client.delete_item(
            TableName=self.table_name,
            Key={"pk": {"S": session_key(owner, session_id)}},
            ReturnValues="ALL_OLD",
        ).get("Attributes")
        if not old:
            return False
        self._delete_children(old)
        return True

    def list_sessions(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        """The owner's unexpired sessions, most recently used first, from the ``SessionsByOwner`` index.

        The index is eventually consistent (a session just created or used may show late or with
        its previous ``last_used_at``) and orders sessions used in the same instant by its own
        internal order, not by id: ties are best effort here. Paging stays exact either way, as each
        page starts right after the previous page's last session in the index.

        Args:
            owner: The owner.
            limit: At most this many (1-100).
            cursor: ``None``, or the cursor a previous call returned.

        Returns:
            The page and the next page's cursor (``None`` when no unexpired session follows).

        Raises:
            ValueError: ``limit`` is out of range or ``cursor`` is malformed.
        """
        check_limit(limit)
        start = None if cursor is None else self._index_key(owner, *decode_cursor(cursor))
        now = self._now()
        page: list[SessionRecord] = []
        # One session more than asked tells whether another page follows. Expired sessions the
        # sweeper has not removed are filtered out, so a round may come back short: keep reading
        # until there are enough or the index is exhausted.
        while len(page) <= limit:
            answer = self._query_owner(owner, now, limit + 1 - len(page), start)
            page += [session_from_item(i) for i in answer.get("Items", []) if _expires_at(i) > now]
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
        if len(page) <= limit:
            return page, None
        last = page[limit - 1]
        return page[:limit], encode_cursor(last.last_used_at, last.session_id)

    def owner_has_sessions(self, owner: str) -> bool:
        """Whether the owner has an unexpired session (the index may lag a creation by a moment).

        Args:
            owner: The owner.
        """
        now = self._now()
        start: dict[str, Any] | None = None
        while True:
            size = _HAS_SESSIONS_FIRST_PAGE if start is None else _HAS_SESSIONS_PAGE
            answer = self._query_owner(owner, now, size, start, projection="#e")
            if any(_expires_at(item) > now for item in answer.get("Items", [])):
                return True
            start = answer.get("LastEvaluatedKey")
            if not start:
                return False

    def _query_owner(
        self, owner: str, now: float, limit: int, start: dict[str, Any] | None, projection: str | None = None
    ) -> dict[str, Any]:
        """One newest-first ``Query`` of the index for an owner's sessions, expired ones filtered out."""
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": SESSIONS_INDEX_NAME,
            "KeyConditionExpression": "#o = :o",
            # Saves sending expired items back; Limit counts before the filter, hence the loops.
            "FilterExpression": "#e > :now",
            "ExpressionAttributeNames": {"#o": INDEX_OWNER, "#e": "expires_at"},
            "ExpressionAttributeValues": {":o": {"S": owner}, ":now": _number(now)},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if projection is not None:
            params["ProjectionExpression"] = projection
        if start is not None:
            params["ExclusiveStartKey"] = start
        answer: dict[str, Any] = self._client.query(**params)
        return answer

    @staticmethod
    def _index_key(owner: str, last_used_at: float, session_id: str) -> dict[str, Any]:
        """The index position of a session: its table key plus its index key."""
        return {
            "pk": {"S": session_key(owner, session_id)},
            INDEX_OWNER: {"S": owner},
            INDEX_USED: _number(last_used_at),
        }
