"""The HTTP session routes: list a caller's conversations, read one, erase one.

``GET /sessions``, ``GET /sessions/{session_id}``, ``DELETE /sessions/{session_id}``. The caller is
the bearer token's principal or, for anonymous sessions, the holder of the ``X-Session-Token``
the session's first answer returned. A session of someone else answers exactly like one that does
not exist (404), so nothing tells a caller that an id is taken. Nothing here imports strands.
"""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import Router

from selador.deps import get_dependencies
from selador.http.common import HttpError, authenticate_caller, header, json_response
from selador.http.routedocs import ROUTE_DOCS
from selador.sessions.service import Sessions, principal_owner, token_owner

router = Router()

DEFAULT_PAGE = 20
MAX_PAGE = 100


def _caller() -> tuple[Sessions, str | None]:
    """The session service and the caller's owner (``None``: a token that owns nothing)."""
    event = router.current_event
    deps = get_dependencies()
    principal = authenticate_caller(event.raw_event, deps.settings)
    sessions = Sessions(deps.store, deps.settings)
    if principal is not None:
        return sessions, principal_owner(principal)
    token = header(event.headers, "x-session-token")
    if not token:
        raise HttpError(
            HTTPStatus.UNAUTHORIZED,
            "send a bearer token, or the X-Session-Token header with the session_token your first "
            "question returned",
            "unauthorized",
        )
    # A malformed token owns nothing: it is answered like a token with no sessions.
    return sessions, token_owner(token)


@router.get("/sessions", **ROUTE_DOCS["GET /sessions"])
def list_sessions() -> Response[str]:
    """The caller's sessions, most recently used first: ``{"sessions": [...], "next": cursor}``."""
    sessions, owner = _caller()
    params = router.current_event.query_string_parameters or {}
    limit = _limit(params.get("limit"))
    cursor = params.get("cursor") or None
    if owner is None:
        return json_response(200, {"sessions": [], "next": None})
    try:
        page = sessions.listing(owner, limit, cursor)
    except ValueError:
        raise HttpError(
            HTTPStatus.BAD_REQUEST, "cursor: not a cursor this API returned", "bad_request"
        ) from None
    return json_response(200, page)


@router.get("/sessions/<session_id>", **ROUTE_DOCS["GET /sessions/{session_id}"])
def get_session(session_id: str) -> Response[str]:
    """One session's turns, oldest first; 404 when the caller has no such session."""
    sessions, owner = _caller()
    record = sessions.find(owner, session_id) if owner is not None else None
    if record is None:
        raise _unknown_session(session_id)
    return json_response(200, sessions.transcript(record))


@router.delete("/sessions/<session_id>", **ROUTE_DOCS["DELETE /sessions/{session_id}"])
def delete_session(session_id: str) -> Response[str]:
    """Erase a session and every message stored of it: 204; 409 while a query runs in it."""
    sessions, owner = _caller()
    outcome = sessions.erase(owner, session_id) if owner is not None else "unknown"
    if outcome == "unknown":
        raise _unknown_session(session_id)
    if outcome == "busy":
        raise HttpError(
            HTTPStatus.CONFLICT,
            f"a query is running in session {session_id[:64]!r}; cancel it or wait for its result",
            "session_busy",
        )
    return Response(status_code=204, body="")


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    # isascii: str.isdigit() also accepts "²" or "①", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise HttpError(
            HTTPStatus.BAD_REQUEST, f"limit: must be a whole number from 1 to {MAX_PAGE}", "bad_request"
        )
    return int(raw)


def _unknown_session(session_id: str) -> HttpError:
    # One answer for missing, expired and foreign sessions.
    return HttpError(
        HTTPStatus.NOT_FOUND,
        f"no session {session_id[:64]!r}: it does not exist, has expired, or belongs to another caller",
        "unknown_session",
    )
