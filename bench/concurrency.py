"""Target 6: many concurrent clients through the local gateway, judged against its own ping floor.

The gateway is ``selador serve`` in a subprocess (real handler, the process runtime, the template's
``RUN_MODE=async``, offline model, bundled knowledge base, the SQLite store holding every run's
record and frame log; ``--concurrency`` as high as the largest level, as Lambda would scale out);
the clients run on one event loop in this process. For each level every client connects first,
then all send one message at once. Per level: completed answers, lost frames (``seq`` gaps and
missing terminal frames), p50/p99 time from ``send`` to the first frame, and frames per second.

**Target** (per level, 100 / 250 / 500 clients): every client completes, nothing is lost, and the
``invoke``'s p99 time to first frame is at most 3x the gateway's **ping floor**: the same gateway
and handler answering ``ping`` (one PostToConnection, no store, no hand-off, no agent) to the same
number of clients, measured just before. Any first frame through API Gateway -> Lambda ->
@connections costs at least that on this machine at that moment, so ``p99_vs_ping_floor`` is what
the query path (admission, the run record and its frame log, the hand-off) adds on top of the
architecture, and load from elsewhere on the machine weighs on both sides of the ratio.

For reference only (in the detail, not judged): a bare ``websockets`` server
(``bench/_bare_server.py``, also a subprocess) that replays the frames of one real answer with
their recorded spacing, i.e. what this machine can do with no handler at all. ``p99_vs_bare`` and
the floor against the bare server show what the architecture itself costs here (the target until
protocol 1.1 was ``p99_vs_bare`` <= 3). The gateway runs with ``--isolation process``
(``python -m bench --isolation thread`` compares).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO, child_environment, temp_dir
from bench.results import Result, judged
from bench.stats import percentile

P99_RATIO_TARGET = 3.0
"""Largest ``invoke`` first-frame p99 as a multiple of the ping floor's p99 at the same level."""
WARM_UP_CLIENTS = 8
"""A small burst before the levels: every worker process of the gateway serves a query once,
so the levels measure warm containers (the thread runtime's one process is warm after one)."""
_BANNER = re.compile(r"WebSocket\s+(ws://\S+)")
QUESTION = "What are the zoning requirements for residential development in LR2?"


@dataclass
class Server:
    """A server subprocess and the URL clients connect to."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)


@contextmanager
def _spawn(
    command: list[str], pattern: re.Pattern[str], env: dict[str, str], timeout: float = 60
) -> Iterator[Server]:
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    found: list[str] = []
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = pattern.search(line)
            if match and not ready.is_set():
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout) or not found:
            raise RuntimeError("server did not start:\n" + "".join(lines[-40:]))
        url = found[0] if found[0].startswith("ws") else f"ws://127.0.0.1:{found[0]}/"
        yield Server(process, url, lines)
    finally:
        if process.poll() is None:
            process.send_signal(2)  # SIGINT: the gateway closes connections and exits cleanly
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextmanager
def gateway(concurrency: int, env: dict[str, str], isolation: str = "process") -> Iterator[Server]:
    """``selador serve --port 0`` with the handler's log quiet."""
    command = [sys.executable, "-m", "selador.local.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += [
        "--isolation",
        isolation,
        "--template",
        str(REPO / "template.yaml"),
        "--concurrency",
        str(concurrency),
        "--log-level",
        "WARNING",
    ]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    with _spawn(command, _BANNER, child_environment({"PYTHONUNBUFFERED": "1"})) as server:
        yield server


@contextmanager
def bare_server(script: Path) -> Iterator[Server]:
    """The bare websockets server replaying ``script``."""
    command = [sys.executable, str(Path(__file__).resolve().parent / "_bare_server.py"), str(script)]
    with _spawn(command, re.compile(r"PORT (\d+)"), child_environment({"PYTHONUNBUFFERED": "1"})) as server:
        yield server


@dataclass
class ClientRun:
    """One client's query."""

    sent: float = 0.0
    first: float | None = None
    done: float | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lost(self) -> int:
        seqs = {f["seq"] for f in self.frames if isinstance(f.get("seq"), int)}
        gaps = (max(seqs) - len(seqs)) if seqs else 0
        return gaps + (0 if self.done is not None else 1)


