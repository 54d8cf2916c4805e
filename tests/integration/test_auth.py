"""Authentication and abuse limits through lambda_handler, AWS (DynamoDB, @connections) under moto."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from selador.handler import lambda_handler
from selador.limits import slot_key
from selador.local.events import connect_event, http_v2_event, message_event, new_connection_id

from .conftest import AUDIENCE, ISSUER, JSON, connect, invoke_body, token

# ---------------------------------------------------------------------------------- $connect


def test_connect_without_a_token_is_401_and_nothing_is_stored(aws, context, jwt_mode) -> None:
    event = connect_event()
    response = lambda_handler(event, context)
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["code"] == "unauthorized"
    assert aws.store.get_connection(event["requestContext"]["connectionId"]) is None


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: token(exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda: token(aud="another-client"), id="wrong-audience"),
        pytest.param(
            lambda: token(iss="https://cognito-idp.us-west-2.amazonaws.com/other"), id="wrong-issuer"
        ),
        pytest.param(lambda: token(_secret="not-the-secret-but-long-enough-0123456789"), id="bad-signature"),
        pytest.param(
            lambda: jwt.encode(
                {"sub": "mallory", "exp": int(time.time()) + 300, "iss": ISSUER, "aud": AUDIENCE},
                None,
                algorithm="none",
            ),
            id="alg-none",
        ),
    ],
)
@pytest.mark.parametrize("where", ["query", "header"])
def test_connect_with_an_invalid_token_is_403(aws, context, jwt_mode, bad, where) -> None:
    value = bad()
    event = (
        connect_event(query={"token": value})
        if where == "query"
        else connect_event(headers={"Authorization": f"Bearer {value}"})
    )
    response = lambda_handler(event, context)
    assert response["statusCode"] == 403
    assert json.loads(response["body"])["code"] == "forbidden"
    assert aws.store.get_connection(event["requestContext"]["connectionId"]) is None


def test_valid_token_stores_the_principal_and_queries_work(aws, context, jwt_mode) -> None:
    conn = new_connection_id()
    event = connect_event(connection_id=conn, headers={"authorization": f"Bearer {token(sub='alice')}"})
    assert lambda_handler(event, context)["statusCode"] == 200
    record = aws.store.get_connection(conn)
    assert record is not None and record.principal == "alice"
    lambda_handler(message_event(invoke_body("q-1", query_type="zoning"), connection_id=conn), context)
    frames = aws.frames(conn)
    assert frames[0]["stage"] == "accepted" and frames[-1]["type"] == "result"


def test_a_message_on_an_unknown_connection_is_refused_in_jwt_mode(aws, context, jwt_mode) -> None:
    conn = new_connection_id()  # never connected: no record, no principal
    lambda_handler(message_event(invoke_body("q-x"), connection_id=conn), context)
    assert [(f["type"], f["code"]) for f in aws.frames(conn)] == [("error", "unauthorized")]


def test_auth_off_by_default(aws, context) -> None:
    event = connect_event()
    assert lambda_handler(event, context)["statusCode"] == 200
    record = aws.store.get_connection(event["requestContext"]["connectionId"])
    assert record is not None and record.principal is None


# ------------------------------------------------------------------------------------ limits


def test_per_minute_limit_through_the_handler(aws, context, jwt_mode, monkeypatch) -> None:
    monkeypatch.setenv("LIMIT_QUERIES_PER_MINUTE", "2")
    conn = connect(context)
    # The window is the calendar minute: start well inside one, or the third query lands in the next.
    while time.time() % 60 > 45:
        time.sleep(0.5)
    for rid in ("m-1", "m-2", "m-3"):
        lambda_handler(message_event(invoke_body(rid), connection_id=conn), context)
    frames = aws.frames(conn)
    third = [f for f in frames if f.get("request_id") == "m-3"]
    assert [f["type"] for f in third] == ["error"], "refused before the accepted status: no run"
    assert third[0]["code"] == "rate_limited" and "per_minute limit" in third[0]["error"]
    assert [f for f in frames if f.get("request_id") == "m-2"][-1]["type"] == "result"


def test_concurrency_limit_triggers_and_resets(aws, context, jwt_mode, monkeypatch) -> None:
    monkeypatch.setenv("LIMIT_CONCURRENT_PER_CONNECTION", "1")
    conn = connect(context)
    # A run in flight on this connection (in AWS, an asynchronous job) holds the only slot.
    owner = aws.store.claim(slot_key(conn, 0), 900)
    assert owner is not None
    lambda_handler(message_event(invoke_body("c-1"), connection_id=conn), context)
    (refusal,) = aws.frames(conn)
    assert refusal["code"] == "rate_limited" and "concurrent limit" in refusal["error"]
    assert "seq" not in refusal
    assert aws.store.release(slot_key(conn, 0), owner)  # that run ended
    lambda_handler(message_event(invoke_body("c-2"), connection_id=conn), context)
    assert aws.frames(conn)[-1]["type"] == "result"
    # The inline run gave its slot back.
    assert aws.store.claim(slot_key(conn, 0), 900) is not None


def test_daily_budget_follows_the_principal_across_connections(aws, context, jwt_mode, monkeypatch) -> None:
    monkeypatch.setenv("LIMIT_DAILY_QUERIES_PER_PRINCIPAL", "1")
    first, second, other = connect(context), connect(context), connect(context, sub="bob")
    lambda_handler(message_event(invoke_body("d-1"), connection_id=first), context)
    lambda_handler(message_event(invoke_body("d-2"), connection_id=second), context)
    lambda_handler(message_event(invoke_body("d-3"), connection_id=other), context)
    assert aws.frames(first)[-1]["type"] == "result"
    (refusal,) = aws.frames(second)
    assert refusal["code"] == "rate_limited" and "daily limit" in refusal["error"]
    assert aws.frames(other)[-1]["type"] == "result"


# -------------------------------------------------------------------------------------- HTTP


def http_invoke(context, headers: dict[str, str], query: dict[str, str] | None = None) -> dict[str, Any]:
    body = json.dumps({"question": "Monthly payment on a $500,000 house?", "query_type": "financing"})
    return lambda_handler(http_v2_event("POST", "/invoke", body=body, headers=headers, query=query), context)


def test_http_requires_the_bearer_token(aws, context, jwt_mode) -> None:
    missing = http_invoke(context, JSON)
    assert missing["statusCode"] == 401
    assert missing["headers"]["WWW-Authenticate"] == "Bearer"
    assert json.loads(missing["body"])["code"] == "unauthorized"
    # The query-string token is for browsers' WebSocket handshake only.
    assert http_invoke(context, JSON, query={"token": token()})["statusCode"] == 401
    for bad in (token(exp=1), token(aud="x"), token(iss="https://evil.example"), token(_secret="w" * 40)):
        refused = http_invoke(context, {**JSON, "authorization": f"Bearer {bad}"})
        assert refused["statusCode"] == 403
        assert refused["headers"]["WWW-Authenticate"].startswith("Bearer error=")
    ok = http_invoke(context, {**JSON, "authorization": f"Bearer {token()}"})
    assert ok["statusCode"] == 200, ok["body"]
    assert json.loads(ok["body"])["data"]["success"] is True
    health = lambda_handler(http_v2_event("GET", "/health"), context)
    assert health["statusCode"] == 200, "health stays open"


def test_http_reads_headers_whatever_their_case(aws, context, jwt_mode) -> None:
    """API Gateway lower-cases v2 headers, but other proxies and REST events do not: look up any case."""
    body = json.dumps({"question": "Monthly payment on a $500,000 house?", "query_type": "financing"})
    event = http_v2_event("POST", "/invoke", body=body)
    event["headers"] = {"CONTENT-TYPE": "application/json", "Authorization": f"Bearer {token()}"}
    response = lambda_handler(event, context)
    assert response["statusCode"] == 200, response["body"]


def test_http_limits_per_principal_answer_429(aws, context, jwt_mode, monkeypatch) -> None:
    monkeypatch.setenv("LIMIT_DAILY_QUERIES_PER_PRINCIPAL", "1")
    headers = {**JSON, "authorization": f"Bearer {token(sub='carol')}"}
    assert http_invoke(context, headers)["statusCode"] == 200
    refused = http_invoke(context, headers)
    assert refused["statusCode"] == 429
    assert json.loads(refused["body"])["code"] == "rate_limited"
    assert "daily limit" in json.loads(refused["body"])["error"]
    assert int(refused["headers"]["Retry-After"]) > 0


def test_http_body_over_128_kib_never_reaches_the_agent(aws, context) -> None:
    body = json.dumps({"question": "x", "context": "y" * (130 * 1024)})
    response = lambda_handler(http_v2_event("POST", "/invoke", body=body, headers=JSON), context)
    assert response["statusCode"] == 413
    assert "131072 bytes" in json.loads(response["body"])["error"]
