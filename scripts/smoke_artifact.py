"""Smoke test of the built Lambda artifact: every kind of route, from the build folder alone.

Run by ``scripts/check-template.sh`` as::

    python3.13 -S -B scripts/smoke_artifact.py BUILD_DIR EVENTS_DIR [--report FILE]

with ``PYTHONPATH=BUILD_DIR`` and a clean environment, so only what the artifact carries is
importable (as on Lambda). It needs nothing but the standard library and the artifact.

It runs, in one process as one warm container would: ``$connect`` (JWT verified against a JWKS
served on 127.0.0.1), ``ping``, ``invoke`` (RUN_MODE=async: the route hands the run to a Lambda
``invoke``), the job that invocation carries (the agent on the Bedrock model, which calls the
Bedrock knowledge base through its search tool), the on-failure record of that job (an SQS
batch: the run has already ended, nothing is posted), ``$disconnect``, ``GET /health``, ``POST /runs``,
its job and ``GET /runs/{id}``. Every AWS call is answered by ``botocore.stub.Stubber``, so the
clients validate each request against the service models the artifact carries.

An import recorder (a ``sys.meta_path`` finder that only watches) notes every module any code
*tries* to import, including optional imports that fail quietly. The run fails if:

* a route answers other than expected, or a stubbed call was not made;
* any module of a distribution ``src/lambda_bundle.py`` leaves out was even attempted;
* the artifact carries a distribution no route imported (the artifact holds only what the
  function imports), unless ``lambda_bundle.UNIMPORTED_BUT_KEPT`` says why it stays;
* a client was created for a service whose botocore model the bundle does not keep.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import pathlib
import sys
import tempfile
import threading
import time
from typing import Any

ATTEMPTED: set[str] = set()


class ImportRecorder:
    """Records every import attempt (top-level package name) and finds nothing itself."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> None:
        """Note the name; let the real finders find it (or not)."""
        ATTEMPTED.add(fullname.partition(".")[0])


sys.meta_path.insert(0, ImportRecorder())  # type: ignore[arg-type]
STDLIB_BEFORE = set(sys.modules)

BUILD = pathlib.Path(sys.argv[1]).resolve()
EVENTS = pathlib.Path(sys.argv[2]).resolve()
REPORT = pathlib.Path(sys.argv[sys.argv.index("--report") + 1]) if "--report" in sys.argv else None
SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

# The build recipe (stdlib only) is the single source of what is left out and what is kept.
_spec = importlib.util.spec_from_file_location("lambda_bundle", SRC / "lambda_bundle.py")
assert _spec and _spec.loader
bundle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bundle)
# Modules imported so far are this script's own (stdlib); forget them.
ATTEMPTED.clear()

assert str(BUILD) in [str(pathlib.Path(p).resolve()) for p in sys.path if p], "run with PYTHONPATH=BUILD_DIR"
assert not any("site-packages" in p for p in sys.path), "run with python -S: no site-packages"

TMP = pathlib.Path(tempfile.mkdtemp(prefix="selador-smoke-"))
MODEL_ID = "us.anthropic.claude-sonnet-4-20250514-v1:0"
KB_ID = "KBSMOKE123"
ISSUER = "https://issuer.example.test"
AUDIENCE = "selador-smoke"

os.environ.update(
    {
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "smoke",
        "AWS_SECRET_ACCESS_KEY": "smoke",
        "AWS_LAMBDA_FUNCTION_NAME": "main-lambda",
        "POWERTOOLS_SERVICE_NAME": "selador",
        "LOG_LEVEL": "WARNING",
        "MODEL_ARN": MODEL_ID,
        "KNOWLEDGE_BASE_ID": KB_ID,
        "RUN_MODE": "async",
        "CONNECTIONS_TABLE": "",
        "SQLITE_PATH": str(TMP / "selador.sqlite3"),
        "WEBSOCKET_MANAGEMENT_ENDPOINT": "https://sel4d0rapi.execute-api.us-west-2.amazonaws.com/production",
        "AUTH_MODE": "jwt",
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
    }
)


class Context:
    """The parts of the Lambda context the handler reads."""

    function_name = "main-lambda"
    function_version = "$LATEST"
    memory_limit_in_mb = "1024"
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:main-lambda"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        """Plenty: a job's deadline is far away."""
        return 900_000


