"""Conversations through lambda_handler, with DynamoDB (sessions included) and @connections under moto.

A follow-up sees the thread on either API, ownership is by principal or session token, one
question runs at a time per session, the HTTP session routes list, read and erase, and a turn
that failed is not part of the conversation.
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


def send(context: Any, conn: str, **message: Any) -> None:
    event = message_event(json.dumps(message), connection_id=conn)
    assert lambda_handler(event, context)["statusCode"] == 200


def ask(
    aws: Aws, context: Any, question: str, conn: str | None = None, **fields: Any
) -> list[dict[str, Any]]:
    """Invoke (inline: the run ends inside the call) and return this question's frames."""
    conn = conn or new_connection_id()
    before = len(aws.frames(conn))
    request_id = fields.pop("request_id", f"q-{time.monotonic_ns()}")
    send(
        context,
        conn,
        action="invoke",
        question=question,
        request_id=request_id,
        query_type="zoning",
        **fields,
    )
    return [f for f in aws.frames(conn)[before:] if f.get("request_id") == request_id]


def http(
    context: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    **headers: str,
) -> tuple[int, Any]:
    event = http_v2_event(
        method,
        path,
        body=None if body is None else json.dumps(body),
        headers={**JSON, **headers},
        query=query,
    )
    response = lambda_handler(event, context)
    text = response.get("body") or ""
    return response["statusCode"], json.loads(text) if text else None


def _items(aws: Aws) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=aws.store.table_name)["Items"]


def test_a_follow_up_sees_the_thread_and_every_frame_names_the_session(aws: Aws, context: Any) -> None:
    first = ask(aws, context, "What is the FAR in LR2?", session_id="new")
    accepted, result = first[0], first[-1]
    session_id, session_token = accepted["session_id"], accepted["session_token"]
    assert session_id.startswith("s-") and session_token.startswith("st1.")
    assert all(f["session_id"] == session_id for f in first)
    assert result["type"] == "result" and result["data"]["session_id"] == session_id

    follow = ask(aws, context, "And in LR3?", session_id=session_id, session_token=session_token)
    assert follow[0]["session_id"] == session_id and follow[0]["session_token"] == session_token
    answer = follow[-1]["data"]["content"]
    assert follow[-1]["data"]["success"] is True
    assert "LR3" in answer and "FAR" in answer.upper(), answer

    # Without the question in a session, the same words have no thread to follow.
    alone = ask(aws, context, "And in LR3?")
    assert "session_id" not in alone[-1] and "session_id" not in alone[-1]["data"]


def test_the_id_without_its_token_is_a_new_empty_session(aws: Aws, context: Any) -> None:
    first = ask(aws, context, "Tell me the FAR for LR2 on Capitol Hill, please", session_id="shared-name")
    token_a = first[0]["session_token"]
    other = ask(aws, context, "What did I ask first?", session_id="shared-name")
    token_b = other[0]["session_token"]
    assert token_b != token_a and other[0]["session_id"] == "shared-name"
    assert "Capitol Hill" not in other[-1]["data"]["content"]
    # A made-up token owns nothing: it is replaced, not adopted.
    forged = ask(aws, context, "Hello", session_id="mine", session_token="st1." + "A" * 32)
    assert forged[0]["session_token"] not in ("st1." + "A" * 32, token_a, token_b)
    # One token owns every session started with it.
    ask(aws, context, "What is the height limit in NC2?", session_id="second", session_token=token_a)
    status, listing = http(context, "GET", "/sessions", **{"x-session-token": token_a})
    assert status == 200 and {s["session_id"] for s in listing["sessions"]} == {"shared-name", "second"}


