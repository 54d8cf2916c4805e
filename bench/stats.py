"""Small, dependency-free statistics for benchmark samples."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) with linear interpolation between closest ranks.

    Args:
        samples: At least one value.
        q: Percentile in [0, 100].

    Returns:
        The interpolated percentile.

    Raises:
        ValueError: when ``samples`` is empty or ``q`` is out of range.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summarize(samples: Sequence[float], ndigits: int = 3) -> dict[str, Any]:
    """Median and spread of a sample, rounded for the results file.

    Args:
        samples: The measurements (at least one).
        ndigits: Decimal places kept.

    Returns:
        ``n``, ``median``, ``p25``, ``p75`` (the IQR), ``min``, ``max``, ``p99``.
    """
    return {
        "n": len(samples),
        "median": round(statistics.median(samples), ndigits),
        "p25": round(percentile(samples, 25), ndigits),
        "p75": round(percentile(samples, 75), ndigits),
        "p99": round(percentile(samples, 99), ndigits),
        "min": round(min(samples), ndigits),
        "max": round(max(samples), ndigits),
    }


def ratio_samples(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Pairwise ratios of interleaved runs (run i of the subject over run i of its baseline)."""
    return [n / d for n, d in zip(numerators, denominators, strict=True) if d > 0]
