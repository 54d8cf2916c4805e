"""The OpenAPI 3.1 document of the HTTP API (``docs/openapi.json``), and the gateway's ``/openapi.json``.

Powertools' resolver writes the paths from the routes' definitions
(:data:`selador.http.routedocs.ROUTE_DOCS`: summaries, security, answers naming their bodies by
``$ref``); this module adds what the resolver cannot know: the document's servers and security
schemes, and the bodies' JSON Schemas, generated from :class:`~selador.protocol.QueryRequest`,
:class:`~selador.protocol.ResultData` and the models of the other answers below. The function builds
those answers as plain dicts (defining these models would cost every cold start); a test sends
every route real requests through the local gateway and checks each answer against this document.
The gateway serves the document at ``/openapi.json`` (:mod:`selador.local.apidocs.route`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from selador.local.apidocs.schemas import component_schemas
from selador.protocol import PROTOCOL_VERSION, QueryRequest, ResultData, Source

TITLE = "Selador HTTP API"
DESCRIPTION = (
    "Ask questions and wait for the answer (`POST /invoke`), or start runs and follow them "
    "(`/runs`), and read or erase conversations (`/sessions`). The runs are the WebSocket API's "
    "runs: one started here can be resumed there with its `run_token`, and the other way round. "
    'Every error is `{"error": sentence, "code": word}`; the error codes, limits and '
    "conversations are described in `docs/protocol.md`, of which this is version "
    f"{PROTOCOL_VERSION}."
)
DEPLOYED: dict[str, Any] = {
    "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
    "description": "A deployed stack (its output HttpApiURL); every route but /health needs a bearer token.",
    "variables": {
        "apiId": {"default": "abcdef1234", "description": "The HTTP API's id."},
        "region": {"default": "us-east-1", "description": "The stack's region."},
    },
}
SERVERS: list[dict[str, Any]] = [DEPLOYED, {"url": "http://127.0.0.1:3001", "description": "`make serve`."}]
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT of the stack's issuer (always when deployed; locally with AUTH_MODE=jwt).",
    },
    "runToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Run-Token",
        "description": "Anonymous callers: the `run_token` of the run (from `POST /runs`, a `202`, or "
        "the WebSocket `accepted` frame).",
    },
    "sessionToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Session-Token",
        "description": "Anonymous callers: the `session_token` the session's first answer returned.",
    },
}
TAGS = [
    {"name": "Runs", "description": "Questions and their runs."},
    {"name": "Sessions", "description": "Conversations."},
    {"name": "Service", "description": "The service itself."},
]


class ErrorBody(BaseModel):
    """Every error the function answers."""

    error: str
    """A sentence safe to show a user (no stack traces, ARNs or account ids)."""
    code: str
    """Machine-readable: `bad_request`, `unauthorized`, `forbidden`, `unknown_run`, `rate_limited`…"""


class ApiGatewayError(BaseModel):
    """An answer API Gateway gives itself, before or instead of the function's."""

    message: str
    """``Unauthorized``, ``Internal Server Error``, ``Too Many Requests``, ``Not Found``…"""


class Health(BaseModel):
    """The service is up."""

    status: Literal["ok"]
    version: str
    """The backend's version."""
    model_provider: str
    """Where answers come from: ``bedrock``, ``local`` (offline), ``ollama``, ``openai``."""


class InvokeAnswer(BaseModel):
    """An answered question."""

    data: ResultData
    request_id: str
    session_id: str | None = None
    """The question's session, when it was asked in one."""
    session_token: str | None = None
    """Anonymous sessions: the token that owns the session; send it with the next question."""


class RunAccepted(BaseModel):
    """A run that started (or that is still running)."""

    request_id: str
    run_token: str
    """Lets whoever holds it read, resume or cancel the run; treat it like a password."""
    status: Literal["running"]
    session_id: str | None = None
    """The question's session, when it was asked in one."""
    session_token: str | None = None
    """Anonymous sessions: the token that owns the session; send it with the next question."""


class RunFailure(BaseModel):
    """Why a run failed: its ``error`` frame's code and sentence."""

    code: str
    error: str


class RunState(BaseModel):
    """A run's state."""

    request_id: str
    status: Literal["running", "succeeded", "failed", "cancelled"]
    frames: int
    """How many frames the run has logged."""
    result: ResultData | None = None
    """``succeeded`` and ``cancelled``: the ``result`` frame's data."""
    error: RunFailure | None = None
    """``failed``: the ``error`` frame's code and sentence."""


class RunCancelling(BaseModel):
    """The run is being stopped; it ends with a cancelled ``result``."""

    request_id: str
    status: Literal["cancelling"]


class SessionSummary(BaseModel):
    """One conversation in a listing."""

    session_id: str
    created_at: datetime
    last_used_at: datetime
    turns: int
    """Answered questions."""
    title: str
    """The first question, cut to 80 characters."""


class SessionPage(BaseModel):
    """A page of the caller's sessions, most recently used first."""

    sessions: list[SessionSummary]
    next: str | None
    """The ``cursor`` of the next page; ``null`` on the last."""


class SessionTurn(BaseModel):
    """One answered question of a conversation."""

    question: str
    answer: str
    agent: str
    sources: list[Source]
    created_at: datetime


class SessionTranscript(BaseModel):
    """A conversation, oldest turn first."""

    session_id: str
    created_at: datetime
    last_used_at: datetime
    turns: list[SessionTurn]


BODIES: tuple[type[BaseModel], ...] = (
    ApiGatewayError,
    ErrorBody,
    Health,
    InvokeAnswer,
    RunAccepted,
    RunCancelling,
    RunState,
    SessionPage,
    SessionTranscript,
)
"""The answers' models (the models they contain are found by themselves)."""


def openapi_document(servers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The OpenAPI document of the HTTP API.

    Args:
        servers: The document's ``servers`` (default :data:`SERVERS`).

    Returns:
        The document, as JSON-ready data.
    """
    # The handler's modules, imported only when a document is asked for.
    from aws_lambda_powertools.event_handler.openapi.models import Server, Tag

    from selador.http.app import http_api_app

    text = http_api_app().get_openapi_json_schema(
        title=TITLE,
        version=PROTOCOL_VERSION,
        description=DESCRIPTION,
        servers=[Server.model_validate(server) for server in SERVERS],
        security_schemes=SECURITY_SCHEMES,
        tags=[Tag.model_validate(tag) for tag in TAGS],
    )
    document: dict[str, Any] = json.loads(text)
    document["servers"] = servers if servers is not None else SERVERS
    document["paths"] = dict(sorted(document["paths"].items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(component_schemas(inbound=[QueryRequest], outbound=BODIES))
    # Powertools always adds the bodies of its request validation's 422 (HTTPValidationError…),
    # which is off here: keep only the schemas the document uses.
    used = _referenced(document["paths"], schemas)
    document["components"]["schemas"] = {name: schemas[name] for name in sorted(used)}
    return document


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """The names of the schemas ``paths`` refer to, directly or through other schemas."""
    prefix = "#/components/schemas/"
    found: set[str] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            name = ref.removeprefix(prefix) if isinstance(ref, str) and ref.startswith(prefix) else None
            if name is not None and name not in found:
                if name not in schemas:
                    raise ValueError(f"the document refers to {ref}, which no model defines (see BODIES)")
                found.add(name)
                pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def openapi_json() -> str:
    """``docs/openapi.json``: the document with two-space indents and a final newline."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
