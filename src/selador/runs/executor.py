"""Executing a run: take it (``pending`` → ``running``), drive the agent, end it, give back its claims.

The one place a run's agent is started, whichever API accepted it and wherever it runs (the
WebSocket route's own invocation, an asynchronous job, a background thread for HTTP in inline
mode). Taking the run is a conditional write, so a run is executed at most once even when Lambda
delivers its job twice or the hand-off that was reported failed did start after all.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import TYPE_CHECKING, Any

from selador import metrics
from selador.observability import logger
from selador.protocol import ErrorFrame, QueryRequest, ResultData
from selador.runs.model import LEASE_MARGIN_S, MAX_INVOCATION_S
from selador.runs.run_metrics import record_run
from selador.runs.sender import INTERNAL_ERROR_TEXT, RunSender
from selador.runs.service import Runs
from selador.store.base import RunRecord

if TYPE_CHECKING:
    from selador.deps import Dependencies

DEADLINE_MARGIN_S = 5.0
"""Seconds kept back from Lambda's deadline to send the timeout frame and flush."""
_RUNNING = frozenset({"running"})
NO_CONTEXT_REMAINING_S = float(MAX_INVOCATION_S)
"""Remaining time assumed without a Lambda context (tests, background threads): Lambda's maximum."""


def remaining_s(context: Any) -> float:
    """Seconds left in the invocation (Lambda's maximum without a context)."""
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is None:
        return NO_CONTEXT_REMAINING_S
    return float(getter()) / 1000


def deadline(context: Any) -> float:
    """A ``time.monotonic()`` deadline before Lambda would kill the invocation."""
    remaining = remaining_s(context)
    margin = min(DEADLINE_MARGIN_S, remaining * 0.1)
    return time.monotonic() + remaining - margin


def execute(deps: Dependencies, context: Any, run_id: str, request: QueryRequest) -> bool:
    """Run a pending run's agent in this invocation and end the run with exactly one terminal frame.

    Args:
        deps: Container dependencies.
        context: The Lambda context (remaining time), or ``None``.
        run_id: The run to execute.
        request: Its query.

    Returns:
        ``False`` when the run was not ``pending`` (taken by another delivery, ended, or expired):
        nothing was done.
    """
    settings = deps.settings
    left = remaining_s(context)
    lease = time.time() + left + LEASE_MARGIN_S
    # Not grouped with the renewals below: measured under load, one longer hold of SQLite's file
    # by a lower-priority worker delayed the routes' writes more than three short ones did.
    run = deps.store.update_run(
        run_id,
        {
            "status": "running",
            "lease_until": lease,
            "expires_at": int(lease + settings.run_log_ttl_seconds) + 1,
        },
        expect_status={"pending"},
    )
    if run is None:
        run = _taken_by_us(deps, run_id, lease)
    if run is None:
        logger.warning("run is not pending (taken, ended or expired); not executing it")
        return False
    runs = Runs(deps)
    try:
        _renew_claims(deps, run, left)
        sender = _take(deps, run)
    except Exception:  # noqa: BLE001 - the run is ours now: it must still end with a terminal frame
        logger.exception("could not start the run")
        runs.finish(run, ErrorFrame(code="internal_error", error=INTERNAL_ERROR_TEXT), expect_status=_RUNNING)
        runs.release_claims(run)
        return True
    data: ResultData | None = None
    try:
        from selador.agents.orchestrator import run_query

        if settings.tracing != "off":
            from selador.tracing import ensure_tracing

            ensure_tracing(settings)
        conversation = None
        if run.session_id is not None and run.session_owner is not None:
            from selador.sessions.conversation import Conversation

            conversation = Conversation(deps.store, settings, run.session_owner, run.session_id)
        data = run_query(
            request, sender, settings=settings, deadline=deadline(context), conversation=conversation
        )
    except Exception:  # noqa: BLE001 - every failure still ends the run with one terminal frame
        logger.exception("run failed")
        sender.send(ErrorFrame(code="internal_error", error=INTERNAL_ERROR_TEXT))
    finally:
        stats = sender.close(timeout=max(1.0, remaining_s(context) - 1.0))
        record_run(run, request, data, stats)
        if settings.tracing != "off":
            from selador.tracing import flush_tracing

            flush_tracing()
        # Usually done already, when the terminal frame was logged; owner-checked, so releasing
        # again (or after someone else ended the run) frees nothing that another run holds.
        runs.release_claims(run)
        logger.info(
            "query finished",
            extra={
                "run_id": run.run_id,
                "frames_logged": stats.frames_logged,
                "frames_posted": stats.frames_posted,
                "bytes_posted": stats.bytes_posted,
                "frames_dropped": stats.frames_dropped,
                "reposted": stats.reposted,
                "throttled": stats.throttled,
                "client_gone": stats.gone,
                "post_failure": stats.failed,
                "cancelled": sender.cancel_reason,
                "ended_here": stats.finished,
            },
        )
    return True


