"""What the OpenAPI document (``docs/openapi.json``) says about each HTTP route.

Each route's decorator takes its entry of :data:`ROUTE_DOCS` (summary, description, security,
answers), and Powertools' resolver turns the routes into the OpenAPI 3.1 document when ``make
docs`` asks it to (:mod:`selador.local.apidocs`); no route ever does at run time. Everything here
is plain data, so defining it costs a cold start next to nothing:

* Bodies are named by ``$ref`` only. Their JSON Schemas are generated from pydantic models by the
  document generator, outside the Lambda artifact (``QueryRequest`` and ``ResultData`` from
  :mod:`selador.protocol`, the rest from the generator's models of these answers); a test checks
  every real answer of the local gateway against them.
* The request body and header parameters are given as they appear in the document
  (``openapi_extensions``), because Powertools only reads a request model from a parameter
  it validates, and its validation would answer a bad body with its own 422 instead of the
  protocol's ``400 {"error", "code"}``.
"""

from __future__ import annotations

from typing import Any

_SCHEMAS = "#/components/schemas/"


def _json(schema: str, *alternatives: str) -> dict[str, Any]:
    refs = [{"$ref": _SCHEMAS + name} for name in (schema, *alternatives)]
    return {"application/json": {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}}}


def _answer(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": _json(schema)}
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str, headers: dict[str, Any] | None = None, gateway: bool = False) -> dict[str, Any]:
    # gateway: API Gateway may answer this status itself, with {"message": …} instead.
    answer: dict[str, Any] = {
        "description": description,
        "content": _json("ErrorBody", "ApiGatewayError") if gateway else _json("ErrorBody"),
    }
    if headers:
        answer["headers"] = headers
    return answer


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


_RUN_CALLER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"runToken": []}]
_SESSION_CALLER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionToken": []}]
_ASKER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {}]
"""Deployed, API Gateway's authorizer requires the bearer token; locally without ``AUTH_MODE=jwt``
anyone may ask."""

_QUESTION = {
    "required": True,
    "description": "The `invoke` message of the WebSocket API without `action`.",
    "content": _json("QueryRequest"),
}
_SESSION_TOKEN = {
    "name": "X-Session-Token",
    "in": "header",
    "required": False,
    "description": "Anonymous sessions: the `session_token` an earlier answer returned (the body's "
    "`session_token` wins).",
    "schema": {"type": "string"},
}
_LOCATION = {"Location": _header("`/runs/{request_id}`, URL-encoded: where to poll the run.")}

_401 = _error(
    "No bearer token (`unauthorized`, with `WWW-Authenticate: Bearer`); API Gateway's JWT "
    'authorizer answers `{"message": "Unauthorized"}` before the function runs.',
    {"WWW-Authenticate": _header('`Bearer`, or `Bearer error="invalid_token"`.')},
    gateway=True,
)
_403 = _error("An invalid token (`forbidden`): bad signature, expired, wrong issuer or audience.")
_500 = _error('An unexpected failure (`internal_error`, or API Gateway\'s `{"message": …}`).', gateway=True)
_503_AUTH = _error("The issuer's signing keys could not be fetched (`unavailable`); retry later.")
_429 = _error(
    "A per-user limit (`rate_limited`; the message names it) or API Gateway's throttling.",
    {"Retry-After": _header("Seconds to wait.", {"type": "integer"})},
    gateway=True,
)
_START_ERRORS: dict[int, dict[str, Any]] = {
    400: _error("An invalid body or field (`bad_request`): the message names the field and the rule."),
    401: _401,
    403: _403,
    409: _error(
        "This user's `request_id` is already running (`duplicate_request`), or another question of "
        "the session is (`session_busy`)."
    ),
    413: _error("The body is over 131072 bytes (`bad_request`)."),
    415: _error("`Content-Type` is missing or not `application/json` (`bad_request`)."),
    429: _429,
    500: _500,
    503: _error(
        "The run could not be handed off (`internal_error`), the model service is busy "
        "(`throttled`), or the signing keys could not be fetched (`unavailable`)."
    ),
}
_RUN_ERRORS: dict[int, dict[str, Any]] = {
    401: _401,
    403: _403,
    404: _error(
        "No run you may act on (`unknown_run`): missing, expired, someone else's, or without its "
        "`X-Run-Token`."
    ),
    500: _500,
    503: _503_AUTH,
}
_SESSION_ERRORS: dict[int, dict[str, Any]] = {
    401: _error(
        "Neither a bearer token nor `X-Session-Token` (`unauthorized`); API Gateway's authorizer "
        'answers `{"message": "Unauthorized"}`.',
        gateway=True,
    ),
    403: _403,
    500: _500,
    503: _503_AUTH,
}
_UNKNOWN_SESSION = _error(
    "No such session of yours (`unknown_session`): missing, expired or another caller's."
)