_TERMINAL = {"invoke": ("result", "error"), "ping": ("pong",)}


async def _client(
    url: str,
    index: int,
    start: asyncio.Event,
    connected: asyncio.Semaphore,
    run: ClientRun,
    timeout: float,
    action: str = "invoke",
) -> None:
    from websockets.asyncio.client import connect

    request_id = f"c-{index}"
    message = json.dumps(
        {"action": action, "question": QUESTION, "query_type": "zoning", "request_id": request_id}
    )
    terminal = _TERMINAL[action]
    async with connect(
        url, proxy=None, open_timeout=120, max_size=None, ping_interval=None, compression=None
    ) as ws:
        connected.release()
        await start.wait()
        run.sent = time.perf_counter()
        await ws.send(message)
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("request_id") != request_id:
                    continue
                now = time.perf_counter()
                if run.first is None:
                    run.first = now
                run.frames.append(frame)
                if frame.get("type") in terminal:
                    run.done = now
                    return


async def _level(url: str, clients: int, timeout: float, action: str = "invoke") -> dict[str, Any]:
    start = asyncio.Event()
    connected = asyncio.Semaphore(0)
    runs = [ClientRun() for _ in range(clients)]
    tasks = []
    for index in range(clients):
        tasks.append(asyncio.create_task(_client(url, index, start, connected, runs[index], timeout, action)))
        if index % 50 == 49:
            await asyncio.sleep(0.05)  # connect in waves, not as a SYN flood
    for _ in range(clients):
        await asyncio.wait_for(connected.acquire(), 120)
    await asyncio.sleep(0.2)
    start.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    ttff = [(r.first - r.sent) * 1000 for r in runs if r.first is not None]
    completed = [r for r in runs if r.done is not None and r.frames[-1].get("type") == _TERMINAL[action][0]]
    frames = sum(len(r.frames) for r in runs)
    error_codes: dict[str, int] = {}
    for r in runs:
        if r.done is not None and r.frames[-1].get("type") == "error":
            code = str(r.frames[-1].get("code"))
            error_codes[code] = error_codes.get(code, 0) + 1
    began = min(r.sent for r in runs if r.sent)
    ended = max((r.done or r.first or began) for r in runs)
    return {
        "clients": clients,
        "completed": len(completed),
        "lost_frames": sum(r.lost for r in runs),
        "ttff_p50_ms": round(percentile(ttff, 50), 1) if ttff else None,
        "ttff_p99_ms": round(percentile(ttff, 99), 1) if ttff else None,
        "frames_per_s": round(frames / max(ended - began, 1e-9), 1),
        "wall_s": round(ended - began, 2),
        "errors": errors[:3],
        "error_frames": error_codes,
    }


async def _record_script(url: str) -> list[tuple[float, dict[str, Any]]]:
    from websockets.asyncio.client import connect

    async with connect(url, proxy=None, max_size=None, ping_interval=None) as ws:
        sent = time.perf_counter()
        await ws.send(
            json.dumps(
                {"action": "invoke", "question": QUESTION, "query_type": "zoning", "request_id": "rec"}
            )
        )
        script = []
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("request_id") != "rec":
                continue
            script.append(
                (
                    time.perf_counter() - sent,
                    {k: v for k, v in frame.items() if k not in ("timestamp", "request_id")},
                )
            )
            if frame.get("type") in ("result", "error"):
                return script


_COUNTERS = (
    "posts",
    "posts_delivered",
    "buffer_full_429",
    "gone_410",
    "invocation_errors",
    "integration_timeouts",
    "async_invocations",
)


