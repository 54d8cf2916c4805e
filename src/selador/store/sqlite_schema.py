"""Tables of the SQLite store and how a connection record is stored in one row.

Used by :class:`~selador.store.sqlite.SqliteStore`; callers import :func:`record_to_json` and
:func:`record_from_json` from :mod:`selador.store.sqlite`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from selador.store.base import ConnectionRecord

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS connections (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS connections_expires_at ON connections (expires_at)",
    """
    CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at)",
    """
    CREATE TABLE IF NOT EXISTS claims (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS claims_expires_at ON claims (expires_at)",
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS runs_expires_at ON runs (expires_at)",
    """
    CREATE TABLE IF NOT EXISTS run_names (
        name TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS run_names_expires_at ON run_names (expires_at)",
    """
    CREATE TABLE IF NOT EXISTS run_frames (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS run_frames_expires_at ON run_frames (expires_at)",
    # Sessions: the record as JSON, with the columns the listing orders and filters by.
    """
    CREATE TABLE IF NOT EXISTS sessions (
        owner TEXT NOT NULL,
        session_id TEXT NOT NULL,
        data TEXT NOT NULL,
        last_used_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (owner, session_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions (owner, last_used_at, session_id)",
    "CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at)",
    # A session's children: kind 'agent' (n 0), 'message' (n the message id) or 'turn' (agent_id
    # '', n the turn index), each under the generation of the record that wrote it.
    """
    CREATE TABLE IF NOT EXISTS session_items (
        owner TEXT NOT NULL,
        session_id TEXT NOT NULL,
        generation TEXT NOT NULL,
        kind TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        data TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (owner, session_id, generation, kind, agent_id, n)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS session_items_expires_at ON session_items (expires_at)",
)
# Every table above; there is no schema version: a table added later is created by its CREATE ...
# IF NOT EXISTS the next time any store opens the file, so older files gain it in place.
_EXPIRING_TABLES = (
    "connections",
    "kv",
    "claims",
    "runs",
    "run_names",
    "run_frames",
    "sessions",
    "session_items",
)

# Counters live in the kv table under this prefix (the DynamoDB store's ``ctr#`` partition keys);
# claims have a table of their own because they carry an owner token.
_COUNTER_PREFIX = "ctr#"

_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(ConnectionRecord))


def record_to_json(record: ConnectionRecord) -> str:
    """Serialise a record to the JSON stored in the ``connections`` table.

    Args:
        record: The record.

    Returns:
        A JSON object with one member per :class:`ConnectionRecord` field.
    """
    return json.dumps(dataclasses.asdict(record), ensure_ascii=False, separators=(",", ":"))


def record_from_json(text: str) -> ConnectionRecord:
    """Parse JSON written by :func:`record_to_json`.

    Members the running code does not know are dropped, so a file written by a newer version (sharing
    the file with an older local gateway) still reads.

    Args:
        text: The stored JSON.

    Returns:
        The record.
    """
    data: dict[str, Any] = {k: v for k, v in json.loads(text).items() if k in _RECORD_FIELDS}
    data["connected_at"] = float(data["connected_at"])
    data["expires_at"] = int(data["expires_at"])
    data["attributes"] = {str(k): str(v) for k, v in (data.get("attributes") or {}).items()}
    return ConnectionRecord(**data)