# ------------------------------------------------------------------------------------ the JWKS
# A signing key made with the artifact's own cryptography, served on 127.0.0.1 as the issuer's
# JWKS (AUTH_JWKS_URL accepts http only for localhost).
import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_key.public_key()))
JWKS = json.dumps({"keys": [{**_jwk, "kid": "smoke", "alg": "RS256", "use": "sig"}]}).encode()


class JwksHandler(http.server.BaseHTTPRequestHandler):
    """Serves the JWKS at any path."""

    def do_GET(self) -> None:
        """Answer with the key set."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(JWKS)))
        self.end_headers()
        self.wfile.write(JWKS)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""
        pass


jwks_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
threading.Thread(target=jwks_server.serve_forever, daemon=True).start()
os.environ["AUTH_JWKS_URL"] = f"http://127.0.0.1:{jwks_server.server_address[1]}/jwks.json"
now = int(time.time())
TOKEN = jwt.encode(
    {"sub": "smoke-user", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600},
    _key,
    algorithm="RS256",
    headers={"kid": "smoke"},
)

# ------------------------------------------------------------------------------------- the stubs
import botocore.session  # noqa: E402
from botocore.stub import Stubber  # noqa: E402
from botocore.validate import validate_parameters  # noqa: E402


class StreamStubber(Stubber):
    """A Stubber that also answers event-stream operations (``converse_stream``).

    Each event is validated against the stream's event shapes; the operation then returns
    ``{"stream": [events]}``, which Strands iterates like the real EventStream.
    """

    def _validate_operation_response(self, operation_name: str, service_response: Any) -> None:
        output = self.client.meta.service_model.operation_model(operation_name).output_shape
        stream = output.members.get("stream") if output is not None else None
        if stream is not None and stream.serialization.get("eventstream"):
            for event in service_response["stream"]:
                validate_parameters(event, stream)
            return
        super()._validate_operation_response(operation_name, service_response)


def _usage(tokens_in: int, tokens_out: int) -> dict[str, Any]:
    return {
        "metadata": {
            "usage": {
                "inputTokens": tokens_in,
                "outputTokens": tokens_out,
                "totalTokens": tokens_in + tokens_out,
            },
            "metrics": {"latencyMs": 42},
        }
    }


def tool_call_turn() -> dict[str, Any]:
    """The model's first turn: search the knowledge base."""
    return {
        "stream": [
            {"messageStart": {"role": "assistant"}},
            {
                "contentBlockStart": {
                    "start": {"toolUse": {"toolUseId": "tooluse_smoke", "name": "search_knowledge_base"}},
                    "contentBlockIndex": 0,
                }
            },
            {
                "contentBlockDelta": {
                    "delta": {"toolUse": {"input": json.dumps({"query": "lowrise height limit"})}},
                    "contentBlockIndex": 0,
                }
            },
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "tool_use"}},
            _usage(120, 20),
        ]
    }


ANSWER = "Lowrise zones allow buildings up to 40 feet [1].\n\nSources:\n[1] Lowrise multifamily"


def answer_turn() -> dict[str, Any]:
    """The model's second turn: the answer."""
    return {
        "stream": [
            {"messageStart": {"role": "assistant"}},
            {"contentBlockDelta": {"delta": {"text": ANSWER[:20]}, "contentBlockIndex": 0}},
            {"contentBlockDelta": {"delta": {"text": ANSWER[20:]}, "contentBlockIndex": 0}},
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            _usage(400, 30),
        ]
    }


RETRIEVED = {
    "retrievalResults": [
        {
            "content": {"text": "In LR zones the base height limit is 40 feet.", "type": "TEXT"},
            "location": {"type": "S3", "s3Location": {"uri": "s3://kb-smoke/lowrise-multifamily.md"}},
            "score": 0.81,
            "metadata": {"title": "Lowrise multifamily"},
        }
    ]
}

AGENT_RUNS = 2  # the WebSocket invoke's job and the HTTP POST /runs job
# service -> [(operation, response)], in call order. Every queue must be drained, except the
# management API's, which gets more posts than frames (their number is the run's business).
RESPONSES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "bedrock-runtime": [("converse_stream", tool_call_turn()), ("converse_stream", answer_turn())]
    * AGENT_RUNS,
    "bedrock-agent-runtime": [("retrieve", RETRIEVED)] * AGENT_RUNS,
    "lambda": [("invoke", {"StatusCode": 202})] * AGENT_RUNS,
    "apigatewaymanagementapi": [("post_to_connection", {})] * 500,
}
MUST_DRAIN = {"bedrock-runtime", "bedrock-agent-runtime", "lambda"}
STUBBERS: dict[str, list[StreamStubber]] = {}
JOBS: list[dict[str, Any]] = []
POSTED: list[dict[str, Any]] = []
_create_client = botocore.session.Session.create_client


