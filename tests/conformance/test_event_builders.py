"""The event builders of ``selador.local.events`` that the gateway does not exercise.

The gateway builds WebSocket and HTTP API events with them, and ``test_gateway_conformance`` checks
those on the wire. REST v1 is not served, so its builder (used by tests) is compared here directly;
so is the builder of the SQS event that carries a failed job (the gateway's on-failure destination).
"""

from __future__ import annotations

import json

from selador.local.events import failed_job_event, rest_v1_event

from .shapes import (
    domain_problems,
    id_problems,
    load,
    shape_differences,
    sqs_problems,
    time_problems,
    validate_with_powertools,
)


def test_the_rest_v1_builder_matches_the_fixture() -> None:
    fixture = load("rest_v1_invoke.json")
    event = rest_v1_event(
        "POST", "/invoke", body=fixture["body"], headers={"Content-Type": "application/json"}
    )
    validate_with_powertools(event)
    assert shape_differences(fixture, event) == []
    assert id_problems(event) + time_problems(event) + domain_problems(event) == []


def test_the_failed_job_builder_matches_the_fixture() -> None:
    fixture = load("sqs_failed_job_retries_exhausted.json")
    record = json.loads(fixture["Records"][0]["body"])
    event = failed_job_event(
        record["requestPayload"], error=record["responsePayload"], function_name="selador-main-lambda"
    )
    validate_with_powertools(event)
    assert shape_differences(fixture, event) == []
    assert shape_differences(record, json.loads(event["Records"][0]["body"])) == []
    assert sqs_problems(event) == []
