"""Authentication: bearer JWTs on ``$connect`` and ``POST /invoke`` when ``AUTH_MODE=jwt``.

A token is read from the ``token`` query parameter (browsers cannot set headers on
``new WebSocket()``) or an ``Authorization: Bearer`` header, and verified with PyJWT: signature,
``exp``, ``iss`` and ``aud`` (or ``client_id``, as Cognito access tokens carry it) against a JWKS
URL (a Cognito user pool or any OIDC issuer), or, for local use, against an HS256 secret.

This module imports only the standard library at import time; PyJWT (and with it ``cryptography``)
is imported on the first verification, so ``$connect`` with ``AUTH_MODE=none`` never loads it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from selador.settings import Settings

if TYPE_CHECKING:
    from jwt import PyJWKClient

JWKS_TIMEOUT_S = 3.0
"""Seconds to fetch the JWKS: the handshake waits for it, and API Gateway gives $connect 29 s."""
JWKS_LIFESPAN_S = 600
"""How long a fetched key set is reused by a container before it is fetched again."""
LEEWAY_S = 30
"""Clock skew tolerated on ``exp``, ``nbf`` and ``iat`` between the issuer and Lambda."""
MAX_TOKEN_CHARS = 8192
"""Longer tokens are refused unparsed (Cognito's are about 1 KiB)."""
MAX_SUBJECT_CHARS = 256
"""A ``sub`` longer than this is refused: it becomes part of store keys."""
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
"""What a JWKS-verified token may be signed with. Never ``HS*`` (a public key used as an HMAC
secret is the classic algorithm-confusion attack) and never ``none``."""


class AuthError(Exception):
    """A refused credential, with the status to answer and a message safe to show the client.

    Attributes:
        status: 401 when no credential was sent, 403 when one was sent and refused, 503 when the
            key set could not be fetched.
        reason: Why, without the token.
    """

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        subject: The token's ``sub`` claim: stored with the connection, logged, and the key of the
            daily budget.
        issuer: The token's ``iss`` claim, when present.
        claims: Every verified claim.
    """

    subject: str
    issuer: str | None = None
    claims: Mapping[str, Any] | None = None


# ---------------------------------------------------------------------------------- extraction


def _header(headers: object, name: str) -> str | None:
    """A header's value, case-insensitively (API Gateway keeps the client's case on WebSocket)."""
    if not isinstance(headers, Mapping):
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
            return value
    return None


def bearer_token(headers: object) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header.

    Args:
        headers: The event's ``headers`` (any case).

    Returns:
        The token, or ``None`` when there is no such header. A header with another scheme
        (``Basic …``) or no token yields ``""`` so the caller refuses it as malformed.
    """
    value = _header(headers, "authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def query_token(event: Mapping[str, Any]) -> str | None:
    """The ``token`` query-string parameter of an event, when present."""
    params = event.get("queryStringParameters")
    if isinstance(params, Mapping):
        value = params.get("token")
        if isinstance(value, str):
            return value
    return None


def extract_token(event: Mapping[str, Any], *, allow_query: bool) -> str | None:
    """The credential an event carries: the ``Authorization`` header first, then ``?token=``.

    Args:
        event: A WebSocket ``$connect`` or HTTP proxy event.
        allow_query: Whether ``?token=`` counts (WebSocket only: a query string ends up in proxy
            and access logs, so the HTTP API takes the header alone).

    Returns:
        The token (possibly ``""`` for a malformed header), or ``None`` when none was sent.
    """
    token = bearer_token(event.get("headers"))
    if token is None and allow_query:
        token = query_token(event)
    return token


# -------------------------------------------------------------------------------- verification


@functools.cache
def jwks_client(url: str) -> PyJWKClient:
    """The container's JWKS client for ``url``: the key set is fetched once and cached.

    Args:
        url: The JWKS URL.

    Returns:
        A PyJWT ``PyJWKClient`` with a short timeout and key caching.
    """
    from jwt import PyJWKClient

    return PyJWKClient(
        url, cache_jwk_set=True, lifespan=JWKS_LIFESPAN_S, cache_keys=True, timeout=JWKS_TIMEOUT_S
    )


def verify_token(token: str, settings: Settings) -> Principal:
    """Verify a JWT against the configured JWKS or HS256 secret.

    Args:
        token: The compact JWT.
        settings: Container settings (``AUTH_*``).

    Returns:
        The principal the token names.

    Raises:
        AuthError: 403 for any invalid token (bad signature, wrong algorithm, expired, wrong
            issuer or audience, no ``sub``), 503 when the JWKS cannot be fetched.
    """
    import jwt

    if not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthError(HTTPStatus.FORBIDDEN, "malformed token")
    key: Any
    if settings.auth_jwks_url:
        try:
            signing_key = jwks_client(settings.auth_jwks_url).get_signing_key_from_jwt(token)
            key = signing_key.key
        except jwt.PyJWKClientConnectionError:
            raise AuthError(HTTPStatus.SERVICE_UNAVAILABLE, "signing keys unavailable") from None
        except jwt.PyJWKClientError as exc:
            # PyJWT raises this one class for a kid the key set lacks (the token's fault) and for
            # a key set that is not one (the issuer's, like an unreachable one); only its wording
            # tells them apart.
            if "signing key that matches" in str(exc):
                raise AuthError(HTTPStatus.FORBIDDEN, f"invalid token: {_describe(exc)}") from None
            raise AuthError(HTTPStatus.SERVICE_UNAVAILABLE, "signing keys unavailable") from None
        except jwt.InvalidTokenError as exc:
            # A header that cannot be read: the token's fault.
            raise AuthError(HTTPStatus.FORBIDDEN, f"invalid token: {_describe(exc)}") from None
        except (jwt.PyJWKSetError, ValueError, KeyError, TypeError):
            # The issuer answered, but not with a usable key set (HTML, {}, "keys": null, keys
            # of an unknown type): the issuer's fault, like an unreachable one, never a 500.
            raise AuthError(HTTPStatus.SERVICE_UNAVAILABLE, "signing keys unavailable") from None
        # Only the key's own algorithm: an ES256 token naming an RSA key's kid is invalid, not a
        # TypeError inside PyJWT (which would surface as a 500).
        key_algorithm = getattr(signing_key, "algorithm_name", None)
        algorithms: list[str] = (
            [key_algorithm] if key_algorithm in ASYMMETRIC_ALGORITHMS else list(ASYMMETRIC_ALGORITHMS)
        )
    else:
        key = settings.auth_hs256_secret.get_secret_value()
        algorithms = ["HS256"]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=settings.auth_issuer or None,
            leeway=LEEWAY_S,
            # The audience is checked below: Cognito access tokens carry client_id instead of aud.
            options={"require": ["exp", "sub"], "verify_aud": False},
        )
    except jwt.InvalidTokenError as exc:
        raise AuthError(HTTPStatus.FORBIDDEN, f"invalid token: {_describe(exc)}") from None
    except (TypeError, ValueError):
        # A key that does not fit the token's algorithm: the token's fault, never a 500.
        raise AuthError(HTTPStatus.FORBIDDEN, "invalid token: signature key does not match") from None
    _check_audience(claims, settings.auth_audience)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise AuthError(HTTPStatus.FORBIDDEN, "invalid token: sub must be a non-empty string")
    issuer = claims.get("iss")
    return Principal(subject=subject, issuer=issuer if isinstance(issuer, str) else None, claims=claims)


