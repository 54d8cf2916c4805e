"""A write that landed but whose answer was lost, then sent again, must still count as ours.

botocore resends a request whose answer is lost (read timeout, connection reset); the first
attempt may have been applied and the resend then fails its own condition. botocore reuses one
``ClientRequestToken`` for ``TransactWriteItems`` across its own retries, but any resend with a new
token (ours after a conflict, or a client without that handling) meets the same case. The sender
reads back its frame, and the executor compares the lease it wrote, before concluding that someone
else owns the run.

The wrapper below plays exactly that: the first call reaches moto and its answer is dropped, the
resend's answer is what the store sees.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from selador.protocol import ResultData, ResultFrame, StatusFrame
from selador.runs.sender import RunSender
from selador.store.base import RunRecord
from selador.store.dynamodb import DynamoDbStore

REGION = "us-west-2"


class Net:
    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = defaultdict(list)
        self.lock = threading.Lock()

    def __call__(self, endpoint: str) -> Net:
        return self

    def post(self, connection_id: str, data: bytes) -> None:
        with self.lock:
            self.received[connection_id].append(data)

    def types(self, connection_id: str) -> list[str]:
        return [json.loads(d)["type"] for d in self.received[connection_id]]


class LostAnswerOnce:
    """A DynamoDB client whose first ``TransactWriteItems`` lands but whose answer is lost, then retried."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            self._client.transact_write_items(**kwargs)  # applied; the answer times out
        return self._client.transact_write_items(**kwargs)  # botocore's automatic retry


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


def test_review_a_retried_terminal_transaction_still_reaches_the_listener(client: Any) -> None:
    wrapped = LostAnswerOnce(client)
    store = DynamoDbStore(wrapped, "runs")
    store.create_table_if_missing()
    now = time.time()
    run = RunRecord(
        run_id="run-1",
        request_id="q-1",
        token_digest="d",
        status="running",
        created_at=now,
        expires_at=int(now) + 7200,
        lease_until=now + 3600,
        connection_id="c1",
        endpoint="https://mgmt",
    )
    store.create_run(run)
    net = Net()
    sender = RunSender(run, store=store, management=net, flush_ms=10_000, poll_ms=5000, first_seq=1)
    sender.send(StatusFrame(message="working"))
    sender.send(
        ResultFrame(
            data=ResultData(
                content="done",
                agent="rag",
                query_type="zoning",
                tools_available=5,
                tools_used=1,
                stop_reason="end_turn",
            )
        )
    )
    stats = sender.close()

    ended = store.get_run("run-1")
    assert ended is not None and ended.status == "succeeded"  # the run did end, with our frame
    assert net.types("c1") == ["status", "result"], (net.types("c1"), stats)


class LostUpdateAnswerOnce:
    """A DynamoDB client whose next ``UpdateItem`` lands but whose answer is lost, then retried."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            self._client.update_item(**kwargs)  # applied; the answer times out
        return self._client.update_item(**kwargs)  # botocore's automatic retry


def test_review_a_retried_take_of_the_run_still_executes_it(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selador.agents.orchestrator as orchestrator
    from selador.deps import Dependencies
    from selador.protocol import QueryRequest
    from selador.runs.executor import execute
    from selador.runs.model import Started
    from selador.runs.service import Runs
    from selador.settings import Settings

    def agent(request: Any, sink: Any, **_: Any) -> None:
        sink.send(
            ResultFrame(
                data=ResultData(
                    content="done",
                    agent="rag",
                    query_type="zoning",
                    tools_available=5,
                    tools_used=1,
                    stop_reason="end_turn",
                )
            )
        )

    monkeypatch.setattr(orchestrator, "run_query", agent)
    wrapped = LostUpdateAnswerOnce(client)
    store = DynamoDbStore(wrapped, "runs")
    store.create_table_if_missing()
    net = Net()
    deps = Dependencies(settings=Settings(), store_factory=lambda _: store, management_factory=net)
    request = QueryRequest(question="What is the FAR in LR2?", request_id="q-take")
    started = Runs(deps).start(
        request, principal=None, scope="c:c1", limit_subject=None, connection_id="c1", endpoint="https://mgmt"
    )
    assert isinstance(started, Started)

    wrapped.armed = True  # the executor's take: pending -> running
    execute(deps, None, started.run.run_id, request)

    run = store.get_run(started.run.run_id)
    assert run is not None and not run.active, run  # it ran and ended (here: it is stuck running)
