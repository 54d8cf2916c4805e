"""Clients against ``selador serve``: the bundled test client's exit codes, and a Node ``ws`` client."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, WAIT, GatewayProcess, start_gateway

pytestmark = pytest.mark.e2e

CLIENT = REPO / "test_websocket_client.py"


def run_client(
    *args: str, url: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CLIENT), *args]
    if url is not None:
        command += ["--url", url]
    child_env = {k: v for k, v in os.environ.items() if k != "SELADOR_WS_URL"} | (env or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=WAIT * 2, env=child_env)


def test_client_exits_0_on_result_and_streams_the_answer(gateway: GatewayProcess) -> None:
    run = run_client(
        "What are the zoning requirements?",
        "--context",
        "Capitol Hill lot",
        "--query-type",
        "zoning",
        url=gateway.endpoints.ws_url,
    )
    assert run.returncode == 0, run.stderr
    assert "[status] Processing your query..." in run.stdout
    assert "[result] agent=rag query_type=zoning" in run.stdout
    assert "source: " in run.stdout


def test_client_reads_the_url_from_the_environment_and_prints_raw_frames(gateway: GatewayProcess) -> None:
    run = run_client("What permits do I need?", "--json", env={"SELADOR_WS_URL": gateway.endpoints.ws_url})
    assert run.returncode == 0, run.stderr
    frames = [json.loads(line) for line in run.stdout.splitlines()]
    assert frames[0]["type"] == "status"
    assert frames[-1]["type"] == "result"
    assert len({f["request_id"] for f in frames}) == 1


def test_client_exits_1_on_error_frame(gateway: GatewayProcess) -> None:
    run = run_client("x" * 5000, url=gateway.endpoints.ws_url)
    assert run.returncode == 1
    assert "question" in run.stderr


def test_client_exits_2_when_it_cannot_connect() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: the connection is refused
        run = run_client("hello", url=f"ws://127.0.0.1:{port}/production")
    assert run.returncode == 2
    assert "cannot talk to" in run.stderr


def test_client_exits_2_on_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the TCP connection, never answers the handshake
        run = run_client(
            "hello", "--timeout", "1", url=f"ws://127.0.0.1:{silent.getsockname()[1]}/production"
        )
    assert run.returncode == 2
    assert "no answer within 1 s" in run.stderr


def test_client_ignores_the_integration_timeout_frame() -> None:
    # A 1 ms integration timeout: every route outlives it, API Gateway's frame arrives first.
    with start_gateway("--integration-timeout", "0.001", "--env", "LOCAL_MODEL_TOKEN_DELAY_MS=0") as gw:
        run = run_client("What permits do I need?", url=gw.endpoints.ws_url)
        assert gw.stats()["integration_timeouts"] >= 1
    assert run.returncode == 0, run.stderr
    assert "API Gateway stopped waiting" in run.stderr
    assert "[result]" in run.stdout


# ---------------------------------------------------------------------------------- Node


NODE_CLIENT = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2]);
const frames = [];
const timer = setTimeout(() => { console.error('timeout'); process.exit(3); }, 30000);
ws.on('open', () => ws.send(JSON.stringify({
  action: 'invoke', question: 'What are the zoning requirements?',
  query_type: 'zoning', request_id: 'node-1'})));
ws.on('message', (data) => {
  const frame = JSON.parse(data.toString());
  frames.push(frame);
  if (frame.type === 'result' || frame.type === 'error') {
    clearTimeout(timer);
    console.log(JSON.stringify(frames));
    ws.close(1000);
  }
});
ws.on('error', (err) => { console.error(String(err)); process.exit(2); });
"""


@pytest.fixture(scope="module")
def node_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with the npm ``ws`` package installed, or a skip saying why there is none."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are not installed: the Node client check needs them")
    directory = tmp_path_factory.mktemp("node-client")
    install = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "ws@8"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if install.returncode != 0:
        pytest.skip(f"npm install ws failed (registry unreachable?): {install.stderr.strip()[:300]}")
    (directory / "client.js").write_text(NODE_CLIENT)
    yield directory


def test_node_ws_client_gets_the_whole_answer(gateway: GatewayProcess, node_ws: Path) -> None:
    run = subprocess.run(
        ["node", str(node_ws / "client.js"), gateway.endpoints.ws_url],
        cwd=node_ws,
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
    )
    assert run.returncode == 0, run.stderr
    frames = json.loads(run.stdout)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert {f["request_id"] for f in frames} == {"node-1"}
    assert frames[-1]["type"] == "result"
    assert frames[-1]["data"]["query_type"] == "zoning"
