"""Durable runs through lambda_handler, with DynamoDB and @connections under moto.

Resume replays the log byte for byte, cancel ends a run with one cancelled result, foreign and
unknown runs are indistinguishable, and the HTTP run endpoints see the same runs.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from selador.handler import lambda_handler
from selador.local.events import http_v2_event, message_event, new_connection_id

from .conftest import Aws, connect, token

JSON = {"content-type": "application/json"}
QUESTION = "What is the FAR in LR2?"


def send(context: Any, conn: str, **message: Any) -> None:
    assert (
        lambda_handler(message_event(json.dumps(message), connection_id=conn), context)["statusCode"] == 200
    )


def ask(aws: Aws, context: Any, request_id: str, **fields: Any) -> tuple[str, list[dict[str, Any]]]:
    """Invoke on a fresh anonymous connection (inline: the run ends inside the call)."""
    conn = new_connection_id()
    send(context, conn, action="invoke", question=QUESTION, request_id=request_id, **fields)
    return conn, aws.frames(conn)


def run_frames(frames: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("request_id") == request_id and "seq" in f]


def test_accepted_carries_an_unguessable_run_token(aws: Aws, context: Any) -> None:
    _, frames = ask(aws, context, "t-1")
    _, other = ask(aws, context, "t-1")
    token_a, token_b = frames[0]["run_token"], other[0]["run_token"]
    assert frames[0]["stage"] == "accepted" and frames[0]["seq"] == 1
    assert token_a != token_b and token_a.startswith("rt1.")
    assert len(token_a.rsplit(".", 1)[1]) >= 22  # ≥ 128 bits of base64url randomness


def test_resume_of_a_finished_run_replays_it_byte_for_byte(aws: Aws, context: Any) -> None:
    conn, frames = ask(aws, context, "r-1")
    assert frames[-1]["type"] == "result"
    later = new_connection_id()
    send(context, later, action="resume", request_id="r-1", run_token=frames[0]["run_token"])
    assert aws.raw(later) == aws.raw(conn)  # the very bytes that were posted the first time


def test_resume_after_a_seq_replays_only_what_follows(aws: Aws, context: Any) -> None:
    _, frames = ask(aws, context, "r-2")
    later = new_connection_id()
    send(context, later, action="resume", request_id="r-2", after_seq=3, run_token=frames[0]["run_token"])
    replayed = aws.frames(later)
    assert [f["seq"] for f in replayed] == [f["seq"] for f in frames[3:]]
    assert replayed == frames[3:]


def test_unknown_foreign_and_tokenless_runs_get_the_same_answer(aws: Aws, context: Any) -> None:
    _, frames = ask(aws, context, "own")
    _, other = ask(aws, context, "other")
    good, other_token = frames[0]["run_token"], other[0]["run_token"]
    attempts = [
        {"request_id": "own"},  # anonymous, no token
        {"request_id": "own", "run_token": good[:-2] + ("AA" if not good.endswith("AA") else "BB")},
        {"request_id": "own", "run_token": other_token},  # a real token of another run
        {"request_id": "own", "run_token": "rt1.nope.nope"},
        {"request_id": "own", "run_token": "garbage"},
        {"request_id": "never-existed", "run_token": good},
    ]
    answers = []
    for attempt in attempts:
        for action in ("resume", "cancel"):
            conn = new_connection_id()
            send(context, conn, action=action, **attempt)
            (frame,) = aws.frames(conn)
            assert frame["type"] == "error" and frame["code"] == "unknown_run" and "seq" not in frame
            answers.append(frame["error"].replace("to resume", "to X").replace("to cancel", "to X"))
            answers[-1] = answers[-1].replace(repr(attempt["request_id"]), "ID")
    assert len(set(answers)) == 1, set(answers)


def test_cancel_of_a_finished_run_is_not_running(aws: Aws, context: Any) -> None:
    _, frames = ask(aws, context, "done")
    conn = new_connection_id()
    send(context, conn, action="cancel", request_id="done", run_token=frames[0]["run_token"])
    (frame,) = aws.frames(conn)
    assert (frame["type"], frame["code"], frame["request_id"]) == ("error", "not_running", "done")
    assert "seq" not in frame


def test_malformed_commands_are_bad_requests(aws: Aws, context: Any) -> None:
    for message, expected in [
        ({"action": "resume"}, "request_id: is required"),
        ({"action": "resume", "request_id": "x", "after_seq": -1}, "after_seq"),
        ({"action": "resume", "request_id": "x", "after_seq": "3"}, "after_seq: must be a whole number"),
        ({"action": "cancel", "request_id": "x", "run_token": 5}, "run_token: must be a string"),
    ]:
        conn = new_connection_id()
        send(context, conn, **message)
        (frame,) = aws.frames(conn)
        assert frame["code"] == "bad_request" and expected in frame["error"], frame


def test_cancel_mid_answer_ends_with_a_cancelled_result_and_nothing_after(
    aws: Aws, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_MODEL_TOKEN_DELAY_MS", "20")
    monkeypatch.setenv("RUN_POLL_MS", "20")
    conn = new_connection_id()
    runner = threading.Thread(
        target=send,
        args=(context, conn),
        kwargs={"action": "invoke", "question": QUESTION, "request_id": "c-1"},
    )
    runner.start()
    deadline = time.monotonic() + 30
    while not any(f["type"] == "delta" for f in aws.frames(conn)):
        assert time.monotonic() < deadline, "no answer text"
        time.sleep(0.01)
    token_ = aws.frames(conn)[0]["run_token"]
    send(context, conn, action="cancel", request_id="c-1", run_token=token_)
    runner.join(30)
    assert not runner.is_alive()
    frames = run_frames(aws.frames(conn), "c-1")
    terminal = frames[-1]
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert sum(f["type"] in ("result", "error") for f in frames) == 1
    assert terminal["type"] == "result"
    assert terminal["data"]["success"] is False and terminal["data"]["stop_reason"] == "cancelled"
    assert terminal["data"]["content"] == "".join(f["content"] for f in frames if f["type"] == "delta")
    # Cancelling again: idempotent, the run has ended.
    send(context, conn, action="cancel", request_id="c-1", run_token=token_)
    assert aws.frames(conn)[-1]["code"] == "not_running"


def test_a_run_whose_executor_died_is_ended_by_whoever_finds_it(aws: Aws, context: Any) -> None:
    """Lambda killed the job (or it never started): after the lease, a reader ends the run."""
    _, frames = ask(aws, context, "dead")
    from selador.runs.model import token_run_id

    run_id = token_run_id(frames[0]["run_token"])
    assert run_id is not None
    # Rewind the run to "running, lease over, no terminal frame" as a dead executor leaves it.
    record = aws.store.get_run(run_id)
    assert record is not None
    aws.dynamodb.delete_item(
        TableName=aws.store.table_name, Key={"pk": {"S": f"frame#{run_id}#{record.frames}"}}
    )
    assert aws.store.update_run(run_id, {"status": "running", "lease_until": time.time() - 1}) is not None

    conn = new_connection_id()
    send(context, conn, action="resume", request_id="dead", run_token=frames[0]["run_token"])
    replay = aws.frames(conn)
    assert replay[-1]["type"] == "error" and replay[-1]["code"] == "internal_error"
    assert replay[-1]["seq"] == record.frames  # the next seq after what the dead executor logged
    assert aws.store.get_run(run_id).status == "failed"  # type: ignore[union-attr]


def test_a_principal_resumes_its_own_run_without_the_token_and_nobody_else_can(
    aws: Aws, context: Any, jwt_mode: None
) -> None:
    first = connect(context)  # alice
    send(context, first, action="invoke", question=QUESTION, request_id="mine")
    original = aws.raw(first)
    second = connect(context)  # alice again, another device
    send(context, second, action="resume", request_id="mine")
    assert aws.raw(second) == original
    intruder = connect(context, sub="mallory")
    token_ = aws.frames(first)[0]["run_token"]
    for message in ({"request_id": "mine"}, {"request_id": "mine", "run_token": token_}):
        for action in ("resume", "cancel"):
            send(context, intruder, action=action, **message)
            assert aws.frames(intruder)[-1]["code"] == "unknown_run"
    assert all("seq" not in f for f in aws.frames(intruder))


def test_a_principal_cannot_run_one_request_id_twice_at_once(
    aws: Aws, context: Any, jwt_mode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id is unique per user across connections (and the HTTP API), not per connection."""
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    from selador.deps import Dependencies, use_dependencies
    from selador.settings import get_settings

    class Accepting:
        def invoke(self, **kwargs: Any) -> dict[str, int]:
            return {"StatusCode": 202}  # queued; the job has not run yet

    with use_dependencies(Dependencies(settings=get_settings(), lambda_client=Accepting())):
        first, second = connect(context), connect(context)
        send(context, first, action="invoke", question=QUESTION, request_id="once")
        send(context, second, action="invoke", question=QUESTION, request_id="once")
        http = lambda_handler(
            http_v2_event(
                "POST",
                "/runs",
                body=json.dumps({"question": QUESTION, "request_id": "once"}),
                headers={**JSON, "authorization": f"Bearer {token()}"},
            ),
            context,
        )
    (refusal,) = aws.frames(second)
    assert refusal["code"] == "duplicate_request" and "for this user" in refusal["error"]
    assert http["statusCode"] == 409 and json.loads(http["body"])["code"] == "duplicate_request"


