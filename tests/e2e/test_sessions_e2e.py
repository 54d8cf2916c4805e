"""Conversations through a real ``selador serve``: the thread is followed across turns, dropped
connections and both APIs; owners cannot reach each other's sessions; one question at a time per
session; ``DELETE`` erases.

The gateway is the template's (process runtime, ``RUN_MODE=async``, the SQLite store on a file
this module chooses, so the erase test can look into it) with the offline responder, whose
follow-up answers come from the zoning table and the calculators: LR2's FAR is 1.4, LR3's 1.8,
and 5,000 sq ft at FAR 1.8 is 9,000 sq ft of floor area.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from selador.protocol import parse_frame

from .apidocs import validate_frame
from .conftest import WAIT, GatewayProcess, signed_token, start_gateway, ws_connect

pytestmark = pytest.mark.e2e

SECRET = "e2e-sessions-secret-0123456789abcdef-012345"
TERMINAL = ("result", "error")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sessions") / "selador.sqlite3"


@pytest.fixture(scope="module")
def gateway(database: Path) -> Iterator[GatewayProcess]:
    """Anonymous gateway; answers slow enough (5 ms a word) to race a second question into one."""
    with start_gateway(
        "--env", "LOCAL_MODEL_TOKEN_DELAY_MS=5", "--env", f"SQLITE_PATH={database}"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    path = tmp_path_factory.mktemp("secured") / "selador.sqlite3"
    with start_gateway(
        "--env",
        "LOCAL_MODEL_TOKEN_DELAY_MS=1",
        "--env",
        f"SQLITE_PATH={path}",
        "--env",
        "AUTH_MODE=jwt",
        "--env",
        f"AUTH_HS256_SECRET={SECRET}",
    ) as running:
        yield running


def user_token(sub: str) -> str:
    """A JWT for ``sub`` signed with :data:`SECRET`."""
    return signed_token(sub, SECRET)


async def ask(ws: Any, question: str, request_id: str, **fields: Any) -> list[dict[str, Any]]:
    """Send ``invoke`` and read this question's frames up to its terminal one (or its refusal)."""
    await ws.send(
        json.dumps(
            {"action": "invoke", "question": question, "query_type": "zoning", "request_id": request_id}
            | fields
        )
    )
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        while True:
            frame = json.loads(await ws.recv())
            validate_frame(frame)
            if frame.get("request_id") != request_id:
                continue
            parse_frame(json.dumps(frame))
            validate_frame(frame)
            frames.append(frame)
            if frame["type"] in TERMINAL:
                return frames


def answer(frames: list[dict[str, Any]]) -> str:
    end = frames[-1]
    assert end["type"] == "result" and end["data"]["success"] is True, end
    return str(end["data"]["content"])


def http(gw: GatewayProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, gw.endpoints.http_url + path, timeout=WAIT, trust_env=False, **kwargs)


