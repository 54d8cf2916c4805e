"""Lambda proxy events shaped exactly like API Gateway's, for the local gateway and the tests.

Shapes follow the captured samples in Powertools' ``tests/events/apiGatewayWebSocketApi*.json``
and AWS's payload-format documentation (HTTP API v2, REST v1). Only the standard library is used,
so importing this module costs nothing on any path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
import uuid
from typing import Any

DEFAULT_API_ID = "sel4d0rapi"
DEFAULT_STAGE = "production"
DEFAULT_REGION = "us-west-2"
DEFAULT_ACCOUNT = "123456789012"
# A generator of its own, seeded from OS entropy, not the global one: tests that seed ``random``
# (Hypothesis does, per example) must still get distinct connection ids, as API Gateway's are, or
# per-connection state collides. Not SystemRandom: one urandom call per id is a measurable part of
# the gateway's CPU under load, and these ids are not secrets.
_IDS = random.Random()


def _api_gateway_id() -> str:
    # API Gateway's ids are 11 bytes in URL-safe base64: 15 characters from A-Z a-z 0-9 - _ and
    # one "=" of padding (``BFaT_fALIAMCKug=``); the last character carries 2 bits of padding.
    return base64.urlsafe_b64encode(_IDS.randbytes(11)).decode()


def new_connection_id() -> str:
    """An id shaped like API Gateway's: 11 bytes in URL-safe base64, e.g. ``BFaT_fALIAMCKug=``.

    Returns:
        A fresh connection id.
    """
    return _api_gateway_id()


def new_extended_request_id() -> str:
    """A request id shaped like API Gateway's (``L0SM9FuGvHcFMpA=``)."""
    return _api_gateway_id()


def new_message_id() -> str:
    """A message id shaped like API Gateway's (``L0SM9dS_vHcCIhw=``)."""
    return _api_gateway_id()


HOP_BY_HOP = frozenset({"connection", "upgrade", "keep-alive", "transfer-encoding", "te", "trailer"})
"""Headers that end at the first hop (RFC 9110 §7.6.1), so API Gateway does not pass them on."""


def is_hop_by_hop(name: str) -> bool:
    """Whether header ``name`` (any case) ends at API Gateway: the hop-by-hop ones and ``proxy-*``."""
    lowered = name.lower()
    return lowered in HOP_BY_HOP or lowered.startswith("proxy-")


def domain_name(api_id: str = DEFAULT_API_ID, region: str = DEFAULT_REGION) -> str:
    """The execute-api host of an API."""
    return f"{api_id}.execute-api.{region}.amazonaws.com"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def request_time(epoch_ms: int) -> str:
    """API Gateway's ``requestTime`` / v2 ``time`` format: ``09/Feb/2024:18:11:43 +0000``.

    The month is English whatever the process locale (``%b`` would follow it).

    Args:
        epoch_ms: Epoch milliseconds.

    Returns:
        The formatted UTC time.
    """
    t = time.gmtime(epoch_ms / 1000)
    day = f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}"
    return f"{day}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def new_trace_id(epoch_s: float | None = None) -> str:
    """An ``X-Amzn-Trace-Id`` as API Gateway adds it: ``Root=1-{8 hex epoch seconds}-{24 hex}``.

    Args:
        epoch_s: The request's time (default: now).

    Returns:
        The header value.
    """
    seconds = int(time.time() if epoch_s is None else epoch_s)
    return f"Root=1-{seconds:08x}-{uuid.uuid4().hex[:24]}"


def _ws_request_context(
    *,
    route_key: str,
    event_type: str,
    connection_id: str,
    connected_at: int,
    stage: str,
    api_id: str,
    domain: str,
    source_ip: str,
    user_agent: str | None,
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    # One id for both: every captured WebSocket event has requestId equal to extendedRequestId.
    request_id = new_extended_request_id()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at,
        "requestTimeEpoch": now_ms,
        "identity": {"sourceIp": source_ip, "userAgent": user_agent}
        if user_agent is not None
        else {"sourceIp": source_ip},
        "requestId": request_id,
        "domainName": domain,
        "connectionId": connection_id,
        "apiId": api_id,
    }


