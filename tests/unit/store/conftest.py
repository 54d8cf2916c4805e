"""Fixtures shared by the store tests: a fake clock and moto-backed DynamoDB clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

REGION = "us-west-2"
T0 = 1_700_000_000.0


class FakeClock:
    """A settable epoch clock; the stores call it wherever they would call ``time.time``."""

    def __init__(self, start: float = T0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class LinearizedClient:
    """Serialises requests to a moto client.

    Real DynamoDB applies each request atomically per item; moto checks a condition and then writes
    without a lock, so concurrent threads can both pass a condition. Holding a lock per request
    restores the server's guarantee while still letting our calls from many threads interleave
    between requests, which is what the concurrency tests are about.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name in {"exceptions", "meta", "get_waiter"} or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls += 1
                return attr(*args, **kwargs)

        return call


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials (so nothing can reach a real account) and moto's mock of every AWS API."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def dynamodb_client(aws: None) -> LinearizedClient:
    return LinearizedClient(boto3.client("dynamodb", region_name=REGION))
