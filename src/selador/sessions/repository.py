"""A Strands ``SessionRepository`` over the project's store, bound to one session for one turn.

Strands' :class:`~strands.session.repository_session_manager.RepositorySessionManager` drives it:
it reads the session and the agent record when the agent is built, lists the messages the
conversation manager kept, and writes every new message as it is added. This adapter adds what
makes a stored conversation exact across failures:

* it lists only *committed* messages (ids below the record's ``messages``): what a failed,
  cancelled or killed turn wrote is never read back;
* it numbers the messages it writes itself, from the committed count, so a turn that failed is
  written over by the next, whatever the conversation manager trimmed;
* it never creates the session (the ``invoke`` route did, with its owner) and answers only for it;
* it keeps the agent record (with the conversation manager's state: how many messages have left
  the prompt) until the turn commits (:meth:`StoreSessionRepository.write_agents`): a turn that
  failed after dropping earlier turns to fit the model's context must not drop them for the next.

One instance per turn; not thread-safe (a Strands agent adds its messages one at a time).
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from strands.session.session_repository import SessionRepository
from strands.types.session import (
    Session,
    SessionAgent,
    SessionMessage,
    SessionType,
    decode_bytes_values,
)

from selador.store.sessions import CHILD_TTL_FACTOR

if TYPE_CHECKING:
    from selador.store.base import Store
    from selador.store.sessions import SessionRecord


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


_MESSAGE_FIELDS = frozenset(field.name for field in dataclasses.fields(SessionMessage))


def _message(data: str) -> SessionMessage:
    """``SessionMessage.from_dict(json.loads(data))`` without its per-call ``inspect.signature``.

    Measured: Strands' ``from_dict`` spends ~0.4 ms per message finding the dataclass's
    parameters, 30 ms for a 20-turn window; the fields are fixed, so they are looked up once.
    """
    fields = {key: value for key, value in json.loads(data).items() if key in _MESSAGE_FIELDS}
    return SessionMessage(**decode_bytes_values(fields))


class StoreSessionRepository(SessionRepository):
    """Strands' session repository interface over :class:`~selador.store.sessions.SessionStore`.

    Args:
        store: The container's store.
        record: The session this turn continues (already created).
        ttl_seconds: The session TTL; children are written to outlive it.
    """

    def __init__(self, store: Store, record: SessionRecord, ttl_seconds: int) -> None:
        self.store = store
        self.record = record
        self.ttl_seconds = ttl_seconds
        self.next_message_id = record.messages
        """The id the next written message gets; after the turn, the new committed count."""
        self.agent_ids: set[str] = set()
        self._unwritten_agents: dict[str, str] = {}
        """Agent records (JSON) this turn changed, by agent id: written when it commits."""

    # -- the session ---------------------------------------------------------------------------

    def _key(self) -> tuple[str, str, str]:
        return self.record.owner, self.record.session_id, self.record.generation

    def _child_expiry(self) -> int:
        return int(time.time() + self.ttl_seconds * CHILD_TTL_FACTOR)

    def _check(self, session_id: str) -> None:
        if session_id != self.record.session_id:
            raise ValueError("this repository serves one session only")

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        """Nothing to do: the session was created, with its owner, when the query was accepted."""
        self._check(session.session_id)
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """The bound session (Strands' view of it)."""
        self._check(session_id)
        return Session(
            session_id=session_id,
            session_type=SessionType.AGENT,
            created_at=_iso(self.record.created_at),
            updated_at=_iso(self.record.last_used_at),
        )

    # -- the agent record ----------------------------------------------------------------------

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Store the agent record (its state and the conversation manager's)."""
        self.update_agent(session_id, session_agent)

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """The agent record as this turn left it, else as stored; ``None`` before the first turn."""
        self._check(session_id)
        data = self._unwritten_agents.get(agent_id) or self.store.get_session_agent(*self._key(), agent_id)
        if data is None:
            return None
        self.agent_ids.add(agent_id)
        return SessionAgent.from_dict(json.loads(data))

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replace the agent record when the turn commits (:meth:`write_agents`), not before."""
        self._check(session_id)
        self.agent_ids.add(session_agent.agent_id)
        self._unwritten_agents[session_agent.agent_id] = _dump(session_agent.to_dict())

    def write_agents(self) -> None:
        """Store the agent records this turn changed; called by the commit, just before it."""
        for agent_id, data in self._unwritten_agents.items():
            self.store.put_session_agent(*self._key(), agent_id, data, self._child_expiry())
        self._unwritten_agents.clear()

    # -- messages ------------------------------------------------------------------------------

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Store a new message under the next id of this turn.

        The id Strands chose is replaced (on the same object, so a later redaction updates the
        right item): Strands counts from the last message it listed, which is not the committed
        count when the window dropped every earlier turn.
        """
        self._check(session_id)
        session_message.message_id = self.next_message_id
        self.next_message_id += 1
        self.update_message(session_id, agent_id, session_message)

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """One committed message, or one this turn wrote."""
        self._check(session_id)
        if not 0 <= message_id < self.next_message_id:
            return None
        found = self.store.read_session_messages(*self._key(), agent_id, message_id, message_id + 1)
        return _message(found[0][1]) if found else None

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Replace a message (Strands does this to redact one)."""
        self._check(session_id)
        self.store.put_session_message(
            *self._key(),
            agent_id,
            session_message.message_id,
            _dump(session_message.to_dict()),
            self._child_expiry(),
        )

    def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        """The committed messages from ``offset`` on (what the conversation manager kept)."""
        self._check(session_id)
        stop = self.record.messages if limit is None else min(self.record.messages, offset + limit)
        if offset >= stop:
            return []
        rows = self.store.read_session_messages(*self._key(), agent_id, offset, stop)
        return [_message(data) for _, data in rows]
