"""The run and frame-log half of the SQLite store.

:class:`SqliteRunsMixin` holds the :class:`~selador.store.base.RunStore` methods; it is mixed into
:class:`~selador.store.sqlite.SqliteStore`, which owns the connection, the locks and the schema
(:mod:`selador.store.sqlite_schema`). Kept apart so neither half outgrows a readable module.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from selador.store.base import RunFinish, RunRecord
from selador.store.runs import check_changes, check_expect, run_from_json, run_matches, run_to_json


class SqliteRunsMixin:
    """Runs and frame logs in the SQLite file: the run half of the SQLite store.

    Not a store on its own: it relies on attributes that
    :class:`~selador.store.sqlite.SqliteStore`'s ``__init__`` sets and on its writer lock,
    ``_writing``.
    """

    # Set by SqliteStore.__init__ (or defined there); declared here so the methods below type-check
    # on their own.
    _conn: sqlite3.Connection
    _lock: threading.RLock
    _now: Callable[[], float]
    _group_thread: int | None
    _queue_lock: threading.Lock
    _appends: list[_Append]

    if TYPE_CHECKING:
        # SqliteStore._writing: this process's lock plus the file's writer lock (and a transaction,
        # or a savepoint inside grouped(), when asked); every write below goes through it. A stub
        # rather than an annotation so mypy checks the keyword and accepts the real method.
        def _writing(self, *, transaction: bool = False) -> AbstractContextManager[None]: ...

    def create_run(self, run: RunRecord, *, name: str | None = None) -> None:
        """Store a new run and, when ``name`` is given, point that name at it.

        Args:
            run: The record.
            name: A name :meth:`find_run` resolves to this run until the record expires.
        """
        with self._writing(transaction=True):
            self._conn.execute(
                "INSERT INTO runs (run_id, data, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
                (run.run_id, run_to_json(run), run.expires_at),
            )
            if name is not None:
                self._conn.execute(
                    "INSERT INTO run_names (name, run_id, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, "
                    "expires_at = excluded.expires_at",
                    (name, run.run_id, run.expires_at),
                )

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or ``None`` when absent or expired.

        Args:
            run_id: The run.
        """
        with self._lock:
            return self._get_run_locked(run_id)

    def _get_run_locked(self, run_id: str) -> RunRecord | None:
        row = self._conn.execute(
            "SELECT data FROM runs WHERE run_id = ? AND expires_at > ?", (run_id, self._now())
        ).fetchone()
        return None if row is None else run_from_json(row[0])

    def find_run(self, name: str) -> RunRecord | None:
        """The run last created under ``name``, or ``None``.

        Args:
            name: The name given to :meth:`create_run`.
        """
        now = self._now()
        with self._lock:
            row = self._conn.execute(
                "SELECT r.data FROM run_names n JOIN runs r ON r.run_id = n.run_id "
                "WHERE n.name = ? AND n.expires_at > ? AND r.expires_at > ?",
                (name, now, now),
            ).fetchone()
        return None if row is None else run_from_json(row[0])

    def update_run(
        self,
        run_id: str,
        changes: Mapping[str, object],
        *,
        expect_status: Collection[str] | None = None,
        expect: Mapping[str, object] | None = None,
    ) -> RunRecord | None:
        """Change a run atomically when it exists, is unexpired and meets the conditions.

        Args:
            run_id: The run.
            changes: Fields to set.
            expect_status: Statuses the run must be in.
            expect: Fields that must hold exactly these values.

        Returns:
            The record after the change, or ``None`` when nothing changed.
        """
        check_changes(changes)
        check_expect(expect)
        with self._writing(transaction=True):
            return self._update_run_locked(run_id, changes, expect_status, expect)

    def _update_run_locked(
        self,
        run_id: str,
        changes: Mapping[str, object],
        expect_status: Collection[str] | None,
        expect: Mapping[str, object] | None,
    ) -> RunRecord | None:
        current = self._get_run_locked(run_id)
        if current is None or not run_matches(current, expect_status, expect):
            return None
        updated = dataclasses.replace(current, **changes)  # type: ignore[arg-type]  # names checked above
        self._conn.execute(
            "UPDATE runs SET data = ?, expires_at = ? WHERE run_id = ?",
            (run_to_json(updated), updated.expires_at, run_id),
        )
        return updated

    def append_frame(
        self, run_id: str, seq: int, data: str, expires_at: int, *, finish: RunFinish | None = None
    ) -> bool:
        """Log frame ``seq`` unless it is there already; with ``finish``, end the run in the same step.

        Args:
            run_id: The run.
            seq: The frame's ``seq``.
            data: Its JSON text.
            expires_at: When the frame may be deleted.
            finish: The change that ends the run, applied only if the run is in an expected status.

        Returns:
            ``True`` when written.
        """
        if finish is not None:
            check_changes(finish.changes)
            return self._append_and_finish(run_id, seq, data, expires_at, finish)
        # Group commit: every run of a worker process appends through this one store. A thread
        # queues its frame; whichever thread gets the store next writes everything queued in one
        # transaction, so under load frames cost one wait for the file per batch, not per frame.
        item = _Append(run_id, seq, data, expires_at)
        if self._group_thread == threading.get_ident():
            # Inside grouped(): this frame alone, in the group's transaction (others' frames must
            # not ride on a transaction that may still roll back).
            self._append_batch([item])
        else:
            with self._queue_lock:
                self._appends.append(item)
        with self._lock:
            if item.written is None:
                with self._queue_lock:
                    batch, self._appends = self._appends, []
                self._append_batch(batch)
        if item.error is not None:
            raise item.error
        return bool(item.written)

    def _append_batch(self, batch: list[_Append]) -> None:
        try:
            with self._writing(transaction=True):
                for item in batch:
                    item.written = bool(
                        self._conn.execute(
                            "INSERT INTO run_frames (run_id, seq, data, expires_at) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (run_id, seq) DO NOTHING RETURNING 1",
                            (item.run_id, item.seq, item.data, item.expires_at),
                        ).fetchall()
                    )
        except Exception as exc:  # noqa: BLE001 - handed to every caller in the batch, raised there
            for item in batch:
                item.written, item.error = False, exc

    def _append_and_finish(
        self, run_id: str, seq: int, data: str, expires_at: int, finish: RunFinish
    ) -> bool:
        try:
            with self._writing(transaction=True):
                inserted = self._conn.execute(
                    "INSERT INTO run_frames (run_id, seq, data, expires_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (run_id, seq) DO NOTHING RETURNING 1",
                    (run_id, seq, data, expires_at),
                ).fetchall()
                if not inserted:
                    return False
                if self._update_run_locked(run_id, finish.changes, finish.expect_status, None) is None:
                    raise _Rollback  # leaving by exception rolls the frame back too
        except _Rollback:
            return False
        return True

    def read_frames(self, run_id: str, after_seq: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Logged frames after ``after_seq``, in order, up to the first gap.

        Args:
            run_id: The run.
            after_seq: Only frames after this one.
            limit: At most this many.

        Returns:
            ``(seq, data)`` pairs with contiguous seqs from ``after_seq + 1``.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, data FROM run_frames WHERE run_id = ? AND seq > ? AND expires_at > ? "
                "ORDER BY seq LIMIT ?",
                (run_id, after_seq, self._now(), limit),
            ).fetchall()
        frames: list[tuple[int, str]] = []
        expected = after_seq + 1
        for seq, data in rows:
            if seq != expected:
                break
            frames.append((int(seq), str(data)))
            expected += 1
        return frames


@dataclasses.dataclass
class _Append:
    """A frame waiting to be written by whichever thread gets the store next."""

    run_id: str
    seq: int
    data: str
    expires_at: int
    written: bool | None = None
    error: Exception | None = None


class _Rollback(Exception):
    """Raised inside a transaction to undo it without an error."""
