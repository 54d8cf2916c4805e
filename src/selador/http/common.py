"""What every HTTP route shares: the error type, JSON answers, header lookup and authentication."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response

from selador.auth import AuthError, authenticate, authorizer_principal
from selador.observability import logger
from selador.settings import Settings


class HttpError(Exception):
    """A client-facing failure with its status, a safe message and optional headers."""

    def __init__(
        self, status: HTTPStatus, message: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers


def error_response(
    status: HTTPStatus, message: str, code: str, headers: dict[str, str] | None = None
) -> Response[str]:
    """A JSON error answer: ``{"error": message, "code": code}``."""
    return Response(
        status_code=status.value,
        content_type="application/json",
        body=json.dumps({"error": message, "code": code}),
        headers=headers,
    )


def json_response(
    status: int, body: Mapping[str, Any], headers: dict[str, str] | None = None
) -> Response[str]:
    """A JSON answer."""
    return Response(
        status_code=status, content_type="application/json", body=json.dumps(body), headers=headers
    )


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, whatever the case of its name (``name`` in lower case)."""
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def authenticate_caller(raw_event: Mapping[str, Any], settings: Settings) -> str | None:
    """The caller's principal; with ``AUTH_MODE=jwt`` a valid bearer token is required.

    The template's JWT authorizer already checked the token (in AWS, and in the local gateway with
    ``AUTH_MODE=jwt``); checking again here costs microseconds (keys are cached) and is what
    protects an API deployed without the authorizer.
    """
    try:
        principal = authenticate(raw_event, settings, allow_query=False)
    except AuthError as exc:
        challenge = "Bearer" if exc.status == HTTPStatus.UNAUTHORIZED else 'Bearer error="invalid_token"'
        code = {401: "unauthorized", 403: "forbidden"}.get(exc.status.value, "unavailable")
        raise HttpError(exc.status, exc.reason, code, {"WWW-Authenticate": challenge}) from None
    if principal is not None:
        logger.info("authenticated", extra={"principal": principal.subject})
        return principal.subject
    return authorizer_principal(raw_event)
