"""Target 9, durable runs (protocol 1.1): how fast ``resume`` replays a run's frames.

Measured through the real gateway in a subprocess (``selador serve``, the process runtime, the
template's ``RUN_MODE=async``, the offline model, the SQLite store on a temporary file), as
:mod:`bench.concurrency` runs it; the clients run on one event loop in this process and time
with ``time.perf_counter()``. Every measured message goes over a connection opened beforehand:
connecting is never timed.

Target 10 (``cancel``) is :mod:`bench.cancel`; the settings, client helpers and judging both
use are in :mod:`bench._run_clients`.

* ``resume.first_frame``: ``--resume-runs`` runs (50, quick 10) are started and left to finish
  (``LOCAL_MODEL_TOKEN_DELAY_MS`` 15, ``LOCAL_MODEL_MIN_ANSWER_TOKENS`` 400: a long answer's
  log). Then, one at a time, a fresh connection sends ``resume`` (``after_seq`` 0 for half of
  them, the middle ``seq`` for the other half) and the time from sending it to the first replayed
  frame is taken. Targets: p50 <= 20 ms, p99 <= 100 ms. The replay must be exactly the logged
  frames after ``after_seq``, byte for byte as first sent, ending with the terminal frame; any
  difference fails both. For the record (no target), the same for runs still mid-answer: a second
  connection resumes (``after_seq`` 0) a run whose first connection is still reading, takes the
  time to its first replayed frame and to the first frame the first connection had not seen, then
  cancels the run; it must receive the whole run (after dropping repeated ``seq``) and its
  cancelled ``result``, or both results FAIL.
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
    invoke_text,
    latency_results,
    pct,
    run_env,
    sum_counts,
)
from bench.concurrency import gateway
from bench.results import Result
from bench.sequence import TERMINAL_TYPES, SeqLog, add_problems
from bench.stats import summarize

RESUME_P50_MS = 20.0
RESUME_P99_MS = 100.0
START_AT_ONCE = 25
"""Runs started at the same time while preparing the finished runs to resume."""


# ------------------------------------------------------------------------------ client side


@dataclass
class Original:
    """A run as the client that asked it received it."""

    request_id: str
    token: str = ""
    raw: dict[int, str] = field(default_factory=dict)
    log: SeqLog = field(default_factory=SeqLog)

    @property
    def frames(self) -> int:
        return max(self.raw, default=0)


async def _ask_to_end(url: str, request_id: str, gate: asyncio.Semaphore) -> Original:
    original = Original(request_id)
    async with gate, connect_ws(url) as ws:
        await ws.send(invoke_text(request_id))
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                _, raw, frame = await frame_for(ws, request_id)
                if original.log.offer_frame(frame):
                    original.raw[frame["seq"]] = raw
                    original.token = original.token or frame.get("run_token", "")
                if frame.get("type") in TERMINAL_TYPES and "seq" in frame:
                    return original


@dataclass
class Replay:
    """One resume of a finished run."""

    after_seq: int
    first_ms: float | None = None
    all_ms: float | None = None
    problems: dict[str, int] = field(default_factory=dict)
    mismatched: int = 0
    replayed_at_or_below: int = 0


async def _resume_finished(url: str, original: Original, after_seq: int) -> Replay:
    replay = Replay(after_seq)
    log = SeqLog()
    for had in range(1, after_seq + 1):
        log.offer(had)  # what the client already has
    message = json.dumps(
        {
            "action": "resume",
            "request_id": original.request_id,
            "after_seq": after_seq,
            "run_token": original.token,
        }
    )
    async with connect_ws(url) as ws:
        sent = time.perf_counter()
        await ws.send(message)
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                now, raw, frame = await frame_for(ws, original.request_id)
                if replay.first_ms is None:
                    replay.first_ms = (now - sent) * 1000
                seq = frame.get("seq")
                if isinstance(seq, int) and seq <= after_seq:
                    replay.replayed_at_or_below += 1
                if log.offer_frame(frame) and isinstance(seq, int) and original.raw.get(seq) != raw:
                    replay.mismatched += 1
                if not isinstance(seq, int) or frame.get("type") in TERMINAL_TYPES:
                    replay.all_ms = (now - sent) * 1000
                    break
    replay.problems = add_problems({}, log.problems())
    replay.problems["unnumbered"] = len(log.unnumbered)
    return replay


@dataclass
class MidAnswer:
    """One resume of a run still answering, from a second connection."""

    first_ms: float | None = None
    first_new_ms: float | None = None
    problems: dict[str, int] = field(default_factory=dict)
    outcome: str = "no_terminal"


async def _resume_mid_answer(url: str, request_id: str) -> MidAnswer:
    """Resume (``after_seq`` 0) a run whose first connection is still reading, then cancel it there.

    The second connection must receive every frame of the run (after dropping repeats at the
    seam), its first replayed frame quickly, and the first frame the first connection had not
    seen at the moment of the resume within about a poll interval plus the next frame's coalescing
    window. It then cancels the run so the run ends in well under a second, not after its whole
    answer; the cancelled ``result`` is the terminal frame the second connection must get.
    """
    result = MidAnswer()
    async with connect_ws(url) as first, connect_ws(url) as second:
        await first.send(invoke_text(request_id))
        token = ""
        seen_by_first = 0
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                _, _, frame = await frame_for(first, request_id)
                token = token or frame.get("run_token", "")
                if isinstance(frame.get("seq"), int):
                    seen_by_first = max(seen_by_first, frame["seq"])
                if frame.get("type") == "delta":
                    break

        async def drain() -> None:  # the first connection keeps reading (it does not leave)
            while True:
                await first.recv()

        draining = asyncio.create_task(drain())
        log = SeqLog()
        terminal: dict[str, Any] | None = None
        sent = time.perf_counter()
        await second.send(
            json.dumps({"action": "resume", "request_id": request_id, "after_seq": 0, "run_token": token})
        )
        try:
            async with asyncio.timeout(RUN_TIMEOUT_S):
                while True:
                    now, _, frame = await frame_for(second, request_id)
                    if result.first_ms is None:
                        result.first_ms = (now - sent) * 1000
                    seq = frame.get("seq")
                    if not isinstance(seq, int):
                        log.offer_frame(frame)
                        break  # an error about the resume message
                    new = log.offer(seq, terminal=frame.get("type") in TERMINAL_TYPES)
                    if new and seq > seen_by_first and result.first_new_ms is None:
                        result.first_new_ms = (now - sent) * 1000
                        if frame.get("type") not in TERMINAL_TYPES:
                            cancel = {"action": "cancel", "request_id": request_id, "run_token": token}
                            await second.send(json.dumps(cancel))
                    if frame.get("type") in TERMINAL_TYPES:
                        terminal = frame
                        break
        finally:
            draining.cancel()
    result.outcome = cancel_outcome(terminal, log.unnumbered)
    result.problems = add_problems({}, log.problems())
    result.problems["unnumbered"] = len(log.unnumbered)
    return result


# ------------------------------------------------------------------------------ measurements


async def _resume_measure(url: str, runs: int, mid_answer: int) -> dict[str, Any]:
    gate = asyncio.Semaphore(START_AT_ONCE)
    started = time.perf_counter()
    originals = await asyncio.gather(*(_ask_to_end(url, f"rs-{i}", gate) for i in range(runs + WARM_UP)))
    prepare_s = time.perf_counter() - started
    bad_originals = [o.request_id for o in originals if not o.log.problems().ok or not o.token]
    replays: list[Replay] = []
    for index, original in enumerate(originals):
        after_seq = 0 if index % 2 == 0 else original.frames // 2
        replay = await _resume_finished(url, original, after_seq)
        if index >= WARM_UP:
            replays.append(replay)
    mids = [await _resume_mid_answer(url, f"rm-{i}") for i in range(mid_answer + 1)][1:]
    return {
        "originals": originals,
        "bad_originals": bad_originals,
        "replays": replays,
        "mid": mids,
        "prepare_s": prepare_s,
    }


def resume(runs: int, mid_answer: int, env: dict[str, str], isolation: str = "process") -> list[Result]:
    """``resume.first_frame``: p50 and p99 from ``resume`` to the first replayed frame of a finished run."""
    settings = run_env(env)
    with gateway(GATEWAY_CONCURRENCY, settings, isolation) as server:
        measured = asyncio.run(_resume_measure(server.url, runs, mid_answer))
        counters = gateway_counters(server)
    replays: list[Replay] = measured["replays"]
    mids: list[MidAnswer] = measured["mid"]
    samples = [r.first_ms for r in replays if r.first_ms is not None]
    from_zero = [r.first_ms for r in replays if r.first_ms is not None and r.after_seq == 0]
    from_middle = [r.first_ms for r in replays if r.first_ms is not None and r.after_seq > 0]
    whole = [r.all_ms for r in replays if r.all_ms is not None]
    problems = sum_counts(r.problems for r in replays)
    mismatched = sum(r.mismatched for r in replays)
    below = sum(r.replayed_at_or_below for r in replays)
    mid_samples = [m.first_ms for m in mids if m.first_ms is not None]
    mid_new = [m.first_new_ms for m in mids if m.first_new_ms is not None]
    mid_problems = sum_counts(m.problems for m in mids)
    frames = [o.frames for o in measured["originals"]]
    failures = []
    wrong = {k: v for k, v in problems.items() if v and k != "duplicates_dropped"}
    if wrong:
        failures.append(f"replays of finished runs: {wrong}")
    if mismatched:
        failures.append(f"{mismatched} replayed frames differ from the frames first sent")
    if below:
        failures.append(f"{below} replayed frames at or below after_seq")
    if measured["bad_originals"]:
        failures.append(f"{len(measured['bad_originals'])} runs did not stream whole the first time")
    if len(samples) != runs:
        failures.append(f"{runs - len(samples)} resumes got no frame")
    detail = {
        "runs": runs,
        "first_frame_ms_after_seq_0": summarize(from_zero) if from_zero else None,
        "first_frame_ms_after_seq_middle": summarize(from_middle) if from_middle else None,
        "whole_replay_ms": summarize(whole) if whole else None,
        "frames_per_run": summarize(frames) if frames else None,
        "replay_problems": problems,
        "replayed_frames_differing": mismatched,
        "replayed_at_or_below_after_seq": below,
        "mid_answer": {
            "runs": len(mids),
            "first_frame_ms": summarize(mid_samples) if mid_samples else None,
            "first_unseen_frame_ms": summarize(mid_new) if mid_new else None,
            "problems_after_dedupe": mid_problems,
            "outcomes": count(m.outcome for m in mids),
            "note": "no target: a second connection resumes (after_seq 0) a run whose first "
            "connection is still reading, must receive the whole run (repeats at the seam dropped), "
            "and cancels it once a frame the first connection had not seen arrives; "
            "first_unseen_frame_ms includes waiting for the model's next frame",
        },
        "prepare_s": round(measured["prepare_s"], 1),
        "settings": settings,
        "isolation": isolation,
        "gateway_counters": counters,
        "clock": "time.perf_counter() in the client process; connections opened before timing",
    }
    mid_wrong = {k: v for k, v in mid_problems.items() if v and k != "duplicates_dropped"}
    note = (
        f"after_seq 0 p50 {pct(from_zero, 50)} ms, middle p50 {pct(from_middle, 50)} ms; "
        f"whole replay p50 {pct(whole, 50)} ms ({pct(frames, 50)} frames); mid-answer p50 "
        f"{pct(mid_samples, 50)} ms, first unseen frame p50 {pct(mid_new, 50)} ms (no target)"
    )
    if mid_wrong:
        failures.append(f"mid-answer resumes: {mid_wrong}")
    mid_outcomes = {k: v for k, v in count(m.outcome for m in mids).items() if k != "cancelled"}
    if mid_outcomes:
        failures.append(f"mid-answer resumes ended otherwise than cancelled: {mid_outcomes}")
    return latency_results(
        "resume.first_frame",
        samples,
        {50: RESUME_P50_MS, 99: RESUME_P99_MS},
        detail=detail,
        note=note,
        failures=failures,
    )
