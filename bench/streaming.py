"""Targets 3, 4 and 5: streaming overhead, first-token latency and frames per answer.

All through the real handler behind the local gateway in this process (:mod:`bench.inproc`), to
a real ``websockets`` client, at the settings' default coalescing (``STREAM_FLUSH_MS``,
``STREAM_FLUSH_MAX_MS``, ``STREAM_MAX_FRAME_CHARS``) unless ``--env`` says otherwise.

* Overhead: the same ≈400-token offline answer with a per-token delay, run by the orchestrator
  with a sink that drops every frame (no sender, no network), and through the gateway (client
  ``send`` to the terminal frame). Runs alternate; the ratio is of the medians.
* First-token latency: model's first text yield → client receives the first ``delta``; both
  ``time.perf_counter()`` in this process. The model pauses ``MODEL_TURN_LATENCY_MS`` before each
  turn, as any real model does; the figure with an instant model is kept in the detail.
* Frame economy: all frames of a 2,000-token answer at the default token delay
  (``LOCAL_MODEL_TOKEN_DELAY_MS``), i.e. a model streaming ~65 tokens/s as Bedrock does.

The frame log (protocol 1.1) is on in all three: every run's frames are written to the handler's
SQLite store before they are posted (``selador.runs.sender.RunSender``). After the overhead and
frame-economy runs, ``GET /runs/{request_id}`` confirms the run's log holds every frame the client
received; a run whose log does not fails ``frames.per_answer``.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

from bench.inproc import CONTEXT, QUESTION, Harness, Run, connect, local_gateway
from bench.results import Result, judged
from bench.stats import percentile, summarize

OVERHEAD_TARGET = 1.05
FIRST_TOKEN_P50_MS = 5.0
FIRST_TOKEN_P99_MS = 30.0
FRAMES_TARGET = 40
OVERHEAD_TOKENS = 400
OVERHEAD_DELAY_MS = 5.0
ECONOMY_TOKENS = 2000
MODEL_TURN_LATENCY_MS = 50.0
"""Pause before each model turn in the first-token runs (a real model's time to first token is longer)."""


class _NullSink:
    """Drops every frame: the orchestrator's cost without any sender."""

    def __init__(self) -> None:
        self.cancel_signal = threading.Event()

    def send(self, frame: Any) -> None:
        """Drop a frame."""

    def delta(self, text: str) -> None:
        """Drop answer text."""


def _no_sink_run(request_id: str) -> float:
    from selador.agents.orchestrator import run_query
    from selador.protocol import QueryRequest
    from selador.settings import get_settings

    request = QueryRequest(question=QUESTION, context=CONTEXT, query_type="zoning", request_id=request_id)
    started = time.perf_counter()
    run_query(request, _NullSink(), settings=get_settings())
    return time.perf_counter() - started


async def _overhead(harness: Harness, reps: int) -> dict[str, Any]:
    harness.model.update_config(
        min_answer_tokens=OVERHEAD_TOKENS, token_delay_ms=OVERHEAD_DELAY_MS, tokens_per_delta=1
    )
    bare: list[float] = []
    through: list[float] = []
    tokens: list[int] = []
    logs: list[dict[str, Any]] = []
    async with connect(harness.ws_url) as ws:
        for rep in range(-1, reps):
            seconds = await asyncio.to_thread(_no_sink_run, f"bare-{rep}")
            run = await harness.ask(ws, f"ovh-{rep}")
            if run.frames[-1].get("type") != "result":
                raise RuntimeError(f"overhead run failed: {run.frames[-1]}")
            if rep < 0:
                continue
            bare.append(seconds)
            through.append(run.finished - run.sent)
            tokens.append(run.frames[-1]["data"]["usage"]["output_tokens"])
            logs.append(await _frame_log(harness, f"ovh-{rep}", run))
    return {"bare": bare, "through": through, "tokens": tokens, "frame_log": logs}


async def _frame_log(harness: Harness, request_id: str, run: Run) -> dict[str, Any]:
    """What the run's log holds (``GET /runs``) against what the client received (outside the timing)."""
    received = len({f["seq"] for f in run.frames if isinstance(f.get("seq"), int)})
    token = run.run_token
    if token is None:
        return {"request_id": request_id, "received": received, "logged": None, "status": "no run_token"}
    document = await harness.run_status(request_id, token)
    return {
        "request_id": request_id,
        "received": received,
        "logged": document.get("frames"),
        "status": document.get("status"),
    }


def _log_mismatches(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [log for log in logs if log["logged"] != log["received"]]


async def _first_token(harness: Harness, queries: int, turn_latency_ms: float) -> dict[str, Any]:
    # Short answers (4 words a delta) so many samples fit; the first-delta path is the same.
    harness.model.update_config(min_answer_tokens=0, token_delay_ms=OVERHEAD_DELAY_MS, tokens_per_delta=4)
    harness.model.turn_latency_s = turn_latency_ms / 1000
    latencies: list[float] = []
    lost = 0
    try:
        async with connect(harness.ws_url) as ws:
            for index in range(queries + 2):
                before = len(harness.model.first_text)
                run = await harness.ask(ws, f"ftl-{turn_latency_ms:g}-{index}")
                lost += run.lost
                if index < 2 or run.first_delta is None or len(harness.model.first_text) != before + 1:
                    continue  # warm-up, or a run that could not be matched to its model turn
                latencies.append((run.first_delta - harness.model.first_text[before]) * 1000)
    finally:
        harness.model.turn_latency_s = 0.0
    return {"latencies_ms": latencies, "lost": lost}


async def _economy(harness: Harness, reps: int, tokens: int, delay_ms: float) -> dict[str, Any]:
    harness.model.update_config(min_answer_tokens=tokens, token_delay_ms=delay_ms, tokens_per_delta=1)
    frames: list[int] = []
    deltas: list[int] = []
    first_ms: list[float] = []
    logs: list[dict[str, Any]] = []
    lost = 0
    async with connect(harness.ws_url) as ws:
        for rep in range(reps):
            before = len(harness.model.first_text)
            run = await harness.ask(ws, f"eco-{rep}")
            logs.append(await _frame_log(harness, f"eco-{rep}", run))
            lost += run.lost
            frames.append(len(run.frames))
            deltas.append(sum(1 for f in run.frames if f.get("type") == "delta"))
            if run.first_delta is not None and len(harness.model.first_text) == before + 1:
                first_ms.append((run.first_delta - harness.model.first_text[before]) * 1000)
            usage = run.frames[-1].get("data", {}).get("usage", {})
            tokens = usage.get("output_tokens", tokens)
    return {
        "frames": frames,
        "deltas": deltas,
        "first_token_ms": first_ms,
        "lost": lost,
        "tokens": tokens,
        "frame_log": logs,
    }


def run(
    reps: int, first_token_queries: int, economy_reps: int, economy_tokens: int, env: dict[str, str]
) -> list[Result]:
    """Targets 3, 4 and 5 against one in-process gateway."""
    with local_gateway(env) as harness:
        from selador.settings import get_settings

        settings = get_settings()
        overhead = asyncio.run(_overhead(harness, reps))
        first = asyncio.run(_first_token(harness, first_token_queries, MODEL_TURN_LATENCY_MS))
        # For the record: the same with an instant model, where the first text can queue behind
        # status frames still being posted (see TimedResponder).
        instant = asyncio.run(_first_token(harness, max(10, first_token_queries // 5), 0.0))
        economy = asyncio.run(
            _economy(harness, economy_reps, economy_tokens, settings.local_model_token_delay_ms)
        )
        coalescing = {
            "STREAM_FLUSH_MS": settings.stream_flush_ms,
            "STREAM_FLUSH_MAX_MS": settings.stream_flush_max_ms,
            "STREAM_MAX_FRAME_CHARS": settings.stream_max_frame_chars,
            "LOCAL_MODEL_TOKEN_DELAY_MS": settings.local_model_token_delay_ms,
        }
    tokens = overhead["tokens"][0] if overhead["tokens"] else "?"
    ratio = statistics.median(overhead["through"]) / statistics.median(overhead["bare"])
    results = [
        judged(
            "streaming.overhead",
            round(ratio, 4),
            "x",
            OVERHEAD_TARGET,
            detail={
                "no_sink_s": summarize(overhead["bare"]),
                "gateway_s": summarize(overhead["through"]),
                "answer_tokens": overhead["tokens"][0] if overhead["tokens"] else None,
                "token_delay_ms": OVERHEAD_DELAY_MS,
                "coalescing": coalescing,
                "frame_log": overhead["frame_log"],
            },
            note=f"{statistics.median(overhead['through']):.2f} s via gateway vs "
            f"{statistics.median(overhead['bare']):.2f} s no sink ({tokens} tokens)",
        )
    ]
    latencies = first["latencies_ms"]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    detail = {
        "first_token_ms": summarize(latencies),
        "model_turn_latency_ms": MODEL_TURN_LATENCY_MS,
        "instant_model_first_token_ms": summarize(instant["latencies_ms"]),
        "lost_frames": first["lost"] + instant["lost"],
        "clock": "time.perf_counter() in one process (model hook and client)",
        "coalescing": coalescing,
    }
    results.append(
        judged(
            "first_token.p50",
            round(p50, 2),
            "ms",
            FIRST_TOKEN_P50_MS,
            detail=detail,
            note=f"n={len(latencies)}, model turn latency {MODEL_TURN_LATENCY_MS:g} ms; instant model p50 "
            f"{percentile(instant['latencies_ms'], 50):.1f} ms",
        )
    )
    results.append(
        judged("first_token.p99", round(p99, 2), "ms", FIRST_TOKEN_P99_MS, note=f"n={len(latencies)}")
    )
    frames = statistics.median(economy["frames"])
    economy_result = judged(
        "frames.per_answer",
        frames,
        "frames",
        FRAMES_TARGET,
        detail={
            "frames": economy["frames"],
            "delta_frames": economy["deltas"],
            "answer_tokens": economy["tokens"],
            "first_token_ms": summarize(economy["first_token_ms"]) if economy["first_token_ms"] else None,
            "lost_frames": economy["lost"],
            "coalescing": coalescing,
            "frame_log": economy["frame_log"],
        },
        note=f"{economy['tokens']} tokens at {coalescing['LOCAL_MODEL_TOKEN_DELAY_MS']:g} ms/token, "
        f"{statistics.median(economy['deltas']):.0f} deltas; all frames counted",
    )
    lost = first["lost"] + instant["lost"] + economy["lost"]
    if lost:
        economy_result.status = "FAIL"
        economy_result.note += f"; LOST {lost} frames"
    unlogged = _log_mismatches(economy["frame_log"] + overhead["frame_log"])
    if unlogged:
        economy_result.status = "FAIL"
        economy_result.note += f"; {len(unlogged)} runs whose frame log differs from what was received"
    else:
        economy_result.note += "; frame log on (every frame logged)"
    results.append(economy_result)
    return results
