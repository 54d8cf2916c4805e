"""The wire protocol: inbound messages and outbound frames (see ``docs/protocol.md``).

Inbound messages are validated here, before anything expensive runs, and every validation failure
becomes one readable sentence naming the field and the rule. Outbound frames are a discriminated
union on ``type``; new fields and frame types are additions only, so older clients keep working.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

PROTOCOL_VERSION = "1.2"
"""The version of ``docs/protocol.md`` these models implement (also in the generated API documents)."""
MAX_QUESTION_CHARS = 4000
MAX_CONTEXT_CHARS = 4000
MAX_REQUEST_ID_CHARS = 64
MAX_MESSAGE_BYTES = 128 * 1024
"""API Gateway's WebSocket message quota; also the largest frame we ever post."""

QUERY_TYPES: tuple[str, ...] = ("general", "zoning", "building_codes", "permits", "financing")
"""Every ``query_type`` the orchestrator routes; the first is the default."""

ACTIONS: tuple[str, ...] = ("invoke", "resume", "cancel", "ping")
"""Every WebSocket ``action`` with a route of its own (anything else goes to ``$default``)."""

ON_DISCONNECT: tuple[str, ...] = ("continue", "cancel")
"""What a run does when its connection vanishes; the first is the default."""

MAX_RUN_TOKEN_CHARS = 128
MAX_SESSION_ID_CHARS = 64
MAX_SESSION_TOKEN_CHARS = 128
NEW_SESSION = "new"
"""The ``session_id`` that asks the server to generate one."""


class ProtocolError(ValueError):
    """An inbound message broke the protocol; ``str()`` is safe to show the client.

    Attributes:
        request_id: The client's ``request_id`` when it could be read, so the error frame carries it.
    """

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


_ID_SCHEMA: dict[str, Any] = {"minLength": 1, "maxLength": MAX_REQUEST_ID_CHARS}


def new_request_id() -> str:
    """A fresh server-side request id."""
    return "r-" + uuid.uuid4().hex[:20]


class QueryRequest(BaseModel):
    """A question, as sent on the ``invoke`` route or POSTed to ``/invoke``.

    Unknown fields are ignored so clients can send more than this version knows.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, frozen=True)

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    """Not empty after trimming."""
    context: str | None = Field(default=None, max_length=MAX_CONTEXT_CHARS)
    """What the asker knows already (a property, a project); the agents take it into account."""
    # json_schema_extra: the rules the validators below enforce, stated in the JSON Schema too (the
    # generated API documents); Field constraints would replace the validators' error messages.
    query_type: str = Field(default=QUERY_TYPES[0], json_schema_extra={"enum": list(QUERY_TYPES)})
    request_id: str = Field(default_factory=new_request_id, json_schema_extra=_ID_SCHEMA)
    """Printable characters chosen by the client, unique among its running questions (``r-…``: none)."""
    on_disconnect: str = Field(default=ON_DISCONNECT[0], json_schema_extra={"enum": list(ON_DISCONNECT)})
    """What happens to the run when this connection drops."""
    session_id: str | None = Field(default=None, json_schema_extra=_ID_SCHEMA)
    """The conversation this question belongs to (``"new"``: generate one); absent or null: none."""
    session_token: str | None = Field(default=None, min_length=1, max_length=MAX_SESSION_TOKEN_CHARS)
    """Anonymous owners only: the token the session's first ``accepted`` frame carried."""

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("must not be empty or only whitespace")
        return stripped

    @field_validator("query_type")
    @classmethod
    def _known_query_type(cls, value: str) -> str:
        if value not in QUERY_TYPES:
            raise ValueError(f"must be one of {', '.join(QUERY_TYPES)} (got {value[:40]!r})")
        return value

    @field_validator("on_disconnect")
    @classmethod
    def _known_on_disconnect(cls, value: str) -> str:
        if value not in ON_DISCONNECT:
            raise ValueError(f"must be one of {', '.join(ON_DISCONNECT)} (got {value[:40]!r})")
        return value

    @field_validator("request_id")
    @classmethod
    def _printable_request_id(cls, value: str) -> str:
        return _check_request_id(value)

    @field_validator("session_id")
    @classmethod
    def _printable_session_id(cls, value: str | None) -> str | None:
        return None if value is None else _check_request_id(value, MAX_SESSION_ID_CHARS)


