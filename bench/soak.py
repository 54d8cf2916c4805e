"""``make soak``: many clients through the local gateway while it injects faults; bounded; loopback only.

What it does:

1. starts ``selador serve`` as a subprocess on a free loopback port with the real handler (the
   template's ``RUN_MODE=async``), the offline model at ``LOCAL_MODEL_TOKEN_DELAY_MS`` (5 ms) and
   ``--inject-429`` (5 % of PostToConnection calls answered 429 without delivering);
2. opens ``--connections`` (200) WebSocket clients at once; each asks 1 to 3 questions one after the
   other, and is one of three kinds:

   * **stays** (the rest): follows every question to its terminal frame;
   * **leaves** (``--leave-rate``, 10 %): closes its connection for good mid-answer (after the
     first ``delta`` of a question); half of them asked with ``on_disconnect: "cancel"`` (the run
     must stop), half with the default ``"continue"`` (the run must go on to its end, unseen);
   * **drops** (``--drop-rate``, 10 %): 1 to 3 times in all, spread over its questions, drops its
     connection abruptly mid-answer (``transport.abort()``: no close frame, as a lost network
     does), reconnects at once and sends ``resume`` with the last contiguous ``seq`` it holds and
     the run's ``run_token``, dropping any ``seq`` it has already seen (docs/protocol.md);
3. after every client is done, waits up to ``--grace`` seconds for every run to end (``GET
   /runs/{request_id}`` with ``X-Run-Token``) and for the gateway to be idle, then reads ``GET
   /_selador/stats``.

Report lines (each PASS or FAIL; exit status 1 on any FAIL). "Followed" queries are those of
clients that stayed and of clients that dropped and resumed:

* queries completed: every followed query ended with a terminal frame, no client broke;
* frames lost: missing ``seq`` numbers (after dedupe) or missing terminal frames (0);
* frames out of order: after dropping repeated ``seq``, a frame arriving after a higher one (0);
* terminal frames: each followed query kept exactly one, the last ``seq`` (0 otherwise);
* errors about messages: ``error`` frames without a ``seq`` (a refused ``invoke``, an
  ``unknown_run`` answer to a ``resume``) (0);
* connections dropped and resumed: at least one drop happened (the check is not vacuous);
* runs not ended: runs whose status is still ``running`` (or could not be read) once the grace
  period is over, leavers' and droppers' included (0);
* leavers' runs cancelled despite ``on_disconnect: "continue"`` (0): a dropped connection does not
  cancel; the ``"cancel"`` leavers' runs are counted too (cancelled, or finished before the 410);
* invocations still running once the grace period is over (0);
* posts after a 410: PostToConnection calls to a closed connection beyond what learning of its
  end needs: one for the run it was following when it closed mid-answer (its sender learns of the
  410 and detaches it), plus one if it sent a ``resume`` (the route may still be replaying); a
  stayer's connection and a finished one get none (0);
* function errors: invocations that raised (0).

Bounded: every wait has a timeout and the whole client phase is cut at ``--max-seconds``.

The clients (their plan and the three kinds) are :mod:`bench._soak_clients`; the gateway
subprocess is :mod:`bench._soak_gateway`. This module holds the run, the report and the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench._soak_clients import Client, Query, plan_clients, run_client
from bench._soak_gateway import Gateway, start_gateway
from bench.sequence import SeqProblems

# ---------------------------------------------------------------------------------- report


def sequence_problems(query: Query) -> SeqProblems:
    """What is wrong with a followed query's frames after dedupe (see :class:`SeqProblems`)."""
    return query.log.problems()


def posts_after_410(clients: list[Client], connections: list[dict[str, Any]]) -> tuple[int, int]:
    """``(beyond_allowance, total)`` posts to closed connections, from the gateway's per-connection counts."""
    by_tag = {conn["query"].get("tag"): conn for conn in connections}
    beyond = total = 0
    for client in clients:
        for conn in client.connections:
            summary = by_tag.get(conn.tag)
            if summary is None:
                continue
            total += summary["postsAfterClose"]
            beyond += max(0, summary["postsAfterClose"] - conn.posts_allowed_after_close)
    return beyond, total


