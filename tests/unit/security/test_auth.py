"""selador.auth: token extraction and verification (HS256 and a JWKS served on loopback)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from selador.auth import AuthError, authenticate, authorizer_principal, extract_token, verify_token
from selador.local.events import connect_event, http_v2_event
from selador.settings import Settings, SettingsError, load_settings

from .conftest import AUDIENCE, ISSUER, SECRET, Jwks, hs256_token, unsigned_token


def hs_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "auth_mode": "jwt",
        "auth_hs256_secret": SECRET,
        "auth_issuer": ISSUER,
        "auth_audience": AUDIENCE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def jwks_settings(jwks: Jwks, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "auth_mode": "jwt",
        "auth_jwks_url": jwks.url,
        "auth_issuer": ISSUER,
        "auth_audience": AUDIENCE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def refused(token: str, settings: Settings) -> AuthError:
    with pytest.raises(AuthError) as info:
        verify_token(token, settings)
    return info.value


# ---------------------------------------------------------------------------------- extraction


def test_token_from_the_query_string_on_websocket_only() -> None:
    event = connect_event(query={"token": "abc.def.ghi"})
    assert extract_token(event, allow_query=True) == "abc.def.ghi"
    assert extract_token(event, allow_query=False) is None


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_token_from_the_authorization_header_in_any_case(name: str, scheme: str) -> None:
    event = connect_event(headers={name: f"{scheme} abc.def.ghi"})
    assert extract_token(event, allow_query=False) == "abc.def.ghi"


def test_header_wins_over_query_and_other_schemes_are_malformed() -> None:
    both = connect_event(headers={"Authorization": "Bearer from-header"}, query={"token": "from-query"})
    assert extract_token(both, allow_query=True) == "from-header"
    basic = connect_event(headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert extract_token(basic, allow_query=True) == ""
    assert extract_token(connect_event(), allow_query=True) is None


def test_authenticate_statuses() -> None:
    settings = hs_settings()
    with pytest.raises(AuthError) as missing:
        authenticate(connect_event(), settings, allow_query=True)
    assert missing.value.status == 401
    with pytest.raises(AuthError) as malformed:
        authenticate(connect_event(headers={"Authorization": "Basic x"}), settings, allow_query=True)
    assert malformed.value.status == 403
    principal = authenticate(connect_event(query={"token": hs256_token()}), settings, allow_query=True)
    assert principal is not None and principal.subject == "alice" and principal.issuer == ISSUER


def test_authentication_off_returns_no_principal_whatever_is_sent() -> None:
    settings = Settings()
    assert settings.auth_mode == "none"
    assert authenticate(connect_event(query={"token": "garbage"}), settings, allow_query=True) is None


def test_authorizer_principal() -> None:
    event = connect_event()
    assert authorizer_principal(event) is None
    event["requestContext"]["authorizer"] = {"principalId": "user-7"}
    assert authorizer_principal(event) == "user-7"
    http = http_v2_event("POST", "/invoke")
    http["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": "user-8"}, "scopes": None}}
    assert authorizer_principal(http) == "user-8"


# ------------------------------------------------------------------------------------- HS256


def test_valid_hs256_token() -> None:
    principal = verify_token(hs256_token(sub="bob"), hs_settings())
    assert principal.subject == "bob"
    assert principal.claims is not None and principal.claims["aud"] == AUDIENCE


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (hs256_token(exp=int(time.time()) - 3600), "expired"),
        (hs256_token(aud="someone-else"), "audience"),
        (hs256_token(iss="https://evil.example"), "issuer"),
        (hs256_token(secret="another-secret-of-sufficient-length-0123456789"), "signature"),
        (unsigned_token(), "alg none"),
        (hs256_token(sub=None), "no sub"),
        (hs256_token(exp=None), "no exp"),
        (hs256_token(iss=None), "no iss"),
        (hs256_token(sub="x" * 300), "sub too long"),
        ("not-a-jwt", "garbage"),
        ("", "empty"),
        ("eyJ" + "a" * 9000, "oversized"),
    ],
)
def test_invalid_hs256_tokens_are_refused_with_403(token: str, why: str) -> None:
    error = refused(token, hs_settings())
    assert error.status == 403, why
    assert token[:40] not in error.reason or not token


def test_tampered_payload_fails_the_signature() -> None:
    header, _, signature = hs256_token().split(".")
    forged_payload = jwt.utils.base64url_encode(
        b'{"sub":"admin","exp":9999999999,"iss":"'
        + ISSUER.encode()
        + b'","aud":"'
        + AUDIENCE.encode()
        + b'"}'
    ).decode()
    assert refused(f"{header}.{forged_payload}.{signature}", hs_settings()).status == 403


def test_audience_list_and_cognito_client_id() -> None:
    settings = hs_settings()
    assert verify_token(hs256_token(aud=["other", AUDIENCE]), settings).subject == "alice"
    # Cognito access tokens carry client_id and no aud.
    assert verify_token(hs256_token(aud=None, client_id=AUDIENCE), settings).subject == "alice"
    assert refused(hs256_token(aud=None, client_id="other-client"), settings).status == 403
    assert refused(hs256_token(aud=None), settings).status == 403


def test_small_clock_skew_is_tolerated() -> None:
    assert verify_token(hs256_token(exp=int(time.time()) - 5), hs_settings()).subject == "alice"


# -------------------------------------------------------------------------------------- JWKS


def test_valid_rs256_token_from_the_jwks(jwks: Jwks) -> None:
    settings = jwks_settings(jwks)
    assert verify_token(jwks.sign(sub="carol"), settings).subject == "carol"
    assert verify_token(jwks.sign(sub="dave"), settings).subject == "dave"
    assert len(jwks.fetches) == 1, "the key set is cached per container"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "another-app"}, "audience"),
        ({"iss": "https://cognito-idp.us-east-1.amazonaws.com/someone-else"}, "issuer"),
    ],
)
def test_invalid_rs256_claims(jwks: Jwks, claims: dict, why: str) -> None:
    assert refused(jwks.sign(claims), jwks_settings(jwks)).status == 403, why


def test_rs256_signed_by_another_key_or_unknown_kid(jwks: Jwks) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = Jwks(url=jwks.url, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert refused(other.sign(), jwks_settings(jwks)).status == 403  # same kid, wrong key
    assert refused(jwks.sign(kid="unknown-kid"), jwks_settings(jwks)).status == 403


def test_alg_none_and_hs256_confusion_are_refused_with_a_jwks(jwks: Jwks) -> None:
    settings = jwks_settings(jwks)
    assert refused(unsigned_token(), settings).status == 403
    # The classic confusion: an HS256 token whose "secret" is the issuer's public key.
    pem = jwks.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"sub": "mallory", "exp": now + 300, "iss": ISSUER, "aud": AUDIENCE}
    import hashlib
    import hmac
    import json

    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": jwks.kid}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    signature = jwt.utils.base64url_encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest())
    forged = (header + b"." + payload + b"." + signature).decode()
    assert refused(forged, settings).status == 403


def test_unreachable_jwks_is_503_not_a_pass(jwks: Jwks) -> None:
    settings = jwks_settings(jwks, auth_jwks_url="http://127.0.0.1:9/.well-known/jwks.json")
    from selador.auth import jwks_client

    jwks_client.cache_clear()
    assert refused(jwks.sign(), settings).status == 503


@pytest.mark.parametrize(
    "answer",
    [b"<html>sign in</html>", b"{}", b'{"keys": null}', b'{"keys": [{"kty": "nope"}]}', b"[1, 2]"],
)
def test_a_jwks_that_answers_nonsense_is_503_not_a_crash(jwks: Jwks, answer: bytes) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from selador.auth import jwks_client

        jwks_client.cache_clear()
        settings = jwks_settings(jwks, auth_jwks_url=f"http://127.0.0.1:{server.server_port}/jwks.json")
        failure = refused(jwks.sign(), settings)
        assert (failure.status, failure.reason) == (503, "signing keys unavailable")
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTH_MODE": "jwt"}, "AUTH_MODE=jwt needs AUTH_JWKS_URL or AUTH_HS256_SECRET"),
        ({"AUTH_MODE": "jwt", "AUTH_JWKS_URL": "https://x/jwks.json"}, "needs AUTH_ISSUER and AUTH_AUDIENCE"),
        ({"AUTH_MODE": "jwt", "AUTH_HS256_SECRET": "short"}, "at least 32 bytes"),
        (
            {
                "AUTH_MODE": "jwt",
                "AUTH_JWKS_URL": "http://idp.example/jwks",
                "AUTH_ISSUER": "i",
                "AUTH_AUDIENCE": "a",
            },
            "must be https://",
        ),
        ({"AUTH_MODE": "oauth"}, "AUTH_MODE"),
    ],
)
def test_bad_auth_configuration_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict, message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message) as info:
        load_settings()
    assert "short" not in str(info.value) or "AUTH_HS256_SECRET" not in env


def test_the_secret_never_shows_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_HS256_SECRET", SECRET)
    settings = load_settings()
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


# -------------------------------------------------------------------------------- cold start


@pytest.mark.parametrize(("mode", "jwt_loaded"), [("none", False), ("jwt", True)])
def test_connect_imports_jwt_only_when_authenticating(tmp_path, mode: str, jwt_loaded: bool) -> None:
    token = hs256_token(iss=None, aud=None)
    script = f"""
