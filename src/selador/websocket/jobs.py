"""Asynchronous query jobs: the ``invoke`` route hands a run to an asynchronous invocation.

The job event is ``{"selador_job": {...}}``; see the reliability work for the hand-off itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selador.deps import Dependencies
from selador.observability import logger


def run_job(job: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Reject job events until the asynchronous hand-off lands; never raise.

    Args:
        job: The job payload.
        context: The Lambda context.
        deps: Container dependencies.

    Returns:
        A 400 answer naming the problem.
    """
    logger.warning("job events are not enabled in this build", extra={"job_keys": sorted(job)[:10]})
    return {"statusCode": 400, "body": '{"error": "job events are not enabled"}'}
