"""Event shapes from ``selador.local.events`` against what real API Gateway captures show."""

from __future__ import annotations

import base64
import re

from selador.local.events import (
    connect_event,
    disconnect_event,
    message_event,
    new_connection_id,
    new_extended_request_id,
    new_message_id,
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
