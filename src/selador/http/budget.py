"""The time budget of a synchronous HTTP answer, counted from API Gateway's receipt of the request.

API Gateway stops waiting for the integration 29 s after the request reached it (cold start, JWKS
fetch, limit checks and everything else included) and answers the caller 504 itself. Counting our
budget from the start of the route would let a cold start push the answer past that point, so it
is counted from ``requestContext.timeEpoch`` (HTTP API, payload v2) or ``requestTimeEpoch`` (REST,
payload v1): milliseconds since the epoch, stamped by API Gateway.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

INTEGRATION_TIMEOUT_S = 29.0
"""API Gateway's integration timeout for HTTP (and REST) APIs, from the request's arrival."""

HTTP_ANSWER_BUDGET_S = 28.0
"""Seconds after arrival by which the answer has left the function (1 s kept for the trip back)."""

MAX_CLOCK_SKEW_S = 5.0
"""A request stamped later than this ahead of our clock has a bad stamp: it is ignored."""


def request_epoch_s(event: Mapping[str, Any]) -> float | None:
    """When API Gateway received the request, in seconds since the epoch; ``None`` when unknown.

    Args:
        event: An HTTP API (v2) or REST (v1) proxy event.

    Returns:
        ``requestContext.timeEpoch`` (v2) or ``requestTimeEpoch`` (v1) in seconds.
    """
    ctx = event.get("requestContext")
    if not isinstance(ctx, Mapping):
        return None
    for key in ("timeEpoch", "requestTimeEpoch"):
        value = ctx.get(key)
        # bool is an int: a forged ``true`` must not read as 1 ms after 1970.
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value) / 1000
    return None


def gateway_deadline(event: Mapping[str, Any], *, budget_s: float = HTTP_ANSWER_BUDGET_S) -> float | None:
    """A ``time.monotonic()`` deadline ``budget_s`` after API Gateway received the request.

    Args:
        event: The HTTP proxy event.
        budget_s: Seconds from arrival.

    Returns:
        The deadline (it may have passed), or ``None`` when the event carries no usable stamp.
    """
    arrived = request_epoch_s(event)
    now_wall, now_mono = time.time(), time.monotonic()
    if arrived is None or arrived > now_wall + MAX_CLOCK_SKEW_S:
        return None
    # A stamp slightly ahead of our clock (skew) counts as now: it must never lengthen the budget.
    return now_mono + budget_s - max(0.0, now_wall - arrived)


def answer_deadline(
    event: Mapping[str, Any], context: Any, *, budget_s: float = HTTP_ANSWER_BUDGET_S
) -> float:
    """A ``time.monotonic()`` deadline for the whole answer.

    The earlier of: :func:`gateway_deadline` (or ``budget_s`` from now, when the event carries no
    usable stamp), and one second before Lambda's own deadline.

    Args:
        event: The HTTP proxy event.
        context: The Lambda context (``get_remaining_time_in_millis``), or ``None``.
        budget_s: Seconds from arrival.

    Returns:
        The deadline; it may already have passed.
    """
    gateway = gateway_deadline(event, budget_s=budget_s)
    until = gateway if gateway is not None else time.monotonic() + budget_s
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is not None:
        until = min(until, time.monotonic() + getter() / 1000 - 1.0)
    return until