def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
    """Every client the code creates comes back stubbed (unknown services get none: they fail)."""
    client = _create_client(self, service_name, *args, **kwargs)
    stubber = StreamStubber(client)
    for operation, response in RESPONSES.get(service_name, []):
        stubber.add_response(operation, response)
    stubber.activate()
    STUBBERS.setdefault(service_name, []).append(stubber)
    if service_name == "lambda":
        client.meta.events.register(
            "before-parameter-build.lambda.Invoke",
            lambda params, **_: JOBS.append(json.loads(params["Payload"])),
        )
    if service_name == "apigatewaymanagementapi":

        def capture(params: dict[str, Any], **_: Any) -> None:
            data = params["Data"]
            decoder, text, at = json.JSONDecoder(), data.decode() if isinstance(data, bytes) else data, 0
            while at < len(text):  # a post may carry several frames back to back
                frame, at = decoder.raw_decode(text, at)
                POSTED.append(frame)

        client.meta.events.register(
            "before-parameter-build.apigatewaymanagementapi.PostToConnection", capture
        )
    return client


botocore.session.Session.create_client = create_client  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------ the routes
def load(name: str, **changes: Any) -> dict[str, Any]:
    """An event from events/, with top-level keys replaced."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    event.update(changes)
    return event


def http_event(method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event for ``method path``, shaped like events/http_health.json."""
    event = load("http_health")
    event["routeKey"] = f"{method} {path}"
    event["rawPath"] = path
    event["requestContext"]["http"].update({"method": method, "path": path})
    event["headers"] = {**event["headers"], **{k.lower().replace("_", "-"): v for k, v in headers.items()}}
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-type"] = "application/json"
    return event


FAILED: list[str] = []


def check(name: str, ok: bool, detail: Any) -> None:
    """Print one check's outcome; remember failures."""
    if not ok:
        FAILED.append(name)
    print(f"{name}: {'ok' if ok else 'FAILED'} {json.dumps(detail, default=str)[:240]}")


started = time.perf_counter()
from selador.handler import lambda_handler  # noqa: E402

print(f"import selador.handler: {(time.perf_counter() - started) * 1000:.0f} ms")
print(f"selador.handler from {sys.modules['selador.handler'].__file__}")
ctx = Context()


def call(event: dict[str, Any]) -> dict[str, Any]:
    """Invoke the handler as Lambda would."""
    return lambda_handler(event, ctx)


connect = load("ws_connect", queryStringParameters={"token": TOKEN})
response = call(connect)
check("$connect (JWT)", response.get("statusCode") == 200, response)
response = call(load("ws_connect", queryStringParameters={"token": TOKEN[:-4] + "AAAA"}))
check("$connect (bad signature refused)", response.get("statusCode") in (401, 403), response)
print("strands imported by the light routes:", "yes" if "strands" in sys.modules else "no")

response = call(load("ws_ping"))
check("ping", response.get("statusCode") == 200 and any(f.get("type") == "pong" for f in POSTED), response)

response = call(load("ws_invoke"))
check("invoke (hands off)", response.get("statusCode") == 200 and len(JOBS) == 1, response)
if JOBS:
    response = call(JOBS[0])
    results = [f for f in POSTED if f.get("type") == "result" and f.get("request_id") == "q-17"]
    check(
        "job (agent run: Bedrock model + KB)",
        response.get("statusCode") == 200 and len(results) == 1,
        response,
    )