# -- HTTP ----------------------------------------------------------------------------------------


def http(
    context: Any, method: str, path: str, *, body: Any = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(
        http_v2_event(
            method, path, body=None if body is None else json.dumps(body), headers={**JSON, **headers}
        ),
        context,
    )
    return response["statusCode"], json.loads(response["body"])


def wait_done(context: Any, request_id: str, run_token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status, body = http(context, "GET", f"/runs/{request_id}", **{"x-run-token": run_token})
        assert status == 200, body
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def test_http_runs_start_read_and_resume_over_websocket(aws: Aws, context: Any) -> None:
    status, started = http(context, "POST", "/runs", body={"question": QUESTION, "request_id": "h-1 ü%41"})
    assert status == 202 and started["status"] == "running"
    # HTTP APIs decode the path before the function sees it: the event carries the id itself.
    done = wait_done(context, "h-1 ü%41", started["run_token"])
    assert done["status"] == "succeeded" and done["request_id"] == "h-1 ü%41"
    _, ws_frames = ask(aws, context, "same-question")
    assert done["result"]["content"] == ws_frames[-1]["data"]["content"]

    conn = new_connection_id()
    send(context, conn, action="resume", request_id="h-1 ü%41", run_token=started["run_token"])
    replay = aws.frames(conn)
    assert [f["seq"] for f in replay] == list(range(1, done["frames"] + 1))
    assert replay[0]["run_token"] == started["run_token"] and replay[-1]["data"] == done["result"]


def test_http_run_errors(aws: Aws, context: Any) -> None:
    status, started = http(context, "POST", "/runs", body={"question": QUESTION, "request_id": "h-2"})
    assert status == 202
    wait_done(context, "h-2", started["run_token"])
    for headers in ({}, {"x-run-token": "rt1.x.y"}):
        assert http(context, "GET", "/runs/h-2", **headers)[1]["code"] == "unknown_run"
        assert http(context, "DELETE", "/runs/h-2", **headers)[0] == 404
    status, body = http(context, "DELETE", "/runs/h-2", **{"x-run-token": started["run_token"]})
    assert (status, body["code"]) == (409, "not_running")
    assert http(context, "PUT", "/runs/h-2")[0] == 405
    assert http(context, "POST", "/runs", body={"question": ""})[0] == 400


def test_http_delete_cancels_a_running_run(aws: Aws, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_MODEL_TOKEN_DELAY_MS", "20")
    monkeypatch.setenv("RUN_POLL_MS", "20")
    status, started = http(context, "POST", "/runs", body={"question": QUESTION, "request_id": "h-3"})
    assert status == 202
    status, body = http(context, "DELETE", "/runs/h-3", **{"x-run-token": started["run_token"]})
    assert (status, body) == (202, {"request_id": "h-3", "status": "cancelling"})
    done = wait_done(context, "h-3", started["run_token"])
    assert done["status"] == "cancelled" and done["result"]["stop_reason"] == "cancelled"


class _QueuedJobs:
    """A Lambda client that accepts hand-offs and keeps them (the jobs run when the test says)."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, int]:
        self.jobs.append(json.loads(kwargs["Payload"]))
        return {"StatusCode": 202}


def test_cancel_of_a_run_whose_job_never_started_ends_it_at_once(
    aws: Aws, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pending past the grace (its hand-off may never run): the cancel itself ends the run."""
    from selador.runs import service

    monkeypatch.setattr(service, "PENDING_GRACE_S", 0.0)
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    monkeypatch.setenv("LIMIT_CONCURRENT_PER_CONNECTION", "1")
    from selador.deps import Dependencies, use_dependencies
    from selador.settings import get_settings

    lam = _QueuedJobs()
    with use_dependencies(Dependencies(settings=get_settings(), lambda_client=lam)):
        conn = new_connection_id()
        send(context, conn, action="invoke", question=QUESTION, request_id="p-1")
        token_ = aws.frames(conn)[0]["run_token"]
        send(context, conn, action="cancel", request_id="p-1", run_token=token_)
        frames = aws.frames(conn)
        assert [(f["type"], f["seq"]) for f in frames] == [("status", 1), ("result", 2)]
        assert frames[1]["data"]["stop_reason"] == "cancelled" and frames[1]["data"]["content"] == ""
        # The job Lambda queued meanwhile finds the run ended and does nothing.
        assert lambda_handler(lam.jobs[0], context)["statusCode"] == 200
        assert aws.frames(conn) == frames
        # The run gave its concurrency slot back: the next question is admitted.
        send(context, conn, action="invoke", question=QUESTION, request_id="p-2")
        assert aws.frames(conn)[-1]["stage"] == "accepted"


def test_cancel_of_a_run_about_to_start_is_left_to_its_executor(
    aws: Aws, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A young pending run: the job that takes it sees the request and ends it, after accepted."""
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    from selador.deps import Dependencies, use_dependencies
    from selador.settings import get_settings

    lam = _QueuedJobs()
    with use_dependencies(Dependencies(settings=get_settings(), lambda_client=lam)):
        conn = new_connection_id()
        send(context, conn, action="invoke", question=QUESTION, request_id="y-1")
        token_ = aws.frames(conn)[0]["run_token"]
        send(context, conn, action="cancel", request_id="y-1", run_token=token_)
        assert [f["type"] for f in aws.frames(conn)] == ["status"]  # nothing yet: no job has run
        assert lambda_handler(lam.jobs[0], context)["statusCode"] == 200
    frames = aws.frames(conn)
    assert frames[-1]["type"] == "result" and frames[-1]["data"]["stop_reason"] == "cancelled"
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))


class _GoneAt:
    """A management API adapter whose connection ``gone`` answers 410."""

    def __init__(self, gone: str, inner: Any) -> None:
        self.gone, self.inner = gone, inner

    def post(self, connection_id: str, data: bytes) -> None:
        from selador.websocket.management import ConnectionGone

        if connection_id == self.gone:
            raise ConnectionGone(connection_id)
        self.inner.post(connection_id, data)


@pytest.mark.parametrize("on_disconnect", ["continue", "cancel"])
def test_a_client_gone_before_the_accepted_frame(
    aws: Aws, context: Any, jwt_mode: None, on_disconnect: str
) -> None:
    """Authenticated owners can find the run by request_id, so it goes on unless asked not to."""
    from selador.deps import Dependencies, use_dependencies
    from selador.settings import get_settings
    from selador.websocket.management import management_api_for

    settings = get_settings()
    conn = connect(context)
    deps = Dependencies(
        settings=settings,
        management_factory=lambda endpoint: _GoneAt(conn, management_api_for(endpoint, settings)),
    )
    with use_dependencies(deps):
        send(context, conn, action="invoke", question=QUESTION, request_id="g-1", on_disconnect=on_disconnect)
    later = connect(context)
    send(context, later, action="resume", request_id="g-1")
    replay = aws.frames(later)
    assert replay[0]["stage"] == "accepted" and replay[-1]["type"] == "result"
    expected = "cancelled" if on_disconnect == "cancel" else "end_turn"
    assert replay[-1]["data"]["stop_reason"] == expected
    assert [f["seq"] for f in replay] == list(range(1, len(replay) + 1))
