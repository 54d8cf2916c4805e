"""What "shaped like API Gateway's" means, as code: key sets, JSON types, formats, Powertools models.

Used on the fixtures (``events/*.json``, written from captured AWS events) and on the events the
local gateway builds, so both are held to the same rules.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    SqsModel,
)
from pydantic import BaseModel

EVENTS = Path(__file__).resolve().parent / "events"

Path_ = tuple[str, ...]

# ---------------------------------------------------------------------------------- fixtures


def load(name: str) -> dict[str, Any]:
    """A fixture event (a fresh copy: tests may adapt dynamic values)."""
    return json.loads((EVENTS / name).read_text())


def fixture_names() -> list[str]:
    return sorted(p.name for p in EVENTS.glob("*.json"))


# ---------------------------------------------------------------------------------- kinds


def kind(event: Mapping[str, Any]) -> str:
    """``CONNECT``/``MESSAGE``/``DISCONNECT`` (WebSocket), ``HTTP_V2``, ``REST_V1`` or ``SQS``."""
    records = event.get("Records")
    if isinstance(records, list) and records and records[0].get("eventSource") == "aws:sqs":
        return "SQS"
    ctx = event.get("requestContext") or {}
    if ctx.get("eventType") in ("CONNECT", "MESSAGE", "DISCONNECT"):
        return str(ctx["eventType"])
    if event.get("version") == "2.0":
        return "HTTP_V2"
    if "httpMethod" in event:
        return "REST_V1"
    raise AssertionError(f"not an API Gateway or SQS event: {sorted(event)}")


API_GATEWAY_KINDS = frozenset({"CONNECT", "MESSAGE", "DISCONNECT", "HTTP_V2", "REST_V1"})


POWERTOOLS_MODELS: dict[str, type[BaseModel]] = {
    "CONNECT": APIGatewayWebSocketConnectEventModel,
    "MESSAGE": APIGatewayWebSocketMessageEventModel,
    "DISCONNECT": APIGatewayWebSocketDisconnectEventModel,
    "HTTP_V2": APIGatewayProxyEventV2Model,
    "REST_V1": APIGatewayProxyEventModel,
    "SQS": SqsModel,
}


def validate_with_powertools(event: Mapping[str, Any]) -> BaseModel:
    """Parse ``event`` with the Powertools parser model of its kind (raises when it is refused)."""
    return POWERTOOLS_MODELS[kind(event)].model_validate(event)


# ---------------------------------------------------------------------------------- shape

# Objects whose keys are request data (header names, parameters, claims), not schema: their key
# sets depend on the request, so only the types of their values are compared here.
DATA_MAPS: frozenset[Path_] = frozenset(
    {
        ("headers",),
        ("multiValueHeaders",),
        ("queryStringParameters",),
        ("multiValueQueryStringParameters",),
        ("pathParameters",),
        ("stageVariables",),
        ("requestContext", "authorizer", "jwt", "claims"),
    }
)

# Fields API Gateway sends as null or as a value depending on configuration.
NULLABLE: frozenset[Path_] = frozenset(
    {
        ("requestContext", "authorizer", "jwt", "scopes"),  # null unless the route has authorizationScopes
        ("queryStringParameters",),  # REST v1: null without a query string
        ("multiValueQueryStringParameters",),
        ("pathParameters",),
        ("stageVariables",),
        ("body",),
    }
)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _dotted(path: Path_) -> str:
    return ".".join(path) or "<event>"


def shape_differences(
    expected: Any,
    actual: Any,
    *,
    optional: Mapping[str, str] | None = None,
    path: Path_ = (),
) -> list[str]:
    """Every difference of keys and JSON types between ``actual`` and the fixture ``expected``.

    Args:
        expected: The fixture (or part of it).
        actual: The event the gateway built (or the same part of it).
        optional: Dotted paths (``requestContext.authorizer``) that may be present in one and
            absent in the other, each with the reason; anything else must match exactly.
        path: Where we are (recursion).

    Returns:
        Human-readable differences; empty when the shapes agree.
    """
    optional = optional or {}
    where = _dotted(path)
    if path in NULLABLE and (expected is None or actual is None):
        return []
    if json_type(expected) != json_type(actual):
        return [f"{where}: {json_type(actual)} where API Gateway sends {json_type(expected)}"]
    if path in DATA_MAPS:
        wanted = {json_type(v) for v in expected.values()}
        problems = []
        for key, value in actual.items():
            if wanted and json_type(value) not in wanted:
                problems.append(f"{where}.{key}: {json_type(value)} where API Gateway sends {sorted(wanted)}")
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                problems.append(f"{where}.{key}: list items must be strings")
        return problems
    if isinstance(expected, dict):
        problems = []
        for key in sorted(expected.keys() - actual.keys()):
            if _dotted((*path, key)) not in optional:
                problems.append(f"{_dotted((*path, key))}: missing")
        for key in sorted(actual.keys() - expected.keys()):
            if _dotted((*path, key)) not in optional:
                problems.append(f"{_dotted((*path, key))}: not in API Gateway's event")
        for key in sorted(expected.keys() & actual.keys()):
            problems += shape_differences(expected[key], actual[key], optional=optional, path=(*path, key))
        return problems
    if isinstance(expected, list) and expected and actual:
        want = json_type(expected[0])
        return [
            f"{where}[{i}]: {json_type(v)} where API Gateway sends {want}"
            for i, v in enumerate(actual)
            if json_type(v) != want
        ]
    return []


# ---------------------------------------------------------------------------------- formats

# API Gateway ids are url-safe base64 of 11 bytes: 15 characters and one "=" (L0SM9cOFvHcCIhw=,
# BFaT_fALIAMCKug=, LV7fzho-PHcEJPw=).
AWS_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
# requestTime (WebSocket, REST) and time (HTTP API v2): 09/Feb/2024:18:11:43 +0000
CLF_TIME = re.compile(rf"^\d{{2}}/{MONTH}/\d{{4}}:\d{{2}}:\d{{2}}:\d{{2}} \+0000$")
EPOCH_MS = re.compile(r"^1\d{12}$")
TRACE_ID = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$")
API_ID = re.compile(r"^[a-z0-9]+$")
REGION = r"[a-z]{2}(-[a-z]+)+-\d"
ACCOUNT = re.compile(r"^\d{12}$")


def clf_epoch_seconds(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%d/%b/%Y:%H:%M:%S +0000"))


def id_problems(event: Mapping[str, Any]) -> list[str]:
    """connectionId, requestId, extendedRequestId, messageId shaped like API Gateway's."""
    ctx = event["requestContext"]
    names = {
        "CONNECT": ["connectionId", "requestId", "extendedRequestId"],
        "MESSAGE": ["connectionId", "requestId", "extendedRequestId", "messageId"],
        "DISCONNECT": ["connectionId", "requestId", "extendedRequestId"],
        "HTTP_V2": ["requestId"],
        "REST_V1": ["extendedRequestId"],  # REST's requestId is a UUID
    }[kind(event)]
    problems = [
        f"requestContext.{n}: {ctx.get(n)!r} is not shaped like {AWS_ID.pattern}"
        for n in names
        if not AWS_ID.match(str(ctx.get(n)))
    ]
    if kind(event) == "REST_V1" and not UUID.match(str(ctx.get("requestId"))):
        problems.append(f"requestContext.requestId: {ctx.get('requestId')!r} is not a UUID")
    return problems


