"""Review of durable runs through lambda_handler (SQLite store, fake management API).

Each test reproduces an interleaving a review found; they guard the fixes.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import pytest

from selador.handler import lambda_handler
from selador.local.events import message_event

from .conftest import connect

QUESTION = "What is the FAR in LR2?"


class Net:
    """Management API: records frames; ``on_first_post`` runs before the first post to a connection lands."""

    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = defaultdict(list)
        self.lock = threading.RLock()
        self.on_first_post: dict[str, Any] = {}

    def __call__(self, endpoint: str) -> Net:
        return self

    def post(self, connection_id: str, data: bytes) -> None:
        hook = self.on_first_post.pop(connection_id, None)
        if hook is not None:
            hook()
        with self.lock:
            self.received[connection_id].append(data)

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(d) for d in self.received[connection_id]]


def send(context: Any, conn: str, **message: Any) -> None:
    response = lambda_handler(message_event(json.dumps(message), connection_id=conn), context)
    assert response["statusCode"] == 200, response


def test_review_nothing_of_a_run_follows_its_terminal_frame_when_cancel_beats_accepted(
    context: Any, jwt_mode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel by the owner (by request_id) lands between the run's creation and its accepted frame.

    The young pending run is left to its executor, which sees the request when it takes the run:
    accepted first, then the cancelled result, and nothing after.
    """
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    from selador.deps import Dependencies, use_dependencies
    from selador.settings import get_settings

    jobs: list[dict[str, Any]] = []

    class Queued:
        def invoke(self, **kwargs: Any) -> dict[str, int]:
            jobs.append(json.loads(kwargs["Payload"]))
            return {"StatusCode": 202}

    net = Net()
    with use_dependencies(
        Dependencies(settings=get_settings(), management_factory=net, lambda_client=Queued())
    ):
        conn = connect(context)  # alice
        # The user presses stop at once; the cancel (another invocation) is handled between the
        # invoke route's start and its post of the accepted frame.
        net.on_first_post[conn] = lambda: send(context, conn, action="cancel", request_id="fast")
        send(context, conn, action="invoke", question=QUESTION, request_id="fast")
        assert lambda_handler(jobs[0], context)["statusCode"] == 200

    frames = [f for f in net.frames(conn) if f.get("request_id") == "fast" and "seq" in f]
    kinds = [(f["type"], f["seq"]) for f in frames]
    assert kinds[0] == ("status", 1), kinds
    terminal = next(i for i, f in enumerate(frames) if f["type"] in ("result", "error"))
    assert terminal == len(frames) - 1, kinds
    assert frames[-1]["data"]["stop_reason"] == "cancelled"


class KeySizeChecked:
    """A DynamoDB client that refuses a partition key over 2048 bytes as Amazon DynamoDB does.

    moto does not check key sizes on reads; DynamoDB answers GetItem/BatchGetItem with such a key
    ``ValidationException: One or more parameter values were invalid: Size of hashkey has exceeded
    the maximum size limit of2048 bytes``.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_item(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        if len(kwargs["Key"]["pk"]["S"].encode()) > 2048:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": "One or more parameter values were invalid: Size of hashkey has "
                        "exceeded the maximum size limit of2048 bytes",
                    }
                },
                "GetItem",
            )
        return self._client.get_item(**kwargs)


def test_review_an_oversized_run_token_over_http_is_unknown_run_not_500(aws: Any, context: Any) -> None:
    from selador.deps import Dependencies, use_dependencies
    from selador.local.events import http_v2_event
    from selador.settings import get_settings
    from selador.store.dynamodb import DynamoDbStore

    store = DynamoDbStore(KeySizeChecked(aws.dynamodb), aws.store.table_name)
    deps = Dependencies(settings=get_settings(), store_factory=lambda _: store, management_factory=Net())
    statuses = []
    with use_dependencies(deps):
        for run_token in ("rt1.nope.secret", "rt1." + "a" * 2100 + ".secret"):
            for method in ("GET", "DELETE"):
                response = lambda_handler(
                    http_v2_event(method, "/runs/q-1", headers={"x-run-token": run_token}), context
                )
                statuses.append((response["statusCode"], json.loads(response["body"]).get("code")))
    assert statuses == [(404, "unknown_run")] * 4, statuses