def _multi(values: dict[str, str] | None) -> dict[str, list[str]] | None:
    return None if values is None else {k: [v] for k, v in values.items()}


def connect_event(
    *,
    connection_id: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = DEFAULT_STAGE,
    api_id: str = DEFAULT_API_ID,
    domain: str | None = None,
    source_ip: str = "127.0.0.1",
    user_agent: str | None = "selador-test",
    connected_at: int | None = None,
) -> dict[str, Any]:
    """A ``$connect`` event.

    Args:
        connection_id: Defaults to a fresh id.
        headers: Handshake headers (Host, Sec-WebSocket-Key… are added when absent).
        query: Query-string parameters.
        stage: API stage.
        api_id: API id.
        domain: ``domainName``; defaults to the execute-api host.
        source_ip: Client address.
        user_agent: Client User-Agent (``None``: the client sent none).
        connected_at: Epoch milliseconds of the handshake.

    Returns:
        The event dict.
    """
    connection_id = connection_id or new_connection_id()
    domain = domain or domain_name(api_id)
    all_headers = {
        "Host": domain,
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": base64.b64encode(uuid.uuid4().bytes).decode(),
        "Sec-WebSocket-Version": "13",
        **({"User-Agent": user_agent} if user_agent is not None else {}),
        "X-Amzn-Trace-Id": new_trace_id(),
        "X-Forwarded-For": source_ip,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    all_headers.update(headers or {})
    event: dict[str, Any] = {
        "headers": all_headers,
        "multiValueHeaders": _multi(all_headers),
        "requestContext": _ws_request_context(
            route_key="$connect",
            event_type="CONNECT",
            connection_id=connection_id,
            connected_at=connected_at or int(time.time() * 1000),
            stage=stage,
            api_id=api_id,
            domain=domain,
            source_ip=source_ip,
            user_agent=user_agent,
        ),
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = _multi(query)
    return event


def message_event(
    body: str | bytes,
    *,
    route_key: str | None = None,
    route_keys: tuple[str, ...] | None = None,
    connection_id: str | None = None,
    stage: str = DEFAULT_STAGE,
    api_id: str = DEFAULT_API_ID,
    domain: str | None = None,
    source_ip: str = "127.0.0.1",
    user_agent: str | None = "selador-test",
    connected_at: int | None = None,
) -> dict[str, Any]:
    """A MESSAGE event.

    API Gateway delivers text frames only: a binary frame closes the connection with 1003 and
    reaches no route. ``bytes`` still build a base64-encoded event, to test that a handler copes
    with one (``isBase64Encoded`` exists in the event format).

    Args:
        body: The message as the client sent it (``bytes``: base64-encoded, see above).
        route_key: The route; defaults to API Gateway's selection over ``route_keys``.
        route_keys: The API's non-special route keys, for route selection (default: every
            action of the protocol).
        connection_id: Defaults to a fresh id.
        stage: API stage.
        api_id: API id.
        domain: ``domainName``; defaults to the execute-api host.
        source_ip: Client address.
        user_agent: Client User-Agent (``None``: the client sent none).
        connected_at: Epoch milliseconds of the handshake.

    Returns:
        The event dict.
    """
    is_binary = isinstance(body, bytes)
    if route_key is None:
        if route_keys is None:
            from selador.protocol import ACTIONS  # here, not at the top: this module stays stdlib-only

            route_keys = ACTIONS
        route_key = select_route(body, route_keys)
    context = _ws_request_context(
        route_key=route_key,
        event_type="MESSAGE",
        connection_id=connection_id or new_connection_id(),
        connected_at=connected_at or int(time.time() * 1000),
        stage=stage,
        api_id=api_id,
        domain=domain or domain_name(api_id),
        source_ip=source_ip,
        user_agent=user_agent,
    )
    context["messageId"] = new_message_id()
    return {
        "requestContext": context,
        "body": base64.b64encode(body).decode() if isinstance(body, bytes) else body,
        "isBase64Encoded": is_binary,
    }


def disconnect_event(
    *,
    connection_id: str | None = None,
    status_code: int = 1005,
    reason: str = "Client-side close frame status not set",
    stage: str = DEFAULT_STAGE,
    api_id: str = DEFAULT_API_ID,
    domain: str | None = None,
    source_ip: str = "127.0.0.1",
    user_agent: str | None = "selador-test",
    connected_at: int | None = None,
) -> dict[str, Any]:
    """A ``$disconnect`` event with API Gateway's close code and reason.

    Args:
        connection_id: Defaults to a fresh id.
        status_code: WebSocket close code (1000 normal, 1001 going away, 1005 none, 1006 abnormal).
        reason: Close reason as API Gateway words it.
        stage: API stage.
        api_id: API id.
        domain: ``domainName``; defaults to the execute-api host.
        source_ip: Client address.
        user_agent: Client User-Agent (``None``: the client sent none).
        connected_at: Epoch milliseconds of the handshake.

    Returns:
        The event dict.
    """
    domain = domain or domain_name(api_id)
    headers = {
        "Host": domain,
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    }
    context = _ws_request_context(
        route_key="$disconnect",
        event_type="DISCONNECT",
        connection_id=connection_id or new_connection_id(),
        connected_at=connected_at or int(time.time() * 1000),
        stage=stage,
        api_id=api_id,
        domain=domain,
        source_ip=source_ip,
        user_agent=user_agent,
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {
        "headers": headers,
        "multiValueHeaders": _multi(headers),
        "requestContext": context,
        "isBase64Encoded": False,
    }


def select_route(body: str | bytes, route_keys: tuple[str, ...] | list[str] | set[str]) -> str:
    """API Gateway's ``$request.body.action`` route selection.

    The body must be a JSON object whose ``action`` is a string equal to a route key; anything
    else (binary, not JSON, no ``action``, unknown action) goes to ``$default``.

    Args:
        body: The message as received.
        route_keys: The API's route keys.

    Returns:
        The selected route key.
    """
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return "$default"
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return "$default"
    action = payload.get("action") if isinstance(payload, dict) else None
    if isinstance(action, str) and action in route_keys and not action.startswith("$"):
        return action
    return "$default"


def http_v2_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    route_key: str | None = None,
    stage: str = "$default",
    api_id: str = "sel4d0rhttp",
    region: str = DEFAULT_REGION,
    source_ip: str = "127.0.0.1",
    user_agent: str = "selador-test",
) -> dict[str, Any]:
    """An HTTP API payload-format 2.0 event.

    As API Gateway does, header names are lower-cased, hop-by-hop headers are dropped and
    ``x-forwarded-for``/``-port``/``-proto`` and ``x-amzn-trace-id`` are added unless sent.

    Args:
        method: HTTP method.
        path: Request path, without the stage.
        body: Request body (bytes are sent base64-encoded).
        headers: Request headers (names in any case; repeated ones already comma-joined).
        query: Query-string parameters.
        route_key: Matched route (``"POST /invoke"``); defaults to ``"{method} {path}"``.
        stage: Stage name.
        api_id: API id (``domainPrefix``, and the first label of ``domainName``).
        region: Region in ``domainName``.
        source_ip: Client address.
        user_agent: Client User-Agent.

    Returns:
        The event dict.
    """
    now_ms = int(time.time() * 1000)
    domain = domain_name(api_id, region)
    lowered = {"host": domain, "user-agent": user_agent}
    lowered.update({k.lower(): v for k, v in (headers or {}).items() if not is_hop_by_hop(k)})
    for name, value in (
        ("x-forwarded-for", source_ip),
        ("x-forwarded-port", "443"),
        ("x-forwarded-proto", "https"),
        ("x-amzn-trace-id", new_trace_id(now_ms / 1000)),
    ):
        lowered.setdefault(name, value)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method.upper()} {path}",
        "rawPath": path if stage == "$default" else f"/{stage}{path}",
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": lowered,
        "requestContext": {
            "accountId": DEFAULT_ACCOUNT,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": api_id,
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": new_extended_request_id(),
            "routeKey": route_key or f"{method.upper()} {path}",
            "stage": stage,
            "time": request_time(now_ms),
            "timeEpoch": now_ms,
        },
        "isBase64Encoded": isinstance(body, bytes),
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    return event


def rest_v1_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = DEFAULT_STAGE,
    source_ip: str = "127.0.0.1",
    user_agent: str = "selador-test",
) -> dict[str, Any]:
    """A REST API (payload format 1.0) proxy event.

    Args:
        method: HTTP method.
        path: Resource path.
        body: Request body (bytes are sent base64-encoded, as for a binary media type).
        headers: Request headers.
        query: Query-string parameters.
        stage: Stage name.
        source_ip: Client address.
        user_agent: Client User-Agent.

    Returns:
        The event dict.
    """
    now_ms = int(time.time() * 1000)
    api_id = "sel4d0rrest"
    domain = domain_name(api_id)
    all_headers = {
        "Host": domain,
        "User-Agent": user_agent,
        "X-Amzn-Trace-Id": new_trace_id(),
        "X-Forwarded-For": source_ip,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    all_headers.update(headers or {})
    # The identity block of a REST event names every caller attribute, null when not signed.
    unsigned = dict.fromkeys(
        (
            "cognitoIdentityPoolId",
            "accountId",
            "cognitoIdentityId",
            "caller",
            "principalOrgId",
            "accessKey",
            "cognitoAuthenticationType",
            "cognitoAuthenticationProvider",
            "userArn",
            "user",
        )
    )
    return {
        "resource": path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": all_headers,
        "multiValueHeaders": _multi(all_headers),
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": _multi(query) if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=6)),
            "resourcePath": path,
            "httpMethod": method.upper(),
            "extendedRequestId": new_extended_request_id(),
            "requestTime": request_time(now_ms),
            "path": f"/{stage}{path}",
            "accountId": DEFAULT_ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api_id,
            "requestTimeEpoch": now_ms,
            "requestId": str(uuid.uuid4()),
            "identity": {**unsigned, "sourceIp": source_ip, "userAgent": user_agent},
            "domainName": domain,
            "apiId": api_id,
        },
        "body": base64.b64encode(body).decode() if isinstance(body, bytes) else body,
        "isBase64Encoded": isinstance(body, bytes),
    }


