"""What :mod:`bench.runs` (``resume``) and :mod:`bench.cancel` (``cancel``) share.

The handler settings of both groups, the client side of a run (connecting, sending ``invoke``,
reading the frames of one request, ``GET /runs/{request_id}``) and the pure helpers that judge
what the clients measured (no timings asserted here).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from bench.concurrency import QUESTION, Server, _gateway_counters
from bench.results import Result, judged
from bench.stats import percentile, summarize

TOKEN_DELAY_MS = 15
ANSWER_TOKENS = 400
WARM_UP = 4
"""Unmeasured resumes / cancels first, so every front worker has served the route once."""
RUN_TIMEOUT_S = 60.0
GATEWAY_CONCURRENCY = 64


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The handler settings of the ``resume`` and ``cancel`` groups (``--env`` values win)."""
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


def sum_counts(rows: Iterable[dict[str, int]]) -> dict[str, int]:
    """The counts of every row added up, key by key."""
    total: dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            total[key] = total.get(key, 0) + value
    return total


def pct(samples: list[float] | list[int], q: float) -> str:
    """The ``q`` percentile of ``samples`` to one decimal for a note, ``-`` when there are none."""
    return f"{percentile(samples, q):.1f}" if samples else "-"


# ------------------------------------------------------------------------------ client side


def connect_ws(url: str) -> Any:
    """A WebSocket connection to ``url`` (an async context manager); no proxy, ping or compression."""
    from websockets.asyncio.client import connect

    return connect(url, proxy=None, open_timeout=60, max_size=None, ping_interval=None, compression=None)


def http_base(server: Server) -> str:
    """The gateway's HTTP base URL, from its WebSocket URL."""
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


async def frame_for(ws: Any, request_id: str) -> tuple[float, str, dict[str, Any]]:
    """The next message about ``request_id``: receive time, raw text, decoded frame."""
    while True:
        raw = await ws.recv()
        now = time.perf_counter()
        frame = json.loads(raw)
        if frame.get("request_id") == request_id:
            return now, raw, frame


def invoke_text(request_id: str) -> str:
    """The ``invoke`` message asking :data:`~bench.concurrency.QUESTION` as ``request_id``."""
    return json.dumps(
        {"action": "invoke", "question": QUESTION, "query_type": "zoning", "request_id": request_id}
    )


def gateway_counters(server: Server) -> dict[str, int]:
    """The gateway's counters, as :mod:`bench.concurrency` reads them."""
    return _gateway_counters(server)
