"""The management client is built once per endpoint, even when many invocations start together.

Found by the soak (``bench/soak.py``): 200 simultaneous first queries in the local gateway each
built their own boto3 client, one at a time behind the creation lock, so the last ones waited
tens of seconds before their first frame. ``functools.cache`` does not stop concurrent misses.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import boto3

from selador.settings import Settings
from selador.websocket.management import management_api_for


class SlowSession:
    """Counts clients built; building one takes a while, as boto3's does under load."""

    created = 0
    lock = threading.Lock()

    def client(self, *args: Any, **kwargs: Any) -> object:
        time.sleep(0.05)
        with SlowSession.lock:
            SlowSession.created += 1
        return object()


def test_concurrent_first_calls_build_one_client(monkeypatch) -> None:
    monkeypatch.setattr(boto3.session, "Session", SlowSession)
    SlowSession.created = 0
    endpoint = f"http://127.0.0.1:1/{uuid.uuid4().hex}"  # a fresh cache key for this test
    settings = Settings()
    start = threading.Barrier(8)
    clients: list[object] = []

    def first_call() -> None:
        start.wait()
        clients.append(management_api_for(endpoint, settings).client)

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(clients) == 8
    assert SlowSession.created == 1
    assert all(client is clients[0] for client in clients)


class FlakyClient:
    """Fails the first ``failures`` posts with ``error``, then delivers."""

    def __init__(self, error: Exception, failures: int = 1) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0
        self.delivered: list[bytes] = []

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.delivered.append(Data)


def test_a_stale_keep_alive_connection_is_retried_not_fatal() -> None:
    """Found by the soak: the server closed an idle pooled connection and the next post failed.

    botocore's own retries are off, so without this one ``ConnectionClosedError`` stopped the
    whole stream (and the run) while the client was still there.
    """
    from botocore.exceptions import ConnectionClosedError

    from selador.websocket.management import ManagementApi

    client = FlakyClient(ConnectionClosedError(endpoint_url="http://127.0.0.1:1/production"))
    ManagementApi(client, sleep=lambda _s: None).post("c", b"frame")
    assert client.calls == 2
    assert client.delivered == [b"frame"]


def test_connection_errors_are_bounded_like_429() -> None:
    import pytest
    from botocore.exceptions import EndpointConnectionError

    from selador.websocket.management import ManagementApi, PostFailed

    client = FlakyClient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), failures=99)
    with pytest.raises(PostFailed):
        ManagementApi(client, max_attempts=3, sleep=lambda _s: None).post("c", b"frame")
    assert client.calls == 3


def test_a_late_answer_is_retried_so_no_frame_is_lost() -> None:
    """Under load the endpoint answered after the read timeout: retry (at-least-once), don't stop."""
    from botocore.exceptions import ReadTimeoutError

    from selador.websocket.management import ManagementApi

    client = FlakyClient(ReadTimeoutError(endpoint_url="http://127.0.0.1:1/production"), failures=2)
    ManagementApi(client, sleep=lambda _s: None).post("c", b"frame")
    assert client.calls == 3
    assert client.delivered == [b"frame"]
