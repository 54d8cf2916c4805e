"""The logic of conversations that needs no model: owners, tokens, opening, listing, erasing.

A session is identified by its owner and its id. The owner is the authenticated principal
(``p:<subject>``) or, for anonymous use, the holder of a *session token* (``t:<sha256 of the
token>``; the token itself is never stored). Tokens are only ever issued by the server: a token
that owns nothing is not adopted (someone could otherwise plant a token they know in a victim's
client) but replaced by a fresh one, and the same id under another owner is simply another
session, so no answer reveals that someone else's session exists.

Nothing here imports strands: opening a session happens on the ``invoke`` route, and the HTTP
session routes only read and delete. Continuing a conversation with an agent is
:mod:`selador.sessions.conversation`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from selador.protocol import MAX_SESSION_TOKEN_CHARS, NEW_SESSION, QueryRequest
from selador.store.sessions import CHILD_TTL_FACTOR, MAX_TITLE_CHARS, SessionRecord

if TYPE_CHECKING:
    from selador.settings import Settings
    from selador.store.base import Store

TOKEN_PREFIX = "st1"  # noqa: S105 - a format marker, not a secret
_TOKEN_BYTES = 24
"""192 random bits per session token."""
AGENT_ID = "selador"
"""The one Strands agent id of every conversation: the thread is shared, whichever agent answers."""


def new_session_id() -> str:
    """A server-generated session id (for ``session_id: "new"``)."""
    return "s-" + secrets.token_hex(10)


def fresh_token() -> tuple[str, str]:
    """A fresh anonymous owner: ``(session token, owner)``."""
    secret = secrets.token_urlsafe(_TOKEN_BYTES)
    return f"{TOKEN_PREFIX}.{secret}", _owner_of(secret)


def _owner_of(secret: str) -> str:
    return "t:" + hashlib.sha256(secret.encode()).hexdigest()


def token_owner(token: str) -> str | None:
    """The owner a well-formed session token stands for, else ``None``."""
    if not token or len(token) > MAX_SESSION_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX + "."):
        return None
    secret = token[len(TOKEN_PREFIX) + 1 :]
    if len(secret) < 16 or not secret.isascii() or not secret.replace("-", "").replace("_", "").isalnum():
        return None
    return _owner_of(secret)


def principal_owner(principal: str) -> str:
    """The owner an authenticated principal stands for."""
    return "p:" + principal


def busy_key(owner: str, session_id: str) -> str:
    """The claim held while a query runs in the session (one at a time)."""
    digest = hashlib.sha256(f"{owner}\x00{session_id}".encode()).hexdigest()[:40]
    return "sbusy#" + digest


def iso(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-11-30T05:00:00.123Z``)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Opening:
    """Who owns the session a query asked for, and whether it exists yet.

    Attributes:
        owner: ``p:<principal>`` or ``t:<token digest>``.
        session_id: The session's id (generated for ``"new"``).
        token: The session token to return to an anonymous caller (its own or a fresh one).
        record: The existing session, or ``None`` when the query creates it.
    """

    owner: str
    session_id: str
    token: str | None
    record: SessionRecord | None

    @property
    def busy_key(self) -> str:
        """The claim that keeps a second query out while this one runs."""
        return busy_key(self.owner, self.session_id)


class Sessions:
    """Open, list, read and erase sessions over the container's store.

    Args:
        store: The store.
        settings: The container's settings (TTL, turn window).
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def resolve(self, request: QueryRequest, principal: str | None) -> Opening:
        """Decide whose session a query asks for and whether it exists (reads only).

        Args:
            request: A query with a ``session_id``.
            principal: The authenticated caller, or ``None``.

        Returns:
            The opening; nothing is written.
        """
        if request.session_id is None:
            raise ValueError("the query names no session")
        fresh = request.session_id == NEW_SESSION
        session_id = new_session_id() if fresh else request.session_id
        if principal is not None:
            owner = principal_owner(principal)
            record = None if fresh else self.store.get_session(owner, session_id)
            return Opening(owner, session_id, None, record)
        token = request.session_token
        token_holder = token_owner(token) if token else None
        if token is not None and token_holder is not None:
            record = None if fresh else self.store.get_session(token_holder, session_id)
            if record is not None or self.store.owner_has_sessions(token_holder):
                return Opening(token_holder, session_id, token, record)
        # No token, a malformed one, or one that owns nothing: a new owner with a fresh token.
        token, token_holder = fresh_token()
        return Opening(token_holder, session_id, token, None)

    def create(self, opening: Opening, title: str) -> SessionRecord:
        """Create the session an opening found missing (or return the one created meanwhile).

        Called with the session's busy claim held, so no other query of this session runs.
        """
        now = time.time()
        ttl = self.settings.session_ttl_seconds
        record = SessionRecord(
            owner=opening.owner,
            session_id=opening.session_id,
            generation=secrets.token_hex(8),
            created_at=now,
            last_used_at=now,
            expires_at=int(now + ttl) + 1,
            children_expire_at=int(now + ttl * CHILD_TTL_FACTOR),
            title=title[:MAX_TITLE_CHARS],
        )
        if self.store.create_session(record):
            return record
        existing = self.store.get_session(opening.owner, opening.session_id)
        if existing is None:  # created and expired within the call: practically never
            raise RuntimeError("the session could not be created")
        return existing

    def find(self, owner: str, session_id: str) -> SessionRecord | None:
        """The owner's session, or ``None`` (missing, expired and foreign look the same)."""
        if not session_id or len(session_id) > 64:
            return None
        return self.store.get_session(owner, session_id)

    def listing(self, owner: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """``GET /sessions``: the owner's sessions, most recently used first.

        Raises:
            ValueError: a malformed cursor.
        """
        records, next_cursor = self.store.list_sessions(owner, limit, cursor)
        return {
            "sessions": [
                {
                    "session_id": r.session_id,
                    "created_at": iso(r.created_at),
                    "last_used_at": iso(r.last_used_at),
                    "turns": r.turns,
                    "title": r.title,
                }
                for r in records
            ],
            "next": next_cursor,
        }

    def transcript(self, record: SessionRecord) -> dict[str, Any]:
        """``GET /sessions/{id}``: every committed turn, oldest first."""
        turns = self.store.read_turns(record.owner, record.session_id, record.generation, record.turns)
        return {
            "session_id": record.session_id,
            "created_at": iso(record.created_at),
            "last_used_at": iso(record.last_used_at),
            "turns": [
                {
                    "question": t.question,
                    "answer": t.answer,
                    "agent": t.agent,
                    "sources": json.loads(t.sources or "[]"),
                    "created_at": iso(t.created_at),
                }
                for t in turns
            ],
        }

    def erase(self, owner: str, session_id: str) -> str:
        """Delete a session and everything stored of it, unless a query is running in it.

        Returns:
            ``deleted``, ``busy`` (a query is running: nothing deleted), or ``unknown``.
        """
        if self.find(owner, session_id) is None:
            return "unknown"
        key = busy_key(owner, session_id)
        claim = self.store.claim(key, self.settings.run_claim_ttl_seconds)
        if claim is None:
            return "busy"
        try:
            return "deleted" if self.store.delete_session(owner, session_id) else "unknown"
        finally:
            self.store.release(key, claim)