def time_problems(event: Mapping[str, Any]) -> list[str]:
    """requestTime/time in API Gateway's format, epochs in milliseconds, and the two agreeing."""
    ctx = event["requestContext"]
    if kind(event) == "HTTP_V2":
        text_key, epoch_key = "time", "timeEpoch"
    else:
        text_key, epoch_key = "requestTime", "requestTimeEpoch"
    problems = []
    text, epoch = ctx.get(text_key), ctx.get(epoch_key)
    if not isinstance(text, str) or not CLF_TIME.match(text):
        problems.append(f"requestContext.{text_key}: {text!r} is not like '21/Apr/2020:15:08:21 +0000'")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not EPOCH_MS.match(str(epoch)):
        problems.append(f"requestContext.{epoch_key}: {epoch!r} is not epoch milliseconds")
    if not problems and abs(clf_epoch_seconds(text) - epoch // 1000) > 1:
        problems.append(f"requestContext.{text_key} {text!r} and {epoch_key} {epoch} disagree")
    if "connectedAt" in ctx:
        connected = ctx["connectedAt"]
        if not isinstance(connected, int) or not EPOCH_MS.match(str(connected)):
            problems.append(f"requestContext.connectedAt: {connected!r} is not epoch milliseconds")
        elif isinstance(epoch, int) and connected > epoch:
            problems.append("requestContext.connectedAt is after requestTimeEpoch")
    return problems


def domain_problems(event: Mapping[str, Any]) -> list[str]:
    """``domainName`` is ``{apiId}.execute-api.{region}.amazonaws.com`` (and v2's domainPrefix the apiId)."""
    ctx = event["requestContext"]
    api_id, domain = str(ctx.get("apiId")), str(ctx.get("domainName"))
    problems = []
    if not API_ID.match(api_id):
        problems.append(f"requestContext.apiId: {api_id!r} is not an API id")
    if not re.fullmatch(rf"{re.escape(api_id)}\.execute-api\.{REGION}\.amazonaws\.com", domain):
        problems.append(
            f"requestContext.domainName: {domain!r} is not {api_id}.execute-api.{{region}}.amazonaws.com"
        )
    if kind(event) in ("HTTP_V2", "REST_V1"):
        if ctx.get("domainPrefix") != api_id:
            problems.append(f"requestContext.domainPrefix: {ctx.get('domainPrefix')!r} is not the API id")
        if not ACCOUNT.match(str(ctx.get("accountId"))):
            problems.append(f"requestContext.accountId: {ctx.get('accountId')!r} is not 12 digits")
    return problems


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, case-insensitively (the event keeps whatever case it has)."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def forwarding_header_problems(event: Mapping[str, Any]) -> list[str]:
    """X-Forwarded-For/Port/Proto and X-Amzn-Trace-Id, which API Gateway adds to CONNECT and HTTP events."""
    headers = event.get("headers") or {}
    source_ip = (event["requestContext"].get("identity") or event["requestContext"].get("http") or {})[
        "sourceIp"
    ]
    problems = []
    forwarded_for = header(headers, "x-forwarded-for")
    if forwarded_for is None or forwarded_for.split(",")[-1].strip() != source_ip:
        problems.append(
            f"headers: x-forwarded-for {forwarded_for!r} does not end with the source ip {source_ip}"
        )
    if not re.fullmatch(r"\d+", header(headers, "x-forwarded-port") or ""):
        problems.append(f"headers: x-forwarded-port {header(headers, 'x-forwarded-port')!r} is not a port")
    if header(headers, "x-forwarded-proto") not in ("http", "https"):
        problems.append(f"headers: x-forwarded-proto {header(headers, 'x-forwarded-proto')!r}")
    if not TRACE_ID.match(header(headers, "x-amzn-trace-id") or ""):
        problems.append(f"headers: x-amzn-trace-id {header(headers, 'x-amzn-trace-id')!r} is not Root=1-…")
    return problems


def multi_value_problems(event: Mapping[str, Any]) -> list[str]:
    """multiValue* fields agree with their single-value twins (same names, last value)."""
    if kind(event) == "HTTP_V2":
        # Payload 2.0 has no multi-value fields: repeated headers and parameters are comma-joined.
        return [f"{k}: not in payload format 2.0" for k in event if k.startswith("multiValue")]
    problems = []
    for single, multi in (
        ("headers", "multiValueHeaders"),
        ("queryStringParameters", "multiValueQueryStringParameters"),
    ):
        one, many = event.get(single), event.get(multi)
        if one is None and many is None:
            continue
        if one is None or many is None or set(one) != set(many):
            problems.append(f"{single} and {multi} name different keys")
            continue
        problems += [f"{multi}.{k}: last value is not {single}.{k}" for k in one if many[k][-1] != one[k]]
    return problems


# ---------------------------------------------------------------------------------- SQS

QUEUE_ARN = re.compile(rf"^arn:aws:sqs:{REGION}:\d{{12}}:[A-Za-z0-9_-]{{1,80}}$")
FUNCTION_ARN = re.compile(
    rf"^arn:aws:lambda:{REGION}:\d{{12}}:function:[A-Za-z0-9_-]{{1,64}}(:\$LATEST|:\w+)?$"
)
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DESTINATION_CONDITIONS = frozenset({"RetriesExhausted", "EventAgeExceeded"})


def sqs_problems(event: Mapping[str, Any]) -> list[str]:
    """Each record shaped like an SQS event source mapping's, its body an on-failure invocation record.

    The envelope: UUID ``messageId``, ``md5OfBody`` the body's MD5, attribute timestamps as epoch
    milliseconds in strings, the queue ARN and region agreeing. The body: Lambda's invocation
    record (``version``, ISO ``timestamp``, ``requestContext`` with ``requestId``, ``functionArn``,
    ``condition``, ``approximateInvokeCount``; ``requestPayload``; ``responseContext`` and
    ``responsePayload`` when the function answered).
    """
    problems: list[str] = []
    for index, record in enumerate(event["Records"]):
        where = f"Records[{index}]"
        body = record.get("body", "")
        if not UUID.match(str(record.get("messageId"))):
            problems.append(f"{where}.messageId: not a UUID")
        if hashlib.md5(body.encode(), usedforsecurity=False).hexdigest() != record.get("md5OfBody"):
            problems.append(f"{where}.md5OfBody: not the body's MD5")
        attributes = record.get("attributes") or {}
        for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"):
            if not isinstance(attributes.get(name), str) or not EPOCH_MS.match(attributes[name]):
                problems.append(f"{where}.attributes.{name}: not epoch milliseconds in a string")
        arn = str(record.get("eventSourceARN"))
        if not QUEUE_ARN.match(arn) or arn.split(":")[3] != record.get("awsRegion"):
            problems.append(f"{where}.eventSourceARN: {arn!r} is not a queue ARN in awsRegion")
        try:
            destination = json.loads(body)
        except ValueError:
            problems.append(f"{where}.body: not JSON")
            continue
        ctx = destination.get("requestContext") or {}
        if destination.get("version") != "1.0" or not ISO_MS.match(str(destination.get("timestamp"))):
            problems.append(f"{where}.body: version/timestamp not like Lambda's record")
        if not UUID.match(str(ctx.get("requestId"))) or not FUNCTION_ARN.match(str(ctx.get("functionArn"))):
            problems.append(f"{where}.body.requestContext: requestId/functionArn not like Lambda's")
        if ctx.get("condition") not in DESTINATION_CONDITIONS or not isinstance(
            ctx.get("approximateInvokeCount"), int
        ):
            problems.append(f"{where}.body.requestContext: condition/approximateInvokeCount")
        if "requestPayload" not in destination:
            problems.append(f"{where}.body: no requestPayload")
        if ("responseContext" in destination) != ("responsePayload" in destination):
            problems.append(f"{where}.body: responseContext and responsePayload come together")
    return problems
