"""The fixtures themselves: each is a well-formed API Gateway event, Powertools accepts it, its
provenance is written down, and the format rules the gateway is held to hold for it.

These run first in the suite's own logic: a rule that a real captured shape breaks is a wrong rule.
"""

from __future__ import annotations

import pytest

from .shapes import (
    API_GATEWAY_KINDS,
    EVENTS,
    domain_problems,
    fixture_names,
    forwarding_header_problems,
    id_problems,
    kind,
    load,
    multi_value_problems,
    sqs_problems,
    time_problems,
    validate_with_powertools,
)

FIXTURES = fixture_names()


def test_the_fixture_set_covers_every_case_issue_13_names() -> None:
    kinds = [kind(load(name)) for name in FIXTURES]
    assert {"CONNECT", "MESSAGE", "DISCONNECT", "HTTP_V2", "REST_V1"} <= set(kinds)
    connects = [load(n) for n in FIXTURES if kind(load(n)) == "CONNECT"]
    assert any("queryStringParameters" in e for e in connects)
    assert any("queryStringParameters" not in e for e in connects)
    assert any("authorizer" in e["requestContext"] for e in connects)
    routes = {load(n)["requestContext"]["routeKey"] for n in FIXTURES if kind(load(n)) == "MESSAGE"}
    assert {"ping", "invoke", "$default"} <= routes
    closes = {
        (e["requestContext"]["disconnectStatusCode"], e["requestContext"]["disconnectReason"])
        for e in (load(n) for n in FIXTURES)
        if kind(e) == "DISCONNECT"
    }
    assert {c for c, _ in closes} == {1000, 1001, 1003, 1005, 1006, 1009}
    assert (1001, "") in closes and (1001, "Going away") in closes
    v2 = [load(n) for n in FIXTURES if kind(load(n)) == "HTTP_V2"]
    assert any("jwt" in (e["requestContext"].get("authorizer") or {}) for e in v2)
    assert any("authorizer" not in e["requestContext"] for e in v2)
    assert "SQS" in kinds  # the queue of failed jobs (Lambda's on-failure destination)


def test_every_fixture_has_its_source_written_down() -> None:
    sources = (EVENTS / "SOURCES.md").read_text()
    missing = [name for name in FIXTURES if f"`{name}`" not in sources]
    assert not missing, f"add these to events/SOURCES.md: {missing}"
    for name in FIXTURES:
        assert "_source" not in load(name), "provenance belongs in SOURCES.md, not in the event"


@pytest.mark.parametrize("name", FIXTURES)
def test_powertools_parser_models_accept_every_fixture(name: str) -> None:
    validate_with_powertools(load(name))


@pytest.mark.parametrize("name", [n for n in FIXTURES if kind(load(n)) in API_GATEWAY_KINDS])
def test_every_api_gateway_fixture_keeps_the_format_rules(name: str) -> None:
    event = load(name)
    problems = (
        id_problems(event) + time_problems(event) + domain_problems(event) + multi_value_problems(event)
    )
    if kind(event) in ("CONNECT", "HTTP_V2"):
        problems += forwarding_header_problems(event)
    assert problems == []


@pytest.mark.parametrize("name", [n for n in FIXTURES if kind(load(n)) == "SQS"])
def test_sqs_fixtures_keep_the_sqs_and_invocation_record_rules(name: str) -> None:
    assert sqs_problems(load(name)) == []


def test_the_sqs_rules_catch_a_body_that_is_not_the_md5s() -> None:
    event = load("sqs_failed_job_retries_exhausted.json")
    event["Records"][0]["body"] = event["Records"][0]["body"].replace("RetriesExhausted", "Success")
    assert any("md5OfBody" in p for p in sqs_problems(event))
    assert any("condition" in p for p in sqs_problems(event))


@pytest.mark.parametrize(
    "name", [n for n in FIXTURES if kind(load(n)) in ("CONNECT", "MESSAGE", "DISCONNECT")]
)
def test_websocket_fixtures_have_request_id_equal_to_extended_request_id(name: str) -> None:
    ctx = load(name)["requestContext"]
    assert ctx["requestId"] == ctx["extendedRequestId"]


@pytest.mark.parametrize("name", [n for n in FIXTURES if kind(load(n)) == "HTTP_V2"])
def test_http_v2_fixture_header_names_are_lower_case(name: str) -> None:
    headers = load(name)["headers"]
    assert all(h == h.lower() for h in headers)
