"""Targets 9 and 10, durable runs (protocol 1.1): how fast ``resume`` replays and ``cancel`` stops.

Both through the real gateway in a subprocess (``selador serve``, the process runtime, the
template's ``RUN_MODE=async``, the offline model, the SQLite store on a temporary file), as
:mod:`bench.concurrency` runs it; the clients run on one event loop in this process and time
with ``time.perf_counter()``. Every measured message goes over a connection opened beforehand:
connecting is never timed.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.concurrency import QUESTION, Server, gateway
from bench.results import Result, judged
from bench.sequence import TERMINAL_TYPES, SeqLog, add_problems
from bench.stats import percentile, summarize

RESUME_P50_MS = 20.0
RESUME_P99_MS = 100.0
CANCEL_P95_MS = 500.0
TOKEN_DELAY_MS = 15
ANSWER_TOKENS = 400
AFTER_TERMINAL_WAIT_S = 0.5
AFTER_TERMINAL_EVERY = 4
"""Every how many cancelled runs the client keeps listening after the terminal frame."""
WARM_UP = 4
"""Unmeasured resumes / cancels first, so every front worker has served the route once."""
START_AT_ONCE = 25
"""Runs started at the same time while preparing the finished runs to resume."""
RUN_TIMEOUT_S = 60.0
GATEWAY_CONCURRENCY = 64


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The handler settings of this group (``--env`` values win)."""
    return {
        "LOCAL_MODEL_TOKEN_DELAY_MS": str(TOKEN_DELAY_MS),
        "LOCAL_MODEL_MIN_ANSWER_TOKENS": str(ANSWER_TOKENS),
        **(extra or {}),
    }


# ------------------------------------------------------------------------------ pure helpers


def latency_results(
    prefix: str,
    samples: list[float],
    targets: dict[int, float],
    *,
    detail: dict[str, Any] | None = None,
    note: str = "",
    failures: Iterable[str] = (),
) -> list[Result]:
    """One ``<prefix>.p<q>`` result per percentile target; any ``failures`` turn them all to FAIL.

    Args:
        prefix: Result name prefix, e.g. ``resume.first_frame``.
        samples: Latencies in milliseconds (none: every result FAILs).
        targets: Percentile (0..100) to its bound in milliseconds.
        detail: Shared detail for every result (a summary of the samples is added).
        note: Appended to each result's note.
        failures: Reasons the measurement is not valid whatever the latencies (lost frames...).

    Returns:
        The results, in ``targets`` order.
    """
    reasons = list(failures)
    detail = {**(detail or {}), "latency_ms": summarize(samples) if samples else None}
    results = []
    for q, bound in targets.items():
        name = f"{prefix}.p{q:g}"
        if not samples:
            result = judged(name, float("inf"), "ms", bound, detail=detail, note="no samples")
            result.measured = None
            result.status = "FAIL"
        else:
            value = round(percentile(samples, q), 2)
            result = judged(name, value, "ms", bound, detail=detail, note=f"n={len(samples)}")
            if note:
                result.note += f", {note}"
        if reasons:
            result.status = "FAIL"
            result.note += "; FAILED: " + "; ".join(reasons)
        results.append(result)
    return results


def cancel_outcome(terminal: dict[str, Any] | None, unnumbered: list[dict[str, Any]]) -> str:
    """How a cancelled run ended, from the client's side: ``cancelled`` is the only right answer.

    Args:
        terminal: The run's terminal frame (with a ``seq``), or ``None`` when none came.
        unnumbered: Frames about the request without a ``seq`` (errors about the message).

    Returns:
        ``cancelled``, ``result:<stop_reason>``, ``error:<code>``, ``message_error:<code>`` (an
        error about the ``cancel`` message, e.g. ``not_running``) or ``no_terminal``.
    """
    if terminal is not None:
        if terminal.get("type") == "result":
            data = terminal.get("data") or {}
            reason = data.get("stop_reason")
            if reason == "cancelled" and data.get("success") is False:
                return "cancelled"
            return f"result:{reason}"
        return f"error:{terminal.get('code')}"
    for frame in unnumbered:
        if frame.get("type") == "error":
            return f"message_error:{frame.get('code')}"
    return "no_terminal"


def count(values: Iterable[str]) -> dict[str, int]:
    """How many times each value occurs."""
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return counted


# ------------------------------------------------------------------------------ client side


def _connect(url: str) -> Any:
    from websockets.asyncio.client import connect

    return connect(url, proxy=None, open_timeout=60, max_size=None, ping_interval=None, compression=None)


def _http_base(server: Server) -> str:
    return "http" + server.url[2:].rsplit("/", 1)[0]


