"""``POST /invoke``'s budget counts from API Gateway's receipt of the request, not from the route."""

from __future__ import annotations

import json
import time

import pytest

from selador.handler import lambda_handler
from selador.http.budget import (
    HTTP_ANSWER_BUDGET_S,
    answer_deadline,
    gateway_deadline,
    request_epoch_s,
)
from selador.local.events import http_v2_event, rest_v1_event

from .conftest import JSON, TABLE, FakeContext

QUESTION = {"question": "What is the FAR in LR2?", "query_type": "zoning"}


def _stamped(event: dict, seconds_ago: float) -> dict:
    ctx = event["requestContext"]
    key = "timeEpoch" if "timeEpoch" in ctx else "requestTimeEpoch"
    ctx[key] = int((time.time() - seconds_ago) * 1000)
    return event


def test_the_arrival_stamp_is_read_from_either_payload_version() -> None:
    v2 = http_v2_event("GET", "/health")
    v1 = rest_v1_event("GET", "/health")
    assert request_epoch_s(v2) == v2["requestContext"]["timeEpoch"] / 1000
    assert request_epoch_s(v1) == v1["requestContext"]["requestTimeEpoch"] / 1000
    for bad in (True, "1700000000000", -5, None):
        assert request_epoch_s({"requestContext": {"timeEpoch": bad}}) is None
    assert request_epoch_s({}) is None


def test_time_already_spent_before_the_route_comes_off_the_budget() -> None:
    event = _stamped(http_v2_event("GET", "/health"), seconds_ago=10)
    left = gateway_deadline(event) - time.monotonic()  # type: ignore[operator]
    assert HTTP_ANSWER_BUDGET_S - 10 - 1 < left <= HTTP_ANSWER_BUDGET_S - 10


def test_a_stamp_ahead_of_our_clock_never_lengthens_the_budget() -> None:
    slightly = _stamped(http_v2_event("GET", "/health"), seconds_ago=-2)
    assert gateway_deadline(slightly) - time.monotonic() <= HTTP_ANSWER_BUDGET_S  # type: ignore[operator]
    # Far in the future is a bad stamp: ignored, the budget then counts from now.
    assert gateway_deadline(_stamped(http_v2_event("GET", "/health"), seconds_ago=-3600)) is None


def test_lambdas_own_deadline_wins_when_it_is_earlier() -> None:
    event = _stamped(http_v2_event("GET", "/health"), seconds_ago=0)
    left = answer_deadline(event, FakeContext(remaining_ms=5_000)) - time.monotonic()
    assert left <= 4.0
    assert answer_deadline(event, None) - time.monotonic() > 20


@pytest.mark.parametrize("make_event", [http_v2_event, rest_v1_event])
def test_a_request_whose_budget_is_spent_is_504_and_starts_no_run(aws, context, make_event) -> None:
    # A cold start plus a slow JWKS can use API Gateway's whole 29 s before the route runs.
    request_id = f"late-{make_event.__name__}"
    event = make_event(
        "POST", "/invoke", body=json.dumps({**QUESTION, "request_id": request_id}), headers=JSON
    )
    response = lambda_handler(_stamped(event, seconds_ago=60), context)
    assert response["statusCode"] == 504, response["body"]
    assert json.loads(response["body"])["code"] == "timeout"
    # Runs, their names and frame logs all live in the one table: nothing was written.
    assert not aws.dynamodb.scan(TableName=TABLE)["Items"], "a run was started"


def test_a_request_with_a_little_budget_left_answers_202_and_its_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, context
) -> None:
    # A slow answer (several seconds) against 0.3 s of budget left: the caller gets the token.
    monkeypatch.setenv("LOCAL_MODEL_TOKEN_DELAY_MS", "10")
    monkeypatch.setenv("LOCAL_MODEL_MIN_ANSWER_TOKENS", "400")
    event = http_v2_event(
        "POST", "/invoke", body=json.dumps({**QUESTION, "request_id": "nearly-late"}), headers=JSON
    )
    response = lambda_handler(_stamped(event, seconds_ago=HTTP_ANSWER_BUDGET_S - 0.3), context)
    assert response["statusCode"] == 202, response["body"]
    token = json.loads(response["body"])["run_token"]
    # Stop it so its thread does not outlive the test, and see that it was really running.
    cancel = http_v2_event("DELETE", "/runs/nearly-late", headers={"x-run-token": token})
    assert lambda_handler(cancel, context)["statusCode"] == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = lambda_handler(
            http_v2_event("GET", "/runs/nearly-late", headers={"x-run-token": token}), context
        )
        if json.loads(status["body"])["status"] != "running":
            break
        time.sleep(0.05)
    assert json.loads(status["body"])["result"]["stop_reason"] == "cancelled"
