"""The children half of the DynamoDB store's sessions: agent, message and turn items.

:class:`DynamoSessionChildrenMixin` holds the child methods of
:class:`~selador.store.sessions.SessionStore`; :class:`~selador.store.dynamodb_sessions.DynamoSessionsMixin`
(the session items) builds on it. The item layout is documented in :mod:`selador.store.dynamodb`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from selador.store._dynamo import _expires_at, _is_conditional_failure, _number
from selador.store.dynamodb_session_items import (
    agent_key,
    agents_of,
    batch_delete,
    batch_get,
    message_key,
    session_from_item,
    session_hash,
    session_key,
    turn_from_item,
    turn_key,
)
from selador.store.session_records import check_generation
from selador.store.sessions import TurnRecord

_T = TypeVar("_T")

# Sessions whose agents this process remembers having recorded (see put_session_agent); forgotten
# all at once past this many, which only costs a redundant (idempotent) update per agent.
_RECORDED_SESSIONS_CAP = 4096
# refresh_children updates its items this many at a time (one UpdateItem each).
_REFRESH_WORKERS = 16


class DynamoSessionChildrenMixin:
    """A session's agent, message and turn items in the DynamoDB table.

    Not a store on its own: it relies on attributes that
    :class:`~selador.store.dynamodb.DynamoDbStore`'s ``__init__`` sets and on
    ``_retry_conflicts`` of :class:`~selador.store.dynamodb_runs.DynamoRunsMixin`. Child reads do
    not consult the session item: callers pass the generation of a record they just read, and a
    child of another generation is simply not found. Every method taking a generation raises
    ``ValueError`` for one :meth:`create_session` would refuse (it could make keys ambiguous).
    """

    # Set by DynamoDbStore.__init__; declared here so the methods below type-check on their own.
    _client: Any
    table_name: str
    _now: Callable[[], float]
    _sleep: Callable[[float], None]
    _recorded_agents: dict[str, set[tuple[str, str]]]

    if TYPE_CHECKING:
        # DynamoRunsMixin._retry_conflicts: resend a write that lost to a concurrent transaction.
        def _retry_conflicts(self, call: Callable[[], _T]) -> _T: ...

    def put_session_agent(
        self, owner: str, session_id: str, generation: str, agent_id: str, data: str, expires_at: int
    ) -> None:
        """Create or replace the agent item, first recording its id on the session item.

        The id is recorded (``ADD agents``, conditioned on the generation, so a deleted or
        replaced session is not brought back as a partial item) so that :meth:`delete_session`
        can find the agent's items. Each process records an id once per generation, and forgets
        it when it creates or deletes that session.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_id: The Strands agent id.
            data: Its JSON text.
            expires_at: The item's TTL.
        """
        check_generation(generation)
        digest = session_hash(owner, session_id)
        pk = agent_key(digest, generation, agent_id)
        if (generation, agent_id) not in self._recorded_agents.get(digest, ()):
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": session_key(owner, session_id)}},
                    UpdateExpression="ADD #a :a",
                    ConditionExpression="#g = :g",
                    ExpressionAttributeNames={"#a": "agents", "#g": "generation"},
                    ExpressionAttributeValues={":a": {"SS": [agent_id]}, ":g": {"S": generation}},
                )
                if len(self._recorded_agents) >= _RECORDED_SESSIONS_CAP:
                    self._recorded_agents.clear()
                self._recorded_agents.setdefault(digest, set()).add((generation, agent_id))
            except ClientError as exc:
                if not _is_conditional_failure(exc):
                    raise
                # No such session (any more): nothing will read this agent; it expires by its TTL.
        self._client.put_item(
            TableName=self.table_name,
            Item={"pk": {"S": pk}, "data": {"S": data}, "expires_at": _number(expires_at)},
        )

    def get_session_agent(self, owner: str, session_id: str, generation: str, agent_id: str) -> str | None:
        """The agent record's JSON text, or ``None`` when absent or expired (strongly consistent).

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_id: The Strands agent id.
        """
        check_generation(generation)
        item = self._get_item(agent_key(session_hash(owner, session_id), generation, agent_id))
        if not item or _expires_at(item) <= self._now():
            return None
        return str(item["data"]["S"])

    def put_session_message(
        self,
        owner: str,
        session_id: str,
        generation: str,
        agent_id: str,
        message_id: int,
        data: str,
        expires_at: int,
    ) -> None:
        """Create or replace one message item.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_id: The Strands agent id.
            message_id: The message's index in the agent's history (from 0).
            data: Its JSON text.
            expires_at: The item's TTL.
        """
        check_generation(generation)
        pk = message_key(session_hash(owner, session_id), generation, agent_id, message_id)
        self._client.put_item(
            TableName=self.table_name,
            Item={"pk": {"S": pk}, "data": {"S": data}, "expires_at": _number(expires_at)},
        )

    def read_session_messages(
        self, owner: str, session_id: str, generation: str, agent_id: str, start: int, stop: int
    ) -> list[tuple[int, str]]:
        """The unexpired messages with ``start <= id < stop``, ascending (``BatchGetItem``, consistent).

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_id: The Strands agent id.
            start: The first id wanted.
            stop: One past the last id wanted (callers stop at the record's ``messages``).

        Returns:
            ``(id, data)`` pairs; missing ids are skipped.
        """
        check_generation(generation)
        digest = session_hash(owner, session_id)
        keys = {message_key(digest, generation, agent_id, n): n for n in range(max(start, 0), stop)}
        now = self._now()
        found = batch_get(self._client, self.table_name, keys, self._sleep)
        return sorted((keys[pk], item["data"]["S"]) for pk, item in found.items() if _expires_at(item) > now)

    def read_turns(self, owner: str, session_id: str, generation: str, count: int) -> list[TurnRecord]:
        """Turns ``0 .. count-1``, oldest first (an expired or missing one is skipped).

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            count: How many turns the record says were committed.
        """
        check_generation(generation)
        digest = session_hash(owner, session_id)
        now = self._now()
        found = batch_get(
            self._client,
            self.table_name,
            (turn_key(digest, generation, i) for i in range(count)),
            self._sleep,
        )
        turns = [turn_from_item(item) for item in found.values() if _expires_at(item) > now]
        return sorted(turns, key=lambda turn: turn.index)

    def refresh_children(
        self,
        owner: str,
        session_id: str,
        generation: str,
        *,
        agent_ids: tuple[str, ...],
        messages: int,
        turns: int,
        expires_at: int,
    ) -> None:
        """Set ``expires_at`` on the listed agents, their messages and the turns, if unexpired.

        One conditional ``UpdateItem`` per item, several at a time. An item already expired (or
        gone) stays so: the condition keeps the update from bringing it back or creating it.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_ids: The agents whose items and messages ``0 .. messages-1`` to refresh.
            messages: Committed messages (per agent).
            turns: Committed turns (items ``0 .. turns-1``).
            expires_at: The new expiry.
        """
        check_generation(generation)
        digest = session_hash(owner, session_id)
        keys = [agent_key(digest, generation, agent) for agent in agent_ids]
        keys += [message_key(digest, generation, agent, n) for agent in agent_ids for n in range(messages)]
        keys += [turn_key(digest, generation, index) for index in range(turns)]
        now = _number(self._now())

        def refresh(pk: str) -> None:
            try:
                self._retry_conflicts(
                    lambda: self._client.update_item(
                        TableName=self.table_name,
                        Key={"pk": {"S": pk}},
                        UpdateExpression="SET #e = :exp",
                        ConditionExpression="attribute_exists(pk) AND #e > :now",
                        ExpressionAttributeNames={"#e": "expires_at"},
                        ExpressionAttributeValues={":exp": _number(expires_at), ":now": now},
                    )
                )
            except ClientError as exc:
                if not _is_conditional_failure(exc):
                    raise

        if len(keys) <= 1:
            for pk in keys:
                refresh(pk)
            return
        with ThreadPoolExecutor(max_workers=min(_REFRESH_WORKERS, len(keys))) as pool:
            list(pool.map(refresh, keys))  # list(): re-raises the first failure here

    def _get_item(self, pk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._client.get_item(
            TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True
        ).get("Item")
        return item

    def _delete_children(self, session: dict[str, Any]) -> None:
        """Delete the children a session item accounts for, committed or not.

        Committed ones are known from its counters and ``agents`` set; an unfinished turn's
        messages follow the committed ones contiguously, so they are deleted one by one upward
        from ``messages`` until a delete finds nothing.
        """
        record = session_from_item(session)
        digest = session_hash(record.owner, record.session_id)
        self._recorded_agents.pop(digest, None)
        agents = agents_of(session)
        keys = [agent_key(digest, record.generation, agent) for agent in agents]
        keys += [turn_key(digest, record.generation, index) for index in range(record.turns)]
        for agent in agents:
            keys += [message_key(digest, record.generation, agent, n) for n in range(record.messages)]
        batch_delete(self._client, self.table_name, keys, self._sleep)
        for agent in agents:
            n = record.messages
            while self._client.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": message_key(digest, record.generation, agent, n)}},
                ReturnValues="ALL_OLD",
            ).get("Attributes"):
                n += 1
