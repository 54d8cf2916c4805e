"""Clients against ``selador serve``: the bundled test client's exit codes, its reconnection, resume
and Ctrl-C cancel (through a TCP proxy that drops connections the way a network does), and a Node
``ws`` client."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
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
    answer = run.stdout.split("[status] Composing the answer\n", 1)[1].split("\n[result] ", 1)[0]
    assert len(answer.strip()) > 100  # the streamed answer text
    assert "[final answer]" not in run.stdout  # ...which is the result's content
    assert "[reconnected" not in run.stderr


def test_client_continues_a_conversation_with_the_printed_session(gateway: GatewayProcess) -> None:
    first = run_client(
        "What is the FAR in LR2?",
        "--query-type",
        "zoning",
        "--session-id",
        "new",
        url=gateway.endpoints.ws_url,
    )
    assert first.returncode == 0, first.stderr
    hint = re.search(r"--session-id (\S+) --session-token (\S+)\)", first.stderr)
    assert hint, first.stderr
    second = run_client(
        "And in LR3?",
        "--query-type",
        "zoning",
        "--session-id",
        hint.group(1),
        url=gateway.endpoints.ws_url,
        env={"SELADOR_SESSION_TOKEN": hint.group(2)},
    )
    assert second.returncode == 0, second.stderr
    assert "1.8" in second.stdout and f"session {hint.group(1)}" in second.stderr


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


# ---------------------------------------------------------------------------------- drops, resume, Ctrl-C

QUESTION = "What are the zoning requirements for residential development?"
DELTA = b'"type":"delta"'
ACCEPTED = b'"stage":"accepted"'
RESUMING = re.compile(
    r"^\[reconnected after \d+\.\d s; resuming (?P<rid>\S+) after seq (?P<seq>\d+)\]$", re.M
)


@pytest.fixture(scope="module")
def slow_gateway() -> Iterator[GatewayProcess]:
    """The offline model streaming a long answer over seconds: time to drop or cancel it midway."""
    with start_gateway(
        "--env", "LOCAL_MODEL_TOKEN_DELAY_MS=10", "--env", "LOCAL_MODEL_MIN_ANSWER_TOKENS=400"
    ) as running:
        yield running


class DroppingProxy:
    """A TCP proxy in front of the gateway that loses connections the way a network does.

    ``drop_before=(marker, n)``: the first connection through the proxy is cut just before the
    server's bytes holding the ``n``-th ``marker`` would be forwarded. Both sockets close at once,
    without a WebSocket close frame, so the client sees 1006 after everything before that point.
    Later connections (the client's reconnection) pass through. ``stall()`` stops forwarding the
    server's bytes on every connection, as a network that went quiet.
    """

    def __init__(self, target_port: int, drop_before: tuple[bytes, int] | None = None) -> None:
        self.target_port = target_port
        self.drop_before = drop_before
        self.url = ""
        self.connections = 0
        self.dropped = False
        self.deltas_before_drop: int | None = None
        self.deltas = 0
        self._delta_arrived = asyncio.Condition()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()

    def stall(self) -> None:
        self._flowing.clear()

    async def wait_for_deltas(self, count: int) -> None:
        """Until ``count`` delta frames have been forwarded to clients (bounded by WAIT)."""
        async with asyncio.timeout(WAIT), self._delta_arrived:
            await self._delta_arrived.wait_for(lambda: self.deltas >= count)

    def abort_all(self) -> None:
        for writer in self._writers:
            writer.transport.abort()

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, server_writer)
        self._writers.update(pair)
        marker, limit = self.drop_before if self.drop_before and index == 0 else (b"", 0)
        seen = forwarded = 0

        async def upstream() -> None:
            with contextlib.suppress(OSError, RuntimeError):
                while data := await client_reader.read(65536):
                    server_writer.write(data)
                    await server_writer.drain()
                server_writer.close()

        async def downstream() -> None:
            nonlocal seen, forwarded
            with contextlib.suppress(OSError, RuntimeError):
                while data := await server_reader.read(65536):
                    if marker:
                        seen += data.count(marker)
                        if seen >= limit:
                            self.dropped, self.deltas_before_drop = True, forwarded
                            for writer in pair:
                                writer.transport.abort()
                            return
                    await self._flowing.wait()
                    client_writer.write(data)
                    await client_writer.drain()
                    forwarded += data.count(DELTA)
                    async with self._delta_arrived:
                        self.deltas += data.count(DELTA)
                        self._delta_arrived.notify_all()
                client_writer.close()

        try:
            await asyncio.gather(upstream(), downstream())
        finally:
            self._writers.difference_update(pair)


@contextlib.asynccontextmanager
async def dropping_proxy(
    gw: GatewayProcess, drop_before: tuple[bytes, int] | None = None
) -> AsyncIterator[DroppingProxy]:
    proxy = DroppingProxy(gw.endpoints.port, drop_before)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    proxy.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/{gw.endpoints.stage}"
    try:
        yield proxy
    finally:
        server.close()
        proxy.abort_all()


class ClientRun:
    """The bundled client as a child process of the test's event loop."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr_read = ""

    @classmethod
    async def start(cls, *args: str, url: str) -> ClientRun:
        env = {k: v for k, v in os.environ.items() if k != "SELADOR_WS_URL"}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CLIENT),
            *args,
            "--url",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        return cls(process)

    async def stderr_line_with(self, text: str) -> str:
        """Read stderr until a line containing ``text`` (bounded by WAIT)."""
        assert self.process.stderr is not None
        async with asyncio.timeout(WAIT):
            while True:
                line = (await self.process.stderr.readline()).decode()
                self.stderr_read += line
                if text in line:
                    return line
                if not line:
                    pytest.fail(f"the client ended without printing {text!r}:\n{self.stderr_read}")

    async def finish(self) -> subprocess.CompletedProcess[str]:
        """Wait for the client to end (bounded) and return what it printed."""
        try:
            out, err = await asyncio.wait_for(self.process.communicate(), WAIT * 2)
        except TimeoutError:
            self.process.kill()
            out, err = await self.process.communicate()
            pytest.fail(f"the client did not end:\n{out.decode()}\n{self.stderr_read}{err.decode()}")
        assert self.process.returncode is not None
        return subprocess.CompletedProcess(
            [], self.process.returncode, out.decode(), self.stderr_read + err.decode()
        )