async def test_three_turns_follow_the_thread_with_the_tables_figures(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        first = await ask(ws, "What is the FAR in LR2?", "t-1", session_id="new")
        session = {"session_id": first[0]["session_id"], "session_token": first[0]["session_token"]}
        assert all(f["session_id"] == session["session_id"] for f in first)
        assert "1.4" in answer(first)
        second = await ask(ws, "And in LR3?", "t-2", **session)
        assert "LR3" in answer(second) and "1.8" in answer(second)
        third = await ask(ws, "How much floor area is that on a 5,000 sq ft lot?", "t-3", **session)
        assert "9,000" in answer(third), answer(third)
        assert third[-1]["data"]["tool_calls"].get("buildable_area"), third[-1]["data"]
        assert third[-1]["data"]["session_id"] == session["session_id"]


async def test_the_session_continues_on_a_new_connection_after_a_drop(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        first = await ask(ws, "What is the FAR in LR2?", "d-1", session_id="dropped-wifi")
        token = first[0]["session_token"]
    # The first connection is gone (closed mid-conversation); a new one picks the thread up.
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        again = await ask(ws, "And in LR3?", "d-2", session_id="dropped-wifi", session_token=token)
    assert "1.8" in answer(again) and again[0]["session_id"] == "dropped-wifi"


async def test_http_and_websocket_continue_each_others_sessions(gateway: GatewayProcess) -> None:
    started = http(
        gateway,
        "POST",
        "/invoke",
        json={"question": "What is the FAR in LR2?", "query_type": "zoning", "session_id": "new"},
    )
    assert started.status_code == 200, started.text
    body = started.json()
    session_id, token = body["session_id"], body["session_token"]
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        frames = await ask(ws, "And in LR3?", "hw-2", session_id=session_id, session_token=token)
    assert "1.8" in answer(frames)
    third = http(
        gateway,
        "POST",
        "/invoke",
        json={
            "question": "How much floor area is that on a 5,000 sq ft lot?",
            "query_type": "zoning",
            "session_id": session_id,
        },
        headers={"X-Session-Token": token},
    )
    assert third.status_code == 200 and "9,000" in third.json()["data"]["content"], third.text
    transcript = http(gateway, "GET", f"/sessions/{session_id}", headers={"X-Session-Token": token}).json()
    assert [t["question"] for t in transcript["turns"]] == [
        "What is the FAR in LR2?",
        "And in LR3?",
        "How much floor area is that on a 5,000 sq ft lot?",
    ]


async def test_an_anonymous_client_without_the_token_starts_afresh(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        first = await ask(ws, "What is the FAR in LR2?", "a-1", session_id="guessable")
        mine = first[0]["session_token"]
        theirs = await ask(ws, "What did I ask first?", "a-2", session_id="guessable")
    assert theirs[0]["session_token"] != mine
    assert "What is the FAR in LR2?" not in answer(theirs)
    listed = http(gateway, "GET", "/sessions", headers={"X-Session-Token": theirs[0]["session_token"]}).json()
    assert [(s["session_id"], s["turns"]) for s in listed["sessions"]] == [("guessable", 1)]
    assert http(gateway, "GET", "/sessions/guessable").status_code == 401


async def test_two_principals_cannot_see_or_continue_each_others_sessions(secured: GatewayProcess) -> None:
    alice, bob = user_token("alice"), user_token("bob")
    url = secured.endpoints.ws_url
    async with ws_connect(f"{url}?token={alice}") as ws:
        first = await ask(ws, "What is the FAR in LR2?", "p-1", session_id="project")
        assert "session_token" not in first[0]
    async with ws_connect(f"{url}?token={bob}") as ws:
        other = await ask(ws, "What did I ask first?", "p-2", session_id="project")
    assert "What is the FAR in LR2?" not in answer(other)
    as_bob = {"Authorization": f"Bearer {bob}"}
    assert [
        t["question"] for t in http(secured, "GET", "/sessions/project", headers=as_bob).json()["turns"]
    ] == ["What did I ask first?"]
    as_alice = {"Authorization": f"Bearer {alice}"}
    async with ws_connect(f"{url}?token={alice}") as ws:
        follow = await ask(ws, "And in LR3?", "p-3", session_id="project")
    assert "1.8" in answer(follow)
    assert http(secured, "GET", "/sessions", headers=as_alice).json()["sessions"][0]["turns"] == 2
    assert http(secured, "GET", "/sessions").status_code == 401  # the authorizer, before the function


async def test_a_second_question_while_one_runs_is_session_busy(gateway: GatewayProcess) -> None:
    long_question = "What are the zoning requirements for residential development in LR2?"
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        first = await ask(ws, "What is the FAR in LR2?", "b-0", session_id="busy")
        session = {"session_id": "busy", "session_token": first[0]["session_token"]}
        await ws.send(
            json.dumps({"action": "invoke", "question": long_question, "request_id": "b-1"} | session)
        )
        async with asyncio.timeout(WAIT):
            while True:  # the first question holds the session once it is accepted
                frame = json.loads(await ws.recv())
                validate_frame(frame)
                if frame.get("request_id") == "b-1":
                    assert frame.get("stage") == "accepted", frame
                    run_token = frame["run_token"]
                    break
        refused = await ask(ws, "And in LR3?", "b-2", **session)
        assert [(f["type"], f.get("code"), "seq" in f) for f in refused] == [("error", "session_busy", False)]
        # Another session (or no session) is not held up meanwhile.
        free = await ask(ws, "And in LR3?", "b-3", session_id="elsewhere")
        assert free[-1]["type"] == "result"
        # ask() skips other questions' frames, so the first one's end is read over HTTP.
        status = gateway.wait_for(
            lambda: (
                body["status"]
                if (body := http(gateway, "GET", "/runs/b-1", headers={"X-Run-Token": run_token}).json())[
                    "status"
                ]
                != "running"
                else None
            ),
            "the first question to end",
        )
        assert status == "succeeded"
        after = await ask(ws, "And in LR3?", "b-4", **session)
    assert "1.8" in answer(after)


async def test_delete_erases_the_session_from_the_store(gateway: GatewayProcess, database: Path) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        first = await ask(ws, "What is the FAR in LR2?", "e-1", session_id="forget-me")
        token = first[0]["session_token"]
        await ask(ws, "And in LR3?", "e-2", session_id="forget-me", session_token=token)
    headers = {"X-Session-Token": token}

    def stored() -> int:
        with sqlite3.connect(database) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            session_tables = [t for t in tables if t.startswith("session")]
            assert session_tables, tables
            return sum(
                db.execute(f"SELECT COUNT(*) FROM {t} WHERE session_id = ?", ("forget-me",)).fetchone()[0]
                for t in session_tables
            )

    assert stored() > 0
    assert http(gateway, "DELETE", "/sessions/forget-me", headers=headers).status_code == 204
    assert stored() == 0
    assert http(gateway, "GET", "/sessions/forget-me", headers=headers).status_code == 404
    assert "forget-me" not in json.dumps(http(gateway, "GET", "/sessions", headers=headers).json())