import json, sys, os
os.environ.update(AUTH_MODE={mode!r}, AUTH_HS256_SECRET={SECRET!r}, SQLITE_PATH={str(tmp_path / "s.db")!r},
                  LOG_LEVEL="ERROR")
from selador.handler import lambda_handler
from selador.local.events import connect_event
from selador.local.runtime import LambdaContext
context = LambdaContext("f", "$LATEST", "arn:aws:lambda:us-west-2:1:function:f", "1024", "r-1", "g", "s", 9e9)
response = lambda_handler(connect_event(query={{"token": {token!r}}}), context)
print(json.dumps({{"status": response["statusCode"], "jwt": "jwt" in sys.modules,
                  "strands": "strands" in sys.modules}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"status": 200, "jwt": jwt_loaded, "strands": False}


def test_es256_token_naming_the_rsa_kid_is_403_not_a_crash(jwks: Jwks) -> None:
    """Found in review: PyJWT raised TypeError (a 500) when the key did not fit the algorithm."""
    from cryptography.hazmat.primitives.asymmetric import ec

    now = int(time.time())
    claims = {"sub": "mallory", "exp": now + 300, "iss": ISSUER, "aud": AUDIENCE}
    token = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": jwks.kid}
    )
    assert refused(token, jwks_settings(jwks)).status == 403
