"""The session half of the SQLite store.

:class:`SqliteSessionsMixin` holds the :class:`~selador.store.sessions.SessionStore` methods; it is
mixed into :class:`~selador.store.sqlite.SqliteStore`, which owns the connection, the locks and the
schema (:mod:`selador.store.sqlite_schema`: tables ``sessions`` and ``session_items``).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from selador.store.session_records import (
    check_generation,
    check_limit,
    decode_cursor,
    encode_cursor,
    session_from_json,
    session_to_json,
    turn_expiry,
    turn_from_json,
    turn_to_json,
)
from selador.store.sessions import SessionRecord, TurnCommit, TurnRecord

# session_items.kind values.
_AGENT = "agent"
_MESSAGE = "message"
_TURN = "turn"

_UPSERT_ITEM = (
    "INSERT INTO session_items (owner, session_id, generation, kind, agent_id, n, data, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (owner, session_id, generation, kind, agent_id, n) "
    "DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at"
)


class SqliteSessionsMixin:
    """Sessions and their children in the SQLite file: the session half of the SQLite store.

    Not a store on its own: it relies on attributes that
    :class:`~selador.store.sqlite.SqliteStore`'s ``__init__`` sets and on its writer lock,
    ``_writing``. Child reads do not consult the session record: callers pass the generation of a
    record they just read, and a child of another generation is simply not found. Every method
    taking a generation raises ``ValueError`` for one :meth:`create_session` would refuse, as the
    DynamoDB store must.
    """

    # Set by SqliteStore.__init__; declared here so the methods below type-check on their own.
    _conn: sqlite3.Connection
    _lock: threading.RLock
    _now: Callable[[], float]

    if TYPE_CHECKING:
        # SqliteStore._writing: see SqliteRunsMixin.
        def _writing(self, *, transaction: bool = False) -> AbstractContextManager[None]: ...

    def get_session(self, owner: str, session_id: str) -> SessionRecord | None:
        """The session, or ``None`` when absent or expired.

        Args:
            owner: The owner.
            session_id: The client's id.
        """
        with self._lock:
            return self._get_session_locked(owner, session_id)

    def _get_session_locked(self, owner: str, session_id: str) -> SessionRecord | None:
        row = self._conn.execute(
            "SELECT data FROM sessions WHERE owner = ? AND session_id = ? AND expires_at > ?",
            (owner, session_id, self._now()),
        ).fetchone()
        return None if row is None else session_from_json(row[0])

    def create_session(self, record: SessionRecord) -> bool:
        """Store a new session unless an unexpired one has its owner and id.

        Replacing an expired session also deletes every child stored under its owner and id (of
        any generation): nothing can read them any more.

        Args:
            record: The record, stored as given.

        Returns:
            ``False`` when an unexpired session of another generation exists (nothing changed). One
            of the same generation is this very record, stored by an earlier call (generations
            are random per creation): ``True``, as the DynamoDB store must answer a resent request.

        Raises:
            ValueError: ``record.generation`` is not a token of letters, digits, ``-`` and ``_``.
        """
        check_generation(record.generation)
        with self._writing(transaction=True):
            current = self._get_session_locked(record.owner, record.session_id)
            if current is not None:
                return current.generation == record.generation
            self._conn.execute(
                "DELETE FROM session_items WHERE owner = ? AND session_id = ?",
                (record.owner, record.session_id),
            )
            self._conn.execute(
                "INSERT INTO sessions (owner, session_id, data, last_used_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, session_id) DO UPDATE SET "
                "data = excluded.data, last_used_at = excluded.last_used_at, "
                "expires_at = excluded.expires_at",
                (
                    record.owner,
                    record.session_id,
                    session_to_json(record),
                    record.last_used_at,
                    record.expires_at,
                ),
            )
        return True

    def commit_turn(self, owner: str, session_id: str, generation: str, commit: TurnCommit) -> bool:
        """Write a turn item and advance the record in one transaction.

        The turn item expires as :func:`~selador.store.session_records.turn_expiry` says.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The generation the caller read; the record must still have it.
            commit: The change; ``commit.turn.index`` must equal the record's ``turns``.

        Returns:
            ``True`` when committed; ``False`` when the session is absent, expired, of another
            generation or at another turn (nothing written).
        """
        check_generation(generation)
        with self._writing(transaction=True):
            current = self._get_session_locked(owner, session_id)
            if current is None or current.generation != generation or current.turns != commit.turn.index:
                return False
            # The turn's slot must be free, as the DynamoDB store's Put demands (a row there would
            # mean the record and its turns disagree: refuse rather than overwrite).
            inserted = self._conn.execute(
                "INSERT INTO session_items (owner, session_id, generation, kind, agent_id, n, data, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (owner, session_id, generation, kind, agent_id, n) DO NOTHING RETURNING 1",
                (
                    owner,
                    session_id,
                    generation,
                    _TURN,
                    "",
                    commit.turn.index,
                    turn_to_json(commit.turn),
                    turn_expiry(commit),
                ),
            ).fetchall()
            if not inserted:
                return False
            updated = dataclasses.replace(
                current,
                last_used_at=commit.last_used_at,
                expires_at=commit.expires_at,
                children_expire_at=(
                    current.children_expire_at
                    if commit.children_expire_at is None
                    else commit.children_expire_at
                ),
                turns=current.turns + 1,
                messages=commit.messages,
                title=current.title if commit.title is None else commit.title,
            )
            self._conn.execute(
                "UPDATE sessions SET data = ?, last_used_at = ?, expires_at = ? "
                "WHERE owner = ? AND session_id = ?",
                (session_to_json(updated), updated.last_used_at, updated.expires_at, owner, session_id),
            )
        return True

    def delete_session(self, owner: str, session_id: str) -> bool:
        """Delete the session and every child stored under its owner and id, in one transaction.

        Args:
            owner: The owner.
            session_id: The client's id.

        Returns:
            ``True`` when a session (expired or not) existed.
        """
        with self._writing(transaction=True):
            rows = self._conn.execute(
                "DELETE FROM sessions WHERE owner = ? AND session_id = ? RETURNING 1", (owner, session_id)
            ).fetchall()
            self._conn.execute(
                "DELETE FROM session_items WHERE owner = ? AND session_id = ?", (owner, session_id)
            )
        return bool(rows)

    def list_sessions(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        """The owner's unexpired sessions, most recently used first, ties by id.

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
        sql = "SELECT data FROM sessions WHERE owner = :owner AND expires_at > :now"
        params: dict[str, object] = {"owner": owner, "now": self._now(), "limit": limit + 1}
        if cursor is not None:
            params["used"], params["after"] = decode_cursor(cursor)
            sql += " AND (last_used_at < :used OR (last_used_at = :used AND session_id > :after))"
        # One row more than asked tells whether another page follows.
        sql += " ORDER BY last_used_at DESC, session_id ASC LIMIT :limit"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        page = [session_from_json(row[0]) for row in rows[:limit]]
        following = encode_cursor(page[-1].last_used_at, page[-1].session_id) if len(rows) > limit else None
        return page, following

    def owner_has_sessions(self, owner: str) -> bool:
        """Whether the owner has at least one unexpired session.

        Args:
            owner: The owner.
        """
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM sessions WHERE owner = ? AND expires_at > ? LIMIT 1", (owner, self._now())
            ).fetchone()
        return row is not None

    # -- children ----------------------------------------------------------------------------------

    def put_session_agent(
        self, owner: str, session_id: str, generation: str, agent_id: str, data: str, expires_at: int
    ) -> None:
        """Create or replace the Strands agent record of a session.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_id: The Strands agent id.
            data: Its JSON text.
            expires_at: When the row may be deleted.
        """
        check_generation(generation)
        with self._writing():
            self._conn.execute(
                _UPSERT_ITEM, (owner, session_id, generation, _AGENT, agent_id, 0, data, expires_at)
            )

    def get_session_agent(self, owner: str, session_id: str, generation: str, agent_id: str) -> str | None:
        """The agent record's JSON text, or ``None`` when absent or expired.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_id: The Strands agent id.
        """
        check_generation(generation)
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM session_items WHERE owner = ? AND session_id = ? AND generation = ? "
                "AND kind = ? AND agent_id = ? AND n = 0 AND expires_at > ?",
                (owner, session_id, generation, _AGENT, agent_id, self._now()),
            ).fetchone()
        return None if row is None else str(row[0])

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
        """Create or replace one message.

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_id: The Strands agent id.
            message_id: The message's index in the agent's history (from 0).
            data: Its JSON text.
            expires_at: When the row may be deleted.
        """
        check_generation(generation)
        with self._writing():
            self._conn.execute(
                _UPSERT_ITEM,
                (owner, session_id, generation, _MESSAGE, agent_id, message_id, data, expires_at),
            )

    def read_session_messages(
        self, owner: str, session_id: str, generation: str, agent_id: str, start: int, stop: int
    ) -> list[tuple[int, str]]:
        """The unexpired messages with ``start <= id < stop``, ascending.

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
        with self._lock:
            rows = self._conn.execute(
                "SELECT n, data FROM session_items WHERE owner = ? AND session_id = ? AND generation = ? "
                "AND kind = ? AND agent_id = ? AND n >= ? AND n < ? AND expires_at > ? ORDER BY n",
                (owner, session_id, generation, _MESSAGE, agent_id, start, stop, self._now()),
            ).fetchall()
        return [(int(n), str(data)) for n, data in rows]

    def read_turns(self, owner: str, session_id: str, generation: str, count: int) -> list[TurnRecord]:
        """Turns ``0 .. count-1``, oldest first (an expired or missing one is skipped).

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            count: How many turns the record says were committed.
        """
        check_generation(generation)
        with self._lock:
            rows = self._conn.execute(
                "SELECT data FROM session_items WHERE owner = ? AND session_id = ? AND generation = ? "
                "AND kind = ? AND agent_id = '' AND n >= 0 AND n < ? AND expires_at > ? ORDER BY n",
                (owner, session_id, generation, _TURN, count, self._now()),
            ).fetchall()
        return [turn_from_json(row[0]) for row in rows]

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

        Rows already expired stay expired: refreshing must not bring back what reads stopped
        showing (the DynamoDB store cannot either, once its sweeper ran).

        Args:
            owner: The owner.
            session_id: The client's id.
            generation: The session's generation.
            agent_ids: The agents whose records and messages to refresh.
            messages: Committed messages (per agent).
            turns: Committed turns.
            expires_at: The new expiry.
        """
        check_generation(generation)
        agents = ", ".join("?" * len(agent_ids))
        with self._writing():
            self._conn.execute(
                "UPDATE session_items SET expires_at = ? "
                "WHERE owner = ? AND session_id = ? AND generation = ? AND expires_at > ? AND ("
                f"(kind = ? AND agent_id IN ({agents})) "
                f"OR (kind = ? AND agent_id IN ({agents}) AND n >= 0 AND n < ?) "
                "OR (kind = ? AND agent_id = '' AND n >= 0 AND n < ?))",
                (
                    expires_at,
                    owner,
                    session_id,
                    generation,
                    self._now(),
                    _AGENT,
                    *agent_ids,
                    _MESSAGE,
                    *agent_ids,
                    messages,
                    _TURN,
                    turns,
                ),
            )