def _taken_by_us(deps: Dependencies, run_id: str, lease: float) -> RunRecord | None:
    """The run, if the take that reported failure had landed after all.

    A store client resends a write whose answer was lost; the resend then fails its own
    condition (the run is no longer pending). The lease this call wrote is unique to it.
    """
    run = deps.store.get_run(run_id)
    return run if run is not None and run.status == "running" and run.lease_until == lease else None


def _renew_claims(deps: Dependencies, run: RunRecord, left: float) -> None:
    """Hold the run's claims for as long as this invocation can live.

    Claims were taken with ``RUN_CLAIM_TTL_SECONDS`` when the run was accepted; a run that outlived
    that could have its slot or its request_id handed to a newer query. When the claims already
    outlast this invocation (a job that started soon after the accept), they are left as they are:
    two writes fewer per run, at the moment the routes are busiest.
    """
    needed_until = time.time() + left + LEASE_MARGIN_S
    if run.created_at + deps.settings.run_claim_ttl_seconds >= needed_until:
        return
    for key, owner in run.claims:
        if not deps.store.renew(key, owner, int(left) + LEASE_MARGIN_S):
            logger.warning("a claim of the run had already expired", extra={"claim": key})


def _take(deps: Dependencies, run: RunRecord) -> RunSender:
    settings = deps.settings
    return RunSender(
        run,
        store=deps.store,
        management=deps.management,
        flush_ms=settings.stream_flush_ms,
        flush_max_ms=settings.stream_flush_max_ms,
        max_chars=settings.stream_max_frame_chars,
        poll_ms=settings.run_poll_ms,
        log_ttl_s=settings.run_log_ttl_seconds,
        first_seq=2,
        on_gone=deps.store.delete_connection,
        # A client that reads the result and at once reuses its request_id (or takes its
        # concurrency slot) must find them free.
        before_end=lambda: Runs(deps).release_claims(run),
    )


def execute_in_background(deps: Dependencies, run_id: str, request: QueryRequest) -> threading.Thread:
    """Execute a run on a daemon thread of this process (``RUN_MODE=inline`` for HTTP runs).

    Only for long-lived processes (tests, the local gateway's thread runtime): a Lambda
    invocation that returns is frozen, so deployed stacks use ``RUN_MODE=async``. The thread is an
    invocation of its own for metrics (route ``background``, flushed when the run ends): the
    route's invocation has flushed long before.
    """
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run,
        args=(_execute_in_scope, deps, run_id, request),
        name=f"run-{run_id}",
        daemon=True,
    )
    thread.start()
    return thread


def _execute_in_scope(deps: Dependencies, run_id: str, request: QueryRequest) -> None:
    with metrics.invocation_scope("background"):
        execute(deps, None, run_id, request)


def launch(deps: Dependencies, run_id: str, request: QueryRequest) -> bool:
    """Start executing a pending run outside the caller's invocation.

    ``RUN_MODE=async`` hands it to an asynchronous invocation of this function; ``inline`` runs it
    on a background thread of this process.

    Returns:
        ``False`` when the hand-off failed (the run may still start; see :func:`.jobs.hand_off`).
    """
    if deps.settings.run_mode == "async":
        from selador.runs.jobs import hand_off

        return hand_off(deps, run_id, request)
    execute_in_background(deps, run_id, request)
    return True
