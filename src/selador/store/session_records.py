"""Helpers both stores share for sessions: checks, listing cursors, record and turn (de)serialisation.

The listing cursor is the same in both stores: URL-safe base64 (unpadded) of the JSON array
``[last_used_at, session_id]`` of the last session a page returned. The next page starts strictly
after that position in the "most recently used first, ties by id" order, so a session that is
used (and so moves to the front) while a client pages is not listed twice.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from selador.store.sessions import CHILD_TTL_FACTOR, SessionRecord, TurnCommit, TurnRecord

MAX_LIST_LIMIT = 100

# Generations are random hex (or any token of these characters): the DynamoDB keys put the
# generation between '#' separators, so a '#' in it could make two children's keys collide.
_GENERATION = re.compile(r"[0-9A-Za-z_-]{1,64}")
# A cursor is produced by encode_cursor; anything much longer than a 64-character id could make,
# or with characters outside the URL-safe alphabet, did not come from here.
_CURSOR = re.compile(r"[0-9A-Za-z_-]{1,1024}")

_LATEST_TIME = 1e11
"""Past any ``last_used_at`` (the year 5138): a cursor's time is below it."""

_SESSION_FIELDS = frozenset(f.name for f in dataclasses.fields(SessionRecord))


def check_generation(generation: str) -> None:
    """Refuse a generation that could not key children unambiguously.

    Raises:
        ValueError: ``generation`` is empty, longer than 64 characters, or has characters other
            than letters, digits, ``-`` and ``_``.
    """
    if not isinstance(generation, str) or not _GENERATION.fullmatch(generation):
        raise ValueError(f"malformed session generation: {generation!r}")


def check_limit(limit: int) -> None:
    """Refuse a page size outside 1-100.

    Raises:
        ValueError: ``limit`` is not an int in that range.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit!r}")


def encode_cursor(last_used_at: float, session_id: str) -> str:
    """The opaque cursor of the position just after a listed session.

    Args:
        last_used_at: The session's ``last_used_at``.
        session_id: Its id.

    Returns:
        URL-safe base64 text without padding.
    """
    raw = json.dumps([last_used_at, session_id], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Parse :func:`encode_cursor`'s output.

    Args:
        cursor: Text a client sent back.

    Returns:
        ``(last_used_at, session_id)``.

    Raises:
        ValueError: ``cursor`` is not one this module made (the caller answers 400).
    """
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise ValueError("malformed cursor")
    try:
        # binascii.Error, UnicodeDecodeError and JSONDecodeError are all ValueErrors.
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except ValueError:
        raise ValueError("malformed cursor") from None
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError("malformed cursor")
    used, session_id = value
    # bool is an int subclass; json gives int or float for numbers, never NaN here (it is refused
    # by the isfinite check should a hand-made cursor carry one).
    if isinstance(used, bool) or not isinstance(used, int | float) or not math.isfinite(used):
        raise ValueError("malformed cursor")
    # A session's last_used_at is an epoch second. Anything else was not made here, and DynamoDB
    # refuses a key number past 1E+125 or under 1E-130 (a ValidationException: a 500, not a 400).
    if not (used == 0 or 1 <= used < _LATEST_TIME):
        raise ValueError("malformed cursor")
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("malformed cursor")
    return float(used), session_id


def turn_expiry(commit: TurnCommit) -> int:
    """When a turn item committed by ``commit`` may expire.

    :class:`TurnCommit` does not say, so it follows the rule every child follows: written now, it
    lives :data:`~selador.store.sessions.CHILD_TTL_FACTOR` session TTLs, the TTL being how far the
    commit moves the session's expiry past ``last_used_at``. Never before the commit's
    ``children_expire_at``, so the record's "earliest child expiry" stays true.

    Args:
        commit: The commit.

    Returns:
        Whole epoch seconds.
    """
    ttl = max(0.0, commit.expires_at - commit.last_used_at)
    expiry = math.ceil(commit.last_used_at + CHILD_TTL_FACTOR * ttl)
    return max(expiry, commit.expires_at, commit.children_expire_at or 0)


def session_to_json(record: SessionRecord) -> str:
    """Compact JSON of every field of a session record."""
    return json.dumps(dataclasses.asdict(record), ensure_ascii=False, separators=(",", ":"))


def session_from_dict(data: Mapping[str, Any]) -> SessionRecord:
    """Rebuild a record from its fields (members it does not know are dropped).

    Args:
        data: The stored members; numbers may come back as ``int``, ``float`` or ``Decimal`` text.

    Returns:
        The record, with each field of the type the dataclass declares.
    """
    fields = {k: v for k, v in data.items() if k in _SESSION_FIELDS}
    fields["created_at"] = float(fields["created_at"])
    fields["last_used_at"] = float(fields["last_used_at"])
    fields["expires_at"] = int(float(fields["expires_at"]))
    fields["children_expire_at"] = int(float(fields["children_expire_at"]))
    fields["turns"] = int(fields.get("turns") or 0)
    fields["messages"] = int(fields.get("messages") or 0)
    fields["title"] = str(fields.get("title") or "")
    return SessionRecord(**fields)


def session_from_json(text: str) -> SessionRecord:
    """Parse :func:`session_to_json`'s output."""
    return session_from_dict(json.loads(text))


def turn_to_json(turn: TurnRecord) -> str:
    """Compact JSON of every field of a turn."""
    return json.dumps(dataclasses.asdict(turn), ensure_ascii=False, separators=(",", ":"))


def turn_from_dict(data: Mapping[str, Any]) -> TurnRecord:
    """Rebuild a turn from its fields.

    Args:
        data: The stored members (numbers as ``int``, ``float`` or numeric text).

    Returns:
        The turn.
    """
    return TurnRecord(
        index=int(data["index"]),
        question=str(data["question"]),
        answer=str(data["answer"]),
        agent=str(data["agent"]),
        sources=str(data["sources"]),
        created_at=float(data["created_at"]),
    )


def turn_from_json(text: str) -> TurnRecord:
    """Parse :func:`turn_to_json`'s output."""
    return turn_from_dict(json.loads(text))
