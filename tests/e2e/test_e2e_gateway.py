"""``selador serve`` itself: flags, events on the wire, the HTTP API, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from websockets.exceptions import ConnectionClosed

from .conftest import WAIT, GatewayProcess, recv_json, start_gateway, ws_connect

pytestmark = pytest.mark.e2e


async def test_handler_and_env_flags_and_events_shaped_like_api_gateway(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    with start_gateway(
        "--handler",
        "echo_handler.lambda_handler",
        "--env",
        f"ECHO_EVENTS_FILE={events_file}",
        "--env",
        "ECHO_MARK=from-cli",
    ) as gw:
        assert "Handler     echo_handler.lambda_handler" in gw.output
        assert "integration timeout 29 s" in gw.output  # the template's TimeoutInMillis
        async with ws_connect(gw.endpoints.ws_url + "?tag=echo") as ws:
            await ws.send(json.dumps({"action": "invoke", "question": "q"}))
            text_reply = await recv_json(ws, validate=False)  # the echo handler's own answer
            # A binary frame: API Gateway closes with 1003 and routes nothing.
            await ws.send(b"\x01\x02")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT)
        gw.wait_for(
            lambda: events_file.exists() and len(events_file.read_text().splitlines()) == 2, "$disconnect"
        )
        assert gw.stats()["messages_in"] == 1  # the binary frame never became a message

    connect_event, disconnect_event = (json.loads(line) for line in events_file.read_text().splitlines())
    APIGatewayWebSocketConnectEventModel.model_validate(connect_event)
    APIGatewayWebSocketMessageEventModel.model_validate(text_reply["event"])
    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect_event)
    assert text_reply["event"]["requestContext"]["routeKey"] == "invoke"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    assert disconnect_event["requestContext"]["disconnectStatusCode"] == 1003
    # Template Timeout/MemorySize reach the context; local overrides and --env reach the environment.
    assert text_reply["context"]["function_name"] == "MainLambda"
    assert text_reply["context"]["memory_limit_in_mb"] == "1024"
    assert 0 < text_reply["context"]["remaining_ms"] <= 900_000
    assert text_reply["env"] == {"MODEL_PROVIDER": "local", "ECHO_MARK": "from-cli"}


async def test_a_connection_dropped_without_a_close_frame_disconnects_with_1006(tmp_path: Path) -> None:
    """As API Gateway reports a vanished client ("Connection Closed Abnormally"), not 1005."""
    events_file = tmp_path / "events.jsonl"
    with start_gateway(
        "--handler", "echo_handler.lambda_handler", "--env", f"ECHO_EVENTS_FILE={events_file}"
    ) as gw:
        ws = await ws_connect(gw.endpoints.ws_url)
        ws.transport.abort()  # TCP reset, no close frame: a dropped Wi-Fi
        # In a thread: abort() closes the socket on this event loop's next turn.
        await asyncio.to_thread(
            gw.wait_for,
            lambda: events_file.exists() and len(events_file.read_text().splitlines()) == 2,
            "$disconnect",
        )
    disconnect_event = json.loads(events_file.read_text().splitlines()[1])
    context = disconnect_event["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (
        1006,
        "Connection Closed Abnormally",
    )


def test_http_routes_run_the_real_handler(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.endpoints.http_url, timeout=WAIT) as http:
        health = http.get("/health")
        answer = http.post("/invoke", json={"question": "What is the FAR in LR2?", "query_type": "zoning"})
        bad = http.post("/invoke", json={"query_type": "zoning"})
        missing = http.get("/nowhere")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["model_provider"] == "local"
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["success"] is True and data["content"] and data["query_type"] == "zoning"
    assert bad.status_code == 400
    assert "question" in bad.text
    assert missing.status_code == 404


async def test_ctrl_c_closes_connections_with_1001_without_a_traceback() -> None:
    with start_gateway("--env", "LOCAL_MODEL_TOKEN_DELAY_MS=20") as gw:
        async with ws_connect(gw.endpoints.ws_url) as ws:
            await ws.send(json.dumps({"action": "invoke", "question": "What permits do I need for a deck?"}))
            async with asyncio.timeout(WAIT):
                while (await recv_json(ws))["type"] != "delta":
                    pass  # the run is streaming
            gw.process.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(WAIT):
                    while True:
                        await ws.recv()
        status = await asyncio.to_thread(gw.process.wait, WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert status == 0
    # Neither the gateway nor the handler (whose run met a 410, not a refused connection) fails.
    assert "Traceback" not in gw.output
    assert "(1001) -> 200" in gw.output  # $disconnect ran for the closed connection
    assert gw.output.rstrip().endswith("Stopped.")


async def test_second_ctrl_c_forces_the_stop_without_a_gateway_traceback() -> None:
    with start_gateway("--env", "LOCAL_MODEL_TOKEN_DELAY_MS=50") as gw:
        async with ws_connect(gw.endpoints.ws_url) as ws:
            await ws.send(json.dumps({"action": "invoke", "question": "What permits do I need for a deck?"}))
            await recv_json(ws)  # the run is under way
            gw.process.send_signal(signal.SIGINT)
            gw.process.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(WAIT):
                    while True:
                        await ws.recv()
        status = await asyncio.to_thread(gw.process.wait, WAIT)
    assert status == 0
    # The handler may log its own failure (its endpoint vanished); the gateway prints no traceback.
    gateway_lines = [line for line in gw.output.splitlines() if not line.startswith("{")]
    assert not [line for line in gateway_lines if "Traceback" in line]


def test_bad_template_is_a_configuration_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    missing = tmp_path / "nope.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "selador.local.cli", "serve", "--port", "0", "--template", str(missing)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert run.returncode == 2
    assert "nope.yaml" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("isolation", "banner"),
    [
        ("process", "1 front + 1 background (Event, lower priority) worker processes"),
        ("thread", "threads of this process (--isolation thread)"),
    ],
)
async def test_both_runtimes_answer_a_query_through_the_async_hand_off(isolation: str, banner: str) -> None:
    flags = ["--isolation", isolation, "--workers", "1", "--background-workers", "1"]
    with start_gateway(*flags, "--env", "LOCAL_MODEL_TOKEN_DELAY_MS=0") as gw:
        async with ws_connect(gw.endpoints.ws_url) as ws:
            await ws.send(
                json.dumps({"action": "invoke", "question": "What is the FAR in LR2?", "request_id": "r"})
            )
            frames = []
            async with asyncio.timeout(WAIT):
                while not frames or frames[-1]["type"] not in ("result", "error"):
                    frames.append(await recv_json(ws))
    assert frames[0]["type"] == "status" and frames[0]["stage"] == "accepted"
    assert frames[-1]["type"] == "result", frames[-1]
    assert banner in gw.output
    assert "lambda Event MainLambda (attempt 1) -> 200" in gw.output  # the answer ran as an Event


def test_zero_workers_is_refused_before_anything_starts() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "selador.local.cli", "serve", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--workers: must be at least 1" in result.stderr
