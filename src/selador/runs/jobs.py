"""Asynchronous runs: how a run outlives API Gateway's 29-second integration timeout.

The route that accepted a query starts an asynchronous invocation of this same function
(``InvocationType="Event"``) with a job event ``{"selador_job": {"run_id": …, "request": …}}``; the
handler recognises it and executes the run. Lambda may deliver an asynchronous event more than
once, and a hand-off whose ``Invoke`` call failed on our side may still have been queued: the
executor's ``pending`` → ``running`` write decides, so a run is executed at most once and a
hand-off reported failed (whose run the route has already ended) never runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from selador.clients import shared_client
from selador.observability import logger
from selador.protocol import QueryRequest
from selador.settings import Settings

if TYPE_CHECKING:
    from selador.deps import Dependencies


class Job(BaseModel):
    """The payload of a job event.

    Attributes:
        run_id: The pending run to execute.
        request: Its validated query.
    """

    run_id: str = Field(min_length=1, max_length=64)
    request: QueryRequest


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


def hand_off(deps: Dependencies, run_id: str, request: QueryRequest) -> bool:
    """Start a pending run as an asynchronous invocation of this function.

    Args:
        deps: Container dependencies.
        run_id: The run.
        request: Its query.

    Returns:
        ``True`` when Lambda accepted the job. ``False`` does not prove the job will not run (the
        call may have failed after Lambda queued it): the caller ends the run only if it is still
        ``pending``, and the job runs only if it is.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    # The executor finds the session's owner on the run record: the token (a secret that owns
    # every conversation of its holder) stays out of the job event and any failure record of it.
    job = Job(run_id=run_id, request=request.model_copy(update={"session_token": None}))
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


def run_job(payload: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Execute one handed-off run (at most once, however often Lambda delivers it).

    Args:
        payload: The ``selador_job`` value of the event.
        context: The Lambda context.
        deps: Container dependencies.

    Returns:
        ``{"statusCode": 200}``, or 400 for a malformed job (never retried into a storm: the
        function's async retries are off and the answer is not an exception).
    """
    from selador.runs.executor import execute

    try:
        job = Job.model_validate(payload)
    except ValidationError as exc:
        logger.error("malformed job", extra={"errors": exc.errors(include_url=False, include_input=False)})
        return {"statusCode": 400, "body": '{"error": "malformed job"}'}
    logger.thread_safe_append_keys(request_id=job.request.request_id, query_type=job.request.query_type)
    execute(deps, context, job.run_id, job.request)
    return {"statusCode": 200}
