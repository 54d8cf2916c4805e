"""What the client sends (docs/protocol.md "Client → server"), and the checks made before sending."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .errors import SeladorError

MAX_REQUEST_ID_CHARS = 64
PING = '{"action":"ping"}'


def new_request_id() -> str:
    """A fresh ``request_id`` for a question asked without one."""
    return f"py-{uuid.uuid4().hex[:16]}"


def check_request_id(request_id: object) -> str:
    """Apply the server's rule for a ``request_id`` before sending it.

    The server can only name the run in its answer when it can read the id, so an id it would
    refuse is refused here, with the same sentence.

    Args:
        request_id: The id to check.

    Returns:
        The id.

    Raises:
        SeladorError: ``bad_request`` naming the rule.
    """
    if not isinstance(request_id, str):
        raise SeladorError("bad_request", f"request_id: must be a string, not {type(request_id).__name__}")
    if not 1 <= len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise SeladorError("bad_request", f"request_id: must be 1 to {MAX_REQUEST_ID_CHARS} characters")
    if not request_id.isprintable() or any(ch.isspace() and ch != " " for ch in request_id):
        raise SeladorError("bad_request", "request_id: must contain printable characters only")
    return request_id


def with_token(url: str, token: str | None) -> str:
    """``url`` with ``token`` added as the ``token`` query parameter (what ``$connect`` reads)."""
    if not token:
        return url
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}token={quote(token, safe='')}"))


def invoke_message(
    question: str,
    request_id: str,
    *,
    context: str | None = None,
    query_type: str | None = None,
    session_id: str | None = None,
    session_token: str | None = None,
    on_disconnect: str | None = None,
) -> dict[str, Any]:
    """An ``invoke`` message; fields left ``None`` are not sent (the server's defaults apply)."""
    message: dict[str, Any] = {"action": "invoke", "question": question, "request_id": request_id}
    optional = {
        "context": context,
        "query_type": query_type,
        "session_id": session_id,
        "session_token": session_token,
        "on_disconnect": on_disconnect,
    }
    message.update({name: value for name, value in optional.items() if value is not None})
    return message


def resume_message(request_id: str, after_seq: int, run_token: str | None) -> dict[str, Any]:
    """A ``resume`` message (without ``run_token`` when there is none: an owner's own run)."""
    message: dict[str, Any] = {"action": "resume", "request_id": request_id, "after_seq": after_seq}
    if run_token is not None:
        message["run_token"] = run_token
    return message


def cancel_message(request_id: str, run_token: str | None) -> dict[str, Any]:
    """A ``cancel`` message."""
    message: dict[str, Any] = {"action": "cancel", "request_id": request_id}
    if run_token is not None:
        message["run_token"] = run_token
    return message
