"""Event shapes from ``selador.local.events`` against what real API Gateway captures show."""

from __future__ import annotations

import base64
import re

from selador.local.events import (
    connect_event,
    disconnect_event,
    http_v2_event,
    message_event,
    new_connection_id,
    new_extended_request_id,
    new_message_id,
    request_time,
)

API_GATEWAY_ID = re.compile(r"[A-Za-z0-9_-]{15}=")


def test_ids_are_eleven_bytes_of_url_safe_base64_like_api_gateways() -> None:
    ids = [
        make() for make in (new_connection_id, new_extended_request_id, new_message_id) for _ in range(300)
    ]
    assert all(API_GATEWAY_ID.fullmatch(i) for i in ids), [i for i in ids if not API_GATEWAY_ID.fullmatch(i)]
    assert all(len(base64.urlsafe_b64decode(i)) == 11 for i in ids)
    # The whole alphabet is used, "-" and "_" included (a captured one: BFaT_fALIAMCKug=).
    used = set("".join(i[:-1] for i in ids))
    assert {"-", "_"} <= used
    assert len(set(ids)) == len(ids)


def test_websocket_events_have_request_id_equal_to_extended_request_id() -> None:
    for event in (connect_event(), message_event('{"action": "ping"}'), disconnect_event()):
        context = event["requestContext"]
        assert context["requestId"] == context["extendedRequestId"]
        assert API_GATEWAY_ID.fullmatch(context["requestId"])
    # Each event has an id of its own.
    ids = {message_event("x", route_key="$default")["requestContext"]["requestId"] for _ in range(50)}
    assert len(ids) == 50


# ---------------------------------------------------------------------------------- HTTP API v2

V2_TIME = re.compile(
    r"\d{2}/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2} \+0000"
)
TRACE_ID = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}")


def test_request_time_is_api_gateways_format_in_english() -> None:
    assert request_time(1_795_987_011_000) == "29/Nov/2026:21:16:51 +0000"
    assert request_time(0) == "01/Jan/1970:00:00:00 +0000"


def test_v2_time_and_time_epoch_agree() -> None:
    context = http_v2_event("GET", "/health")["requestContext"]
    assert V2_TIME.fullmatch(context["time"]), context["time"]
    assert context["time"] == request_time(context["timeEpoch"])
    assert context["timeEpoch"] > 1_700_000_000_000  # milliseconds, not seconds


def test_v2_domain_name_and_prefix_follow_the_api_id_and_region() -> None:
    context = http_v2_event("GET", "/health", api_id="abc123defg", region="eu-west-1")["requestContext"]
    assert context["domainName"] == "abc123defg.execute-api.eu-west-1.amazonaws.com"
    assert context["domainPrefix"] == "abc123defg" == context["apiId"]
    # The Host the client sent does not change them (locally it is 127.0.0.1:PORT).
    local = http_v2_event("GET", "/health", api_id="abc123defg", headers={"Host": "127.0.0.1:3001"})
    assert local["headers"]["host"] == "127.0.0.1:3001"
    assert local["requestContext"]["domainName"] == "abc123defg.execute-api.us-west-2.amazonaws.com"


def test_v2_headers_get_api_gateways_additions_unless_sent_and_lose_hop_by_hop_ones() -> None:
    headers = http_v2_event("POST", "/invoke", source_ip="198.51.100.7")["headers"]
    assert headers["x-forwarded-for"] == "198.51.100.7"
    assert (headers["x-forwarded-port"], headers["x-forwarded-proto"]) == ("443", "https")
    assert TRACE_ID.fullmatch(headers["x-amzn-trace-id"])

    sent = {
        "X-Forwarded-For": "203.0.113.1",
        "X-Amzn-Trace-Id": "Root=1-00000000-000000000000000000000000",
        "Content-Type": "application/json",
        "Connection": "keep-alive",
        "Keep-Alive": "timeout=5",
        "Transfer-Encoding": "chunked",
        "TE": "trailers",
        "Trailer": "x-sum",
        "Upgrade": "h2c",
        "Proxy-Authorization": "Basic eDp5",
    }
    headers = http_v2_event("POST", "/invoke", headers=sent)["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.1"
    assert headers["x-amzn-trace-id"] == "Root=1-00000000-000000000000000000000000"
    assert headers["content-type"] == "application/json"
    assert all(name == name.lower() for name in headers)
    dropped = {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
    }
    assert not dropped & headers.keys()
