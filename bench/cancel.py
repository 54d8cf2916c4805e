"""Target 10, durable runs (protocol 1.1): how fast ``cancel`` stops a run.

Measured through the real gateway in a subprocess (``selador serve``, the process runtime, the
template's ``RUN_MODE=async``, the offline model, the SQLite store on a temporary file), as
:mod:`bench.concurrency` runs it; the clients run on one event loop in this process and time
with ``time.perf_counter()``. Every measured message goes over a connection opened beforehand:
connecting is never timed.

Target 9 (``resume``) is :mod:`bench.runs`; the settings, client helpers and judging both use
are in :mod:`bench._run_clients`.

* ``cancel.latency``: ``--cancel-runs`` runs (40, quick 10), one at a time, each on a fresh
  connection: after the first ``delta`` the client sends ``cancel``; the time from sending it to
  the terminal frame. Target: p95 <= 500 ms. The terminal frame must be a ``result`` with
  ``data.stop_reason`` ``cancelled`` (and ``GET /runs/{request_id}`` must say ``cancelled``);
  anything else is a failure. On every fourth run the client keeps listening 0.5 s after the
  terminal frame: any frame of that request arriving then fails the target. The run's executor
  sees a cancel at its next poll of the run record (``RUN_POLL_MS``, default 200 ms, the first one
  a whole interval after the executor starts). The offline model's first delta comes 10-20 ms
  after that start, so the cancel lands just after it and the latency measured is about one whole
  poll interval plus the stop; a model slower to its first token would see half an interval on
  average.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from bench._run_clients import (
    GATEWAY_CONCURRENCY,
    RUN_TIMEOUT_S,
    WARM_UP,
    cancel_outcome,
    connect_ws,
    count,
    frame_for,
    gateway_counters,
    http_base,
    invoke_text,
    latency_results,
    pct,
    run_env,
    run_status,
    sum_counts,
)
from bench.concurrency import gateway
from bench.results import Result
from bench.sequence import TERMINAL_TYPES, SeqLog, add_problems
from bench.stats import summarize

CANCEL_P95_MS = 500.0
AFTER_TERMINAL_WAIT_S = 0.5
AFTER_TERMINAL_EVERY = 4
"""Every how many cancelled runs the client keeps listening after the terminal frame."""


# ------------------------------------------------------------------------------ client side


@dataclass
class Cancelled:
    """One run cancelled after its first delta."""

    outcome: str = "no_terminal"
    latency_ms: float | None = None
    after_terminal: int | None = None
    status: str | None = None
    content_matches: bool | None = None
    problems: dict[str, int] = field(default_factory=dict)
    token: str = ""
    first_delta_seq: int = 0
    terminal_seq: int = 0


async def _cancel_one(url: str, request_id: str, listen_after: bool) -> Cancelled:
    result = Cancelled()
    log = SeqLog()
    deltas: list[tuple[int, str]] = []
    terminal: dict[str, Any] | None = None
    async with connect_ws(url) as ws:
        await ws.send(invoke_text(request_id))
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                _, _, frame = await frame_for(ws, request_id)
                result.token = result.token or frame.get("run_token", "")
                if log.offer_frame(frame) and frame.get("type") == "delta":
                    deltas.append((frame["seq"], frame.get("content", "")))
                    result.first_delta_seq = frame["seq"]
                    break
                if frame.get("type") in TERMINAL_TYPES:
                    terminal = frame  # ended before any delta: nothing to cancel mid-answer
                    break
        if terminal is None:
            sent = time.perf_counter()
            await ws.send(
                json.dumps({"action": "cancel", "request_id": request_id, "run_token": result.token})
            )
            try:
                async with asyncio.timeout(RUN_TIMEOUT_S):
                    while True:
                        now, _, frame = await frame_for(ws, request_id)
                        new = log.offer_frame(frame)
                        if new and frame.get("type") == "delta":
                            deltas.append((frame["seq"], frame.get("content", "")))
                        if not isinstance(frame.get("seq"), int) and frame.get("type") == "error":
                            break  # an error about the cancel message: not the run's end
                        if frame.get("type") in TERMINAL_TYPES:
                            terminal = frame
                            result.latency_ms = (now - sent) * 1000
                            break
            except TimeoutError:
                pass
        if listen_after:
            result.after_terminal = 0
            try:
                async with asyncio.timeout(AFTER_TERMINAL_WAIT_S):
                    while True:
                        await frame_for(ws, request_id)
                        result.after_terminal += 1
            except TimeoutError:
                pass
    result.outcome = cancel_outcome(terminal, log.unnumbered)
    if terminal is not None:
        result.terminal_seq = int(terminal.get("seq") or 0)
        if terminal.get("type") == "result":
            streamed = "".join(text for _, text in sorted(deltas))
            result.content_matches = (terminal.get("data") or {}).get("content") == streamed
    result.problems = add_problems({}, log.problems())
    return result


# ------------------------------------------------------------------------------ measurements


async def _cancel_measure(url: str, runs: int) -> list[Cancelled]:
    results = []
    for index in range(runs + WARM_UP):
        measured = index >= WARM_UP
        listen = measured and (index - WARM_UP) % AFTER_TERMINAL_EVERY == 0
        result = await _cancel_one(url, f"cx-{index}", listen)
        if measured:
            results.append(result)
    return results


def cancel(runs: int, env: dict[str, str], isolation: str = "process") -> list[Result]:
    """``cancel.latency``: p95 from ``cancel`` (sent after the first delta) to the terminal frame."""
    settings = run_env(env)
    with gateway(GATEWAY_CONCURRENCY, settings, isolation) as server:
        cancelled = asyncio.run(_cancel_measure(server.url, runs))
        base = http_base(server)
        for row, index in zip(cancelled, range(WARM_UP, WARM_UP + runs), strict=True):
            if row.token:
                row.status = str(run_status(base, f"cx-{index}", row.token).get("status"))
        counters = gateway_counters(server)
    samples = [c.latency_ms for c in cancelled if c.latency_ms is not None and c.outcome == "cancelled"]
    outcomes = count(c.outcome for c in cancelled)
    statuses = count(str(c.status) for c in cancelled)
    listened = [c for c in cancelled if c.after_terminal is not None]
    after = sum(c.after_terminal or 0 for c in listened)
    problems = sum_counts(c.problems for c in cancelled)
    content_mismatch = sum(1 for c in cancelled if c.content_matches is False)
    failures = []
    wrong_outcomes = {k: v for k, v in outcomes.items() if k != "cancelled"}
    if wrong_outcomes:
        failures.append(f"outcomes other than a cancelled result: {wrong_outcomes}")
    wrong_status = {k: v for k, v in statuses.items() if k != "cancelled"}
    if wrong_status:
        failures.append(f"GET /runs status other than cancelled: {wrong_status}")
    if after:
        failures.append(f"{after} frames after the terminal frame")
    wrong = {k: v for k, v in problems.items() if v and k != "duplicates_dropped"}
    if wrong:
        failures.append(f"frames: {wrong}")
    poll_ms = int(settings.get("RUN_POLL_MS", 200))
    ended = [c.terminal_seq for c in cancelled if c.terminal_seq]
    detail = {
        "runs": runs,
        "outcomes": outcomes,
        "run_status": statuses,
        "frames_after_terminal": after,
        "runs_listened_after_terminal": len(listened),
        "listen_after_terminal_s": AFTER_TERMINAL_WAIT_S,
        "frame_problems": problems,
        "content_not_the_deltas": content_mismatch,
        "frames_before_cancel": summarize([c.first_delta_seq for c in cancelled]) if cancelled else None,
        "frames_in_run": summarize(ended) if ended else None,
        "run_poll_ms": poll_ms,
        "settings": settings,
        "isolation": isolation,
        "gateway_counters": counters,
    }
    note = (
        f"p50 {pct(samples, 50)} ms, max {pct(samples, 100)} ms; RUN_POLL_MS {poll_ms}; "
        f"{after} frames after terminal on {len(listened)} runs"
    )
    if content_mismatch:
        note += f"; {content_mismatch} results whose content is not the streamed deltas"
    return latency_results(
        "cancel.latency", samples, {95: CANCEL_P95_MS}, detail=detail, note=note, failures=failures
    )
