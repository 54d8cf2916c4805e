"""``make soak``: many clients through the local gateway while it injects faults; bounded; loopback only.

What it does:

1. starts ``selador serve`` as a subprocess on a free loopback port with the real handler, the
   offline model at ``LOCAL_MODEL_TOKEN_DELAY_MS`` (5 ms) and ``--inject-429`` (5 % of
   PostToConnection calls answered 429 without delivering);
2. opens ``--connections`` (200) WebSocket clients at once; each asks 1 to 3 questions one after the
   other; ``--leave-rate`` (10 %) of them close their connection mid-answer (after the first
   ``delta`` of a question) instead of waiting;
3. after every client is done, waits a grace period and reads ``GET /_selador/stats``.

Report lines (each PASS or FAIL; exit status 1 on any FAIL):

* queries completed: every query of every client that stayed ended with a terminal frame;
* frames lost: missing ``seq`` numbers or missing terminal frames, for clients that stayed (0);
* frames out of order: a frame whose ``seq`` is not one more than the previous one (0);
* runs left running after their client left: invocations still running once the grace period
  after the last client is over (0) — every run of a client that left is cancelled by its first
  410, and runs are long enough (hundreds of tokens) to outlive the grace period otherwise;
* posts after a 410: PostToConnection calls to a closed connection beyond the one 410 each of its
  in-flight queries needs to learn the client left (0);
* function errors: invocations that raised (0).

Bounded: every wait has a timeout and the whole client phase is cut at ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

REPO = Path(__file__).resolve().parents[1]
_READY = re.compile(r"WebSocket\s+ws://(?P<host>[^\s/]+):(?P<port>\d+)/(?P<stage>\S+)")
TERMINAL = ("result", "error")

QUESTIONS: list[tuple[str, str]] = [
    ("What are the zoning requirements for residential development in LR2?", "zoning"),
    ("What is the maximum height and FAR in the NC2-55 zone?", "zoning"),
    ("Which building code applies to a new duplex, and what are the energy code rules?", "building_codes"),
    ("What permits do I need to build a deck, and what will the permit fee be for $40,000?", "permits"),
    ("How much would a $600,000 house cost per month with 20% down at 6.5%?", "financing"),
    ("Can I add a backyard cottage (DADU) in a neighborhood residential zone?", "general"),
]


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


# ---------------------------------------------------------------------------------- clients


@dataclass
class Query:
    """What one client saw of one query."""

    request_id: str
    seqs: list[int] = field(default_factory=list)
    terminal: str | None = None
    terminals: int = 0
    error_code: str | None = None


@dataclass
class Client:
    """One connection's plan and what it saw."""

    index: int
    questions: int
    leave_at: int | None
    """Index of the question during which the client leaves, or ``None`` when it stays."""
    queries: list[Query] = field(default_factory=list)
    left: bool = False
    connection_id: str | None = None
    failure: str | None = None


async def _ask(ws: ClientConnection, query: Query, leave: bool) -> bool:
    """Read one query's frames; with ``leave``, close after its first delta. ``True`` when left."""
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("request_id") != query.request_id:
            continue  # API Gateway's own messages (none expected) or a stray frame
        query.seqs.append(frame.get("seq", -1))
        if frame.get("type") in TERMINAL:
            query.terminals += 1
            query.terminal = frame["type"]
            query.error_code = frame.get("code")
            return False
        if leave and frame.get("type") == "delta":
            await ws.close()
            return True


async def run_client(
    client: Client, url: str, rng: random.Random, start: asyncio.Event, timeout: float
) -> None:
    """Connect, ask the questions in turn, leave mid-answer when planned."""
    try:
        async with connect(
            url + f"?tag=soak-{client.index}",
            proxy=None,
            open_timeout=60,
            max_size=None,
            ping_interval=None,
            close_timeout=5,
        ) as ws:
            await start.wait()  # every client connects first: 200 at once, then all ask
            for number in range(client.questions):
                question, query_type = rng.choice(QUESTIONS)
                query = Query(request_id=f"c{client.index}-q{number}")
                client.queries.append(query)
                await ws.send(
                    json.dumps(
                        {
                            "action": "invoke",
                            "question": question,
                            "query_type": query_type,
                            "request_id": query.request_id,
                        }
                    )
                )
                if await asyncio.wait_for(_ask(ws, query, client.leave_at == number), timeout):
                    client.left = True
                    return
    except (TimeoutError, ConnectionClosed, WebSocketException, OSError) as exc:
        client.failure = f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------- report


def sequence_problems(query: Query) -> tuple[int, int]:
    """``(lost, out_of_order)`` for one query a staying client followed to its end."""
    seen = set(query.seqs)
    highest = max(seen) if seen else 0
    lost = sum(1 for n in range(1, highest + 1) if n not in seen)
    if query.terminal is None:
        lost += 1  # the terminal frame itself
    out_of_order = sum(1 for a, b in zip(query.seqs, query.seqs[1:], strict=False) if b != a + 1)
    if query.seqs and query.seqs[0] != 1:
        out_of_order += 1
    return lost, out_of_order


