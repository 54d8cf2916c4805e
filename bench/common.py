"""Helpers shared by the measurements: child environments and a recording @connections listener."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
CHILD = Path(__file__).resolve().parent / "_child.py"
STAGE = "production"


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a handler process: offline model, SQLite, dummy credentials.

    Proxy variables are dropped (loopback only) and the AWS settings are pinned so that no
    credential or region lookup leaves the machine.
    """
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("AWS_")}
    for name in ("CONNECTIONS_TABLE", "REQUESTS_TABLE", "KNOWLEDGE_BASE_ID", "MODEL_ARN", "MODEL_ID"):
        env.pop(name, None)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-west-2",
            "AWS_DEFAULT_REGION": "us-west-2",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": "MainLambda",
            "MODEL_PROVIDER": "local",
            "RUN_MODE": "inline",
            "LOG_LEVEL": "WARNING",
            "POWERTOOLS_SERVICE_NAME": "selador",
            "PYTHONDONTWRITEBYTECODE": "0",
        }
    )
    env.update(extra or {})
    return env


def run_child(
    mode: str, env: dict[str, str], connection_id: str = "benchConn=", timeout: float = 120
) -> tuple[float, dict[str, Any]]:
    """Spawn one fresh process; return the wall time it was started and its JSON report."""
    started = time.time()
    completed = subprocess.run(
        [sys.executable, str(CHILD), mode, str(EVENTS), connection_id],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return started, report


@dataclass
class Posted:
    """Frames one connection received through the listener."""

    times: list[float] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway's endpoint
    server: _ListenerServer

    def do_POST(self) -> None:
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        connection_id = unquote(self.path.rsplit("/", 1)[-1])
        try:
            frame = json.loads(data)
        except ValueError:
            frame = {"raw": data[:200].decode(errors="replace")}
        with self.server.lock:
            posted = self.server.posted[connection_id]
            posted.times.append(arrived)
            posted.frames.append(frame)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _ListenerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.lock = threading.Lock()
        self.posted: dict[str, Posted] = defaultdict(Posted)


@contextmanager
def management_listener() -> Iterator[_ListenerServer]:
    """A tiny @connections endpoint: answers 200 to every POST and records when each arrived."""
    server = _ListenerServer()
    thread = threading.Thread(target=server.serve_forever, name="bench-listener", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def endpoint_of(server: _ListenerServer) -> str:
    """The ``WEBSOCKET_MANAGEMENT_ENDPOINT`` pointing at a listener."""
    return f"http://127.0.0.1:{server.server_address[1]}/{STAGE}"


@contextmanager
def temp_dir() -> Iterator[Path]:
    """A scratch directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="selador-bench-") as name:
        yield Path(name)
