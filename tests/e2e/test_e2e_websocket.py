"""Real WebSocket clients against ``selador serve`` running the real handler with the offline model."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from websockets.exceptions import ConnectionClosed

from selador.protocol import parse_frame

from .conftest import (
    WAIT,
    GatewayProcess,
    collect_frames,
    invoke_message,
    recv_json,
    start_gateway,
    ws_connect,
)

pytestmark = pytest.mark.e2e

QUESTION = "What are the zoning requirements for residential development?"


def new_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def check_sequence(frames: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    """The protocol's per-request guarantees; returns the terminal frame."""
    for frame in frames:
        parse_frame(json.dumps(frame))  # every frame is a valid protocol frame
    assert [f["request_id"] for f in frames] == [request_id] * len(frames)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["type"] == "status"
    terminal = [f for f in frames if f["type"] in ("result", "error")]
    assert terminal == [frames[-1]], "exactly one terminal frame, and it comes last"
    return frames[-1]


async def test_normal_query_streams_the_full_frame_sequence(gateway: GatewayProcess) -> None:
    rid = new_id()
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(invoke_message(QUESTION, rid, context="Capitol Hill lot", query_type="zoning"))
        frames = (await collect_frames(ws, {rid}))[rid]
    result = check_sequence(frames, rid)
    assert result["type"] == "result", result
    data = result["data"]
    assert data["success"] is True
    assert data["query_type"] == "zoning"
    assert data["agent"] == "rag"
    assert data["tools_available"] >= data["tools_used"] >= 1
    assert data["sources"] and all({"title", "location"} <= set(s) for s in data["sources"])
    assert data["usage"]["total_tokens"] > 0
    assert data["duration_ms"] >= 0
    deltas = "".join(f["content"] for f in frames if f["type"] == "delta")
    assert deltas and deltas.strip() == data["content"].strip()
    stages = [f.get("stage") for f in frames if f["type"] == "status"]
    assert stages[0] == "accepted" and "routed" in stages
    # The template sets RUN_MODE=async: the route handed the run to Lambda's Invoke API here.
    assert gateway.stats()["async_invocations"] >= 1


async def test_malformed_json_answers_bad_request_and_keeps_the_connection(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send("{not json")
        error = await recv_json(ws)
        await ws.send(json.dumps({"action": "ping", "request_id": "after"}))
        pong = await recv_json(ws)
    assert error["type"] == "error"
    assert error["code"] == "bad_request"
    assert "JSON" in error["error"]
    assert pong["type"] == "pong" and pong["request_id"] == "after"


async def test_missing_question_names_the_field(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(json.dumps({"action": "invoke", "request_id": "no-q"}))
        error = await recv_json(ws)
    assert error == {**error, "type": "error", "code": "bad_request", "request_id": "no-q"}
    assert "question" in error["error"]


async def test_unknown_action_goes_to_default(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(json.dumps({"action": "chat", "request_id": "u-1"}))
        error = await recv_json(ws)
    assert error["type"] == "error"
    assert error["code"] == "unknown_action"
    assert "invoke" in error["error"] and "ping" in error["error"]
    assert " ws $default " in gateway.output  # the gateway routed it to $default


async def test_unknown_query_type_is_rejected(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(invoke_message(QUESTION, "qt-1", query_type="astrology"))
        error = await recv_json(ws)
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert error["request_id"] == "qt-1"
    assert "query_type" in error["error"]


async def test_ping_answers_pong(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(json.dumps({"action": "ping", "request_id": "p-1"}))
        pong = await recv_json(ws)
    assert pong["type"] == "pong"
    assert pong["request_id"] == "p-1"


async def test_two_concurrent_queries_on_one_connection(gateway: GatewayProcess) -> None:
    first, second = new_id(), new_id()
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(invoke_message(QUESTION, first, query_type="zoning"))
        await ws.send(
            invoke_message("What is a good mortgage for a 500000 house?", second, query_type="financing")
        )
        frames = await collect_frames(ws, {first, second})
    assert check_sequence(frames[first], first)["data"]["query_type"] == "zoning"
    assert check_sequence(frames[second], second)["data"]["query_type"] == "financing"


async def test_twenty_concurrent_connections(gateway: GatewayProcess) -> None:
    async def one(index: int) -> dict[str, Any]:
        rid = f"c20-{index}"
        async with ws_connect(gateway.endpoints.ws_url) as ws:
            await ws.send(invoke_message(f"{QUESTION} ({index})", rid, query_type="zoning"))
            return check_sequence((await collect_frames(ws, {rid}, timeout=WAIT * 2))[rid], rid)

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert [r["type"] for r in results] == ["result"] * 20


async def test_message_over_128_kib_closes_with_1009(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        # In 16 KiB frames, so the message quota (not the 32 KiB frame quota) is what trips.
        await ws.send(["x" * (16 * 1024)] * 8 + ["x"])
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_get_and_delete_connection_through_boto3(gateway: GatewayProcess) -> None:
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gateway.endpoints.management_endpoint,
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    async with ws_connect(gateway.endpoints.ws_url + "?tag=mgmt", user_agent_header="e2e-agent") as ws:
        connection_id = gateway.connection("mgmt")["connectionId"]
        info = await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "e2e-agent"}
        await asyncio.to_thread(client.delete_connection, ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
    gateway.wait_for(lambda: gateway.connection("mgmt")["state"] == "closed", "the connection to close")


async def test_client_leaving_mid_answer_stops_the_run() -> None:
    # Slow tokens, so the answer is still streaming when the client goes.
    with start_gateway("--env", "LOCAL_MODEL_TOKEN_DELAY_MS=30") as slow:
        full_id = new_id()
        async with ws_connect(slow.endpoints.ws_url + "?tag=stayer") as ws:
            await ws.send(invoke_message(QUESTION, full_id, query_type="zoning"))
            full = (await collect_frames(ws, {full_id}, timeout=WAIT * 2))[full_id]
        assert full[-1]["type"] == "result"

        rid = new_id()
        async with ws_connect(slow.endpoints.ws_url + "?tag=leaver") as ws:
            await ws.send(invoke_message(QUESTION, rid, query_type="zoning"))
            async with asyncio.timeout(WAIT):
                while (await recv_json(ws))["type"] != "delta":
                    pass
        # The run notices (410 or $disconnect) and ends; nothing is posted after that 410.
        slow.wait_for(lambda: slow.connection("leaver")["state"] == "closed", "the close")
        slow.wait_for(lambda: slow.stats()["invocations_running"] == 0, "the run to end", timeout=WAIT * 2)
        leaver = slow.connection("leaver")
        assert leaver["postsAfterClose"] <= 1
        assert leaver["framesDelivered"] < len(full)
        assert slow.stats()["posts_after_gone"] <= 1
