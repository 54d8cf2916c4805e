"""One fresh-process measurement, run as a script (``python bench/_child.py MODE ARGS…``).

Run by path, not as ``-m bench._child``, so importing the ``bench`` package costs the child
nothing. It prints one JSON line: ``done`` (``time.time()`` when the measured work finished),
whether strands and boto3 were imported, and the peak RSS. The parent took ``time.time()`` just
before spawning it: both clocks are the system's wall clock on one machine.

Modes:
    baseline-boto: import boto3 and create one apigatewaymanagementapi client.
    baseline-strands: ``from strands import Agent`` and create one boto3 client.
    connect: the handler answers ``$connect`` then ``$disconnect``.
    health: the handler answers HTTP ``GET /health``.
    invoke: the handler answers one WebSocket ``invoke`` (frames go to the parent's listener).
"""

from __future__ import annotations

import json
import resource
import sys
import time

MODE = sys.argv[1]
EVENTS = sys.argv[2] if len(sys.argv) > 2 else "events"
CONNECTION_ID = sys.argv[3] if len(sys.argv) > 3 else "benchConn="


class Context:
    """The bits of Lambda's context the handler reads."""

    function_name = "MainLambda"
    function_version = "$LATEST"
    memory_limit_in_mb = "1024"
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:MainLambda"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def event(name: str) -> dict:
    with open(f"{EVENTS}/{name}.json") as handle:
        loaded = json.load(handle)
    ctx = loaded.get("requestContext", {})
    if "connectionId" in ctx:
        ctx["connectionId"] = CONNECTION_ID
    return loaded


def main() -> None:
    if MODE == "baseline-boto":
        import boto3

        boto3.client("apigatewaymanagementapi", endpoint_url="http://127.0.0.1:9/production")
    elif MODE == "baseline-strands":
        import boto3
        from strands import Agent  # noqa: F401

        boto3.client("apigatewaymanagementapi", endpoint_url="http://127.0.0.1:9/production")
    else:
        from selador.handler import lambda_handler

        if MODE == "connect":
            for name in ("ws_connect", "ws_disconnect"):
                answer = lambda_handler(event(name), Context())
                assert answer.get("statusCode") == 200, answer
        elif MODE == "health":
            answer = lambda_handler(event("http_health"), Context())
            assert answer.get("statusCode") == 200, answer
        elif MODE == "invoke":
            invoke = event("ws_invoke")
            body = json.loads(invoke["body"])
            body["request_id"] = "cold-1"
            invoke["body"] = json.dumps(body)
            answer = lambda_handler(invoke, Context())
            assert answer.get("statusCode") == 200, answer
        else:
            raise SystemExit(f"unknown mode {MODE}")
    done = time.time()
    print(
        json.dumps(
            {
                "done": done,
                "strands": "strands" in sys.modules,
                "boto3": "boto3" in sys.modules,
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        ),
        flush=True,
    )


main()
