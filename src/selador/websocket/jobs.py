"""Asynchronous query jobs: how a run outlives API Gateway's 29-second integration timeout.

The ``invoke`` route validates, posts the ``accepted`` status and starts an asynchronous
invocation of this same function (``InvocationType="Event"``) with a job event
``{"selador_job": {...}}``; the handler recognises it and streams the run. Lambda may deliver an
asynchronous event more than once, so each job claims a delivery record first: a second delivery of
the same (connection, request_id) finds the claim and does nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from selador.clients import shared_client
from selador.deps import Dependencies
from selador.limits import release_slot
from selador.observability import logger
from selador.protocol import QueryRequest
from selador.settings import Settings


class Job(BaseModel):
    """The payload of a job event.

    Attributes:
        connection_id: The connection to stream to.
        endpoint: Its management endpoint.
        request: The validated query.
        next_seq: ``seq`` of the first frame the job sends (the route sent the ones before).
        slot: The concurrency-limit claim the route took for this run; the job releases it.
        job_id: Unique per hand-off; Lambda redelivers the same payload, so it identifies a
            delivery of *this* run (a finished ``request_id`` may be reused by a later query).
    """

    connection_id: str
    endpoint: str
    request: QueryRequest
    next_seq: int = 2
    slot: str | None = None
    job_id: str = Field(min_length=1, max_length=64)


def lambda_client(settings: Settings) -> Any:
    """The container's Lambda client (``LAMBDA_ENDPOINT`` points it at the local gateway)."""
    return shared_client(
        "lambda",
        region=settings.aws_region,
        endpoint_url=settings.lambda_endpoint or None,
        connect_timeout=2,
        read_timeout=5,
        retries={"max_attempts": 3, "mode": "standard"},
    )


def hand_off(
    deps: Dependencies,
    *,
    connection_id: str,
    endpoint: str,
    request: QueryRequest,
    next_seq: int,
    slot: str | None = None,
) -> bool:
    """Start the run as an asynchronous invocation of this function.

    Args:
        deps: Container dependencies.
        connection_id: The connection to stream to.
        endpoint: Its management endpoint.
        request: The validated query.
        next_seq: ``seq`` of the job's first frame.
        slot: The concurrency slot the run holds (released by the job).

    Returns:
        ``True`` when Lambda accepted the job.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    job = Job(
        job_id=uuid.uuid4().hex,
        connection_id=connection_id,
        endpoint=endpoint,
        request=request,
        next_seq=next_seq,
        slot=slot,
    )
    client = deps.lambda_client or lambda_client(deps.settings)
    try:
        response = client.invoke(
            FunctionName=deps.settings.function_name,
            InvocationType="Event",
            Payload=json.dumps({"selador_job": job.model_dump(mode="json")}).encode(),
        )
    except (ClientError, BotoCoreError):
        logger.exception("asynchronous hand-off failed")
        return False
    accepted = response.get("StatusCode") == 202
    if not accepted:
        logger.error("asynchronous hand-off refused", extra={"status": response.get("StatusCode")})
    return accepted


def job_key(job: Job) -> str:
    """The delivery record of a job: one per hand-off, whatever its ``request_id``."""
    return f"job#{job.job_id}"


def run_job(payload: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Stream one handed-off query, at most once per (connection, request_id).

    Args:
        payload: The ``selador_job`` value of the event.
        context: The Lambda context.
        deps: Container dependencies.

    Returns:
        ``{"statusCode": 200}``, or 400 for a malformed job (never retried into a storm: the
        function's async retries are off and the answer is not an exception).
    """
    from selador.websocket.routes import run_key, stream_query

    try:
        job = Job.model_validate(payload)
    except ValidationError as exc:
        logger.error("malformed job", extra={"errors": exc.errors(include_url=False, include_input=False)})
        return {"statusCode": 400, "body": '{"error": "malformed job"}'}
    logger.thread_safe_append_keys(
        connection_id=job.connection_id, request_id=job.request.request_id, query_type=job.request.query_type
    )
    if not deps.store.claim(job_key(job), deps.settings.job_claim_ttl_seconds):
        # The first delivery owns the run claim and the slot; releasing them here would let a
        # duplicate free what a running job still holds.
        logger.warning("duplicate job delivery ignored")
        return {"statusCode": 200}
    running = run_key(job.connection_id, job.request.request_id)
    if deps.store.claim(running, deps.settings.run_claim_ttl_seconds):
        # The route holds this claim for the whole run and drops it only when it told the client
        # the hand-off failed (e.g. Lambda queued the event but the call timed out). Running now
        # would stream a second terminal frame; the slot is no longer ours either.
        deps.store.release(running)
        logger.warning("job arrived after its hand-off was reported failed; not running it")
        return {"statusCode": 200}
    try:
        stream_query(
            deps,
            context,
            connection_id=job.connection_id,
            endpoint=job.endpoint,
            request=job.request,
            first_seq=job.next_seq,
        )
    finally:
        deps.store.release(running)
        release_slot(deps.store, job.slot)
    return {"statusCode": 200}
