"""Log hygiene: credentials never reach a log line, at any level.

:class:`RedactingFormatter` is the formatter of the one Powertools logger
(:mod:`selador.observability`). It rewrites the structured record just before it is serialised, so
it covers the message, ``extra`` fields, appended keys, exception text and stack traces alike:

* values under credential-named keys (``authorization``, ``token``, ``cookie``, ``*secret*``…),
  however deeply nested, e.g. an event's ``headers`` or ``queryStringParameters``;
* anything shaped like a JWT (``eyJ….….…``) anywhere in any string;
* ``token=…`` (and ``access_token``, ``id_token``) in query strings and URLs;
* the credential after ``Bearer`` in free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|token|access_token|id_token|"
    r"refresh_token|password|.*secret.*|sec-websocket-protocol)$",
    re.IGNORECASE,
)
"""Keys whose values are credentials whatever they look like. ``Sec-WebSocket-Protocol`` is there
because some clients smuggle a token through it, the one header a browser WebSocket may set."""

# A JWS compact serialisation: base64url header starting with '{"' (eyJ), payload, signature
# (empty for alg none). Eight characters of header at least, so "eyJ" in prose survives.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_QUERY_TOKEN = re.compile(r"(?i)\b((?:access_|id_|refresh_)?token=)[^&\s\"'#]*")
# RFC 6750 b64token after "Bearer"; eight characters at least so prose ("bearer of") survives.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_MAX_DEPTH = 20


def redact_text(text: str) -> str:
    """Mask credentials inside free text.

    Args:
        text: Any string (a message, a URL, a traceback).

    Returns:
        The text with JWTs, ``token=`` values and ``Bearer`` credentials masked.
    """
    if not text:
        return text
    text = _JWT.sub(REDACTED, text)
    text = _QUERY_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)


def redact(value: Any, _depth: int = 0) -> Any:
    """Mask credentials in a structure of dicts, lists and strings (a copy; the input is untouched).

    Args:
        value: A log record's structured form, or any part of it.

    Returns:
        The same shape with credential values replaced by ``[REDACTED]``.
    """
    if _depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and _SENSITIVE_KEY.match(key) and value[key] not in (None, "")
            else redact(item, _depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, _depth + 1) for item in value]
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter that redacts the structured record before serialising it."""

    def serialize(self, log: Any) -> str:
        """Redact, then serialise with Powertools' serializer.

        Args:
            log: The structured record Powertools built.

        Returns:
            The JSON log line.
        """
        # Values Powertools would stringify with json_default (exceptions, objects) are stringified
        # first, so their text is redacted too.
        return super().serialize(redact(_stringify_unknown(log)))


def _stringify_unknown(value: Any, _depth: int = 0) -> Any:
    if _depth > _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {key: _stringify_unknown(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_stringify_unknown(item, _depth + 1) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