def _check_request_id(value: str, longest: int = MAX_REQUEST_ID_CHARS) -> str:
    if not 1 <= len(value) <= longest:
        raise ValueError(f"must be 1 to {longest} characters")
    if not value.isprintable() or any(ch.isspace() and ch != " " for ch in value):
        raise ValueError("must contain printable characters only")
    return value


class RunCommand(BaseModel):
    """``resume`` or ``cancel``: a command about an existing run.

    Attributes:
        request_id: The run's ``request_id``.
        run_token: The token from the run's ``accepted`` frame; may be left out when the
            connection's authenticated principal owns the run.
        after_seq: ``resume`` only: replay the frames after this ``seq`` (0 replays everything).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: str = Field(json_schema_extra=_ID_SCHEMA)
    run_token: str | None = Field(default=None, min_length=1, max_length=MAX_RUN_TOKEN_CHARS)
    after_seq: int = Field(default=0, ge=0, le=10_000_000)

    @field_validator("request_id")
    @classmethod
    def _printable_request_id(cls, value: str) -> str:
        return _check_request_id(value)


_STRICT_STR = {"string_type": "must be a string"}


def _describe(exc: ValidationError) -> str:
    """Turn pydantic's errors into one sentence per field: ``question: must not be empty``."""
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        kind = err["type"]
        if kind == "missing":
            rule = "is required"
        elif kind in _STRICT_STR:
            rule = _STRICT_STR[kind]
        elif kind == "string_too_short":
            rule = "must not be empty"
        elif kind == "string_too_long":
            rule = f"must be at most {err.get('ctx', {}).get('max_length')} characters"
        elif kind == "value_error":
            rule = str(err.get("ctx", {}).get("error", err["msg"]))
        else:
            rule = err["msg"][0].lower() + err["msg"][1:]
        parts.append(f"{field}: {rule}")
    return "; ".join(parts)


def parse_query(payload: object) -> QueryRequest:
    """Validate a decoded JSON body as a query.

    Args:
        payload: The decoded JSON body (any JSON value).

    Returns:
        The validated request.

    Raises:
        ProtocolError: naming each offending field and its rule.
    """
    payload, safe_id = _object_with_strings(
        payload,
        ("question", "context", "query_type", "request_id", "on_disconnect", "session_id", "session_token"),
    )
    try:
        return QueryRequest.model_validate(payload)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc), safe_id) from None


def parse_run_command(payload: object) -> RunCommand:
    """Validate a decoded ``resume`` or ``cancel`` message.

    Args:
        payload: The decoded JSON body.

    Returns:
        The validated command.

    Raises:
        ProtocolError: naming each offending field and its rule.
    """
    payload, safe_id = _object_with_strings(payload, ("request_id", "run_token"))
    after_seq = payload.get("after_seq")
    if after_seq is not None and (isinstance(after_seq, bool) or not isinstance(after_seq, int)):
        raise ProtocolError(f"after_seq: must be a whole number, not {_json_kind(after_seq)}", safe_id)
    try:
        return RunCommand.model_validate({k: v for k, v in payload.items() if v is not None})
    except ValidationError as exc:
        raise ProtocolError(_describe(exc), safe_id) from None


def _object_with_strings(payload: object, names: tuple[str, ...]) -> tuple[dict[str, Any], str | None]:
    """Check the message is an object whose named fields, when present, are strings.

    Returns:
        The object and its ``request_id`` when that is safe to echo in an error frame.
    """
    if not isinstance(payload, dict):
        raise ProtocolError(f"message must be a JSON object, not {_json_kind(payload)}")
    request_id = payload.get("request_id")
    safe_id = request_id if isinstance(request_id, str) and _is_safe_id(request_id) else None
    for name in names:
        value = payload.get(name)
        # Reject non-strings outright: pydantic would coerce nothing here, but a number or list as
        # question must read "must be a string", not a pydantic type dump.
        if value is not None and not isinstance(value, str):
            raise ProtocolError(f"{name}: must be a string, not {_json_kind(value)}", safe_id)
    return payload, safe_id


