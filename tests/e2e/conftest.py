"""End-to-end fixtures: ``selador serve`` as a real subprocess on a free port, and client helpers.

A subprocess (not a thread) because the real handler reads its environment once per process and
the gateway sets that environment before importing it; each gateway gets a clean one.

Reuse::

    from e2e.conftest import start_gateway, collect_frames

    with start_gateway("--env", "LOCAL_MODEL_TOKEN_DELAY_MS=0") as gw:
        async with ws_connect(gw.endpoints.ws_url) as ws: ...
        gw.stats()          # GET /_selador/stats
    # stopped with SIGINT at the end of the block (connections closed with 1001)

or the module-scoped ``gateway`` fixture (real handler, offline model, fast tokens).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from selador.local.serve import Endpoints

from .apidocs import validate_frame

REPO = Path(__file__).resolve().parents[2]
HANDLERS = Path(__file__).resolve().parent / "handlers"
WAIT = 30.0
"""Upper bound on any one wait in these tests; never an expectation about speed."""

_READY = re.compile(r"WebSocket\s+ws://(?P<host>[^\s/]+):(?P<port>\d+)/(?P<stage>\S+)")
T = TypeVar("T")


@dataclass
class GatewayProcess:
    """A running ``selador serve`` subprocess.

    Attributes:
        process: The child process.
        endpoints: Its URLs (``ws_url``, ``http_url``, ``management_endpoint``, ``lambda_endpoint``).
    """

    process: subprocess.Popen[str]
    endpoints: Endpoints
    _lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        """Everything the gateway printed so far (stdout and stderr)."""
        return "".join(self._lines)

    def stats(self) -> dict[str, Any]:
        """The gateway's counters (``GET /_selador/stats``)."""
        response = httpx.get(self.endpoints.base + "/_selador/stats", timeout=WAIT)
        response.raise_for_status()
        return response.json()

    def connection(self, tag: str) -> dict[str, Any]:
        """The stats entry of the connection opened with ``?tag={tag}``."""
        matches = [c for c in self.stats()["connections"] if c["query"].get("tag") == tag]
        assert len(matches) == 1, f"expected one connection tagged {tag!r}, found {matches}"
        return matches[0]

    def wait_for(self, probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
        """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n--- gateway output ---\n{self.output[-4000:]}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Stop the gateway as Ctrl-C would and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def _child_environment(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HANDLERS), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@contextmanager
def start_gateway(
    *args: str, env: dict[str, str] | None = None, startup_timeout: float = 60.0
) -> Iterator[GatewayProcess]:
    """Run ``selador serve --port 0`` (a free port) with extra ``args``; stop it on exit.

    Args:
        *args: More ``selador serve`` flags (``--handler``, ``--env K=V``, ``--integration-timeout``…).
        env: Extra variables for the child process (the gateway's ``--env`` wins over them).
        startup_timeout: Seconds to wait for the banner.

    Yields:
        The running gateway.
    """
    command = [
        sys.executable,
        "-m",
        "selador.local.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--template",
        str(REPO / "template.yaml"),
        *args,
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=_child_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = _READY.search(line)
            if match and not ready.is_set():
                found.update(match.groupdict())
                ready.set()
        ready.set()  # the process ended: stop waiting

    threading.Thread(target=read, name="gateway-output", daemon=True).start()
    if not ready.wait(startup_timeout) or not found:
        process.kill()
        process.wait(10)
        pytest.fail("the gateway did not start:\n" + "".join(lines))
    gateway = GatewayProcess(process, Endpoints(found["host"], int(found["port"]), found["stage"]), lines)
    try:
        yield gateway
    finally:
        gateway.stop()


SLOW_STREAM = (
    # About a second or two per answer and a delta every 10-40 ms: 20-40 frames in which to drop
    # the connection, press Stop or race a second question.
    "--env",
    "LOCAL_MODEL_TOKEN_DELAY_MS=5",
    "--env",
    "STREAM_FLUSH_MS=10",
    "--env",
    "STREAM_FLUSH_MAX_MS=40",
    "--env",
    "RUN_POLL_MS=50",
)
"""``selador serve`` flags for answers slow and finely streamed enough to interrupt."""


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    """The real handler with the offline model and bundled knowledge base, tokens without delay."""
    with start_gateway("--env", "LOCAL_MODEL_TOKEN_DELAY_MS=1") as running:
        yield running


# ---------------------------------------------------------------------------------- clients


def signed_token(sub: str, secret: str, ttl_s: int = 600) -> str:
    """A JWT for ``sub`` from ``selador token``, signed with the HS256 ``secret`` a gateway was given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")} | {"AUTH_HS256_SECRET": secret}
    done = subprocess.run(
        [sys.executable, "-m", "selador.local.cli", "token", "--sub", sub, "--ttl", str(ttl_s)],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        check=True,
    )
    return done.stdout.strip()


def ws_connect(url: str, **kwargs: Any) -> connect:
    """A ``websockets`` client with test-friendly settings (no proxy, bounded open, no pings)."""
    return connect(url, proxy=None, open_timeout=WAIT, max_size=None, ping_interval=None, **kwargs)


def invoke_message(question: str, request_id: str, **fields: str) -> str:
    """An ``invoke`` message as JSON."""
    return json.dumps({"action": "invoke", "question": question, "request_id": request_id, **fields})


async def recv_json(ws: ClientConnection, timeout: float = WAIT, *, validate: bool = True) -> Any:
    """The next frame, decoded and checked against ``docs/asyncapi.yaml``.

    ``validate=False`` for a test handler that answers something else than the protocol's frames.
    """
    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    if validate:
        validate_frame(frame)
    return frame


async def collect_frames(
    ws: ClientConnection, request_ids: set[str], timeout: float = WAIT
) -> dict[str, list[dict[str, Any]]]:
    """Read frames until every id in ``request_ids`` has had its terminal frame.

    Every frame read, of these requests or not, is checked against ``docs/asyncapi.yaml``.

    Returns:
        The frames of each request, in arrival order (frames of other requests are dropped).
    """
    frames: dict[str, list[dict[str, Any]]] = {rid: [] for rid in request_ids}
    pending = set(request_ids)
    async with asyncio.timeout(timeout):
        while pending:
            frame = json.loads(await ws.recv())
            validate_frame(frame)
            rid = frame.get("request_id")
            if rid in frames:
                frames[rid].append(frame)
                if frame.get("type") in ("result", "error"):
                    pending.discard(rid)
    return frames
