"""(a) The real handler answers each AWS-shaped fixture correctly.

The handler runs in this process on the fixture as API Gateway would deliver it (after Lambda's
JSON round trip), with the SQLite store, the offline model and the management API on a local
listener. Each test checks the status code, the frames posted and that nothing logged a traceback.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import jwt
import pytest

from selador.deps import get_dependencies

from .conftest import Lambda
from .shapes import load

DISCONNECTS = [
    "ws_disconnect_1000_delete_connection.json",
    "ws_disconnect_1001_client.json",
    "ws_disconnect_1001_idle.json",
    "ws_disconnect_1003_binary.json",
    "ws_disconnect_1005_no_status.json",
    "ws_disconnect_1006_dropped.json",
    "ws_disconnect_1009_too_big.json",
]
VALID_ACTIONS = "invoke, resume, cancel, ping"


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header from ``headers`` (v2) or ``multiValueHeaders`` (v1), case-insensitively."""
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[-1])
    return None


def assert_one_run(frames: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    """accepted first, seq 1, 2, 3… without gaps, exactly one terminal frame, last; returns it."""
    assert frames, "no frames posted"
    assert {f.get("request_id") for f in frames} == {request_id}
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["type"] == "status" and frames[0]["stage"] == "accepted"
    assert frames[0]["run_token"]
    terminal = [f for f in frames if f["type"] in ("result", "error")]
    assert terminal == [frames[-1]]
    return frames[-1]


# ---------------------------------------------------------------------------------- WebSocket


def test_connect_with_a_query_string_records_the_connection(lam: Lambda) -> None:
    event = load("ws_connect_query.json")
    assert lam.invoke(event) == {"statusCode": 200}
    record = get_dependencies().store.get_connection(event["requestContext"]["connectionId"])
    assert record is not None
    assert (record.source_ip, record.stage, record.api_id, record.domain_name) == (
        "203.0.113.17",
        "production",
        "w5k8cq2n1d",
        "w5k8cq2n1d.execute-api.us-west-2.amazonaws.com",
    )
    assert record.user_agent == event["requestContext"]["identity"]["userAgent"]
    assert record.connected_at == event["requestContext"]["connectedAt"] / 1000
    assert record.principal is None
    assert lam.frames() == []  # nothing can be posted during $connect (410 in AWS)
    lam.no_traceback()


def test_connect_without_query_string_or_user_agent_is_accepted(lam: Lambda) -> None:
    event = load("ws_connect_plain.json")
    assert lam.invoke(event) == {"statusCode": 200}
    record = get_dependencies().store.get_connection(event["requestContext"]["connectionId"])
    assert record is not None and record.user_agent == ""
    lam.no_traceback()


def test_connect_with_an_authorizer_context_is_accepted(lam: Lambda) -> None:
    event = load("ws_connect_authorizer.json")
    assert lam.invoke(event) == {"statusCode": 200}
    assert get_dependencies().store.get_connection(event["requestContext"]["connectionId"]) is not None
    lam.no_traceback()


def test_ping_answers_one_pong_with_the_request_id(lam: Lambda) -> None:
    event = load("ws_message_ping.json")
    lam.invoke(load("ws_connect_query.json"))
    assert lam.invoke(event) == {"statusCode": 200}
    (pong,) = lam.frames(event["requestContext"]["connectionId"])
    assert pong["type"] == "pong" and pong["request_id"] == "conf-ping-1"
    assert isinstance(pong["timestamp"], float)
    lam.no_traceback()


def test_invoke_posts_accepted_then_the_answer_then_one_result(lam: Lambda) -> None:
    event = load("ws_message_invoke.json")
    connection_id = event["requestContext"]["connectionId"]
    lam.invoke(load("ws_connect_query.json"))
    assert lam.invoke(event) == {"statusCode": 200}
    frames = lam.frames(connection_id)
    result = assert_one_run(frames, "conf-ws-1")
    assert result["type"] == "result"
    data = result["data"]
    assert data["success"] is True and data["stop_reason"] == "end_turn"
    assert data["query_type"] == "zoning" and data["model"] == "offline"
    answer = "".join(f["content"] for f in frames if f["type"] == "delta")
    assert answer and data["content"] == answer
    assert "FAR" in answer or "floor area" in answer.lower()
    lam.no_traceback()


def test_an_unknown_action_answers_an_error_listing_the_actions(lam: Lambda) -> None:
    event = load("ws_message_unknown_action.json")
    lam.invoke(load("ws_connect_query.json"))
    assert lam.invoke(event) == {"statusCode": 200}
    (error,) = lam.frames(event["requestContext"]["connectionId"])
    assert error["type"] == "error" and error["code"] == "unknown_action"
    assert error["error"] == f"unknown action 'chat': valid actions are {VALID_ACTIONS}"
    assert error["request_id"] == "conf-chat-1" and "seq" not in error
    lam.no_traceback()


def test_a_body_that_is_not_json_answers_bad_request_saying_so(lam: Lambda) -> None:
    event = load("ws_message_malformed.json")
    lam.invoke(load("ws_connect_query.json"))
    assert lam.invoke(event) == {"statusCode": 200}
    (error,) = lam.frames(event["requestContext"]["connectionId"])
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert error["error"].startswith("message must be JSON: ")
    assert "seq" not in error and "request_id" not in error
    lam.no_traceback()


def test_an_invalid_question_answers_bad_request_naming_the_field(lam: Lambda) -> None:
    event = load("ws_message_invoke_invalid.json")
    lam.invoke(load("ws_connect_query.json"))
    assert lam.invoke(event) == {"statusCode": 200}
    (error,) = lam.frames(event["requestContext"]["connectionId"])
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert error["error"] == "question: must not be empty or only whitespace"
    assert error["request_id"] == "conf-bad-1" and "seq" not in error
    lam.no_traceback()


def test_a_run_on_an_authorized_connection_belongs_to_the_authorizers_principal(lam: Lambda) -> None:
    connect, invoke = load("ws_connect_authorizer.json"), load("ws_message_invoke_authorizer.json")
    connection_id = invoke["requestContext"]["connectionId"]
    lam.invoke(connect)
    assert lam.invoke(invoke) == {"statusCode": 200}
    frames = lam.frames(connection_id)
    assert assert_one_run(frames, "conf-auth-1")["data"]["success"] is True

    # The same principal on a new connection (a second tab) may resume without the run token:
    # API Gateway puts the authorizer's result on every event of an authorized connection.
    resume = load("ws_message_invoke_authorizer.json")
    resume["requestContext"] |= {"routeKey": "resume", "connectionId": "9zQm2Xc4Vb7Nn1A="}
    resume["body"] = json.dumps({"action": "resume", "request_id": "conf-auth-1"})
    assert lam.invoke(resume) == {"statusCode": 200}
    assert lam.frames("9zQm2Xc4Vb7Nn1A=") == frames

    # Anyone else, without the token, is told there is no such run.
    stranger = load("ws_message_invoke_authorizer.json")
    del stranger["requestContext"]["authorizer"]
    stranger["requestContext"] |= {"routeKey": "resume", "connectionId": "Qw3Er5Ty7Ui9Op0="}
    stranger["body"] = json.dumps({"action": "resume", "request_id": "conf-auth-1"})
    lam.invoke(stranger)
    (refused,) = lam.frames("Qw3Er5Ty7Ui9Op0=")
    assert refused["code"] == "unknown_run"
    lam.no_traceback()


@pytest.mark.parametrize("name", DISCONNECTS)
def test_disconnect_with_each_close_code_forgets_the_connection(lam: Lambda, name: str) -> None:
    event = load(name)
    connection_id = event["requestContext"]["connectionId"]
    assert lam.invoke(load("ws_connect_query.json")) == {"statusCode": 200}
    assert get_dependencies().store.get_connection(connection_id) is not None
    assert lam.invoke(event) == {"statusCode": 200}
    assert get_dependencies().store.get_connection(connection_id) is None
    assert lam.frames() == []
    lam.no_traceback()


def test_disconnect_of_an_unknown_connection_is_answered_too(lam: Lambda) -> None:
    # $connect delivery and $disconnect delivery are both best effort: either may come alone.
    assert lam.invoke(load("ws_disconnect_1005_no_status.json")) == {"statusCode": 200}
    lam.no_traceback()


# ---------------------------------------------------------------------------------- HTTP API v2


def test_http_invoke_with_jwt_claims_answers_the_result_and_the_user_owns_the_run(lam: Lambda) -> None:
    response = lam.invoke(load("http_v2_invoke_jwt.json"))
    assert response["statusCode"] == 200, response
    assert header(response, "content-type") == "application/json"
    answer = body(response)
    assert answer["request_id"] == "conf-http-1"
    assert answer["data"]["success"] is True and answer["data"]["query_type"] == "zoning"

    # The claims' sub owns the run: the same user reads it without the run token...
    status = lam.invoke(load("http_v2_run_status_jwt.json"))
    assert status["statusCode"] == 200, status
    state = body(status)
    assert state["status"] == "succeeded" and state["result"] == answer["data"]
    # ...another user is told there is no such run.
    other = load("http_v2_run_status_jwt.json")
    other["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "someone-else"
    refused = lam.invoke(other)
    assert refused["statusCode"] == 404 and body(refused)["code"] == "unknown_run"
    lam.no_traceback()


def test_http_invoke_with_jwt_claims_when_the_function_checks_the_token_too(
    lam: Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As deployed: AUTH_MODE=jwt, the function verifies the same bearer token the authorizer did.
    event = load("http_v2_invoke_jwt.json")
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    secret = "conformance-secret-0123456789abcdef-0123456789"
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_HS256_SECRET", secret)
    monkeypatch.setenv("AUTH_ISSUER", claims["iss"])
    monkeypatch.setenv("AUTH_AUDIENCE", claims["aud"])
    now = int(time.time())
    token = jwt.encode(
        {"sub": claims["sub"], "iss": claims["iss"], "aud": claims["aud"], "iat": now, "exp": now + 300},
        secret,
        algorithm="HS256",
    )
    event["headers"]["authorization"] = f"Bearer {token}"
    response = lam.invoke(event)
    assert response["statusCode"] == 200, response
    assert body(response)["data"]["success"] is True

    # The fixture's own bearer token is not signed with this secret: refused, with a challenge.
    refused = lam.invoke(load("http_v2_invoke_jwt.json"))
    assert refused["statusCode"] == 403 and body(refused)["code"] == "forbidden"
    assert header(refused, "www-authenticate") == 'Bearer error="invalid_token"'
    lam.no_traceback()


def test_health_answers_ok_without_an_authorizer(lam: Lambda) -> None:
    response = lam.invoke(load("http_v2_health.json"))
    assert response["statusCode"] == 200
    assert body(response) == {"status": "ok", "version": body(response)["version"], "model_provider": "local"}
    lam.no_traceback()


def _wait_for_run(lam: Lambda, request_id: str, token: str) -> dict[str, Any]:
    status = load("http_v2_run_status_jwt.json")
    del status["requestContext"]["authorizer"]
    del status["headers"]["authorization"]
    status["rawPath"] = status["requestContext"]["http"]["path"] = f"/runs/{request_id}"
    status["pathParameters"] = {"request_id": request_id}
    status["headers"]["x-run-token"] = token
    deadline = time.monotonic() + 20
    while True:
        response = lam.invoke(status)
        assert response["statusCode"] == 200, response
        state = body(response)
        if state["status"] != "running" or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_anonymous_run_start_answers_202_with_a_token_and_a_location(lam: Lambda) -> None:
    response = lam.invoke(load("http_v2_runs_anonymous.json"))
    assert response["statusCode"] == 202, response
    started = body(response)
    assert started["request_id"] == "conf-run-1" and started["status"] == "running"
    assert started["run_token"]
    assert header(response, "location") == "/runs/conf-run-1"
    state = _wait_for_run(lam, "conf-run-1", started["run_token"])
    assert state["status"] == "succeeded" and state["result"]["success"] is True
    lam.no_traceback()


# ---------------------------------------------------------------------------------- REST API v1


def test_rest_v1_invoke_is_answered_like_the_http_api(lam: Lambda) -> None:
    response = lam.invoke(load("rest_v1_invoke.json"))
    assert response["statusCode"] == 200, response
    assert header(response, "content-type") == "application/json"
    answer = body(response)
    assert answer["request_id"] == "conf-rest-1" and answer["data"]["success"] is True
    lam.no_traceback()


def test_rest_v1_health_answers_ok(lam: Lambda) -> None:
    response = lam.invoke(load("rest_v1_health.json"))
    assert response["statusCode"] == 200
    assert body(response)["status"] == "ok"
    lam.no_traceback()


def test_rest_v1_cognito_claims_make_the_caller_the_runs_owner(lam: Lambda) -> None:
    started = lam.invoke(load("rest_v1_runs_cognito.json"))
    assert started["statusCode"] == 202, started
    # The caller's claims find the run, without its token; the token alone does not (it is theirs).
    deadline = time.monotonic() + 20
    while True:  # until the run ends, so it ends inside this test
        status = lam.invoke(load("rest_v1_run_status_cognito.json"))
        assert status["statusCode"] == 200, status
        if body(status)["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert body(status)["status"] == "succeeded"
    anonymous = load("rest_v1_run_status_cognito.json")
    del anonymous["requestContext"]["authorizer"]
    anonymous["headers"]["X-Run-Token"] = body(started)["run_token"]
    assert lam.invoke(anonymous)["statusCode"] == 404


# ---------------------------------------------------------------------------------- SQS (failed jobs)


class _QueuedJobs:
    """A Lambda client that accepts every hand-off and keeps the job events (they never run)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.payloads.append(json.loads(kwargs["Payload"]))
        return {"StatusCode": 202}


def _for_run(event: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The fixture's record naming ``run_id`` (body and its MD5 rewritten, as SQS would have them)."""
    record = event["Records"][0]
    body = json.loads(record["body"])
    body["requestPayload"]["selador_job"]["run_id"] = run_id
    record["body"] = json.dumps(body, separators=(",", ":"))
    record["md5OfBody"] = hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
    return event


def test_a_failed_job_record_for_an_unknown_run_is_consumed_quietly(lam: Lambda) -> None:
    response = lam.invoke(load("sqs_failed_job_retries_exhausted.json"))
    assert response == {"batchItemFailures": []}
    assert lam.frames() == []
    lam.no_traceback()


def test_a_failed_job_record_ends_its_run_with_one_error_frame_to_the_listener(
    lam: Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selador.deps import Dependencies, use_dependencies
    from selador.settings import get_settings

    monkeypatch.setenv("RUN_MODE", "async")
    jobs = _QueuedJobs()
    invoke = load("ws_message_invoke.json")
    connection = invoke["requestContext"]["connectionId"]
    with use_dependencies(Dependencies(settings=get_settings(), lambda_client=jobs)):
        assert lam.invoke(invoke) == {"statusCode": 200}
        run_id = jobs.payloads[0]["selador_job"]["run_id"]
        # The client is still connected when Lambda gives up on the job.
        lam.listener.open_connections.add(connection)
        failed = _for_run(load("sqs_failed_job_retries_exhausted.json"), run_id)
        assert lam.invoke(failed) == {"batchItemFailures": []}
        assert lam.invoke(failed) == {"batchItemFailures": []}  # SQS delivers at least once
        run = get_dependencies().store.get_run(run_id)
    error = assert_one_run(lam.frames(connection), "conf-ws-1")
    assert error["seq"] == 2 and error["code"] == "internal_error"
    assert "please try again" in error["error"]
    assert run is not None and run.status == "failed"
    lam.no_traceback()
