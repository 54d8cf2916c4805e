"""The session part of the store interface: conversations and their stored messages.

A *session* is one conversation, identified by its owner and its client-chosen id. Its record
holds the listing data (created, last used, turns, title) and two counters that make the stored
history exact: ``turns`` and ``messages`` count what *committed* turns wrote. A turn that never
committed (its query failed, was cancelled, or its invocation died) may have left messages with
ids at or past ``messages``; every read stops before ``messages``, and the next turn writes over
them, so they are never seen.

Each session record has a random ``generation``; its children (the Strands agent record, one item
per message, one item per committed turn) are keyed under it. A session created again after it
expired gets a new generation, so children the TTL sweeper has not yet removed stay invisible.

Children carry their own expiry. A session expires ``SESSION_TTL_SECONDS`` after its last turn;
children are written to expire later than that (see :data:`CHILD_TTL_FACTOR`), and
``children_expire_at`` on the record says when the first of them will go, so the turn that would
outlive them refreshes them all first (:meth:`SessionStore.refresh_children`): at most once per
half TTL, not at every turn.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

CHILD_TTL_FACTOR = 1.5
"""Children are written to expire this many session TTLs after they are written (or refreshed)."""

MAX_TITLE_CHARS = 80


@dataclass(frozen=True)
class SessionRecord:
    """One conversation's record.

    Attributes:
        owner: ``p:<principal>`` for an authenticated owner, ``t:<sha256 hex of the session
            token>`` for an anonymous one.
        session_id: The client's id (1-64 printable characters).
        generation: Random hex, new at every creation; children are keyed under it.
        created_at: Epoch seconds.
        last_used_at: Epoch seconds of the last committed turn (``created_at`` before the first).
        expires_at: Epoch seconds after which the session is gone (TTL).
        children_expire_at: The earliest epoch second at which any child item may expire.
        turns: Committed turns (turn items ``0 .. turns-1`` exist).
        messages: Committed messages (message items ``0 .. messages-1`` are the history).
        title: The first question, cut to :data:`MAX_TITLE_CHARS` characters.
    """

    owner: str
    session_id: str
    generation: str
    created_at: float
    last_used_at: float
    expires_at: int
    children_expire_at: int
    turns: int = 0
    messages: int = 0
    title: str = ""


@dataclass(frozen=True)
class TurnRecord:
    """One committed question and its answer, as ``GET /sessions/{id}`` shows it.

    Attributes:
        index: 0 for the first turn.
        question: The question as asked.
        answer: The answer's text.
        agent: The agent that answered.
        sources: JSON text of the answer's sources (a list of objects).
        created_at: Epoch seconds the turn was committed.
    """

    index: int
    question: str
    answer: str
    agent: str
    sources: str
    created_at: float


@dataclass(frozen=True)
class TurnCommit:
    """What committing a turn changes, applied atomically with writing its turn item.

    Attributes:
        turn: The new turn (its ``index`` must equal the record's ``turns``).
        messages: The new committed message count.
        last_used_at: Epoch seconds (now).
        expires_at: The session's new expiry.
        children_expire_at: The new earliest child expiry, when this commit refreshed children.
        title: Set when the session had none.
    """

    turn: TurnRecord
    messages: int
    last_used_at: float
    expires_at: int
    children_expire_at: int | None = None
    title: str | None = None


class SessionStore(abc.ABC):
    """Sessions, the Strands agent record of each, their messages and their committed turns.

    Every read answers only unexpired sessions and only children of the record's current
    generation; every child method takes the ``(owner, session_id, generation)`` it belongs to.
    """

    @abc.abstractmethod
    def get_session(self, owner: str, session_id: str) -> SessionRecord | None:
        """The session, or ``None`` when absent or expired (strongly consistent)."""

    @abc.abstractmethod
    def create_session(self, record: SessionRecord) -> bool:
        """Store a new session (``turns`` and ``messages`` 0).

        Returns:
            ``False`` when an unexpired session with that owner and id exists (nothing changed).
            An expired one is replaced.
        """

    @abc.abstractmethod
    def commit_turn(self, owner: str, session_id: str, generation: str, commit: TurnCommit) -> bool:
        """Write a turn item and advance the record, atomically.

        Conditional on the session existing unexpired with this ``generation`` and ``turns ==
        commit.turn.index``.

        Returns:
            ``True`` when committed; ``False`` when a condition failed (nothing written).
        """

    @abc.abstractmethod
    def delete_session(self, owner: str, session_id: str) -> bool:
        """Delete the session and every child of its generation, committed or not.

        Returns:
            ``True`` when a session (expired or not) existed.
        """

    @abc.abstractmethod
    def list_sessions(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        """The owner's unexpired sessions, most recently used first (ties: by id).

        Args:
            owner: The owner.
            limit: At most this many (1-100).
            cursor: ``None``, or the cursor a previous call returned.

        Returns:
            The page and the cursor of the next one (``None`` when this is the last). A cursor is
            opaque text, safe to hand to a client.

        Raises:
            ValueError: the cursor is malformed (the caller answers 400).
        """

    @abc.abstractmethod
    def owner_has_sessions(self, owner: str) -> bool:
        """Whether the owner has at least one unexpired session (may lag a creation by a moment)."""

    # -- children ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def put_session_agent(
        self, owner: str, session_id: str, generation: str, agent_id: str, data: str, expires_at: int
    ) -> None:
        """Create or replace the Strands agent record (JSON text) of a session."""

    @abc.abstractmethod
    def get_session_agent(self, owner: str, session_id: str, generation: str, agent_id: str) -> str | None:
        """The agent record's JSON text, or ``None``."""

    @abc.abstractmethod
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
        """Create or replace one message (JSON text of a Strands ``SessionMessage``)."""

    @abc.abstractmethod
    def read_session_messages(
        self, owner: str, session_id: str, generation: str, agent_id: str, start: int, stop: int
    ) -> list[tuple[int, str]]:
        """The stored messages with ``start <= id < stop``, ascending, as ``(id, data)`` pairs."""

    @abc.abstractmethod
    def read_turns(self, owner: str, session_id: str, generation: str, count: int) -> list[TurnRecord]:
        """Turn items ``0 .. count-1``, oldest first."""

    @abc.abstractmethod
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
        """Set ``expires_at`` on the listed agents, messages ``0 .. messages-1``, turns ``0 .. turns-1``."""
