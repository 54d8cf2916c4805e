"""Tiny handlers for tests/unit/local/test_invoke.py (not a test module).

``post_one`` talks to WEBSOCKET_MANAGEMENT_ENDPOINT with a real boto3 ``apigatewaymanagementapi``
client, so the test checks the listener end to end as the deployed handler would use it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def _client() -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=os.environ["WEBSOCKET_MANAGEMENT_ENDPOINT"],
        region_name=os.environ["AWS_REGION"],
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )


def _connection_id(event: dict[str, Any]) -> str:
    return str(event["requestContext"]["connectionId"])


def post_one(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Post one frame to the event's connection; report what the management API said."""
    frame = {"type": "pong", "request_id": "fixture-1", "text": "héllo"}
    try:
        _client().post_to_connection(ConnectionId=_connection_id(event), Data=json.dumps(frame).encode())
    except ClientError as exc:
        return {"statusCode": 200, "posted": False, "error": exc.response["Error"]["Code"]}
    return {"statusCode": 200, "posted": True}


def post_too_large(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Post a payload over API Gateway's 128 KiB message quota."""
    try:
        _client().post_to_connection(ConnectionId=_connection_id(event), Data=b"x" * (128 * 1024 + 1))
    except ClientError as exc:
        return {"statusCode": 200, "error": exc.response["Error"]["Code"]}
    return {"statusCode": 200, "error": None}


def get_delete_post(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GetConnection, DeleteConnection, then a post that must find the connection gone."""
    client = _client()
    connection_id = _connection_id(event)
    info = client.get_connection(ConnectionId=connection_id)
    client.delete_connection(ConnectionId=connection_id)
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=b"{}")
    except client.exceptions.GoneException:
        gone = True
    else:
        gone = False
    return {
        "statusCode": 200,
        "source_ip": info["Identity"]["SourceIp"],
        "connected_at": info["ConnectedAt"].isoformat(),
        "gone_after_delete": gone,
    }


def environment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return the environment and the context as the handler sees them."""
    return {
        "env": dict(os.environ),
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }


def explode(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Raise, as a broken handler would."""
    raise ValueError("boom from the fixture")


def sleepy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Outlast a short --timeout."""
    time.sleep(2)
    return {"statusCode": 200}


def not_json(event: dict[str, Any], context: Any) -> Any:
    """Return something JSON cannot carry (Lambda: Runtime.MarshalError)."""
    return {"when": object()}
