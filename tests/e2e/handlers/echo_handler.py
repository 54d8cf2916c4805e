"""A stand-in Lambda handler for gateway e2e tests, loaded with ``--handler echo_handler.lambda_handler``.

It posts through a real boto3 client to ``WEBSOCKET_MANAGEMENT_ENDPOINT`` (which the gateway
sets), echoes each MESSAGE event back so tests can check its shape, and appends CONNECT and
DISCONNECT events to ``ECHO_EVENTS_FILE`` (they cannot be posted: the connection is not open).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import boto3

_lock = threading.Lock()
_client: Any = None


def _management() -> Any:
    global _client
    with _lock:
        if _client is None:
            _client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"],
                region_name=os.environ["AWS_REGION"],
            )
        return _client


def _record(event: dict[str, Any]) -> None:
    path = os.environ.get("ECHO_EVENTS_FILE")
    if path:
        with _lock, open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(event) + "\n")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = event["requestContext"]
    if ctx["eventType"] != "MESSAGE":
        _record(event)
        return {"statusCode": 200}
    reply = {
        "event": event,
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
        "env": {name: os.environ.get(name) for name in ("MODEL_PROVIDER", "ECHO_MARK")},
    }
    _management().post_to_connection(ConnectionId=ctx["connectionId"], Data=json.dumps(reply).encode())
    return {"statusCode": 200}