if JOBS:
    # Lambda's on-failure record of that job, as the queue of failed jobs delivers it: the run has
    # already ended, so nothing is posted (the path still imports what it needs from here alone).
    record = {
        "version": "1.0",
        "timestamp": "2025-11-23T20:15:27.104Z",
        "requestContext": {
            "requestId": "7d1e4f2a-93c6-4b8e-a5f0-2c6b81e9d437",
            "functionArn": "arn:aws:lambda:us-west-2:123456789012:function:selador-main-lambda:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1,
        },
        "requestPayload": JOBS[0],
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "Runtime exited with error: signal: killed"},
    }
    terminal_before = sum(1 for f in POSTED if f.get("type") in ("result", "error"))
    sqs_event = {
        "Records": [
            {
                "messageId": "3f9c2d7e-5a1b-4c8d-9e6f-0b7a4d2c1e85",
                "receiptHandle": "AQEBqT0Xbk2m8sLw9PzR3vYc6HnJd1Gu5fKa7oEi4MtZy0xVbN2QwS8lDp3rUe6g",
                "body": json.dumps(record),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763928927131"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:selador-failed-jobs",
                "awsRegion": "us-west-2",
            }
        ]
    }
    response = call(sqs_event)
    terminal_after = sum(1 for f in POSTED if f.get("type") in ("result", "error"))
    check(
        "failed job record (SQS; run already ended)",
        response == {"batchItemFailures": []} and terminal_after == terminal_before,
        response,
    )

response = call(load("ws_disconnect"))
check("$disconnect", response.get("statusCode") == 200, response)

response = call(load("http_health"))
check("GET /health", response.get("statusCode") == 200, response)

auth = {"authorization": f"Bearer {TOKEN}"}
question = {"question": "How tall can a lowrise building be?", "query_type": "zoning", "request_id": "h-1"}
response = call(http_event("POST", "/runs", question, **auth))
check("POST /runs (hands off)", response.get("statusCode") == 202 and len(JOBS) == 2, response)
if len(JOBS) == 2:
    run_token = json.loads(response["body"]).get("run_token", "")
    response = call(JOBS[1])
    check("job (HTTP run)", response.get("statusCode") == 200, response)
    response = call(http_event("GET", "/runs/h-1", **auth, x_run_token=run_token))
    body = json.loads(response.get("body") or "{}")
    check("GET /runs/{id}", response.get("statusCode") == 200 and body.get("status") == "succeeded", body)

# The deployed store is DynamoDB (CONNECTIONS_TABLE is always set there); the routes above ran on
# the SQLite fallback so that no DynamoDB call needs stubbing. Build the DynamoDB store the way
# the container does, so its modules and client (service model, endpoint rules) load too.
from selador.settings import get_settings  # noqa: E402
from selador.store.factory import build_store  # noqa: E402

store = build_store(get_settings().model_copy(update={"connections_table": "smoke-connections"}))
check(
    "DynamoDB store builds",
    type(store).__name__ == "DynamoDbStore" and "dynamodb" in STUBBERS,
    type(store).__name__,
)

for service in MUST_DRAIN:
    for stubber in STUBBERS.get(service, []):
        try:
            stubber.assert_no_pending_responses()
        except AssertionError as exc:
            check(f"stubbed {service} calls all made", False, str(exc))
jwks_server.shutdown()

# ------------------------------------------------------------------------------------- the proof
services = sorted(STUBBERS)
kept = set(bundle.BOTOCORE_SERVICES)
check("clients created only for kept botocore models", set(services) <= kept, {"created": services})

excluded = {name: dist for dist, names in bundle.EXCLUDED_DISTRIBUTIONS.items() for name in names}
touched = sorted(f"{name} ({excluded[name]})" for name in ATTEMPTED if name in excluded)
check("no left-out distribution imported, not even attempted", not touched, touched)

shipped = bundle.top_level_names(BUILD)
unused = sorted(
    dist
    for dist, names in shipped.items()
    if dist != "selador" and dist not in bundle.UNIMPORTED_BUT_KEPT and not names & ATTEMPTED
)
check("every shipped distribution is imported by a route", not unused, unused)
print(f"shipped distributions: {len(shipped)}; imported on these routes: {len(shipped) - len(unused)}")
print(f"clients created: {', '.join(services)}")

if REPORT:
    REPORT.write_text(
        json.dumps(
            {
                "attempted_imports": sorted(ATTEMPTED),
                "imported_modules": sorted(set(sys.modules) - STDLIB_BEFORE),
                "clients": services,
                "shipped": {dist: sorted(names) for dist, names in shipped.items()},
                "failed": FAILED,
            },
            indent=1,
        )
    )
sys.stdout.flush()
os._exit(1 if FAILED else 0)  # no interpreter teardown: background threads of the runs may linger