async def ask(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await (await ClientRun.start(QUESTION, "--query-type", "zoning", *args, url=url)).finish()


def printed_answer(stdout: str) -> str:
    """What the client printed, without the ``[result]`` line (its duration varies)."""
    return "\n".join(line for line in stdout.splitlines() if not line.startswith("[result]"))


async def test_client_resumes_after_a_drop_mid_answer_and_prints_the_whole_answer(
    slow_gateway: GatewayProcess,
) -> None:
    reference = await ask(slow_gateway.endpoints.ws_url, "--request-id", "ref-1")
    assert reference.returncode == 0, reference.stderr
    async with dropping_proxy(slow_gateway, drop_before=(DELTA, 3)) as proxy:
        run = await ask(proxy.url, "--request-id", "drop-1")
    assert proxy.dropped and proxy.deltas_before_drop, "the drop did not come in the middle of the answer"
    assert run.returncode == 0, run.stderr
    resumed = list(RESUMING.finditer(run.stderr))
    assert len(resumed) == 1, run.stderr
    assert resumed[0]["rid"] == "drop-1"
    assert int(resumed[0]["seq"]) > 1  # it had the accepted frame and some answer text
    assert "[connection lost (1006); reconnecting]" in run.stderr
    assert printed_answer(run.stdout) == printed_answer(reference.stdout)
    assert "[final answer]" not in run.stdout  # the streamed text equals the result's content
    assert "[result] agent=rag query_type=zoning" in run.stdout


async def test_client_asks_again_after_a_drop_before_the_run_was_accepted(
    slow_gateway: GatewayProcess,
) -> None:
    reference = await ask(slow_gateway.endpoints.ws_url, "--request-id", "ref-2")
    async with dropping_proxy(slow_gateway, drop_before=(ACCEPTED, 1)) as proxy:
        run = await ask(proxy.url, "--request-id", "early-1")
    assert proxy.dropped
    assert run.returncode == 0, run.stderr
    assert "asking again as early-1" in run.stderr
    assert not RESUMING.search(run.stderr)
    assert printed_answer(run.stdout) == printed_answer(reference.stdout)


@pytest.mark.parametrize(
    ("on_disconnect", "run_status"), [(None, "succeeded"), ("cancel", "cancelled")], ids=["default", "cancel"]
)
async def test_no_reconnect_exits_2_on_a_drop_and_the_run_follows_on_disconnect(
    slow_gateway: GatewayProcess, on_disconnect: str | None, run_status: str
) -> None:
    request_id = f"norec-{on_disconnect or 'default'}"
    args = ["--no-reconnect", "--json", "--request-id", request_id]
    if on_disconnect:
        args += ["--on-disconnect", on_disconnect]
    async with dropping_proxy(slow_gateway, drop_before=(DELTA, 2)) as proxy:
        run = await ask(proxy.url, *args)
    assert proxy.dropped
    assert run.returncode == 2, run.stderr
    assert "the connection was lost (1006) before the answer was complete" in run.stderr
    assert "reconnected" not in run.stderr and not RESUMING.search(run.stderr)
    assert proxy.connections == 1
    frames = [json.loads(line) for line in run.stdout.splitlines()]
    assert frames[0]["stage"] == "accepted"
    assert all(f["type"] not in ("result", "error") for f in frames)
    # The run outlives the connection and ends as --on-disconnect asked (the server's side of it).
    url = f"{slow_gateway.endpoints.http_url}/runs/{request_id}"
    headers = {"X-Run-Token": frames[0]["run_token"]}
    async with httpx.AsyncClient(timeout=WAIT) as http, asyncio.timeout(WAIT):
        while (state := (await http.get(url, headers=headers)).json())["status"] == "running":
            await asyncio.sleep(0.1)
    assert state["status"] == run_status, state


async def test_a_normal_close_by_the_server_mid_answer_is_not_a_drop(slow_gateway: GatewayProcess) -> None:
    async with dropping_proxy(slow_gateway) as proxy:  # passes everything: shows when text flows
        client = await ClientRun.start(QUESTION, "--request-id", "del-1", url=proxy.url + "?tag=del-1")
        await proxy.wait_for_deltas(1)
        connection = await asyncio.to_thread(slow_gateway.connection, "del-1")
        # DeleteConnection: the gateway closes with 1000, on purpose; the client must stay closed.
        endpoint = slow_gateway.endpoints.management_endpoint
        async with httpx.AsyncClient(timeout=WAIT) as http:
            deleted = await http.delete(
                f"{endpoint}/@connections/{quote(connection['connectionId'], safe='')}"
            )
        assert deleted.status_code == 204
        run = await client.finish()
    assert run.returncode == 2, run.stderr
    assert "the server closed the connection (1000" in run.stderr
    assert "reconnected" not in run.stderr
    assert proxy.connections == 1
    assert "[result]" not in run.stdout


async def test_ctrl_c_cancels_the_run_and_prints_the_cancelled_result(slow_gateway: GatewayProcess) -> None:
    async with dropping_proxy(slow_gateway) as proxy:  # passes everything: shows when text flows
        client = await ClientRun.start(QUESTION, "--request-id", "int-1", url=proxy.url)
        await proxy.wait_for_deltas(2)
        client.process.send_signal(signal.SIGINT)
        run = await client.finish()
    assert run.returncode == 1, run.stderr
    assert "[cancelling int-1; press Ctrl-C again to quit at once]" in run.stderr
    assert "[error]" not in run.stderr
    answer, result = run.stdout.split("\n[result] ", 1)
    assert answer.rstrip("\n").endswith(
        "[cancelled] the run was stopped before it finished; the answer is incomplete"
    )
    assert "[final answer]" not in answer  # the cancelled content is exactly the text streamed
    # Nothing after the terminal frame: the result line and its sources end the output.
    assert all(line.startswith("  source: ") for line in result.splitlines()[1:])


async def test_ctrl_c_in_json_mode_ends_with_the_cancelled_result(slow_gateway: GatewayProcess) -> None:
    async with dropping_proxy(slow_gateway) as proxy:
        client = await ClientRun.start(QUESTION, "--json", "--request-id", "int-2", url=proxy.url)
        await proxy.wait_for_deltas(2)
        client.process.send_signal(signal.SIGINT)
        run = await client.finish()
    assert run.returncode == 1, run.stderr
    frames = [json.loads(line) for line in run.stdout.splitlines()]
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    last = frames[-1]
    assert last["type"] == "result", last
    assert last["data"]["stop_reason"] == "cancelled"
    assert last["data"]["success"] is False
    streamed = "".join(f["content"] for f in frames if f["type"] == "delta")
    assert streamed and last["data"]["content"] == streamed


async def test_a_second_ctrl_c_quits_at_once_with_130(slow_gateway: GatewayProcess) -> None:
    async with dropping_proxy(slow_gateway) as proxy:
        client = await ClientRun.start(QUESTION, "--request-id", "int-3", url=proxy.url)
        await proxy.wait_for_deltas(1)
        proxy.stall()  # from here the cancelled result cannot arrive: only quitting ends the client
        client.process.send_signal(signal.SIGINT)
        await client.stderr_line_with("[cancelling int-3")
        client.process.send_signal(signal.SIGINT)
        run = await client.finish()
    assert run.returncode == 130, run.stderr
    assert "interrupted: quit without waiting for the run to end" in run.stderr
    assert "[result]" not in run.stdout


def test_run_frames_drop_seen_seqs_and_release_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("selador_test_client", CLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    frames = module.RunFrames()

    def add(seq: int) -> list[int]:
        return [f["seq"] for f, _ in frames.add(seq, {"seq": seq}, "")]

    assert add(1) == [1]
    assert add(3) == []  # waits for 2
    assert frames.gap_since is not None
    assert add(3) == []  # a duplicate of a waiting frame
    assert add(2) == [2, 3]
    assert frames.gap_since is None
    assert add(2) == [] and add(1) == []  # seen
    assert frames.last_seq == 3


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