def _gateway_counters(server: Server) -> dict[str, int]:
    """The gateway's own counters (``GET /_selador/stats``), to explain lost frames."""
    import httpx

    base = "http" + server.url[2:].rsplit("/", 1)[0]
    try:
        document = httpx.get(base + "/_selador/stats", timeout=30, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {name: int(document.get(name, 0)) for name in _COUNTERS}


def _stream_stops(server: Server, since: int) -> dict[str, int]:
    """Why runs stopped streaming, from the handler's "stopping the stream" warnings."""
    reasons: dict[str, int] = {}
    for line in server.lines[since:]:
        if "stopping the stream" not in line:
            continue
        try:
            reason = str(json.loads(line).get("reason", "?"))
        except ValueError:
            reason = line.strip()[-80:]
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def floor_ratio(p99_ms: float | None, floor_p99_ms: float | None) -> float:
    """``p99_ms / floor_p99_ms`` rounded to 2 places; ``inf`` when the subject has no p99."""
    if p99_ms is None:
        return float("inf")
    return round(p99_ms / max(floor_p99_ms or 1e-9, 1e-9), 2)


def run(
    levels: list[int], env: dict[str, str], timeout: float = 120, isolation: str = "process"
) -> list[Result]:
    """Target 6 for each level.

    Args:
        levels: Concurrent clients per level.
        env: Handler settings (``--env``).
        timeout: Seconds a client waits for its answer.
        isolation: The gateway's ``--isolation`` (``process`` or ``thread``).

    Returns:
        One result per level.
    """
    gateway_rows: list[dict[str, Any]] = []
    floor_rows: list[dict[str, Any]] = []
    bare_rows: list[dict[str, Any]] = []
    with temp_dir() as tmp:
        with gateway(max(levels) + 16, env, isolation) as server:
            script = asyncio.run(_record_script(server.url))
            asyncio.run(_level(server.url, WARM_UP_CLIENTS, timeout))
            asyncio.run(_level(server.url, WARM_UP_CLIENTS, timeout, action="ping"))
            for clients in levels:
                # The floor: the same gateway and handler answering "ping" with one
                # PostToConnection (no store, no hand-off, no agent), which is the least any first
                # frame through API Gateway -> Lambda -> @connections costs on this machine.
                floor_rows.append(asyncio.run(_level(server.url, clients, timeout, action="ping")))
                before, seen = _gateway_counters(server), len(server.lines)
                row = asyncio.run(_level(server.url, clients, timeout))
                after = _gateway_counters(server)
                row["gateway_counters"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                row["stream_stops"] = _stream_stops(server, seen)
                gateway_rows.append(row)
        # The replay keeps the recorded spacing, but the bare server answers at once: its first
        # frame is the gateway's "accepted" status, so the offsets start at 0.
        first_offset = script[0][0]
        script = [(t - first_offset, f) for t, f in script]
        path = tmp / "script.json"
        path.write_text(json.dumps(script))
        with bare_server(path) as server:
            asyncio.run(_level(server.url, WARM_UP_CLIENTS, timeout))
            for clients in levels:
                bare_rows.append(asyncio.run(_level(server.url, clients, timeout)))
    results = []
    for row, floor, bare in zip(gateway_rows, floor_rows, bare_rows, strict=True):
        clients = row["clients"]
        vs_floor = floor_ratio(row["ttff_p99_ms"], floor["ttff_p99_ms"])
        result = judged(
            f"concurrency.{clients}",
            vs_floor,
            "x",
            P99_RATIO_TARGET,
            detail={
                "gateway": row,
                "gateway_ping_floor": floor,
                "bare_websockets": bare,
                "frames_per_answer": len(script),
                "isolation": isolation,
                "p99_vs_ping_floor": vs_floor,
                "p99_vs_bare": floor_ratio(row["ttff_p99_ms"], bare["ttff_p99_ms"]),
                "ping_floor_p99_vs_bare": floor_ratio(floor["ttff_p99_ms"], bare["ttff_p99_ms"]),
                "target": "invoke first-frame p99 <= 3x the ping floor's p99, all complete, 0 lost",
            },
            note=f"{row['completed']}/{clients} done, {row['lost_frames']} lost, ttff p50/p99 "
            f"{row['ttff_p50_ms']}/{row['ttff_p99_ms']} ms vs ping floor "
            f"{floor['ttff_p50_ms']}/{floor['ttff_p99_ms']} ms (bare websockets "
            f"{bare['ttff_p50_ms']}/{bare['ttff_p99_ms']} ms), "
            f"{row['frames_per_s']:.0f} fps"
            + (f", error frames {row['error_frames']}" if row["error_frames"] else ""),
        )
        if row["completed"] != clients or row["lost_frames"] or floor["completed"] != clients:
            result.status = "FAIL"
            result.note += f"; FAILED: {clients - row['completed']} incomplete, {row['lost_frames']} lost"
            if floor["completed"] != clients:
                result.note += f", {clients - floor['completed']} pings unanswered"
        results.append(result)
    return results