def _check_audience(claims: Mapping[str, Any], audience: str) -> None:
    """``aud`` must include ``audience``; without ``aud``, ``client_id`` must equal it.

    The same rule as API Gateway's JWT authorizer, so both layers accept the same tokens.
    """
    if not audience:
        return
    if "aud" in claims:
        aud = claims["aud"]
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience in values:
            return
        raise AuthError(HTTPStatus.FORBIDDEN, "invalid token: wrong audience")
    if claims.get("client_id") == audience:
        return
    raise AuthError(HTTPStatus.FORBIDDEN, "invalid token: wrong audience")


def _describe(exc: Exception) -> str:
    """PyJWT's message, which names the failed check and never echoes the token."""
    text = str(exc) or type(exc).__name__
    return text[:120]


def authenticate(event: Mapping[str, Any], settings: Settings, *, allow_query: bool) -> Principal | None:
    """Authenticate an event when ``AUTH_MODE=jwt``.

    Args:
        event: A ``$connect`` or HTTP proxy event.
        settings: Container settings.
        allow_query: Whether ``?token=`` is accepted (WebSocket ``$connect`` only).

    Returns:
        The principal, or ``None`` when authentication is off.

    Raises:
        AuthError: 401 without a credential, 403 for an invalid one, 503 when keys are unavailable.
    """
    if settings.auth_mode != "jwt":
        return None
    token = extract_token(event, allow_query=allow_query)
    if token is None:
        where = (
            "a token query parameter or an Authorization: Bearer header"
            if allow_query
            else ("an Authorization: Bearer header")
        )
        raise AuthError(HTTPStatus.UNAUTHORIZED, f"authentication required: send {where}")
    return verify_token(token, settings)


def authorizer_principal(event: Mapping[str, Any]) -> str | None:
    """The principal an API Gateway authorizer attached to the event, if any.

    A Lambda REQUEST authorizer's ``principalId`` (WebSocket and REST), a JWT authorizer's
    ``sub`` claim (HTTP API, ``authorizer.jwt.claims``) or a Cognito user-pool authorizer's
    (REST, ``authorizer.claims``) appears in ``requestContext.authorizer``.
    """
    ctx = event.get("requestContext")
    authorizer = ctx.get("authorizer") if isinstance(ctx, Mapping) else None
    if not isinstance(authorizer, Mapping):
        return None
    principal = authorizer.get("principalId")
    if isinstance(principal, str) and principal:
        return principal
    jwt_context = authorizer.get("jwt")
    claims = jwt_context.get("claims") if isinstance(jwt_context, Mapping) else authorizer.get("claims")
    sub = claims.get("sub") if isinstance(claims, Mapping) else None
    return sub if isinstance(sub, str) and sub else None
