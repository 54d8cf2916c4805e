"""Keys, tokens and a JWKS endpoint for the security tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from selador.auth import jwks_client

SECRET = "local-test-secret-0123456789abcdef-0123456789"
ISSUER = "https://issuer.selador.test/pool"
AUDIENCE = "selador-client"


def hs256_token(claims: dict[str, Any] | None = None, *, secret: str = SECRET, **overrides: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 300, "iss": ISSUER, "aud": AUDIENCE}
    body.update(claims or {})
    body.update(overrides)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def unsigned_token(**claims: Any) -> str:
    """An ``alg: none`` token, built by hand because PyJWT refuses to verify it (the point)."""
    now = int(time.time())
    body = {"sub": "mallory", "iat": now, "exp": now + 300, "iss": ISSUER, "aud": AUDIENCE, **claims}
    return jwt.encode(body, None, algorithm="none")


@dataclass
class Jwks:
    """A JWKS served on 127.0.0.1 with one RSA key, and a signer for it."""

    url: str
    key: rsa.RSAPrivateKey
    kid: str = "test-key-1"
    fetches: list[float] = field(default_factory=list)

    def sign(self, claims: dict[str, Any] | None = None, *, kid: str | None = None, **overrides: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 300, "iss": ISSUER, "aud": AUDIENCE}
        body.update(claims or {})
        body.update(overrides)
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None},
            self.key,
            algorithm="RS256",
            headers={"kid": kid or self.kid},
        )


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "test-key-1", "use": "sig", "alg": "RS256"})
    document = json.dumps({"keys": [public]}).encode()
    fetches: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(time.time())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    jwks_client.cache_clear()
    try:
        yield Jwks(
            url=f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", key=key, fetches=fetches
        )
    finally:
        server.shutdown()
        server.server_close()
        jwks_client.cache_clear()


# ---------------------------------------------------------------------------- handler helpers


class RecordingClient:
    """A stand-in boto3 management client that records posts per connection."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict[str, Any]]] = {}

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        self.posts.setdefault(ConnectionId, []).append(json.loads(Data))

    def delete_connection(self, ConnectionId: str) -> None:
        self.posts.pop(ConnectionId, None)


class Context:
    function_name = "main-lambda"
    memory_limit_in_mb = "1024"
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:main-lambda"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@contextmanager
def recording_handler() -> Iterator[RecordingClient]:
    """Route the handler's posts into a :class:`RecordingClient` (settings read from the env now)."""
    from selador.deps import Dependencies, use_dependencies
    from selador.settings import get_settings
    from selador.websocket.management import ManagementApi

    client = RecordingClient()
    deps = Dependencies(settings=get_settings(), management_factory=lambda _endpoint: ManagementApi(client))
    with use_dependencies(deps):
        yield client


@pytest.fixture
def context() -> Context:
    return Context()
