"""Conversations (issue 15): what a question in a long session costs over a question alone.

Measured through the real handler behind the in-process gateway (:mod:`bench.inproc`: the SQLite
store on a temporary file, ``RUN_MODE=inline``, the offline model without token delays), one
WebSocket connection opened beforehand. A session is first filled with ``SESSION_TURNS`` answered
questions (20: the default ``SESSION_MAX_TURNS``, so the whole window is read back). Then fresh
questions (no ``session_id``) and questions in that session alternate, and each is timed from
sending ``invoke`` to its ``result`` frame with ``time.perf_counter()``.

* ``sessions.history_overhead.p50``: the median, over the interleaved pairs, of a session question's
  time minus the fresh question's just before it, in milliseconds (pairs cancel the drift of a
  shared machine; the difference of the two medians is kept in the detail). Target <= 20 ms:
  opening the session, reading the agent record and the window's messages, the responder reading
  a longer conversation, Strands copying a longer prompt, writing the new messages and committing
  the turn. Every measured session question adds a turn, but the prompt (and so the read) is
  bounded by the window, so the 20th and the 40th turn cost the same.

Every answer must be a ``result`` with ``success: true`` and the session's id, or the result FAILs.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.results import Result, judged
from bench.stats import percentile

HISTORY_OVERHEAD_P50_MS = 20.0
SESSION_TURNS = 20
QUESTION = "What is the FAR in LR2?"


async def _ask(ws: Any, request_id: str, **fields: str) -> tuple[float, list[dict[str, Any]]]:
    message = {"action": "invoke", "question": QUESTION, "query_type": "zoning", "request_id": request_id}
    started = time.perf_counter()
    await ws.send(json.dumps(message | fields))
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(120):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("request_id") != request_id:
                continue
            frames.append(frame)
            if frame.get("type") in ("result", "error"):
                return (time.perf_counter() - started) * 1000, frames


def _problem(frames: list[dict[str, Any]], session_id: str | None) -> str | None:
    end = frames[-1]
    if end.get("type") != "result" or not end["data"].get("success"):
        return f"not answered: {json.dumps(end)[:200]}"
    if end.get("session_id") != session_id:
        return f"result names session {end.get('session_id')!r}, expected {session_id!r}"
    return None


async def _measure(url: str, reps: int) -> tuple[list[float], list[float], list[str]]:
    from bench.inproc import connect

    fresh: list[float] = []
    in_session: list[float] = []
    problems: list[str] = []
    async with connect(url) as ws:
        _, frames = await _ask(ws, "fill-0", session_id="new")
        session_id = frames[0]["session_id"]
        token = frames[0]["session_token"]
        for turn in range(1, SESSION_TURNS):
            _, frames = await _ask(ws, f"fill-{turn}", session_id=session_id, session_token=token)
            if problem := _problem(frames, session_id):
                problems.append(problem)
        for rep in range(2):  # warm-up, not kept
            await _ask(ws, f"warm-{rep}")
        for rep in range(reps):
            took, frames = await _ask(ws, f"fresh-{rep}")
            fresh.append(took)
            if problem := _problem(frames, None):
                problems.append(problem)
            took, frames = await _ask(ws, f"session-{rep}", session_id=session_id, session_token=token)
            in_session.append(took)
            if problem := _problem(frames, session_id):
                problems.append(problem)
    return fresh, in_session, problems


def run(reps: int) -> list[Result]:
    """Measure ``reps`` fresh and ``reps`` session questions; return the judged result."""
    from bench.inproc import local_gateway

    with local_gateway({"LOCAL_MODEL_TOKEN_DELAY_MS": "0"}) as harness:
        fresh, in_session, problems = asyncio.run(_measure(harness.ws_url, reps))
    overhead = percentile([s - f for s, f in zip(in_session, fresh, strict=True)], 50)
    result = judged(
        "sessions.history_overhead.p50",
        round(overhead, 2),
        "ms",
        HISTORY_OVERHEAD_P50_MS,
        detail={
            "difference_of_p50s_ms": round(percentile(in_session, 50) - percentile(fresh, 50), 2),
            "fresh_p50_ms": round(percentile(fresh, 50), 2),
            "session_p50_ms": round(percentile(in_session, 50), 2),
            "fresh_p90_ms": round(percentile(fresh, 90), 2),
            "session_p90_ms": round(percentile(in_session, 90), 2),
            "stored_turns_before": SESSION_TURNS,
            "reps": reps,
            "problems": problems[:5],
        },
    )
    if problems:
        result.status = "FAIL"
        result.note = f"{len(problems)} answer(s) wrong: {problems[0]}"
    return [result]
