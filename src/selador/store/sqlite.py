"""SQLite connection store for local runs and the fallback when no DynamoDB table is configured.

Module layout: this module holds :class:`SqliteStore` with the connection, WAL, the locks,
:meth:`~SqliteStore.grouped` and the connection, claim and counter methods; the run and frame-log
methods come from :class:`~selador.store.sqlite_runs.SqliteRunsMixin`, the session methods from
:class:`~selador.store.sqlite_sessions.SqliteSessionsMixin`, the tables and the connection
record's JSON from :mod:`selador.store.sqlite_schema`. Callers import everything from this module,
which re-exports the record helpers.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX (Windows): SQLite's own busy handling only
    fcntl = None  # type: ignore[assignment]

from selador.store.base import ConnectionRecord, Store
from selador.store.runs import new_owner
from selador.store.sqlite_runs import SqliteRunsMixin, _Append
from selador.store.sqlite_schema import (
    _COUNTER_PREFIX,
    _EXPIRING_TABLES,
    _SCHEMA,
    record_from_json,
    record_to_json,
)
from selador.store.sqlite_sessions import SqliteSessionsMixin

__all__ = ["SqliteStore", "record_from_json", "record_to_json"]


def _expiry(now: float, ttl_seconds: int) -> int:
    """Whole epoch seconds, rounded up, so both stores agree on boundaries and a TTL is never cut short."""
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    return math.ceil(now + ttl_seconds)


class SqliteStore(SqliteRunsMixin, SqliteSessionsMixin, Store):
    """A :class:`~selador.store.base.Store` in one SQLite file (or ``:memory:``).

    One connection is shared by all threads behind a lock (the local gateway runs invocations in
    threads). Every mutation is a single ``INSERT ... ON CONFLICT`` statement, or a ``BEGIN IMMEDIATE``
    transaction, so claims and counters stay atomic when several processes share the file; WAL mode
    lets readers proceed while a writer holds the lock, and ``busy_timeout`` makes writers wait their
    turn instead of failing.

    A row whose ``expires_at`` is at or before ``now()`` is treated as absent. Expired rows are
    deleted by :meth:`purge_expired`, which runs when the store opens.

    Args:
        path: Database file, created (with its parent directory) when missing; ``":memory:"`` for a
            private in-memory database.
        now: Clock returning epoch seconds; tests inject a fake one.
        busy_timeout_ms: How long a write, or opening the file, waits for another connection's lock
            before failing.
    """

    def __init__(
        self,
        path: str,
        *,
        now: Callable[[], float] = time.time,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.path = path
        self._now = now
        # Re-entrant: reads and writes made inside grouped() already hold it.
        self._lock = threading.RLock()
        self._depth = 0
        self._group_thread: int | None = None
        self._queue_lock = threading.Lock()
        self._appends: list[_Append] = []
        self._writer_fd: int | None = None
        if path != ":memory:" and not path.startswith("file:"):
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            if fcntl is not None:
                self._writer_fd = os.open(path + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        # isolation_level=None: the sqlite3 module must not open transactions behind our back; the
        # statements below choose their own (autocommit single statements or BEGIN IMMEDIATE).
        # ``timeout`` is SQLite's busy timeout: a write blocked by another process's lock retries
        # for that long instead of failing at once with "database is locked".
        self._conn = sqlite3.connect(
            path,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            uri=path.startswith("file:"),
        )
        try:
            self._enable_wal(busy_timeout_ms / 1000)
            # NORMAL is durable against process crashes in WAL mode; a power loss may drop the last
            # transactions, acceptable for connection bookkeeping that expires anyway.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self._transaction():
                for statement in _SCHEMA:
                    self._conn.execute(statement)
            self.purge_expired()
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """Run the block's calls as one transaction under one acquisition of the writer lock.

        Under load every write waits its turn for the file (other worker processes append frames
        all the time); a route that admits a query with five writes waited five times.
        """
        with self._writing(transaction=True):
            outer, self._group_thread = self._group_thread, threading.get_ident()
            try:
                yield
            finally:
                self._group_thread = outer

    @contextlib.contextmanager
    def _writing(self, *, transaction: bool = False) -> Iterator[None]:
        """Hold this process's lock and the file's writer lock (and a transaction, if asked).

        Writers from several processes (the local gateway's workers) would otherwise meet inside
        SQLite, whose busy handler sleeps 1, 2, 5, 10… up to 100 ms before trying again however
        soon the lock is free: under load a write that needs 100 µs waited tens of milliseconds.
        An ``flock`` wakes the next writer the moment the lock is released. Readers take only this
        process's lock (WAL lets them read while another process writes).

        Inside :meth:`grouped` (the same thread, already holding both locks and a transaction), a
        write just runs, and a write that needs a transaction of its own gets a savepoint.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    if transaction:
                        with self._savepoint(f"s{self._depth}"):
                            yield
                    else:
                        yield
                finally:
                    self._depth -= 1
                return
            if self._writer_fd is not None:
                fcntl.flock(self._writer_fd, fcntl.LOCK_EX)
            self._depth = 1
            try:
                if transaction:
                    with self._transaction():
                        yield
                else:
                    yield
            finally:
                self._depth = 0
                if self._writer_fd is not None:
                    fcntl.flock(self._writer_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _savepoint(self, name: str) -> Iterator[None]:
        self._conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")
            raise
        self._conn.execute(f"RELEASE {name}")

    def _enable_wal(self, timeout_s: float) -> None:
        """Switch the file to WAL, retrying while another connection holds it busy.

        SQLite answers a journal-mode switch it cannot make at once with ``SQLITE_BUSY`` straight
        away, without calling the busy handler, so ``timeout`` does not cover it: several
        connections opening a new file together (threads or processes) would otherwise fail with
        "database is locked" in well under a millisecond. Retrying within the busy timeout gives
        the same guarantee every other statement here has.

        Args:
            timeout_s: How long to keep retrying before letting the error through.
        """
        deadline = time.monotonic() + timeout_s
        pause = 0.001
        while True:
            try:
                # WAL persists in the file; ":memory:" answers "memory", which is fine.
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if not _is_busy(exc) or remaining <= 0:
                    raise
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)

    def _transaction(self) -> _ImmediateTransaction:
        return _ImmediateTransaction(self._conn)

    def close(self) -> None:
        """Close the database connection; the store is unusable afterwards."""
        with self._lock:
            self._conn.close()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None

    def purge_expired(self) -> int:
        """Delete expired rows.

        Returns:
            How many rows were deleted.
        """
        now = self._now()
        deleted = 0
        with self._writing(transaction=True):
            for table in _EXPIRING_TABLES:
                deleted += self._conn.execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now,)).rowcount
        return deleted

    def put_connection(self, record: ConnectionRecord) -> None:
        """Create or replace a connection record.

        Args:
            record: The record; its ``expires_at`` decides when it stops being visible.
        """
        with self._writing():
            self._conn.execute(
                "INSERT INTO connections (id, data, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
                (record.connection_id, record_to_json(record), record.expires_at),
            )

    def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        """Read a connection record.

        Args:
            connection_id: API Gateway's connection id.

        Returns:
            The record, or ``None`` when absent or expired.
        """
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM connections WHERE id = ? AND expires_at > ?",
                (connection_id, self._now()),
            ).fetchone()
        return None if row is None else record_from_json(row[0])

    def delete_connection(self, connection_id: str) -> bool:
        """Delete a connection record.

        Args:
            connection_id: API Gateway's connection id.

        Returns:
            ``True`` when an unexpired record existed (an expired one is deleted too, silently).
        """
        with self._writing():
            rows = self._conn.execute(
                "DELETE FROM connections WHERE id = ? RETURNING expires_at", (connection_id,)
            ).fetchall()
        return bool(rows) and rows[0][0] > self._now()

    def claim(self, key: str, ttl_seconds: int) -> str | None:
        """Atomically create ``key`` if absent or expired.

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
        with self._writing():
            # The DO UPDATE only fires over an expired claim; over a live one the statement changes
            # nothing and RETURNING yields no row. One statement, so atomic across processes.
            # fetchall, never fetchone, after RETURNING: the autocommit transaction (and the file's
            # write lock) ends only when the statement has been stepped to completion.
            rows = self._conn.execute(
                "INSERT INTO claims (key, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
                "WHERE claims.expires_at <= ? RETURNING 1",
                (key, owner, expires_at, now),
            ).fetchall()
        return owner if rows else None

    def release(self, key: str, owner: str) -> bool:
        """Remove ``owner``'s claim (no error when absent or someone else's).

        Args:
            key: The claim's name.
            owner: The token :meth:`claim` returned.

        Returns:
            ``True`` when this owner's claim was removed.
        """
        with self._writing():
            rows = self._conn.execute(
                "DELETE FROM claims WHERE key = ? AND owner = ? RETURNING expires_at", (key, owner)
            ).fetchall()
        return bool(rows) and rows[0][0] > self._now()

    def renew(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """Extend ``owner``'s unexpired claim to ``ttl_seconds`` from now.

        Args:
            key: The claim's name.
            owner: The token :meth:`claim` returned.
            ttl_seconds: The new lifetime (positive).

        Returns:
            ``False`` when the claim is gone, expired or someone else's.
        """
        now = self._now()
        expires_at = _expiry(now, ttl_seconds)
        with self._writing():
            rows = self._conn.execute(
                "UPDATE claims SET expires_at = ? WHERE key = ? AND owner = ? AND expires_at > ? RETURNING 1",
                (expires_at, key, owner, now),
            ).fetchall()
        return bool(rows)

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
        """
        now = self._now()
        expires_at = _expiry(now, ttl_seconds)
        with self._writing():
            rows = self._conn.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (:key, :amount, :exp) "
                "ON CONFLICT (key) DO UPDATE SET "
                "value = CASE WHEN kv.expires_at <= :now THEN excluded.value "
                "ELSE kv.value + excluded.value END, "
                "expires_at = CASE WHEN kv.expires_at <= :now THEN excluded.expires_at "
                "ELSE kv.expires_at END "
                "RETURNING value",
                {"key": _COUNTER_PREFIX + key, "amount": amount, "exp": expires_at, "now": now},
            ).fetchall()
        return int(rows[0][0])


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock (any ``SQLITE_BUSY_*``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    # The low byte is the primary result code; extended codes (BUSY_RECOVERY…) share it.
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY


class _ImmediateTransaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection.

    IMMEDIATE takes the write lock up front, so a multi-statement change never fails half-way with
    SQLITE_BUSY on lock upgrade; the busy timeout covers waiting for it.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