def _is_safe_id(value: str) -> bool:
    return 1 <= len(value) <= MAX_REQUEST_ID_CHARS and value.isprintable()


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def decode_json(body: str | bytes | None) -> Any:
    """Decode a message body as JSON, with a protocol error instead of a traceback.

    Deeply nested input raises ``RecursionError`` inside ``json``; it is reported like any other
    malformed body.

    Args:
        body: The raw body.

    Returns:
        The decoded value.

    Raises:
        ProtocolError: when the body is empty or not JSON.
    """
    if body is None or body == "" or body == b"":
        raise ProtocolError("message must be JSON: the body is empty")
    try:
        return json.loads(body)
    except RecursionError:
        raise ProtocolError("message must be JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"message must be JSON: {exc}") from None


# --------------------------------------------------------------------------------------------
# Outbound frames
# --------------------------------------------------------------------------------------------


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timestamp: float = Field(default_factory=time.time)
    """Seconds since the epoch."""
    request_id: str | None = None
    """The query the frame belongs to (or the message an error is about, when it could be read)."""
    seq: int | None = None
    """A run's own frames only: 1, 2, 3… per run, no gaps; errors about a message have none."""
    session_id: str | None = None
    """Every frame of a query asked in a session carries the session's id."""

    def to_json(self) -> str:
        """Serialise for the wire: compact JSON without ``None`` fields."""
        return self.model_dump_json(exclude_none=True)


class StatusFrame(_Frame):
    """Progress: accepted, routed, calling a tool, composing."""

    type: Literal["status"] = "status"
    message: str
    stage: str | None = None
    """Machine-readable step: ``accepted``, ``routed``, ``tool``, ``composing``."""
    agent: str | None = None
    """``routed``: the agent that answers."""
    tool: str | None = None
    """``tool``: the tool called, at ``step`` (1, 2…)."""
    step: int | None = None
    run_token: str | None = None
    """``accepted`` only: the secret that lets its holder resume, cancel or read the run."""
    session_token: str | None = None
    """``accepted`` only, anonymous sessions: the secret that owns the session (send it back)."""


class DeltaFrame(_Frame):
    """A piece of answer text, in order; concatenated deltas are the whole answer."""

    type: Literal["delta"] = "delta"
    content: str


class MessageFrame(_Frame):
    """One completed assistant message that had text."""

    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: str
    content_truncated: bool | None = None


class Source(BaseModel):
    """A knowledge-base document the answer drew on."""

    title: str
    location: str
    section: str | None = None
    score: float | None = None


class Usage(BaseModel):
    """Model token usage for the whole run."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class ResultData(BaseModel):
    """The payload of a ``result`` frame, and the body of ``POST /invoke``'s ``data``.

    Attributes:
        success: False only for a cancelled run (``stop_reason`` ``cancelled``).
        content: The answer (the text streamed so far, when cancelled).
        tools_available: Tools the chosen agent had.
        tools_used: Tool calls made in the run.
        tool_calls: Calls per tool.
        sources: Knowledge-base passages the answer drew on.
        stop_reason: ``end_turn``; ``max_tokens`` or ``limit_turns`` (a cap ended it); ``cancelled``.
        content_truncated: True when ``content`` was cut to fit a frame (the deltas hold it all).
        content_length: With ``content_truncated``: the full answer's length in characters.
    """

    success: bool = True
    content: str
    agent: str
    query_type: str
    tools_available: int
    tools_used: int
    tool_calls: dict[str, int] = Field(default_factory=dict)
    sources: list[Source] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    duration_ms: int = 0
    stop_reason: str = "end_turn"
    model: str = ""
    content_truncated: bool | None = None
    content_length: int | None = None
    session_id: str | None = None
    """The conversation the answer belongs to, when the query was asked in one."""


class ResultFrame(_Frame):
    """The terminal frame of an answered (or cancelled: ``data.success`` false) query."""

    type: Literal["result"] = "result"
    data: ResultData


class ErrorFrame(_Frame):
    """The terminal frame of a failed query, or the answer to a malformed message."""

    type: Literal["error"] = "error"
    error: str
    """Safe to show a user (no stack traces, ARNs or account ids)."""
    code: str | None = None
    """Machine-readable: ``bad_request``, ``unknown_action``, ``unknown_run``, ``session_busy``…"""


class PongFrame(_Frame):
    """The answer to ``{"action": "ping"}``."""

    type: Literal["pong"] = "pong"


Frame = Annotated[
    StatusFrame | DeltaFrame | MessageFrame | ResultFrame | ErrorFrame | PongFrame,
    Field(discriminator="type"),
]
FRAME_ADAPTER: TypeAdapter[Frame] = TypeAdapter(Frame)
TERMINAL_TYPES = frozenset({"result", "error"})


def parse_frame(text: str | bytes) -> Frame:
    """Parse a frame from the wire (used by clients and tests).

    Args:
        text: One frame's JSON.

    Returns:
        The typed frame.
    """
    return FRAME_ADAPTER.validate_json(text)
