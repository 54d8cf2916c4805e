"""Fixtures for the conformance suite.

``lam``: the real ``lambda_handler`` in this process, with the environment the integration tests
use (SQLite store in the test's temp dir, offline model without token delay, inline runs) and the
management API pointed at a local listener (``selador.local.invoke.ManagementListener``) that
answers like API Gateway: a connection accepts frames only during a MESSAGE event of its own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from selador.handler import lambda_handler
from selador.local.invoke import ManagementListener
from selador.local.runtime import LambdaContext
from selador.protocol import parse_frame

STAGE = "production"


def arrived_now(event: dict[str, Any]) -> dict[str, Any]:
    """The event as API Gateway would stamp it today: a recorded stamp is long past its 29 s."""
    ctx = event.get("requestContext")
    if isinstance(ctx, dict):
        for key in ("timeEpoch", "requestTimeEpoch"):
            if key in ctx:
                ctx[key] = int(time.time() * 1000)
    return event


def context(timeout_s: float = 900.0) -> LambdaContext:
    """A context like Lambda's for the template's function."""
    return LambdaContext(
        function_name="MainLambda",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-west-2:123456789012:function:MainLambda",
        memory_limit_in_mb="1024",
        aws_request_id=str(uuid.uuid4()),
        log_group_name="/aws/lambda/MainLambda",
        log_stream_name="2025/11/23/[$LATEST]" + uuid.uuid4().hex,
        deadline=time.monotonic() + timeout_s,
    )


@dataclass
class Lambda:
    """The handler and what it posted."""

    listener: ManagementListener
    capsys: pytest.CaptureFixture[str]
    responses: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Run one event; its connection is open only while a MESSAGE event of its own runs."""
        ctx = event.get("requestContext") or {}
        connection_id = str(ctx.get("connectionId"))
        is_message = ctx.get("eventType") == "MESSAGE"
        if is_message:
            self.listener.open_connections.add(connection_id)
        try:
            # The JSON round trip Lambda does: the handler gets plain JSON values, answers JSON.
            response = lambda_handler(arrived_now(json.loads(json.dumps(event))), context())
        finally:
            if is_message:
                self.listener.open_connections.discard(connection_id)
        captured = self.capsys.readouterr()
        self.output += captured.out + captured.err
        json.dumps(response)  # Lambda must be able to serialise the answer
        self.responses.append(response)
        return response

    def frames(self, connection_id: str | None = None) -> list[dict[str, Any]]:
        """Every frame posted (to ``connection_id``), each checked against the protocol's models."""
        posted = [
            f for f in self.listener.frames if connection_id is None or f.connection_id == connection_id
        ]
        for frame in posted:
            assert frame.stage == STAGE, "posted outside the API's stage"
            parse_frame(frame.data)
        return [json.loads(f.data) for f in posted]

    def no_traceback(self) -> None:
        """Nothing the handler logged carries a traceback or an ERROR line."""
        captured = self.capsys.readouterr()
        self.output += captured.out + captured.err
        assert "Traceback" not in self.output, self.output[-3000:]
        assert '"level":"ERROR"' not in self.output.replace(" ", ""), self.output[-3000:]


@pytest.fixture(scope="session")
def listener() -> Iterator[ManagementListener]:
    """One listener for the session (stopping one takes half a second); reset for every test."""
    running = ManagementListener().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def lam(
    listener: ManagementListener, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Lambda]:
    listener.frames.clear()
    listener.open_connections.clear()
    monkeypatch.setenv("MODEL_PROVIDER", "local")
    monkeypatch.setenv("KNOWLEDGE_BASE_ID", "")
    monkeypatch.setenv("CONNECTIONS_TABLE", "")
    monkeypatch.setenv("RUN_MODE", "inline")
    monkeypatch.setenv("LOCAL_MODEL_TOKEN_DELAY_MS", "0")
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_ENDPOINT", listener.endpoint(STAGE))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "MainLambda")
    yield Lambda(listener=listener, capsys=capsys)
    listener.frames.clear()
