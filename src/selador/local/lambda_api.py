"""Lambda's Invoke API on the local gateway, so the handler's asynchronous hand-off runs here too.

``POST /2015-03-31/functions/{name}/invocations`` with ``RequestResponse``, ``Event`` (202 at once,
run on a background worker with Lambda's retries and, when the template configures one, its SQS
on-failure destination read by the same function) and ``DryRun`` (204), answered in the shapes a
real boto3 Lambda client parses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from selador.local.events import failed_job_event
from selador.local.wire import aws_error

if TYPE_CHECKING:
    from selador.local.gateway import Gateway

log = logging.getLogger("selador.gateway")

INVOKE_PATH = "/2015-03-31/functions/{function_name}/invocations"


class LambdaApi:
    """The Invoke API of the one function the gateway serves.

    Args:
        gateway: The gateway whose runtime, options and counters it uses.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        """The Starlette routes of the API."""
        return [Route(INVOKE_PATH, self.invoke, methods=["POST"])]

    def function_matches(self, name: str) -> bool:
        """Whether ``name`` designates the gateway's function.

        Args:
            name: A name, full or partial ARN, with or without a qualifier, as Lambda accepts them.

        Returns:
            ``True`` when it is this gateway's function.
        """
        function_name = self.gateway.options.function_name
        parts = name.split(":")
        if len(parts) == 1:
            return name == function_name
        if "function" in parts:
            after = parts[parts.index("function") + 1 :]
            return bool(after) and after[0] == function_name
        return parts[0] == function_name  # name:qualifier

    async def invoke(self, request: Request) -> Response:
        """Answer one Invoke call."""
        gateway = self.gateway
        options = gateway.options
        name = unquote(request.path_params["function_name"])
        if not self.function_matches(name):
            arn = f"arn:aws:lambda:{options.region}:{options.account}:function:{name}"
            return aws_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        raw = await request.body()
        try:
            event = json.loads(raw) if raw else {}
        except ValueError:
            return aws_error(400, "InvalidRequestContentException", "Could not parse request body into json")
        invocation_type = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type == "DryRun":
            return Response(status_code=204)
        if invocation_type == "Event":
            gateway.counters["async_invocations"] += 1
            if gateway.shutting_down:
                log.info("lambda Event %s dropped: the gateway is stopping", options.function_name)
                return Response(status_code=202, headers={"x-amzn-RequestId": str(uuid.uuid4())})
            deliveries = 2 if random.random() < options.async_duplicate_rate else 1
            for _ in range(deliveries):
                gateway.spawn(self.run_async(event))
            return Response(status_code=202, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        if invocation_type != "RequestResponse":
            return aws_error(
                400, "InvalidParameterValueException", f"Unsupported InvocationType {invocation_type}"
            )
        outcome = await gateway.runtime.invoke(event, label=f"lambda RequestResponse {name}")
        headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": outcome.request_id}
        if outcome.error is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
            return JSONResponse(outcome.error, headers=headers)
        return Response(json.dumps(outcome.payload), media_type="application/json", headers=headers)

    async def run_async(self, event: Any) -> None:
        """One asynchronous delivery with Lambda's retries (twice by default) on failure.

        Args:
            event: The payload the caller sent.
        """
        gateway = self.gateway
        options = gateway.options
        attempts = options.async_retries + 1
        for attempt in range(attempts):
            if attempt:
                gateway.counters["async_retries"] += 1
                await asyncio.sleep(options.async_retry_delay * attempt)
            label = f"lambda Event {options.function_name} (attempt {attempt + 1})"
            outcome = await gateway.runtime.invoke(event, label=label, background=True)
            if outcome.ok:
                return
        gateway.counters["async_failures"] += 1
        if options.async_on_failure:
            await self.deliver_failure(event, outcome.request_id, outcome.error, attempts)

    async def deliver_failure(
        self, event: Any, request_id: str, error: dict[str, Any] | None, attempts: int
    ) -> None:
        """Hand a failed ``Event`` invocation's on-failure record to the function, as SQS would.

        One delivery: a record the function reports as a batch item failure is logged, not
        redelivered (SQS's visibility timeout and redrive are not emulated).

        Args:
            event: The event of the invocation that failed.
            request_id: The last attempt's request id.
            error: Its error document.
            attempts: How many attempts were made.
        """
        options = self.gateway.options
        # Only what Lambda puts in the record: the error's message and type, not the stack trace.
        reported = {k: v for k, v in (error or {}).items() if k in ("errorMessage", "errorType")}
        sqs_event = failed_job_event(
            event,
            request_id=request_id,
            error=reported or {"errorMessage": "the invocation failed"},
            invoke_count=attempts,
            function_name=options.function_name,
            region=options.region,
            account=options.account,
        )
        label = f"sqs on-failure {options.function_name}"
        outcome = await self.gateway.runtime.invoke(sqs_event, label=label, background=True)
        failures = outcome.payload.get("batchItemFailures") if isinstance(outcome.payload, dict) else None
        if not outcome.ok or failures:
            log.warning("%s: the on-failure record was not processed (not redelivered locally)", label)
