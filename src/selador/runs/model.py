"""Run tokens, run names and what a terminal frame makes of a run."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from selador.protocol import TERMINAL_TYPES, ErrorFrame, ResultData, ResultFrame, _Frame
from selador.store.base import RUN_ACTIVE_STATUSES, RunFinish, RunRecord

MAX_INVOCATION_S = 900
"""Lambda's longest invocation: no executor outlives it."""
LEASE_MARGIN_S = 30
"""Seconds past an executor's own end before anyone may presume its run dead."""
TOKEN_PREFIX = "rt1"  # noqa: S105 - a format marker, not a secret
_SECRET_BYTES = 18
"""144 bits of randomness in every token (the protocol promises at least 128)."""


def new_run_id() -> str:
    """A fresh run id (URL-safe, 96 random bits)."""
    return secrets.token_urlsafe(12)


def new_listener_id() -> str:
    """A fresh id for one attach of a listener to a run."""
    return secrets.token_urlsafe(9)


def new_run_token(run_id: str) -> tuple[str, str]:
    """A token for ``run_id`` and the digest to store.

    The token names its run (so it can be looked up without a scan) and carries a random secret;
    only the secret's SHA-256 digest is stored, so a leaked table does not leak tokens.

    Returns:
        ``(token, digest)``.
    """
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{TOKEN_PREFIX}.{run_id}.{secret}", _digest(secret)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_run_id(token: str) -> str | None:
    """The run id a well-formed token names, else ``None``."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def token_matches(run: RunRecord, token: str) -> bool:
    """Whether ``token`` is the run's token (constant-time comparison of digests)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[1] != run.run_id:
        return False
    return hmac.compare_digest(_digest(parts[2]), run.token_digest)


FrameT = TypeVar("FrameT", bound=_Frame)


def stamp(frame: FrameT, run: RunRecord, seq: int) -> FrameT:
    """``frame`` as the run posts it: its ``request_id``, ``seq`` and, in a session, ``session_id``.

    A ``result`` in a session carries the id in its data too, so ``POST /invoke`` and ``GET
    /runs/{id}`` (which answer with the data alone) say which conversation the answer joined.
    """
    update: dict[str, object] = {"request_id": run.request_id, "seq": seq}
    if run.session_id is not None:
        update["session_id"] = run.session_id
        if isinstance(frame, ResultFrame):
            update["data"] = frame.data.model_copy(update={"session_id": run.session_id})
    return frame.model_copy(update=update)


def _joined(*parts: str) -> str:
    # Length-prefixed, so no choice of principal and request id can spell another pair's key
    # ("a#b" + "c" and "a" + "b#c" stay apart).
    return "#".join(f"{len(part)}:{part}" for part in parts)


def run_name(principal: str, request_id: str) -> str:
    """The name under which a principal finds its run by ``request_id``."""
    return "p#" + _joined(principal, request_id)


def active_key(scope: str, request_id: str) -> str:
    """The claim that makes a ``request_id`` unique among an owner's running queries."""
    return "active#" + _joined(scope, request_id)


def lease_expired(run: RunRecord, now: float | None = None) -> bool:
    """Whether an active run's executor (or its pending hand-off) must be presumed dead."""
    return run.status in RUN_ACTIVE_STATUSES and run.lease_until <= (time.time() if now is None else now)


def terminal_finish(
    frame: _Frame, *, expect_status: frozenset[str], log_ttl_s: int, now: float | None = None
) -> RunFinish:
    """The change a terminal frame makes to its run.

    Args:
        frame: The stamped ``result`` or ``error`` frame.
        expect_status: Statuses the run must be in for this frame to end it.
        log_ttl_s: How long the run and its log stay readable after the end.
        now: Epoch seconds (tests).

    Returns:
        The finish to apply with the frame.

    Raises:
        TypeError: ``frame`` is not terminal.
    """
    now = time.time() if now is None else now
    result: Mapping[str, object]
    if isinstance(frame, ResultFrame):
        status = "cancelled" if frame.data.stop_reason == "cancelled" else "succeeded"
        result = frame.data.model_dump(mode="json", exclude_none=True)
    elif isinstance(frame, ErrorFrame):
        status, result = "failed", {"code": frame.code or "internal_error", "error": frame.error}
    else:
        raise TypeError(f"{type(frame).__name__} is not a terminal frame")
    return RunFinish(
        expect_status=expect_status,
        changes={
            "status": status,
            "frames": frame.seq or 0,
            "ended_at": now,
            "expires_at": int(now + log_ttl_s) + 1,
            "result": json.dumps(result, ensure_ascii=False, separators=(",", ":")),
        },
    )


@dataclass(frozen=True)
class Refused:
    """A query that was not started.

    Attributes:
        code: ``duplicate_request``, ``session_busy`` or ``rate_limited``.
        message: Safe to show the client.
        retry_after: Seconds until a limit may admit a query again, when known.
    """

    code: str
    message: str
    retry_after: int | None = None


@dataclass(frozen=True)
class Started:
    """A query that became a run.

    Attributes:
        run: The ``pending`` run record.
        token: The run token (only its digest is stored).
        accepted: The ``accepted`` frame (seq 1) as logged, to post to the client.
        session_token: An anonymous session's token (to return to the caller), else ``None``.
    """

    run: RunRecord
    token: str
    accepted: str
    session_token: str | None = None


def cancelled_frame(data: ResultData | None = None) -> ResultFrame:
    """The terminal frame of a run cancelled before it produced anything."""
    return ResultFrame(
        data=data
        or ResultData(
            success=False,
            content="",
            agent="",
            query_type="",
            tools_available=0,
            tools_used=0,
            stop_reason="cancelled",
        )
    )


def is_terminal(data: str) -> bool:
    """Whether a logged frame's JSON is a terminal frame (``result`` or ``error``)."""
    try:
        kind = json.loads(data).get("type")
    except (ValueError, AttributeError):
        return False
    return kind in TERMINAL_TYPES
