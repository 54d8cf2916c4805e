"""lambda_handler with HTTP API v2 and REST v1 events."""

from __future__ import annotations

import json

import pytest

from selador.handler import lambda_handler
from selador.local.events import http_v2_event, rest_v1_event

JSON = {"content-type": "application/json"}
QUESTION = {
    "question": "How much would a $600,000 house cost per month with a mortgage?",
    "query_type": "financing",
}


def body_of(response: dict) -> dict:
    return json.loads(response["body"])


@pytest.mark.parametrize("make_event", [http_v2_event, rest_v1_event])
def test_health(context, make_event) -> None:
    response = lambda_handler(make_event("GET", "/health"), context)
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "ok"


@pytest.mark.parametrize("make_event", [http_v2_event, rest_v1_event])
def test_invoke_returns_the_result_data(context, make_event) -> None:
    response = lambda_handler(make_event("POST", "/invoke", body=json.dumps(QUESTION), headers=JSON), context)
    assert response["statusCode"] == 200, response["body"]
    data = body_of(response)["data"]
    assert data["success"] is True
    assert data["query_type"] == "financing"
    assert data["tools_used"] >= 1
    assert data["content"]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "expected"),
    [
        ("POST", "/invoke", json.dumps({"query_type": "zoning"}), JSON, 400, "question: is required"),
        ("POST", "/invoke", "not json", JSON, 400, "message must be JSON"),
        ("POST", "/invoke", "", JSON, 400, "the body is empty"),
        ("POST", "/invoke", None, JSON, 400, "the body is empty"),
        ("POST", "/invoke", "[1]", JSON, 400, "must be a JSON object"),
        ("POST", "/invoke", json.dumps(QUESTION), {}, 415, "Content-Type must be application/json"),
        ("POST", "/invoke", json.dumps(QUESTION), {"content-type": "text/plain"}, 415, "not text/plain"),
        ("GET", "/invoke", None, {}, 405, "method not allowed on /invoke: use POST"),
        ("DELETE", "/health", None, {}, 405, "use GET"),
        ("GET", "/nothing-here", None, {}, 404, "no route for /nothing-here"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(
    context, method, path, body, headers, status, expected
) -> None:
    for make_event in (http_v2_event, rest_v1_event):
        response = lambda_handler(make_event(method, path, body=body, headers=headers), context)
        assert response["statusCode"] == status, (make_event.__name__, response)
        assert expected in body_of(response)["error"]
        assert "Traceback" not in response["body"]


@pytest.mark.parametrize("make_event", [http_v2_event, rest_v1_event])
def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte(context, make_event) -> None:
    # API Gateway hands a body that is not text to the function base64-encoded.
    body = b'{"question": "\xff\xfe", "query_type": "zoning"}'
    response = lambda_handler(make_event("POST", "/invoke", body=body, headers=JSON), context)
    assert response["statusCode"] == 400, response
    assert body_of(response)["error"] == "the body is not valid UTF-8 JSON: byte 0xff at position 14"


def test_a_body_marked_base64_that_is_not_is_a_400(context) -> None:
    event = http_v2_event("POST", "/invoke", body="not base64 ***", headers=JSON)
    event["isBase64Encoded"] = True
    response = lambda_handler(event, context)
    assert response["statusCode"] == 400
    assert "marked base64" in body_of(response)["error"]


@pytest.mark.parametrize("body", [{"question": "q"}, 7, ["x"]])
def test_a_forged_event_whose_body_is_not_a_string_is_a_400(context, body) -> None:
    event = http_v2_event("POST", "/invoke", body="{}", headers=JSON)
    event["body"] = body
    response = lambda_handler(event, context)
    assert response["statusCode"] == 400
    assert body_of(response)["error"] == "the event's body must be a string"


def test_the_size_limit_counts_bytes_not_characters(context) -> None:
    # 70,000 two-byte characters: under 128 KiB in characters, over it in bytes.
    question = "\u00e9" * 70_000
    body = json.dumps({"question": question, "query_type": "zoning"}, ensure_ascii=False)
    assert len(body) < 131_072 < len(body.encode())
    response = lambda_handler(http_v2_event("POST", "/invoke", body=body, headers=JSON), context)
    assert response["statusCode"] == 413
    assert f"(it has {len(body.encode())})" in body_of(response)["error"]


def test_cors_headers_are_present(context) -> None:
    event = http_v2_event("GET", "/health", headers={"origin": "https://app.example"})
    response = lambda_handler(event, context)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    assert headers.get("access-control-allow-origin") == "*" or multi.get("access-control-allow-origin") == [
        "*"
    ]


def test_invoke_that_cannot_finish_in_time_answers_202_and_the_run_goes_on(short_context, context) -> None:
    """Past API Gateway's 30 s the work is not lost: 202 with the run's token, then poll it."""
    event = http_v2_event(
        "POST", "/invoke", body=json.dumps({**QUESTION, "request_id": "slow-1"}), headers=JSON
    )
    response = lambda_handler(event, short_context)  # no time left to wait for the answer
    assert response["statusCode"] == 202, response["body"]
    accepted = body_of(response)
    assert accepted["request_id"] == "slow-1" and accepted["status"] == "running"
    assert accepted["run_token"].startswith("rt1.")
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["location"] == "/runs/slow-1"

    status = _poll_until_done("slow-1", accepted["run_token"], context)
    assert status["status"] == "succeeded"
    assert status["result"]["success"] is True and status["result"]["content"]
    assert status["frames"] >= 4


def _poll_until_done(request_id: str, token: str, context, timeout: float = 30.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        event = http_v2_event("GET", f"/runs/{request_id}", headers={"x-run-token": token})
        response = lambda_handler(event, context)
        assert response["statusCode"] == 200, response["body"]
        body = body_of(response)
        if body["status"] != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)