def report(clients: list[Client], stats: dict[str, Any], *, elapsed: float, grace: float) -> bool:
    """Print one line per check and the counters; ``True`` when every check passed."""
    stayed = [c for c in clients if not c.left]
    left = [c for c in clients if c.left]
    planned = sum(c.questions for c in stayed)
    completed = sum(1 for c in stayed for q in c.queries if q.terminal is not None)
    results = sum(1 for c in clients for q in c.queries if q.terminal == "result")
    errors: dict[str, int] = {}
    for c in clients:
        for q in c.queries:
            if q.terminal == "error":
                errors[q.error_code or "?"] = errors.get(q.error_code or "?", 0) + 1
    lost = out_of_order = extra_terminals = 0
    for c in stayed:
        for q in c.queries:
            query_lost, query_disorder = sequence_problems(q)
            lost += query_lost
            out_of_order += query_disorder
            extra_terminals += max(0, q.terminals - 1)
        lost += c.questions - len(c.queries)  # questions never asked because the client broke
    failures = [c for c in clients if c.failure]

    by_tag = {conn["query"].get("tag"): conn for conn in stats["connections"]}
    # Each query still in flight when its client left may post once and learn of the 410; any
    # post beyond that means a sender kept going after the connection was gone.
    posts_after_410 = 0
    for c in left:
        conn = by_tag.get(f"soak-{c.index}")
        if conn is not None:
            posts_after_410 += max(0, conn["postsAfterClose"] - 1)
    for c in stayed:
        conn = by_tag.get(f"soak-{c.index}")
        if conn is not None:
            posts_after_410 += conn["postsAfterClose"]  # every run ended before it closed

    checks = [
        (
            completed == planned and not failures,
            f"queries completed: {completed}/{planned} (clients that stayed)",
        ),
        (lost == 0, f"frames lost for connected clients: {lost}"),
        (out_of_order == 0, f"frames out of order: {out_of_order}"),
        (extra_terminals == 0, f"extra terminal frames: {extra_terminals}"),
        (
            stats["invocations_running"] == 0,
            f"runs left running {grace:g} s after their client left: {stats['invocations_running']}",
        ),
        (posts_after_410 == 0, f"posts after a 410: {posts_after_410}"),
        (stats["invocation_errors"] == 0, f"function errors: {stats['invocation_errors']}"),
    ]
    print(
        f"soak: {len(clients)} connections ({len(stayed)} stayed, {len(left)} left mid-answer), "
        f"{sum(len(c.queries) for c in clients)} queries asked, {results} results, errors by code {errors}, "
        f"{elapsed:.1f} s"
    )
    print(
        f"gateway: posts {stats['posts']}, delivered {stats['posts_delivered']}, injected 429 "
        f"{stats['injected_429']}, buffer-full 429 {stats['buffer_full_429']}, 410 {stats['gone_410']} "
        f"(after close {stats['posts_after_gone']}), 413 {stats['payload_too_large_413']}, "
        f"invocations {stats['invocations_total']} (asynchronous hand-offs {stats['async_invocations']})"
    )
    for client in failures[:5]:
        print(f"  client {client.index} failed: {client.failure}")
    ok = True
    for passed, line in checks:
        print(("PASS " if passed else "FAIL ") + line)
        ok = ok and passed
    return ok


async def soak(args: argparse.Namespace, gateway: Gateway) -> tuple[list[Client], dict[str, Any], float]:
    """Run every client, wait for the grace period, read the stats."""
    rng = random.Random(args.seed)
    clients = []
    for index in range(args.connections):
        questions = rng.randint(1, 3)
        leave_at = rng.randrange(questions) if rng.random() < args.leave_rate else None
        clients.append(Client(index, questions, leave_at))
    start = asyncio.Event()
    began = time.monotonic()
    tasks = [
        asyncio.create_task(
            run_client(c, gateway.ws_url, random.Random(rng.random()), start, args.query_timeout)
        )
        for c in clients
    ]
    # Let every client open its connection, then release them together.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stats = await asyncio.to_thread(gateway.stats)
        if stats["connections_open"] >= args.connections:
            break
        await asyncio.sleep(0.2)
    start.set()
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, args.max_seconds - (time.monotonic() - began)))
    for task in pending:
        task.cancel()
    for task in pending:
        with suppress(asyncio.CancelledError):
            await task
    elapsed = time.monotonic() - began
    await asyncio.sleep(args.grace)
    return clients, await asyncio.to_thread(gateway.stats), elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the report; exit status 1 on any FAIL."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--inject-429", type=float, default=0.05, help="fraction of posts answered 429")
    parser.add_argument(
        "--leave-rate", type=float, default=0.10, help="fraction of clients leaving mid-answer"
    )
    parser.add_argument("--token-delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--grace", type=float, default=3.0, help="seconds after the last client before the check"
    )
    parser.add_argument("--query-timeout", type=float, default=90.0, help="seconds one query may take")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound on the client phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run-mode", choices=["inline", "async"], help="RUN_MODE (default: the template's)")
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="selador-soak-") as tmp,
        start_gateway(args, Path(tmp)) as gateway,
    ):
        clients, stats, elapsed = asyncio.run(soak(args, gateway))
        ok = report(clients, stats, elapsed=elapsed, grace=args.grace)
        if not ok:
            print("--- gateway output (tail) ---\n" + gateway.log_tail())
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
