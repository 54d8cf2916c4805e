"""moto-backed AWS for handler tests: DynamoDB and the API Gateway management API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import boto3
import jwt
import pytest
from moto import mock_aws
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.botocore_stubber import BotocoreStubber

from selador.handler import lambda_handler
from selador.local.events import connect_event, new_connection_id
from selador.store.dynamodb import DynamoDbStore

TABLE = "selador-connections-test"
REGION = "us-west-2"


class FakeContext:
    """A Lambda context with a real countdown."""

    function_name = "main-lambda"
    memory_limit_in_mb = "1024"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:main-lambda"
    aws_request_id = "req-1"

    def __init__(self, remaining_ms: int = 900_000) -> None:
        import time

        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Aws:
    """Handles on the mocked account."""

    dynamodb: Any
    store: DynamoDbStore

    def raw(self, connection_id: str) -> str:
        """Everything posted to a connection, as moto concatenated it."""
        backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION]
        conn = backend.connections.get(quote(connection_id, safe="")) or backend.connections.get(
            connection_id
        )
        if conn is None:
            return ""
        return conn.data.decode() if isinstance(conn.data, bytes) else str(conn.data)

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        """Every frame posted to a connection, split out of moto's concatenated bytes."""
        data = self.raw(connection_id)
        decoder, frames, index = json.JSONDecoder(), [], 0
        while index < len(data):
            frame, index = decoder.raw_decode(data, index)
            frames.append(frame)
        return frames


SECRET = "integration-secret-0123456789abcdef-0123456789"
ISSUER = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_TestPool"
AUDIENCE = "app-client-1"
JSON = {"content-type": "application/json"}


def token(**overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 300, "iss": ISSUER, "aud": AUDIENCE}
    claims.update(overrides)
    key = claims.pop("_secret", SECRET)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")


def invoke_body(request_id: str, **fields: str) -> str:
    return json.dumps(
        {"action": "invoke", "question": "What is the FAR in LR2?", "request_id": request_id, **fields}
    )


@pytest.fixture
def jwt_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_HS256_SECRET", SECRET)
    monkeypatch.setenv("AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("AUTH_AUDIENCE", AUDIENCE)


def connect(context, **token_claims: Any) -> str:
    conn = new_connection_id()
    response = lambda_handler(
        connect_event(connection_id=conn, query={"token": token(**token_claims)}), context
    )
    assert response["statusCode"] == 200, response
    return conn


_MOTO_LOCK = threading.RLock()


def _linearized_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve one mocked AWS request at a time, as the real services apply each one atomically.

    moto is not thread-safe: ``TransactWriteItems`` deep-copies the table while another thread's
    ``PutItem`` (a run's frame log, written by its sender thread) changes it, and fails with
    "dictionary changed size during iteration". Real DynamoDB has no such failure, so the tests
    serialise requests (never what happens between them).
    """
    original = BotocoreStubber.__call__

    def locked(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        with _MOTO_LOCK:
            return original(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", locked)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    _linearized_moto(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        store = DynamoDbStore(client, TABLE)
        store.create_table_if_missing()
        monkeypatch.setenv("CONNECTIONS_TABLE", TABLE)
        yield Aws(dynamodb=client, store=store)


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def short_context() -> FakeContext:
    """A context with under a second left: nothing can finish before the deadline."""
    return FakeContext(remaining_ms=900)