def run_status(base: str, request_id: str, token: str) -> dict[str, Any]:
    """``GET /runs/{request_id}`` with the run's token (status code in ``http_status``)."""
    import httpx

    response = httpx.get(
        f"{base}/runs/{quote(request_id, safe='')}",
        headers={"X-Run-Token": token},
        timeout=30,
        trust_env=False,
    )
    try:
        body = response.json()
    except ValueError:
        body = {}
    return {"http_status": response.status_code, **body}


async def _frame_for(ws: Any, request_id: str) -> tuple[float, str, dict[str, Any]]:
    """The next message about ``request_id``: receive time, raw text, decoded frame."""
    while True:
        raw = await ws.recv()
        now = time.perf_counter()
        frame = json.loads(raw)
        if frame.get("request_id") == request_id:
            return now, raw, frame


def _invoke(request_id: str) -> str:
    return json.dumps(
        {"action": "invoke", "question": QUESTION, "query_type": "zoning", "request_id": request_id}
    )


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
    async with gate, _connect(url) as ws:
        await ws.send(_invoke(request_id))
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                _, raw, frame = await _frame_for(ws, request_id)
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
    async with _connect(url) as ws:
        sent = time.perf_counter()
        await ws.send(message)
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                now, raw, frame = await _frame_for(ws, original.request_id)
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
    async with _connect(url) as first, _connect(url) as second:
        await first.send(_invoke(request_id))
        token = ""
        seen_by_first = 0
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                _, _, frame = await _frame_for(first, request_id)
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
                    now, _, frame = await _frame_for(second, request_id)
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
    async with _connect(url) as ws:
        await ws.send(_invoke(request_id))
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                _, _, frame = await _frame_for(ws, request_id)
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
                        now, _, frame = await _frame_for(ws, request_id)
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
                        await _frame_for(ws, request_id)
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


def _sum(rows: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            total[key] = total.get(key, 0) + value
    return total


def resume(runs: int, mid_answer: int, env: dict[str, str], isolation: str = "process") -> list[Result]:
    """``resume.first_frame``: p50 and p99 from ``resume`` to the first replayed frame of a finished run."""
    settings = run_env(env)
    with gateway(GATEWAY_CONCURRENCY, settings, isolation) as server:
        measured = asyncio.run(_resume_measure(server.url, runs, mid_answer))
        counters = _counters(server)
    replays: list[Replay] = measured["replays"]
    mids: list[MidAnswer] = measured["mid"]
    samples = [r.first_ms for r in replays if r.first_ms is not None]
    from_zero = [r.first_ms for r in replays if r.first_ms is not None and r.after_seq == 0]
    from_middle = [r.first_ms for r in replays if r.first_ms is not None and r.after_seq > 0]
    whole = [r.all_ms for r in replays if r.all_ms is not None]
    problems = _sum(r.problems for r in replays)
    mismatched = sum(r.mismatched for r in replays)
    below = sum(r.replayed_at_or_below for r in replays)
    mid_samples = [m.first_ms for m in mids if m.first_ms is not None]
    mid_new = [m.first_new_ms for m in mids if m.first_new_ms is not None]
    mid_problems = _sum(m.problems for m in mids)
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
        f"after_seq 0 p50 {_p(from_zero, 50)} ms, middle p50 {_p(from_middle, 50)} ms; "
        f"whole replay p50 {_p(whole, 50)} ms ({_p(frames, 50)} frames); mid-answer p50 "
        f"{_p(mid_samples, 50)} ms, first unseen frame p50 {_p(mid_new, 50)} ms (no target)"
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
        base = _http_base(server)
        for row, index in zip(cancelled, range(WARM_UP, WARM_UP + runs), strict=True):
            if row.token:
                row.status = str(run_status(base, f"cx-{index}", row.token).get("status"))
        counters = _counters(server)
    samples = [c.latency_ms for c in cancelled if c.latency_ms is not None and c.outcome == "cancelled"]
    outcomes = count(c.outcome for c in cancelled)
    statuses = count(str(c.status) for c in cancelled)
    listened = [c for c in cancelled if c.after_terminal is not None]
    after = sum(c.after_terminal or 0 for c in listened)
    problems = _sum(c.problems for c in cancelled)
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
        f"p50 {_p(samples, 50)} ms, max {_p(samples, 100)} ms; RUN_POLL_MS {poll_ms}; "
        f"{after} frames after terminal on {len(listened)} runs"
    )
    if content_mismatch:
        note += f"; {content_mismatch} results whose content is not the streamed deltas"
    return latency_results(
        "cancel.latency", samples, {95: CANCEL_P95_MS}, detail=detail, note=note, failures=failures
    )


def _p(samples: list[float] | list[int], q: float) -> str:
    return f"{percentile(samples, q):.1f}" if samples else "-"


def _counters(server: Server) -> dict[str, int]:
    from bench.concurrency import _gateway_counters

    return _gateway_counters(server)