def report(
    clients: list[Client],
    stats: dict[str, Any],
    *,
    elapsed: float,
    grace: float,
    settled: float | None,
) -> bool:
    """Print one line per check and the counters; ``True`` when every check passed."""
    followed = [c for c in clients if c.kind != "leave" or not c.left]
    leavers = [c for c in clients if c.kind == "leave" and c.left]
    droppers = [c for c in clients if c.kind == "drop"]
    planned = sum(c.questions for c in followed)
    completed = sum(1 for c in followed for q in c.queries if q.terminal is not None)
    results = sum(1 for c in clients for q in c.queries if q.terminal == "result")
    errors: dict[str, int] = {}
    message_errors: dict[str, int] = {}
    for c in clients:
        for q in c.queries:
            if q.terminal == "error" and q.log.terminal_frame is not None:
                code = str(q.log.terminal_frame.get("code"))
                errors[code] = errors.get(code, 0) + 1
            for frame in q.log.unnumbered:
                code = str(frame.get("code", frame.get("type")))
                message_errors[code] = message_errors.get(code, 0) + 1
    lost = out_of_order = terminal_faults = duplicates = 0
    for c in followed:
        for q in c.queries:
            problems = sequence_problems(q)
            lost += problems.lost
            out_of_order += problems.out_of_order
            terminal_faults += int(problems.terminals != 1) + problems.after_terminal
            duplicates += problems.duplicates
        lost += c.questions - len(c.queries)  # questions never asked because the client broke
    failures = [c for c in clients if c.failure]
    drops_planned = sum(sum(c.drops_planned) for c in droppers)
    drops_done = sum(c.drops_done for c in droppers)
    resumed_duplicates = sum(q.log.duplicates for c in droppers for q in c.queries)

    runs = [q for c in clients for q in c.queries]
    not_ended = [q for q in runs if q.final_status not in ENDED]
    unreadable = [q for q in runs if q.final_status is None or q.final_status.startswith("http")]
    statuses: dict[str, int] = {}
    for q in runs:
        statuses[q.final_status or "?"] = statuses.get(q.final_status or "?", 0) + 1
    continue_leavers = [c.queries[-1] for c in leavers if c.on_disconnect == "continue"]
    cancel_leavers = [c.queries[-1] for c in leavers if c.on_disconnect == "cancel"]
    wrongly_cancelled = [q for q in continue_leavers if q.final_status == "cancelled"]
    cancelled_leavers = sum(1 for q in cancel_leavers if q.final_status == "cancelled")
    beyond, total_after_close = posts_after_410(clients, stats["connections"])

    checks = [
        (
            completed == planned and not failures,
            f"queries completed: {completed}/{planned} (clients that stayed or dropped and resumed)",
        ),
        (lost == 0, f"frames lost for followed queries (after dedupe): {lost}"),
        (out_of_order == 0, f"frames out of order after dedupe: {out_of_order}"),
        (
            terminal_faults == 0,
            f"queries without exactly one terminal frame, or frames after it: {terminal_faults}",
        ),
        (
            not message_errors,
            f"errors about messages (no seq): {sum(message_errors.values())}"
            + (f" {message_errors}" if message_errors else ""),
        ),
        (
            drops_done > 0 or not droppers,
            f"connections dropped mid-answer and resumed: {drops_done} (planned {drops_planned}) by "
            f"{sum(1 for c in droppers if c.drops_done)} of {len(droppers)} clients; "
            f"{resumed_duplicates} repeated frames dropped by them",
        ),
        (
            not not_ended,
            f"runs not ended (checked up to {grace:g} s after the last client): {len(not_ended)} of "
            f"{len(runs)} ({len(unreadable)} unreadable); statuses {statuses}"
            + (f"; all ended {settled:.1f} s after the last client" if settled is not None else ""),
        ),
        (
            not wrongly_cancelled,
            f"leavers' runs cancelled despite on_disconnect continue: {len(wrongly_cancelled)} of "
            f"{len(continue_leavers)} (on_disconnect cancel: {cancelled_leavers} of {len(cancel_leavers)} "
            "cancelled, the rest finished before the 410)",
        ),
        (
            stats["invocations_running"] == 0,
            f"invocations still running at the end: {stats['invocations_running']}",
        ),
        (
            beyond == 0,
            f"posts after a 410 beyond the one each needs: {beyond} "
            f"(all posts after close {total_after_close})",
        ),
        (stats["invocation_errors"] == 0, f"function errors: {stats['invocation_errors']}"),
    ]
    print(
        f"soak: {len(clients)} connections ({sum(1 for c in clients if c.kind == 'stay')} stayed, "
        f"{len(leavers)} left mid-answer, {len(droppers)} dropped and resumed), "
        f"{len(runs)} queries asked, {results} results, errors by code {errors}, "
        f"{duplicates} repeated frames dropped, {elapsed:.1f} s"
    )
    print(
        f"gateway: posts {stats['posts']}, delivered {stats['posts_delivered']}, injected 429 "
        f"{stats['injected_429']}, buffer-full 429 {stats['buffer_full_429']}, 410 {stats['gone_410']} "
        f"(after close {stats['posts_after_gone']}), 413 {stats['payload_too_large_413']}, "
        f"invocations {stats['invocations_total']} (asynchronous hand-offs {stats['async_invocations']})"
    )
    for client in failures[:5]:
        print(f"  client {client.index} ({client.kind}) failed: {client.failure}")
    ok = True
    for passed, line in checks:
        print(("PASS " if passed else "FAIL ") + line)
        ok = ok and passed
    return ok


