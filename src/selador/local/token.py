"""``selador token``: print a test JWT signed with ``AUTH_HS256_SECRET``.

For local use with ``AUTH_MODE=jwt``: the token carries ``sub``, ``iat``, ``exp`` and, when
``AUTH_ISSUER`` / ``AUTH_AUDIENCE`` are set, ``iss`` / ``aud``, so the handler accepts it::

    export AUTH_HS256_SECRET=$(python -c 'import secrets; print(secrets.token_hex(32))')
    TOKEN=$(selador token --sub alice --ttl 600)
    wscat -c "ws://127.0.0.1:3001/production?token=$TOKEN"
"""

from __future__ import annotations

import argparse
import sys
import time

from selador.settings import SettingsError, load_settings

DEFAULT_TTL_S = 3600
MAX_TTL_S = 7 * 24 * 3600


def build_parser() -> argparse.ArgumentParser:
    """The ``selador token`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="selador token",
        description="Print a test JWT (HS256) signed with AUTH_HS256_SECRET; "
        "iss and aud come from AUTH_ISSUER and AUTH_AUDIENCE when set.",
    )
    parser.add_argument("--sub", default="local-user", help="subject (the principal), default local-user")
    parser.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL_S, help=f"seconds until expiry, default {DEFAULT_TTL_S}"
    )
    return parser


def make_token(secret: str, *, sub: str, ttl: int, issuer: str = "", audience: str = "") -> str:
    """Sign a test token.

    Args:
        secret: The HS256 secret.
        sub: Subject.
        ttl: Seconds until ``exp``.
        issuer: ``iss`` claim, omitted when empty.
        audience: ``aud`` claim, omitted when empty.

    Returns:
        The compact JWT.
    """
    import jwt

    now = int(time.time())
    claims: dict[str, object] = {"sub": sub, "iat": now, "exp": now + ttl}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``selador token``.

    Args:
        argv: Arguments after ``token``.

    Returns:
        0 with the token on stdout; 2 on a usage or configuration error.
    """
    args = build_parser().parse_args(argv)
    if not args.sub or len(args.sub) > 256:
        print("selador token: --sub must be 1 to 256 characters", file=sys.stderr)
        return 2
    if not 1 <= args.ttl <= MAX_TTL_S:
        print(f"selador token: --ttl must be 1 to {MAX_TTL_S} seconds", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"selador token: {exc}", file=sys.stderr)
        return 2
    secret = settings.auth_hs256_secret.get_secret_value()
    if not secret:
        print(
            "selador token: AUTH_HS256_SECRET is not set "
            "(e.g. export AUTH_HS256_SECRET=$(python -c 'import secrets; print(secrets.token_hex(32))'))",
            file=sys.stderr,
        )
        return 2
    print(
        make_token(
            secret, sub=args.sub, ttl=args.ttl, issuer=settings.auth_issuer, audience=settings.auth_audience
        )
    )
    return 0