def test_http_and_websocket_continue_each_others_sessions(aws: Aws, context: Any) -> None:
    status, body = http(
        context,
        "POST",
        "/invoke",
        body={"question": "What is the FAR in LR2?", "query_type": "zoning", "session_id": "new"},
    )
    assert status == 200, body
    session_id, session_token = body["session_id"], body["session_token"]
    assert body["data"]["session_id"] == session_id
    frames = ask(aws, context, "And in LR3?", session_id=session_id, session_token=session_token)
    assert "LR3" in frames[-1]["data"]["content"]

    status, started = http(
        context,
        "POST",
        "/runs",
        body={"question": "What did I ask first?", "session_id": session_id},
        **{"x-session-token": session_token},
    )
    assert status == 202 and started["session_id"] == session_id
    deadline = time.monotonic() + 30
    while True:
        status, run = http(
            context, "GET", f"/runs/{started['request_id']}", **{"x-run-token": started["run_token"]}
        )
        if run["status"] != "running":
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "What is the FAR in LR2?" in run["result"]["content"]

    status, transcript = http(context, "GET", f"/sessions/{session_id}", **{"x-session-token": session_token})
    assert status == 200
    assert [t["question"] for t in transcript["turns"]] == [
        "What is the FAR in LR2?",
        "And in LR3?",
        "What did I ask first?",
    ]
    assert all(t["agent"] and t["answer"] and t["created_at"].endswith("Z") for t in transcript["turns"])


def test_principals_cannot_see_or_continue_each_others_sessions(
    aws: Aws, context: Any, jwt_mode: None
) -> None:
    alice = connect(context, sub="alice")
    first = ask(
        aws, context, "Tell me the FAR for LR2 on Capitol Hill, please", conn=alice, session_id="plans"
    )
    assert "session_token" not in first[0]  # a principal owns its sessions: no token
    bob = connect(context, sub="bob")
    theirs = ask(aws, context, "What did I ask first?", conn=bob, session_id="plans")
    assert "Capitol Hill" not in theirs[-1]["data"]["content"]

    bearer = {"authorization": f"Bearer {token(sub='bob')}"}
    status, listing = http(context, "GET", "/sessions", **bearer)
    assert status == 200 and [s["turns"] for s in listing["sessions"]] == [1]
    status, transcript = http(context, "GET", "/sessions/plans", **bearer)
    assert transcript["turns"][0]["question"] == "What did I ask first?"
    alice_bearer = {"authorization": f"Bearer {token(sub='alice')}"}
    status, transcript = http(context, "GET", "/sessions/plans", **alice_bearer)
    assert transcript["turns"][0]["question"] == "Tell me the FAR for LR2 on Capitol Hill, please"
    # Alice continues on another connection, without any token but her own.
    again = ask(aws, context, "And in LR3?", conn=connect(context, sub="alice"), session_id="plans")
    assert "LR3" in again[-1]["data"]["content"]
    assert http(context, "GET", "/sessions/nope", **alice_bearer)[0] == 404


