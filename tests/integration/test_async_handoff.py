"""RUN_MODE=async: the invoke route hands the run to a job; a run executes at most once and ends once."""

from __future__ import annotations

import json

import boto3
from botocore.stub import ANY, Stubber

from selador.deps import Dependencies, use_dependencies
from selador.handler import lambda_handler
from selador.local.events import message_event, new_connection_id
from selador.settings import get_settings


def _deps_with_lambda(monkeypatch, captured: list[bytes], status: int = 202):
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    client = boto3.client("lambda", region_name="us-west-2")
    stub = Stubber(client)
    stub.add_response(
        "invoke",
        {"StatusCode": status},
        {"FunctionName": "main-lambda", "InvocationType": "Event", "Payload": ANY},
    )
    stub.activate()
    # Capture the job payload the route sends, as Lambda would receive it.
    original = client.invoke

    def invoke(**kwargs):
        captured.append(kwargs["Payload"])
        return original(**kwargs)

    client.invoke = invoke
    return Dependencies(settings=get_settings(), lambda_client=client), stub


def test_route_hands_off_and_the_job_streams_once(aws, context, monkeypatch) -> None:
    captured: list[bytes] = []
    deps, stub = _deps_with_lambda(monkeypatch, captured)
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "q-a"})
    with use_dependencies(deps):
        assert lambda_handler(message_event(body, connection_id=conn), context)["statusCode"] == 200
        stub.assert_no_pending_responses()
        # The route itself sent only the accepted status.
        assert [(f["type"], f["seq"]) for f in aws.frames(conn)] == [("status", 1)]

        job_event = json.loads(captured[0])
        assert job_event["selador_job"]["run_id"]
        assert job_event["selador_job"]["request"]["request_id"] == "q-a"

        assert lambda_handler(job_event, context)["statusCode"] == 200
        after_first = aws.frames(conn)
        assert lambda_handler(job_event, context)["statusCode"] == 200  # Lambda redelivers
        after_second = aws.frames(conn)

    assert after_first == after_second  # the duplicate delivery ran nothing
    assert [f["seq"] for f in after_first] == list(range(1, len(after_first) + 1))
    assert after_first[-1]["type"] == "result"
    assert sum(1 for f in after_first if f["type"] in ("result", "error")) == 1


def test_refused_hand_off_ends_with_an_error_frame(aws, context, monkeypatch) -> None:
    deps, _ = _deps_with_lambda(monkeypatch, [], status=500)
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "q-b"})
    with use_dependencies(deps):
        lambda_handler(message_event(body, connection_id=conn), context)
    frames = aws.frames(conn)
    assert [f["type"] for f in frames] == ["status", "error"]
    assert frames[1]["seq"] == 2 and frames[1]["request_id"] == "q-b"


def test_duplicate_request_id_while_running_is_rejected(aws, context, monkeypatch) -> None:
    captured: list[bytes] = []
    deps, _ = _deps_with_lambda(monkeypatch, captured)
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "dup-1"})
    with use_dependencies(deps):
        lambda_handler(message_event(body, connection_id=conn), context)  # running (job not yet run)
        lambda_handler(message_event(body, connection_id=conn, route_key="invoke"), context)
    frames = aws.frames(conn)
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "duplicate_request"
    assert "'dup-1' is already running" in frames[-1]["error"]
    assert "seq" not in frames[-1]  # an error about a message, not a frame of the run


def test_malformed_job_is_a_clean_400(context) -> None:
    response = lambda_handler({"selador_job": {"connection_id": "x"}}, context)
    assert response["statusCode"] == 400


def test_a_finished_request_id_can_be_reused(aws, context, monkeypatch) -> None:
    """Runs are per hand-off (a fresh run_id each): reusing a finished id runs a new query."""
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    captured: list[bytes] = []

    class FakeLambda:
        def invoke(self, **kwargs):
            captured.append(kwargs["Payload"])
            return {"StatusCode": 202}

    deps = Dependencies(settings=get_settings(), lambda_client=FakeLambda())
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "again"})
    with use_dependencies(deps):
        for round_ in range(2):
            lambda_handler(message_event(body, connection_id=conn), context)
            lambda_handler(json.loads(captured[round_]), context)
    frames = aws.frames(conn)
    assert [f["type"] for f in frames].count("result") == 2
    assert (
        json.loads(captured[0])["selador_job"]["run_id"] != json.loads(captured[1])["selador_job"]["run_id"]
    )