ENDED = frozenset({"succeeded", "failed", "cancelled"})


async def _settle(
    gateway: Gateway, clients: list[Client], grace: float
) -> tuple[dict[str, Any], float | None]:
    """Wait up to ``grace`` s for every run to end and the gateway to be idle; the last stats read."""
    began = time.monotonic()
    pending = [q for c in clients for q in c.queries]
    settled: float | None = None
    while True:
        still = []
        for query in pending:
            query.final_status = (
                await asyncio.to_thread(gateway.run_status, query.request_id, query.token)
                if query.token
                else None
            )
            if query.final_status not in ENDED:
                still.append(query)
        pending = still
        stats = await asyncio.to_thread(gateway.stats)
        if not pending and stats["invocations_running"] == 0:
            settled = time.monotonic() - began
            return stats, settled
        if time.monotonic() - began >= grace:
            return stats, settled
        await asyncio.sleep(0.5)


async def soak(
    args: argparse.Namespace, gateway: Gateway
) -> tuple[list[Client], dict[str, Any], float, float | None]:
    """Run every client, wait for the runs to end (at most the grace period), read the stats."""
    rng = random.Random(args.seed)
    clients = plan_clients(args.connections, rng, args.leave_rate, args.drop_rate)
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
    stats, settled = await _settle(gateway, clients, args.grace)
    return clients, stats, elapsed, settled


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the report; exit status 1 on any FAIL."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--inject-429", type=float, default=0.05, help="fraction of posts answered 429")
    parser.add_argument(
        "--leave-rate", type=float, default=0.10, help="fraction of clients leaving mid-answer for good"
    )
    parser.add_argument(
        "--drop-rate",
        type=float,
        default=0.10,
        help="fraction of clients dropping their connection 1-3 times mid-answer and resuming",
    )
    parser.add_argument("--token-delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--grace",
        type=float,
        default=15.0,
        help="at most this many seconds after the last client for every run to end",
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
        clients, stats, elapsed, settled = asyncio.run(soak(args, gateway))
        ok = report(clients, stats, elapsed=elapsed, grace=args.grace, settled=settled)
        if not ok:
            print("--- gateway output (tail) ---\n" + gateway.log_tail())
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
