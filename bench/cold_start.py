"""Targets 1, 2 and 7: cold starts of fresh processes, and the peak RSS of one answered query.

Every sample is a new ``python`` process (``bench/_child.py``). Its time runs from just before the
parent spawns it to the point the child reports (``time.time()`` on both sides; interpreter
start-up is in every sample, subject and baseline alike). Subject and baseline runs are
interleaved so drift on the machine hits both; one warm-up of each is discarded (page cache,
``__pycache__``).

* Light routes: ``$connect`` + ``$disconnect``, and HTTP ``GET /health``, against a process that
  imports boto3 and creates one client. SQLite store in a fresh file per sample, as a new container
  has an empty ``/tmp``.
* Invoke: time to the *first frame posted* (its arrival at a local @connections listener run by
  this process), against a process that runs ``from strands import Agent`` and creates one boto3
  client. ``RUN_MODE=inline``, ``MODEL_PROVIDER=local``.
* Memory: ``ru_maxrss`` of the invoke child after it answered (offline model, bundled knowledge base).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import child_environment, endpoint_of, management_listener, run_child, temp_dir
from bench.results import Result, judged
from bench.stats import ratio_samples, summarize

LIGHT_CONNECT_TARGET = 1.3
LIGHT_HEALTH_TARGET = 1.5
INVOKE_TARGET = 1.3
MEMORY_TARGET_MB = 150.0


def _ms(started: float, done: float) -> float:
    return (done - started) * 1000


def light_routes(reps: int) -> list[Result]:
    """Target 1 (a) and (b)."""
    samples: dict[str, list[float]] = {"baseline": [], "connect": [], "health": []}
    strands_seen: dict[str, bool] = {"connect": False, "health": False}
    with temp_dir() as tmp:
        for rep in range(-1, reps):  # -1: warm-up, discarded
            for mode in ("baseline-boto", "connect", "health"):
                env = child_environment({"SQLITE_PATH": str(tmp / f"{mode}-{rep}.sqlite3")})
                started, report = run_child(mode, env, connection_id=f"cold{rep}=")
                if rep < 0:
                    continue
                key = "baseline" if mode == "baseline-boto" else mode
                samples[key].append(_ms(started, report["done"]))
                if key in strands_seen:
                    strands_seen[key] |= bool(report["strands"])
    baseline = statistics.median(samples["baseline"])
    results = []
    for key, target, label in (
        ("connect", LIGHT_CONNECT_TARGET, "$connect+$disconnect"),
        ("health", LIGHT_HEALTH_TARGET, "GET /health"),
    ):
        ratio = statistics.median(samples[key]) / baseline
        detail: dict[str, Any] = {
            "subject_ms": summarize(samples[key], 1),
            "baseline_ms": summarize(samples["baseline"], 1),
            "pairwise_ratio": summarize(ratio_samples(samples[key], samples["baseline"])),
            "strands_imported": strands_seen[key],
            "baseline": "import boto3 + one apigatewaymanagementapi client",
        }
        result = judged(
            f"cold_start.{key}",
            round(ratio, 3),
            "x",
            target,
            detail=detail,
            note=f"{label} {statistics.median(samples[key]):.0f} ms vs boto3 {baseline:.0f} ms",
        )
        if strands_seen[key]:
            result.status = "FAIL"
            result.note += "; strands WAS imported"
        results.append(result)
    return results


def invoke(reps: int) -> list[Result]:
    """Targets 2 and 7: first frame of a cold ``invoke``, and the peak RSS of that process."""
    first: list[float] = []
    first_delta: list[float] = []
    baseline: list[float] = []
    rss_mb: list[float] = []
    with management_listener() as listener, temp_dir() as tmp:
        for rep in range(-1, reps):
            env = child_environment({"SQLITE_PATH": str(tmp / f"base-{rep}.sqlite3")})
            started, report = run_child("baseline-strands", env)
            if rep >= 0:
                baseline.append(_ms(started, report["done"]))
            connection_id = f"coldInvoke{rep + 1}="
            env = child_environment(
                {
                    "SQLITE_PATH": str(tmp / f"invoke-{rep}.sqlite3"),
                    "WEBSOCKET_MANAGEMENT_ENDPOINT": endpoint_of(listener),
                    "LOCAL_MODEL_TOKEN_DELAY_MS": "0",
                }
            )
            started, report = run_child("invoke", env, connection_id=connection_id)
            posted = listener.posted[connection_id]
            if not posted.times or posted.frames[-1].get("type") != "result":
                raise RuntimeError(f"cold invoke {rep}: no result frame posted: {posted.frames[-2:]}")
            if rep < 0:
                continue
            first.append(_ms(started, posted.times[0]))
            delta_at = next(
                t for t, f in zip(posted.times, posted.frames, strict=True) if f.get("type") == "delta"
            )
            first_delta.append(_ms(started, delta_at))
            rss_mb.append(report["maxrss_kb"] / 1024)
    ratio = statistics.median(first) / statistics.median(baseline)
    cold = judged(
        "cold_start.invoke",
        round(ratio, 3),
        "x",
        INVOKE_TARGET,
        detail={
            "first_frame_ms": summarize(first, 1),
            "first_delta_ms": summarize(first_delta, 1),
            "baseline_ms": summarize(baseline, 1),
            "pairwise_ratio": summarize(ratio_samples(first, baseline)),
            "baseline": "from strands import Agent + one boto3 client",
        },
        note=f"first frame {statistics.median(first):.0f} ms "
        f"(first delta {statistics.median(first_delta):.0f}) "
        f"vs strands+boto3 {statistics.median(baseline):.0f} ms",
    )
    memory = judged(
        "memory.peak_rss",
        round(max(rss_mb), 1),
        "MB",
        MEMORY_TARGET_MB,
        detail={"peak_rss_mb": summarize(rss_mb, 1)},
        note="max over runs; one invoke, offline model, bundled KB",
    )
    return [cold, memory]