def test_duplicate_running_id_is_reported_as_duplicate_even_at_the_concurrency_cap(
    aws, context, monkeypatch
) -> None:
    monkeypatch.setenv("LIMIT_CONCURRENT_PER_CONNECTION", "1")
    captured: list[bytes] = []
    deps, _ = _deps_with_lambda(monkeypatch, captured)
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "cap-1"})
    with use_dependencies(deps):
        lambda_handler(message_event(body, connection_id=conn), context)  # running, holds the only slot
        lambda_handler(message_event(body, connection_id=conn, route_key="invoke"), context)
    assert aws.frames(conn)[-1]["code"] == "duplicate_request"


def test_a_job_arriving_after_a_reported_failed_hand_off_does_not_run(aws, context, monkeypatch) -> None:
    """Route first: the call timed out, the route ended the run; the job Lambda queued anyway stands down."""
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    from botocore.exceptions import ReadTimeoutError

    captured: list[bytes] = []

    class QueuedButTimedOut:
        def invoke(self, **kwargs):
            captured.append(kwargs["Payload"])
            raise ReadTimeoutError(endpoint_url="https://lambda.us-west-2.amazonaws.com")

    deps = Dependencies(settings=get_settings(), lambda_client=QueuedButTimedOut())
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "late"})
    with use_dependencies(deps):
        lambda_handler(message_event(body, connection_id=conn), context)
        before = aws.frames(conn)
        assert [f["type"] for f in before] == ["status", "error"]
        assert lambda_handler(json.loads(captured[0]), context)["statusCode"] == 200
    assert aws.frames(conn) == before  # exactly one terminal frame


def test_a_job_that_starts_before_the_failed_hand_off_returns_owns_the_run(aws, context, monkeypatch) -> None:
    """Job first: Lambda started the job while the route's Invoke call was still failing.

    The route must not end the run under the job (no second terminal frame with a seq the job
    used, no slot or claim released while the job runs).
    """
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    monkeypatch.setenv("LIMIT_CONCURRENT_PER_CONNECTION", "1")
    from botocore.exceptions import ReadTimeoutError

    class JobRunsThenTheCallTimesOut:
        def invoke(self, **kwargs):
            job = json.loads(kwargs["Payload"])
            assert lambda_handler(job, context)["statusCode"] == 200
            raise ReadTimeoutError(endpoint_url="https://lambda.us-west-2.amazonaws.com")

    deps = Dependencies(settings=get_settings(), lambda_client=JobRunsThenTheCallTimesOut())
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "early"})
    with use_dependencies(deps):
        lambda_handler(message_event(body, connection_id=conn), context)
    frames = aws.frames(conn)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    terminals = [f for f in frames if f["type"] in ("result", "error")]
    assert len(terminals) == 1 and terminals[0]["type"] == "result" and terminals[0] is frames[-1]
    # The job ended the run and gave back its slot: the next question is admitted.
    with use_dependencies(Dependencies(settings=get_settings(), lambda_client=_AcceptingLambda())):
        lambda_handler(message_event(body.replace("early", "next"), connection_id=conn), context)
    assert aws.frames(conn)[-1]["type"] == "status"  # accepted, not rate_limited


class _AcceptingLambda:
    def invoke(self, **kwargs):
        return {"StatusCode": 202}


def test_a_session_question_is_handed_off_without_its_session_token(aws, context, monkeypatch) -> None:
    captured: list[bytes] = []
    deps, stub = _deps_with_lambda(monkeypatch, captured)
    conn = new_connection_id()
    first = {
        "action": "invoke",
        "question": "What is the FAR in LR2?",
        "request_id": "s-1",
        "session_id": "new",
    }
    with use_dependencies(deps):
        lambda_handler(message_event(json.dumps(first), connection_id=conn), context)
        stub.assert_no_pending_responses()
        accepted = aws.frames(conn)[0]
        job_event = json.loads(captured[0])
        # The token is the caller's secret for every conversation it owns: not in the job event.
        assert accepted["session_token"] and accepted["session_token"] not in captured[0].decode()
        assert job_event["selador_job"]["request"].get("session_token") is None
        assert job_event["selador_job"]["request"]["session_id"] == "new"
        assert lambda_handler(job_event, context)["statusCode"] == 200
    end = aws.frames(conn)[-1]
    assert end["type"] == "result" and end["data"]["session_id"] == accepted["session_id"]
