"""The gateway :mod:`bench.soak` drives: ``selador serve`` in a subprocess on a free loopback port.

Started with the real handler, the offline model at ``--token-delay-ms`` and ``--inject-429``;
read back through ``GET /_selador/stats`` and ``GET /runs/{request_id}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
_READY = re.compile(r"WebSocket\s+ws://(?P<host>[^\s/]+):(?P<port>\d+)/(?P<stage>\S+)")


@dataclass
class Gateway:
    """A running ``selador serve`` subprocess."""

    process: subprocess.Popen[bytes]
    base: str
    ws_url: str
    log_path: Path

    def stats(self) -> dict[str, Any]:
        """``GET /_selador/stats``."""
        with urllib.request.urlopen(self.base + "/_selador/stats", timeout=30) as response:
            return json.loads(response.read())

    def run_status(self, request_id: str, token: str) -> str:
        """``GET /runs/{request_id}`` with the run's token: its ``status``, or ``http <code>``."""
        request = urllib.request.Request(
            f"{self.base}/runs/{quote(request_id, safe='')}", headers={"X-Run-Token": token}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return str(json.loads(response.read()).get("status"))
        except urllib.error.HTTPError as exc:
            return f"http {exc.code}"

    def log_tail(self, lines: int = 40) -> str:
        """The end of the gateway's output, for a failed start."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def start_gateway(args: argparse.Namespace, workdir: Path) -> Any:
    """Run the gateway on a free loopback port until the block ends (stopped with SIGINT)."""
    log_path = workdir / "gateway.log"
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
        "--inject-429",
        str(args.inject_429),
        "--log-level",
        "WARNING",
        "--env",
        f"LOCAL_MODEL_TOKEN_DELAY_MS={args.token_delay_ms}",
        # The handler's per-invocation INFO lines would be most of the CPU spent here.
        "--env",
        "LOG_LEVEL=WARNING",
        *(["--env", f"RUN_MODE={args.run_mode}"] if args.run_mode else []),
        # Inline runs stream inside the route's invocation, which API Gateway stops waiting for
        # after 29 s; its frame has no seq and would count as an error about a message.
        *(["--integration-timeout", "0"] if args.run_mode == "inline" else []),
    ]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    gateway: Gateway | None = None
    try:
        deadline = time.monotonic() + 60
        while gateway is None:
            match = _READY.search(log_path.read_text(errors="replace"))
            if match:
                host, port, stage = match["host"], match["port"], match["stage"]
                gateway = Gateway(process, f"http://{host}:{port}", f"ws://{host}:{port}/{stage}", log_path)
            elif process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("soak: the gateway did not start:\n" + log_path.read_text(errors="replace"))
            else:
                time.sleep(0.1)
        yield gateway
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
