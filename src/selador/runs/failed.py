"""Jobs Lambda gave up on: end their runs from the on-failure destination's records.

An asynchronous job invocation that fails (the function crashed, ran out of memory or timed out;
retries are off) or that waited in Lambda's queue past ``MaximumEventAgeInSeconds`` is not
retried. Lambda sends an *invocation record* to the function's on-failure destination, an SQS
queue, and this same function reads that queue (the ``sqs`` event kind). Each SQS message body is
one record (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)::

    {"version": "1.0", "timestamp": "…",
     "requestContext": {"requestId": "…", "functionArn": "…",
                        "condition": "RetriesExhausted" | "EventAgeExceeded", "approximateInvokeCount": 1},
     "requestPayload": {"selador_job": {"run_id": "…", "request": {…}}},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
     "responsePayload": {"errorMessage": "…"}}

The run named by ``requestPayload`` is ended here with one ``error`` frame (code
``internal_error``), through :meth:`.service.Runs.finish`: conditional on the status read, so a
run that has already ended (its executor got its terminal frame out before dying, a reader reaped
it, a cancel ended it) is left alone, and the frame goes to the run's listener if it has one.

A job that failed while another delivery of the same event is executing the run would end that
run early; Lambda's duplicate deliveries are rare and a duplicate returns within milliseconds (it
finds the run taken), so its failing is rarer still, and the run's one-terminal-frame rule holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from selador import metrics
from selador.observability import logger
from selador.protocol import ErrorFrame
from selador.runs.service import STARTED_LATE_TEXT, STOPPED_TEXT, Runs

if TYPE_CHECKING:
    from selador.deps import Dependencies

CONDITIONS = frozenset({"RetriesExhausted", "EventAgeExceeded"})
"""Why Lambda sends an on-failure record (its ``requestContext.condition``)."""
MAX_RUN_ID_CHARS = 64
"""As :class:`.jobs.Job` allows."""

Outcome = Literal["ended", "already_ended", "unknown_run", "dropped"]


class Malformed(ValueError):
    """A record this function cannot act on, now or ever: retrying it would loop on garbage."""


def retry_all(event: Any) -> dict[str, Any]:
    """The answer that makes SQS redeliver every record of a batch (its handling failed as a whole).

    Args:
        event: The SQS event.

    Returns:
        ``{"batchItemFailures": […]}`` naming every record with a ``messageId``.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    ids = [r.get("messageId") for r in records or [] if isinstance(r, Mapping)]
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids if isinstance(i, str)]}


def handle_failed_jobs(event: Mapping[str, Any], deps: Dependencies) -> dict[str, Any]:
    """End the run of every failed job in an SQS batch of on-failure records.

    Args:
        event: The SQS event (``Records``).
        deps: Container dependencies.

    Returns:
        ``{"batchItemFailures": [{"itemIdentifier": messageId}, …]}``: the records that failed for
        a reason a retry may cure (the store was unreachable). Malformed records are logged and
        dropped, never returned, so the queue does not redeliver garbage until its redrive.
    """
    failures: list[dict[str, str]] = []
    runs = Runs(deps)
    for record in event.get("Records") or []:
        message_id = record.get("messageId") if isinstance(record, Mapping) else None
        try:
            run_id, condition = parse_record(record)
        except Malformed as exc:
            logger.warning(
                "dropped a malformed on-failure record", extra={"message_id": message_id, "reason": str(exc)}
            )
            continue
        try:
            end_failed_run(runs, run_id, condition)
        except Exception:  # noqa: BLE001 - the store failed: let SQS redeliver this record only
            logger.exception("could not end a failed job's run", extra={"run_id": run_id})
            if isinstance(message_id, str):
                failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def parse_record(record: Any) -> tuple[str, str]:
    """The run id and the failure condition of one SQS record carrying an on-failure record.

    Args:
        record: One of the SQS event's ``Records``.

    Returns:
        ``(run_id, condition)``.

    Raises:
        Malformed: It is not an on-failure record of a job (not JSON, no ``requestPayload``, which
            Lambda leaves out when the record would be too large, or no run id).
    """
    if not isinstance(record, Mapping) or not isinstance(record.get("body"), str):
        raise Malformed("no message body")
    try:
        body = json.loads(record["body"])
    except ValueError as exc:
        raise Malformed("the body is not JSON") from exc
    if not isinstance(body, Mapping):
        raise Malformed("the body is not a JSON object")
    context = body.get("requestContext")
    condition = context.get("condition") if isinstance(context, Mapping) else None
    if condition not in CONDITIONS:
        raise Malformed(f"not an on-failure record (condition {str(condition)[:40]!r})")
    payload = body.get("requestPayload")
    job = payload.get("selador_job") if isinstance(payload, Mapping) else None
    run_id = job.get("run_id") if isinstance(job, Mapping) else None
    if not isinstance(run_id, str) or not 0 < len(run_id) <= MAX_RUN_ID_CHARS:
        raise Malformed("no job run_id in requestPayload")
    return run_id, str(condition)


def end_failed_run(runs: Runs, run_id: str, condition: str) -> Outcome:
    """End a failed job's run with an ``error`` frame, unless it has already ended.

    Args:
        runs: The runs service.
        run_id: The job's run.
        condition: ``RetriesExhausted`` or ``EventAgeExceeded`` (logged).

    Returns:
        What was done: ``ended`` (the frame was logged and posted to the listener, if any),
        ``already_ended`` (its terminal frame was there; nothing was sent), or ``unknown_run`` (the
        record has expired).
    """
    run = runs.store.get_run(run_id)
    extra = {"run_id": run_id, "condition": condition}
    if run is None:
        logger.info("failed job's run no longer exists", extra=extra)
        return "unknown_run"
    if not run.active:
        logger.info("failed job's run had already ended", extra={**extra, "status": run.status})
        return "already_ended"
    # pending: the job never took it (it expired in Lambda's queue, or crashed on the way in);
    # running: its executor was killed before it could end it.
    text = STARTED_LATE_TEXT if run.status == "pending" else STOPPED_TEXT
    logger.warning("ending the run of a failed job", extra={**extra, "status": run.status})
    frame = ErrorFrame(code="internal_error", error=text)
    if not runs.finish(run, frame, expect_status=frozenset({run.status})):
        # Someone ended it, or took it, between the read and the write: theirs to end.
        return "already_ended"
    metrics.error("internal_error")
    return "ended"