def failed_job_event(
    request_payload: Any,
    *,
    condition: str = "RetriesExhausted",
    request_id: str | None = None,
    error: dict[str, Any] | None = None,
    invoke_count: int = 1,
    function_name: str = "main-lambda",
    queue_name: str = "selador-failed-jobs",
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
) -> dict[str, Any]:
    """An SQS event carrying Lambda's on-failure invocation record of one asynchronous invocation.

    The SQS message body is the invocation record Lambda sends to an on-failure destination
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html); the
    envelope is an SQS event source mapping's (``Records``, ``eventSource: aws:sqs``).

    Args:
        request_payload: The event of the invocation that failed (a job event).
        condition: ``RetriesExhausted`` (the function failed) or ``EventAgeExceeded`` (it waited in
            Lambda's queue too long and never ran).
        request_id: The failed invocation's request id (a fresh UUID by default).
        error: The function's error document, as Lambda reports it (``errorMessage``…); the
            record then has ``responseContext``/``responsePayload``. Left out for
            ``EventAgeExceeded``, where the function never answered.
        invoke_count: ``approximateInvokeCount``: attempts made.
        function_name: The function the record names.
        queue_name: The destination queue.
        region: Its region.
        account: Its account.

    Returns:
        The event, as the event source mapping delivers it.
    """
    now_ms = int(time.time() * 1000)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000)) + f".{now_ms % 1000:03d}Z"
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso,
        "requestContext": {
            "requestId": request_id or str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{region}:{account}:function:{function_name}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": request_payload,
    }
    if error is not None:
        record["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        }
        record["responsePayload"] = error
    body = json.dumps(record, separators=(",", ":"))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "AQEB" + base64.b64encode(random.randbytes(96)).decode(),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(now_ms),
                    # The sender is the function's execution role (Lambda sends with it).
                    "SenderId": "AROA"
                    + "".join(random.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=17))
                    + ":"
                    + function_name,
                    "ApproximateFirstReceiveTimestamp": str(now_ms + 7),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{region}:{account}:{queue_name}",
                "awsRegion": region,
            }
        ]
    }
