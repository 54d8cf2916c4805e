"""The OpenAPI document against the real thing: served by ``selador serve``, and true of every answer.

Every request here goes through a client that checks the answer against ``docs/openapi.json``
(status documented for the route, body matching its schema with no undocumented field), and the
tests assert that each route's answers were all seen. WebSocket frames are checked against
``docs/asyncapi.yaml`` by the shared helpers of every e2e test (``recv_json``, ``collect_frames``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from .apidocs import openapi, route_of, validate_http_answer
from .conftest import WAIT, GatewayProcess, start_gateway

pytestmark = pytest.mark.e2e

SECRET = "e2e-apidocs-secret-0123456789abcdef-0123456789"
QUESTION = {"question": "What is the FAR in LR2?", "query_type": "zoning"}
LONG_QUESTION = {
    "question": "What are the zoning requirements for residential development?",
    "query_type": "zoning",
}


class CheckedClient(httpx.Client):
    """An HTTP client that checks every answer against the OpenAPI document and records it."""

    def __init__(self, base_url: str, **kwargs: object) -> None:
        self.seen: set[tuple[str, str, int]] = set()
        super().__init__(base_url=base_url, timeout=WAIT, event_hooks={"response": [self._check]}, **kwargs)  # type: ignore[arg-type]

    def _check(self, response: httpx.Response) -> None:
        response.read()
        method, path = response.request.method, response.request.url.path
        validate_http_answer(method, path, response.status_code, response.content)
        self.seen.add((method, route_of(method, path)[0], response.status_code))


@pytest.fixture(scope="module")
def docs_gateway() -> Iterator[GatewayProcess]:
    # Tokens slow enough that a run is still going when it is read, cancelled or collided with.
    with start_gateway("--env", "LOCAL_MODEL_TOKEN_DELAY_MS=20", "--env", "RUN_POLL_MS=50") as gateway:
        yield gateway


def test_the_gateway_serves_the_committed_openapi_document_with_itself_as_first_server(
    docs_gateway: GatewayProcess,
) -> None:
    base = docs_gateway.endpoints.http_url
    served = httpx.get(f"{base}/openapi.json", timeout=WAIT)
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "application/json"
    assert served.headers["access-control-allow-origin"] == "*"
    document, committed = served.json(), openapi()
    assert {k: v for k, v in document.items() if k != "servers"} == {
        k: v for k, v in committed.items() if k != "servers"
    }
    assert document["servers"][0]["url"] == base
    assert document["servers"][1] == committed["servers"][0]  # the deployed stack
    # Under another name of this machine, the document names that address.
    by_name = httpx.get(f"{base}/openapi.json", headers={"Host": f"localhost:{docs_gateway.endpoints.port}"})
    assert by_name.json()["servers"][0]["url"] == f"http://localhost:{docs_gateway.endpoints.port}"
    assert httpx.post(f"{base}/openapi.json", timeout=WAIT).status_code == 404  # GET only, as a route


def _wait_run(http: CheckedClient, gateway: GatewayProcess, path: str, token: str, until: str) -> dict:
    """Poll ``GET /runs/{id}`` until its ``status`` is ``until`` (``running`` with frames: under way)."""

    def probe() -> dict | None:
        body = http.get(path, headers={"X-Run-Token": token}).json()
        if until == "running":
            return body if body["status"] == "running" and body["frames"] >= 3 else None
        return body if body["status"] == until else None

    return gateway.wait_for(probe, f"run {path} {until}")


def test_every_answer_of_the_http_api_is_the_documented_one(docs_gateway: GatewayProcess) -> None:
    with CheckedClient(docs_gateway.endpoints.http_url) as http:
        assert http.get("/health").status_code == 200
        answered = http.post("/invoke", json=QUESTION | {"session_id": "new"})
        assert answered.status_code == 200, answered.text
        session, session_token = answered.json()["session_id"], answered.json()["session_token"]
        assert http.post("/invoke", json={"query_type": "zoning"}).status_code == 400
        assert http.post("/invoke", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
        assert http.post("/invoke", json={"question": "x" * 140_000}).status_code == 413

        # A run that succeeds, one that is cancelled mid-answer, and what an ended run answers.
        started = http.post("/runs", json=QUESTION)
        assert started.status_code == 202 and started.headers["location"].startswith("/runs/")
        done = _wait_run(
            http, docs_gateway, started.headers["location"], started.json()["run_token"], "succeeded"
        )
        assert done["result"]["success"] is True
        slow = http.post("/runs", json=LONG_QUESTION)
        path, token = slow.headers["location"], slow.json()["run_token"]
        assert _wait_run(http, docs_gateway, path, token, "running")["status"] == "running"
        assert http.delete(path, headers={"X-Run-Token": token}).status_code == 202
        assert _wait_run(http, docs_gateway, path, token, "cancelled")["result"]["stop_reason"] == "cancelled"
        assert http.delete(path, headers={"X-Run-Token": token}).status_code == 409
        assert http.get("/runs/nobody", headers={"X-Run-Token": token}).status_code == 404

        # Conversations: list, read, refuse a second question while one runs, erase.
        mine = {"X-Session-Token": session_token}
        assert http.get("/sessions").status_code == 401
        assert http.get("/sessions", headers=mine).json()["sessions"][0]["session_id"] == session
        assert http.get("/sessions?limit=0", headers=mine).status_code == 400
        assert (
            http.get(f"/sessions/{session}", headers=mine).json()["turns"][0]["question"]
            == QUESTION["question"]
        )
        assert http.get("/sessions/nobody", headers=mine).status_code == 404
        busy = http.post("/runs", json=LONG_QUESTION | {"session_id": session}, headers=mine)
        busy_path, busy_token = busy.headers["location"], busy.json()["run_token"]
        assert http.post("/invoke", json=QUESTION | {"session_id": session}, headers=mine).status_code == 409
        assert http.delete(f"/sessions/{session}", headers=mine).status_code == 409
        assert http.delete(busy_path, headers={"X-Run-Token": busy_token}).status_code == 202
        _wait_run(http, docs_gateway, busy_path, busy_token, "cancelled")
        assert http.delete(f"/sessions/{quote(session)}", headers=mine).status_code == 204
        assert http.delete(f"/sessions/{session}", headers=mine).status_code == 404

    expected = {
        ("GET", "/health", 200),
        ("POST", "/invoke", 200),
        ("POST", "/invoke", 400),
        ("POST", "/invoke", 409),
        ("POST", "/invoke", 413),
        ("POST", "/invoke", 415),
        ("POST", "/runs", 202),
        ("GET", "/runs/{request_id}", 200),
        ("GET", "/runs/{request_id}", 404),
        ("DELETE", "/runs/{request_id}", 202),
        ("DELETE", "/runs/{request_id}", 409),
        ("GET", "/sessions", 200),
        ("GET", "/sessions", 400),
        ("GET", "/sessions", 401),
        ("GET", "/sessions/{session_id}", 200),
        ("GET", "/sessions/{session_id}", 404),
        ("DELETE", "/sessions/{session_id}", 204),
        ("DELETE", "/sessions/{session_id}", 404),
        ("DELETE", "/sessions/{session_id}", 409),
    }
    assert expected <= http.seen, sorted(expected - http.seen)


def _token(sub: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")} | {"AUTH_HS256_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "selador.local.cli", "token", "--sub", sub],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        check=True,
    ).stdout.strip()


def test_authenticated_answers_and_refusals_are_the_documented_ones() -> None:
    flags = [
        "--env",
        "AUTH_MODE=jwt",
        "--env",
        f"AUTH_HS256_SECRET={SECRET}",
        "--env",
        "LOCAL_MODEL_TOKEN_DELAY_MS=0",
    ]
    limit = ("--env", "LIMIT_DAILY_QUERIES_PER_PRINCIPAL=1")
    with start_gateway(*flags, *limit) as gateway, CheckedClient(gateway.endpoints.http_url) as http:
        bearer = {"Authorization": f"Bearer {_token('ana')}"}
        # API Gateway's JWT authorizer refuses first, in its own words.
        refused = http.post("/invoke", json=QUESTION)
        assert refused.status_code == 401 and refused.json() == {"message": "Unauthorized"}
        assert http.get("/sessions", headers={"Authorization": "Bearer not.a.jwt"}).status_code == 401
        started = http.post("/runs", json=QUESTION, headers=bearer)
        assert started.status_code == 202, started.text
        assert http.get(started.headers["location"], headers=bearer).status_code == 200
        over = http.post("/invoke", json=QUESTION, headers=bearer)
        assert over.status_code == 429 and over.json()["code"] == "rate_limited"
        assert http.get("/sessions", headers=bearer).json() == {"sessions": [], "next": None}
    assert {("POST", "/invoke", 401), ("GET", "/sessions", 401), ("POST", "/invoke", 429)} <= http.seen