ROUTE_DOCS: dict[str, dict[str, Any]] = {
    "POST /invoke": {
        "operation_id": "invoke",
        "summary": "Ask a question and wait for the answer",
        "description": "Runs the question as a run and waits for its end. A run that cannot end "
        "inside API Gateway's 30 seconds goes on: the answer is then `202` with the run's token, "
        "and `GET /runs/{request_id}` (or `resume` over WebSocket) reads it.",
        "tags": ["Runs"],
        "security": _ASKER,
        "openapi_extensions": {"requestBody": _QUESTION, "parameters": [_SESSION_TOKEN]},
        "responses": {
            200: _answer("The `result` frame's data.", "InvokeAnswer"),
            202: _answer("Still running: poll it.", "RunAccepted", _LOCATION),
            **_START_ERRORS,
            422: _error("The question and its material exceed the model's context (`too_long`)."),
            502: _error("The model or the knowledge base failed (`model_error`, `knowledge_base_error`)."),
            504: _error(
                "The run hit the Lambda deadline, or the request expired before it started (`timeout`)."
            ),
        },
    },
    "POST /runs": {
        "operation_id": "startRun",
        "summary": "Start a run and answer at once",
        "description": "The same run as `POST /invoke` or the WebSocket `invoke`; follow it with "
        "`GET /runs/{request_id}`, or over WebSocket with `resume` and the `run_token`.",
        "tags": ["Runs"],
        "security": _ASKER,
        "openapi_extensions": {"requestBody": _QUESTION, "parameters": [_SESSION_TOKEN]},
        "responses": {202: _answer("The run started.", "RunAccepted", _LOCATION), **_START_ERRORS},
    },
    "GET /runs/{request_id}": {
        "operation_id": "getRun",
        "summary": "Read a run's state",
        "description": "`running` until the run ends, then `succeeded` or `cancelled` (with the "
        "`result`) or `failed` (with the `error`).",
        "tags": ["Runs"],
        "security": _RUN_CALLER,
        "responses": {200: _answer("The run's state.", "RunState"), **_RUN_ERRORS},
    },
    "DELETE /runs/{request_id}": {
        "operation_id": "cancelRun",
        "summary": "Cancel a run",
        "description": "Stops the run wherever it runs; it ends with a `result` whose `stop_reason` "
        "is `cancelled`.",
        "tags": ["Runs"],
        "security": _RUN_CALLER,
        "responses": {
            202: _answer("Cancelling.", "RunCancelling"),
            **_RUN_ERRORS,
            409: _error("The run has already ended (`not_running`)."),
        },
    },
    "GET /sessions": {
        "operation_id": "listSessions",
        "summary": "List your conversations",
        "description": "Most recently used first, a page at a time.",
        "tags": ["Sessions"],
        "security": _SESSION_CALLER,
        "openapi_extensions": {
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "Sessions per page.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "description": "The previous page's `next`.",
                    "schema": {"type": "string"},
                },
            ]
        },
        "responses": {
            200: _answer("A page of sessions.", "SessionPage"),
            400: _error("A malformed `limit` or `cursor` (`bad_request`)."),
            **_SESSION_ERRORS,
        },
    },
    "GET /sessions/{session_id}": {
        "operation_id": "getSession",
        "summary": "Read a conversation",
        "description": "Every answered question of the session, oldest first.",
        "tags": ["Sessions"],
        "security": _SESSION_CALLER,
        "responses": {
            200: _answer("The session's turns.", "SessionTranscript"),
            **_SESSION_ERRORS,
            404: _UNKNOWN_SESSION,
        },
    },
    "DELETE /sessions/{session_id}": {
        "operation_id": "deleteSession",
        "summary": "Erase a conversation",
        "description": "The session and every message stored of it.",
        "tags": ["Sessions"],
        "security": _SESSION_CALLER,
        "responses": {
            # "content": {} or Powertools describes the function's return annotation (a string) as the body.
            204: {"description": "Erased.", "content": {}},
            **_SESSION_ERRORS,
            404: _UNKNOWN_SESSION,
            409: _error("A question is running in the session (`session_busy`)."),
        },
    },
    "GET /health": {
        "operation_id": "health",
        "summary": "Liveness",
        "description": "Answers without touching the model, the store or the knowledge base.",
        "tags": ["Service"],
        "responses": {200: _answer("Up.", "Health")},
    },
}
"""Each route's OpenAPI fields, by ``METHOD /path`` (the path as the document writes it)."""

__all__ = ["ROUTE_DOCS"]