def test_one_question_at_a_time_per_session(aws: Aws, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ask(aws, context, "What is the FAR in LR2?", session_id="busy")
    session_token = first[0]["session_token"]
    # Hold the session's busy guard as a running question would.
    from selador.sessions.service import busy_key, token_owner

    owner = token_owner(session_token)
    assert owner is not None
    claim = aws.store.claim(busy_key(owner, "busy"), 60)
    assert claim is not None
    frames = ask(aws, context, "And in LR3?", session_id="busy", session_token=session_token)
    assert [(f["type"], f.get("code"), "seq" in f) for f in frames] == [("error", "session_busy", False)]
    assert frames[0]["session_id"] == "busy"
    status, body = http(
        context,
        "POST",
        "/runs",
        body={"question": "And in LR3?", "session_id": "busy", "session_token": session_token},
    )
    assert status == 409 and body["code"] == "session_busy"
    assert http(context, "DELETE", "/sessions/busy", **{"x-session-token": session_token})[0] == 409
    aws.store.release(busy_key(owner, "busy"), claim)
    # Another session of the same owner was never blocked, and the guard is free again.
    assert ask(aws, context, "Hi", session_id="other", session_token=session_token)[-1]["type"] == "result"
    assert (
        ask(aws, context, "And in LR3?", session_id="busy", session_token=session_token)[-1]["type"]
        == "result"
    )


def test_delete_erases_everything_stored_of_the_session(aws: Aws, context: Any) -> None:
    first = ask(aws, context, "What is the FAR in LR2?", session_id="erase-me")
    session_token = first[0]["session_token"]
    ask(aws, context, "And in LR3?", session_id="erase-me", session_token=session_token)
    ask(aws, context, "Keep this one", session_id="keep-me", session_token=session_token)
    record = aws.store.get_session(_owner(session_token), "erase-me")
    assert record is not None and record.turns == 2
    generation = record.generation

    def mentions() -> list[dict[str, Any]]:
        # Run records and frame logs are not the conversation: they expire RUN_LOG_TTL_SECONDS
        # after each answer, as for any question (docs/protocol.md, "Conversations").
        return [
            i
            for i in _items(aws)
            if not i["pk"]["S"].startswith(("run#", "frame#", "runname#"))
            and (generation in json.dumps(i) or "erase-me" in json.dumps(i))
        ]

    assert mentions(), "the session should be stored before it is deleted"
    status, body = http(context, "DELETE", "/sessions/erase-me", **{"x-session-token": session_token})
    assert status == 204 and body is None
    assert mentions() == []
    assert http(context, "GET", "/sessions/erase-me", **{"x-session-token": session_token})[0] == 404
    assert http(context, "DELETE", "/sessions/erase-me", **{"x-session-token": session_token})[0] == 404
    status, listing = http(context, "GET", "/sessions", **{"x-session-token": session_token})
    assert [s["session_id"] for s in listing["sessions"]] == ["keep-me"]


def _owner(session_token: str) -> str:
    from selador.sessions.service import token_owner

    owner = token_owner(session_token)
    assert owner is not None
    return owner


def test_session_routes_refuse_callers_they_cannot_identify(aws: Aws, context: Any) -> None:
    status, body = http(context, "GET", "/sessions")
    assert status == 401 and body["code"] == "unauthorized"
    status, body = http(context, "GET", "/sessions", **{"x-session-token": "garbage"})
    assert status == 200 and body == {"sessions": [], "next": None}
    first = ask(aws, context, "Hello", session_id="one")
    mine = {"x-session-token": first[0]["session_token"]}
    assert http(context, "GET", "/sessions", query={"limit": "0"}, **mine)[0] == 400
    assert http(context, "GET", "/sessions", query={"limit": "many"}, **mine)[0] == 400
    status, body = http(context, "GET", "/sessions", query={"cursor": "%%%"}, **mine)
    assert status == 400 and body["code"] == "bad_request"
    status, body = http(context, "GET", "/sessions", query={"limit": "1"}, **mine)
    assert status == 200 and len(body["sessions"]) == 1 and body["next"] is None
    assert http(context, "PUT", "/sessions/x", **{"x-session-token": "t"})[0] == 405


def test_a_failed_turn_is_not_part_of_the_conversation(
    aws: Aws, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ask(aws, context, "What is the FAR in LR2?", session_id="flaky")
    session_token = first[0]["session_token"]
    from selador.agents import orchestrator

    original = orchestrator.Orchestrator._result_data

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom after the messages were stored")

    monkeypatch.setattr(orchestrator.Orchestrator, "_result_data", fail)
    failed = ask(
        aws, context, "What is the height limit in NC2?", session_id="flaky", session_token=session_token
    )
    assert failed[-1]["type"] == "error"
    monkeypatch.setattr(orchestrator.Orchestrator, "_result_data", original)
    last = ask(aws, context, "What did I ask before?", session_id="flaky", session_token=session_token)
    content = last[-1]["data"]["content"]
    assert "What is the FAR in LR2?" in content and "NC2" not in content
    _status, transcript = http(context, "GET", "/sessions/flaky", **{"x-session-token": session_token})
    assert [t["question"] for t in transcript["turns"]] == [
        "What is the FAR in LR2?",
        "What did I ask before?",
    ]


def test_concurrent_questions_in_one_session_run_one_at_a_time(aws: Aws, context: Any) -> None:
    first = ask(aws, context, "What is the FAR in LR2?", session_id="race")
    session_token = first[0]["session_token"]
    conns = [new_connection_id() for _ in range(4)]
    barrier = threading.Barrier(len(conns))
    results: dict[str, list[dict[str, Any]]] = {}

    def go(conn: str) -> None:
        barrier.wait()
        results[conn] = ask(
            aws, context, "And in LR3?", conn=conn, session_id="race", session_token=session_token
        )

    threads = [threading.Thread(target=go, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ends = [frames[-1] for frames in results.values()]
    answered = [f for f in ends if f["type"] == "result"]
    busy = [f for f in ends if f.get("code") == "session_busy"]
    assert len(answered) >= 1 and len(answered) + len(busy) == len(conns)
    _status, transcript = http(context, "GET", "/sessions/race", **{"x-session-token": session_token})
    assert len(transcript["turns"]) == 1 + len(answered)
