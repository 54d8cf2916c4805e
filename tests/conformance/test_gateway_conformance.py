"""(b) The events the local gateway builds have the fixtures' keys, types and formats.

``selador serve`` runs as a subprocess, as in ``tests/e2e``, with ``template.yaml`` and a handler
that records every event it receives (``handlers/recording_handler.py``). The same requests the
fixtures describe are driven over real sockets (``websockets``, ``httpx``), and each recorded
event is compared with its fixture: the same keys at every level (only the optional keys listed
in the test, each with its reason), the same JSON types, and the formats API Gateway uses for
ids, times, domain names and header names. Every recorded event is parsed with Powertools'
parser model for its kind.

A difference from AWS found later is marked ``xfail(strict=True)`` with what differs, so the
suite stays green and the marker must come off when the gateway is fixed; none is open today.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from e2e.conftest import GatewayProcess, start_gateway, ws_connect

from .shapes import (
    domain_problems,
    forwarding_header_problems,
    header,
    id_problems,
    kind,
    load,
    multi_value_problems,
    shape_differences,
    time_problems,
    validate_with_powertools,
)

pytestmark = pytest.mark.e2e

HANDLERS = Path(__file__).resolve().parent / "handlers"
WAIT = 15.0
"""Upper bound on any one wait; never an expectation about speed."""
STAGE = "production"
TAG = "X-Conformance-Tag"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
BROWSER_HEADERS = {
    "Origin": "https://app.selador.example",
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "Accept-Language": "en-US,en;q=0.9",
}
HOP_BY_HOP = {"connection", "upgrade"}
JWT_SECRET = "conformance-gateway-secret-0123456789abcdef"
JWT_ISSUER = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_Se1aD0rPl"
JWT_AUDIENCE = "4q8n2v6k1m3r5t7w9y0a2c4e6g"

NO_WS_AUTHORIZER = (
    "present only when a Lambda REQUEST authorizer guards $connect; template.yaml's ConnectRoute has "
    "AuthorizationType NONE, so API Gateway would not send it either"
)
NO_LOCAL_JWT = (
    "the main gateway runs without AUTH_* settings, as `make serve` does; the JWT authorizer's "
    "claims are checked on a gateway configured for it (test_jwt_*)"
)


# ---------------------------------------------------------------------------------- recorder


class Recorder:
    """Reads the events the recording handler appended, one JSON line each."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # a line still being written is left for next time
        return [json.loads(line) for line in complete.splitlines() if line]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, count: int = 1
    ) -> list[dict[str, Any]]:
        """The events matching ``predicate`` once there are ``count``, each validated by Powertools."""
        deadline = time.monotonic() + WAIT
        while True:
            found = [e for e in self.events() if predicate(e)]
            if len(found) >= count:
                for event in found:
                    validate_with_powertools(event)
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {WAIT} s; recorded: {[kind(e) for e in self.events()]}")
            await asyncio.sleep(0.02)

    async def none_for(self, predicate: Callable[[dict[str, Any]], bool], seconds: float = 0.1) -> None:
        """Nothing matching was recorded (the gateway answers only after its invocation, if any, returned)."""
        await asyncio.sleep(seconds)
        assert [e for e in self.events() if predicate(e)] == []


def tagged(tag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: header(e.get("headers"), TAG) == tag


def of(event_type: str, connection_id: str) -> Callable[[dict[str, Any]], bool]:
    def match(e: dict[str, Any]) -> bool:
        ctx = e.get("requestContext") or {}
        return ctx.get("eventType") == event_type and ctx.get("connectionId") == connection_id

    return match


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance-events")


def _gateway(events_file: Path, *flags: str) -> Iterator[GatewayProcess]:
    pythonpath = os.pathsep.join(filter(None, [str(HANDLERS), os.environ.get("PYTHONPATH")]))
    with start_gateway(
        "--handler",
        "recording_handler.lambda_handler",
        "--workers",
        "1",
        "--background-workers",
        "1",
        "--env",
        f"CONFORMANCE_EVENTS_FILE={events_file}",
        # The fixtures' browser app is served from elsewhere: named, as a developer would.
        "--allow-origin",
        BROWSER_HEADERS["Origin"],
        *flags,
        env={"PYTHONPATH": pythonpath},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def gw(events_dir: Path) -> Iterator[GatewayProcess]:
    """The gateway as `make serve` runs it (template.yaml, no AUTH_* settings), recording events."""
    yield from _gateway(events_dir / "main.jsonl")


@pytest.fixture(scope="module")
def recorder(events_dir: Path, gw: GatewayProcess) -> Recorder:
    return Recorder(events_dir / "main.jsonl")


@pytest.fixture(scope="module")
def idle_gw(events_dir: Path) -> Iterator[tuple[GatewayProcess, Recorder]]:
    """A gateway whose idle timeout is one second (AWS: ten minutes)."""
    for running in _gateway(events_dir / "idle.jsonl", "--idle-timeout", "1"):
        yield running, Recorder(events_dir / "idle.jsonl")


@pytest.fixture(scope="module")
def jwt_gw(events_dir: Path) -> Iterator[tuple[GatewayProcess, Recorder]]:
    """A gateway configured with the local JWT settings, recording events.

    AWS checks tokens against the template's ``OidcJwt`` issuer and audience; locally the same
    settings the function uses are given (``--env AUTH_MODE=jwt AUTH_HS256_SECRET AUTH_ISSUER
    AUTH_AUDIENCE``, what ``selador token`` signs for), so an emulated authorizer can verify the
    tokens these tests sign.
    """
    flags = ["AUTH_MODE=jwt", f"AUTH_HS256_SECRET={JWT_SECRET}", f"AUTH_ISSUER={JWT_ISSUER}"]
    flags.append(f"AUTH_AUDIENCE={JWT_AUDIENCE}")
    env_flags = [part for flag in flags for part in ("--env", flag)]
    for running in _gateway(events_dir / "jwt.jsonl", *env_flags):
        yield running, Recorder(events_dir / "jwt.jsonl")


# ---------------------------------------------------------------------------------- clients


@asynccontextmanager
async def opened(
    gw: GatewayProcess,
    recorder: Recorder,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    user_agent: str | None = BROWSER_UA,
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A WebSocket connection and the CONNECT event the gateway built for it."""
    tag = uuid.uuid4().hex
    url = gw.endpoints.ws_url + (f"?{query}" if query else "")
    async with ws_connect(
        url, additional_headers={TAG: tag, **(headers or {})}, user_agent_header=user_agent
    ) as ws:
        (event,) = await recorder.wait_for(tagged(tag), "CONNECT")
        yield ws, event


async def closed_by_server(ws: ClientConnection) -> int:
    """Read until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None, "closed without a close frame"
    return info.value.rcvd.code


def bearer(sub: str = "conformance-user") -> str:
    now = int(time.time())
    claims = {
        "sub": sub,
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "token_use": "id",
        "iat": now,
        "exp": now + 600,
    }
    return "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")


async def http_event(
    gw: GatewayProcess, recorder: Recorder, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    """One HTTP API request and the payload-2.0 event the gateway built for it."""
    tag = uuid.uuid4().hex
    headers = {"user-agent": "curl/8.5.0", TAG.lower(): tag, **kwargs.pop("headers", {})}
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.request(method, gw.endpoints.http_url + path, headers=headers, **kwargs)
    (event,) = await recorder.wait_for(tagged(tag), f"{method} {path}")
    return response, event


# ---------------------------------------------------------------------------------- CONNECT


async def test_connect_with_a_query_string_matches_the_fixture(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    fixture = load("ws_connect_query.json")
    async with opened(gw, recorder, query="lang=en&tag=a&tag=b", headers=BROWSER_HEADERS) as (_, event):
        pass
    assert shape_differences(fixture, event) == []
    assert event["queryStringParameters"] == fixture["queryStringParameters"]
    assert event["multiValueQueryStringParameters"] == fixture["multiValueQueryStringParameters"]
    ctx = event["requestContext"]
    assert (ctx["routeKey"], ctx["eventType"], ctx["messageDirection"], ctx["stage"]) == (
        "$connect",
        "CONNECT",
        "IN",
        STAGE,
    )
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": BROWSER_UA}
    assert event["isBase64Encoded"] is False
    assert multi_value_problems(event) == []


async def test_connect_with_a_token_in_the_query_matches_the_authorizer_fixture(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    fixture = load("ws_connect_authorizer.json")
    query = "token=" + fixture["queryStringParameters"]["token"]
    async with opened(gw, recorder, query=query) as (_, event):
        pass
    optional = {"requestContext.authorizer": NO_WS_AUTHORIZER}
    assert shape_differences(fixture, event, optional=optional) == []
    assert event["queryStringParameters"] == fixture["queryStringParameters"]


async def test_connect_without_a_query_string_has_no_query_keys(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder) as (_, event):
        pass
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event


async def test_connect_without_query_string_or_user_agent_matches_the_fixture(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder, user_agent=None) as (_, event):
        pass
    assert shape_differences(load("ws_connect_plain.json"), event) == []


async def test_connect_headers_are_the_clients_as_sent_plus_api_gateways(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder, headers=BROWSER_HEADERS) as (ws, event):
        assert ws.request is not None
        sent = [(k, v) for k, v in ws.request.headers.raw_items() if k.lower() not in HOP_BY_HOP]
    headers = event["headers"]
    # Every header the client sent arrives under the name it was sent with (these are the names
    # browsers and the websockets client use: Host, Sec-WebSocket-Key, User-Agent, Origin…).
    assert [(k, headers.get(k)) for k, _ in sent] == sent
    # Connection and Upgrade end at API Gateway; it adds X-Forwarded-* and X-Amzn-Trace-Id.
    assert not {h.lower() for h in headers} & HOP_BY_HOP
    assert forwarding_header_problems(event) == []
    assert {k for k, _ in sent} | {
        "X-Amzn-Trace-Id",
        "X-Forwarded-For",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
    } == set(headers)
    assert multi_value_problems(event) == []


async def test_a_header_sent_in_lower_case_arrives_in_lower_case(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder, headers={"x-selador-lower": "1"}) as (_, event):
        pass
    assert event["headers"].get("x-selador-lower") == "1"
    assert event["multiValueHeaders"].get("x-selador-lower") == ["1"]
    assert [h for h in event["headers"] if h.lower() == "x-selador-lower"] == ["x-selador-lower"]


async def test_a_header_in_mixed_case_arrives_as_sent(gw: GatewayProcess, recorder: Recorder) -> None:
    async with opened(gw, recorder, headers={"x-SELADOR-Mixed": "2"}) as (_, event):
        pass
    assert event["headers"].get("x-SELADOR-Mixed") == "2"
    assert event["multiValueHeaders"].get("x-SELADOR-Mixed") == ["2"]


async def test_a_url_with_another_stage_is_refused(gw: GatewayProcess, recorder: Recorder) -> None:
    tag = uuid.uuid4().hex
    url = gw.endpoints.ws_url.rsplit("/", 1)[0] + "/not-the-stage"
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(url, additional_headers={TAG: tag}):
            pass
    assert 400 <= refused.value.response.status_code < 500
    await recorder.none_for(tagged(tag))


async def test_a_url_without_the_stage_is_refused(gw: GatewayProcess, recorder: Recorder) -> None:
    tag = uuid.uuid4().hex
    url = gw.endpoints.ws_url.rsplit("/", 1)[0] + "/"
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(url, additional_headers={TAG: tag}):
            pass
    assert 400 <= refused.value.response.status_code < 500
    await recorder.none_for(tagged(tag))


# ---------------------------------------------------------------------------------- MESSAGE

MESSAGES = [
    ("ws_message_ping.json", {}),
    ("ws_message_invoke.json", {}),
    ("ws_message_unknown_action.json", {}),
    ("ws_message_malformed.json", {}),
    ("ws_message_invoke_invalid.json", {}),
    ("ws_message_invoke_authorizer.json", {"requestContext.authorizer": NO_WS_AUTHORIZER}),
]


@pytest.mark.parametrize(("name", "optional"), MESSAGES, ids=[m[0] for m in MESSAGES])
async def test_message_matches_the_fixture(
    gw: GatewayProcess, recorder: Recorder, name: str, optional: dict[str, str]
) -> None:
    fixture = load(name)
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.send(fixture["body"])
        (event,) = await recorder.wait_for(of("MESSAGE", connection_id), "MESSAGE")
    assert shape_differences(fixture, event, optional=optional) == []
    ctx = event["requestContext"]
    assert ctx["routeKey"] == fixture["requestContext"]["routeKey"]  # route selection
    assert event["body"] == fixture["body"] and event["isBase64Encoded"] is False
    assert ctx["connectedAt"] == connect["requestContext"]["connectedAt"]
    assert ctx["identity"] == connect["requestContext"]["identity"]


async def test_websocket_request_id_equals_extended_request_id(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.send('{"action":"ping"}')
        (message,) = await recorder.wait_for(of("MESSAGE", connection_id), "MESSAGE")
    (disconnect,) = await recorder.wait_for(of("DISCONNECT", connection_id), "DISCONNECT")
    for event in (connect, message, disconnect):
        ctx = event["requestContext"]
        assert ctx["requestId"] == ctx["extendedRequestId"], kind(event)


async def test_websocket_ids_times_and_domain_are_shaped_like_api_gateways(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.send('{"action":"ping"}')
        await ws.send('{"action":"invoke","question":"q"}')
        messages = await recorder.wait_for(of("MESSAGE", connection_id), "MESSAGE", count=2)
    (disconnect,) = await recorder.wait_for(of("DISCONNECT", connection_id), "DISCONNECT")
    events = [connect, *messages, disconnect]
    for event in events:
        assert id_problems(event) + time_problems(event) + domain_problems(event) == [], kind(event)
    contexts = [e["requestContext"] for e in events]
    assert {c["connectionId"] for c in contexts} == {connection_id}
    assert {c["connectedAt"] for c in contexts} == {contexts[0]["connectedAt"]}
    assert {c["apiId"] for c in contexts} == {contexts[0]["apiId"]}
    assert len({c["requestId"] for c in contexts}) == len(contexts)
    assert len({c["messageId"] for c in contexts[1:3]}) == 2
    now_ms = time.time() * 1000
    assert all(abs(now_ms - c["requestTimeEpoch"]) < 60_000 for c in contexts)
    epochs = [c["requestTimeEpoch"] for c in contexts]
    assert epochs[0] <= min(epochs[1:3]) and max(epochs[1:3]) <= epochs[3]


# ---------------------------------------------------------------------------------- DISCONNECT


async def _disconnect_event(recorder: Recorder, connection_id: str) -> dict[str, Any]:
    (event,) = await recorder.wait_for(of("DISCONNECT", connection_id), "DISCONNECT")
    return event


def assert_disconnect_matches(
    event: dict[str, Any], fixture_name: str, *, reason_documented: bool = True
) -> None:
    fixture = load(fixture_name)
    assert shape_differences(fixture, event) == []
    # The DISCONNECT headers are API Gateway's own, the same set whatever the client sent.
    assert list(event["headers"]) == list(fixture["headers"])
    ctx, want = event["requestContext"], fixture["requestContext"]
    assert ctx["disconnectStatusCode"] == want["disconnectStatusCode"]
    assert isinstance(ctx["disconnectReason"], str)
    if reason_documented:
        assert ctx["disconnectReason"] == want["disconnectReason"]


async def test_delete_connection_closes_with_1000_connection_closed_normally(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        url = f"{gw.endpoints.management_endpoint}/@connections/{quote(connection_id, safe='')}"
        async with httpx.AsyncClient(timeout=WAIT) as client:
            assert (await client.delete(url)).status_code == 204
        assert await closed_by_server(ws) == 1000
    assert_disconnect_matches(
        await _disconnect_event(recorder, connection_id), "ws_disconnect_1000_delete_connection.json"
    )


async def test_a_close_frame_without_status_is_1005(gw: GatewayProcess, recorder: Recorder) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        ws.protocol.send_close()  # no status code: the public API always sends one
        ws.send_data()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
    assert_disconnect_matches(
        await _disconnect_event(recorder, connection_id), "ws_disconnect_1005_no_status.json"
    )


async def test_a_dropped_tcp_connection_is_1006(gw: GatewayProcess, recorder: Recorder) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        ws.transport.abort()  # no close frame at all
    event = await _disconnect_event(recorder, connection_id)
    assert_disconnect_matches(event, "ws_disconnect_1006_dropped.json", reason_documented=False)


async def test_a_frame_over_32_kib_closes_with_1009_message_too_big(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.send("x" * (32 * 1024 + 1))
        assert await closed_by_server(ws) == 1009
    assert_disconnect_matches(
        await _disconnect_event(recorder, connection_id), "ws_disconnect_1009_too_big.json"
    )
    assert [e for e in recorder.events() if of("MESSAGE", connection_id)(e)] == []


async def test_a_message_over_128_kib_in_small_frames_closes_with_1009(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.send(["a" * (16 * 1024)] * 8 + ["b"])  # 128 KiB + 1, every frame under 32 KiB
        assert await closed_by_server(ws) == 1009
    assert_disconnect_matches(
        await _disconnect_event(recorder, connection_id), "ws_disconnect_1009_too_big.json"
    )
    assert [e for e in recorder.events() if of("MESSAGE", connection_id)(e)] == []


async def test_an_idle_connection_closes_with_1001_going_away(
    idle_gw: tuple[GatewayProcess, Recorder],
) -> None:
    gateway, idle_recorder = idle_gw
    async with opened(gateway, idle_recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        assert await closed_by_server(ws) == 1001
    assert_disconnect_matches(
        await _disconnect_event(idle_recorder, connection_id), "ws_disconnect_1001_idle.json"
    )


async def test_a_client_going_away_is_1001_with_an_empty_reason(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.close(code=1001)
    assert_disconnect_matches(
        await _disconnect_event(recorder, connection_id), "ws_disconnect_1001_client.json"
    )


async def test_a_binary_frame_closes_with_1003(gw: GatewayProcess, recorder: Recorder) -> None:
    async with opened(gw, recorder) as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.send(b"\x00\x01binary")
        # Whichever comes first: the close API Gateway sends, or the frame reaching the handler.
        closed = asyncio.ensure_future(closed_by_server(ws))
        delivered = asyncio.ensure_future(recorder.wait_for(of("MESSAGE", connection_id), "MESSAGE"))
        await asyncio.wait({closed, delivered}, return_when=asyncio.FIRST_COMPLETED)
        for task in (closed, delivered):
            task.cancel()
        assert not (delivered.done() and not delivered.cancelled()), "the binary frame reached the handler"
        assert closed.result() == 1003
    event = await _disconnect_event(recorder, connection_id)
    assert_disconnect_matches(event, "ws_disconnect_1003_binary.json", reason_documented=False)
    assert [e for e in recorder.events() if of("MESSAGE", connection_id)(e)] == []


# ---------------------------------------------------------------------------------- HTTP API v2


async def test_http_get_without_authorizer_matches_the_fixture(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    response, event = await http_event(gw, recorder, "GET", "/health")
    assert response.status_code == 200
    assert shape_differences(load("http_v2_health.json"), event) == []
    assert (event["routeKey"], event["rawPath"], event["rawQueryString"]) == ("GET /health", "/health", "")
    ctx = event["requestContext"]
    assert ctx["routeKey"] == "GET /health" and ctx["stage"] == "$default"
    assert ctx["http"] == {
        "method": "GET",
        "path": "/health",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "curl/8.5.0",
    }
    assert "authorizer" not in ctx


async def test_http_post_matches_the_fixture(gw: GatewayProcess, recorder: Recorder) -> None:
    fixture = load("http_v2_runs_anonymous.json")
    content = fixture["body"].encode()
    response, event = await http_event(
        gw, recorder, "POST", "/runs", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200  # the recording handler's answer
    assert shape_differences(fixture, event) == []
    assert event["body"] == fixture["body"] and event["isBase64Encoded"] is False
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["content-length"] == str(len(content))


async def test_http_path_parameters_match_the_fixture(gw: GatewayProcess, recorder: Recorder) -> None:
    fixture = load("http_v2_run_status_jwt.json")
    _, event = await http_event(gw, recorder, "GET", "/runs/conf-http-1")
    optional = {"requestContext.authorizer": NO_LOCAL_JWT}
    assert shape_differences(fixture, event, optional=optional) == []
    assert event["pathParameters"] == {"request_id": "conf-http-1"}
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /runs/{request_id}"


async def test_http_header_names_are_lower_case_and_ids_epochs_as_api_gateways(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    _, event = await http_event(gw, recorder, "GET", "/health", headers={"X-Selador-Mixed": "1"})
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-selador-mixed"] == "1"
    assert multi_value_problems(event) == []
    assert id_problems(event) == []
    ctx = event["requestContext"]
    assert isinstance(ctx["timeEpoch"], int) and abs(time.time() * 1000 - ctx["timeEpoch"]) < 60_000
    assert re.fullmatch(r"\d{12}", ctx["accountId"])


async def test_http_query_strings_and_cookies_as_payload_2_0_has_them(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    _, event = await http_event(
        gw, recorder, "GET", "/health?probe=1&probe=2&x=y", headers={"cookie": "a=1; b=2"}
    )
    assert event["rawQueryString"] == "probe=1&probe=2&x=y"
    assert event["queryStringParameters"] == {"probe": "1,2", "x": "y"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]


async def test_http_time_is_in_api_gateways_format(gw: GatewayProcess, recorder: Recorder) -> None:
    _, event = await http_event(gw, recorder, "GET", "/health")
    assert time_problems(event) == []


async def test_http_events_carry_api_gateways_forwarding_headers(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    _, event = await http_event(gw, recorder, "GET", "/health")
    assert forwarding_header_problems(event) == []


async def test_http_domain_name_is_the_execute_api_host(gw: GatewayProcess, recorder: Recorder) -> None:
    _, event = await http_event(gw, recorder, "GET", "/health")
    assert domain_problems(event) == []


async def test_an_unknown_path_is_404_not_found_before_the_function(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    tag = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.get(gw.endpoints.http_url + "/nope", headers={TAG: tag})
    assert (response.status_code, response.json()) == (404, {"message": "Not Found"})
    await recorder.none_for(tagged(tag))


async def test_a_known_path_with_another_method_is_404_not_found(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    tag = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.get(gw.endpoints.http_url + "/invoke", headers={TAG: tag})
    assert (response.status_code, response.json()) == (404, {"message": "Not Found"})
    await recorder.none_for(tagged(tag))


async def test_a_trailing_slash_is_another_path(gw: GatewayProcess, recorder: Recorder) -> None:
    tag = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=WAIT, follow_redirects=False) as client:
        response = await client.post(
            gw.endpoints.http_url + "/invoke/", headers={TAG: tag}, json={"question": "q"}
        )
    assert response.status_code == 404, f"{response.status_code} Location: {response.headers.get('location')}"
    assert response.json() == {"message": "Not Found"}
    await recorder.none_for(tagged(tag))


# ---------------------------------------------------------------------------------- JWT authorizer


async def test_jwt_route_without_a_valid_token_is_401_before_the_function(
    jwt_gw: tuple[GatewayProcess, Recorder],
) -> None:
    gateway, jwt_recorder = jwt_gw
    for authorization in (None, bearer()[:-6] + "AAAAAA"):
        tag = uuid.uuid4().hex
        headers = {TAG: tag} | ({"authorization": authorization} if authorization else {})
        async with httpx.AsyncClient(timeout=WAIT) as client:
            response = await client.post(
                gateway.endpoints.http_url + "/invoke", headers=headers, json={"question": "q"}
            )
        assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
        await jwt_recorder.none_for(tagged(tag))


async def test_jwt_claims_reach_the_event_like_the_fixture(jwt_gw: tuple[GatewayProcess, Recorder]) -> None:
    gateway, jwt_recorder = jwt_gw
    fixture = load("http_v2_invoke_jwt.json")
    response, event = await http_event(
        gateway,
        jwt_recorder,
        "POST",
        "/invoke",
        content=fixture["body"].encode(),
        headers={"content-type": "application/json", "authorization": bearer("conformance-user")},
    )
    assert response.status_code == 200
    assert shape_differences(fixture, event) == []
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["sub"] == "conformance-user" and claims["iss"] == JWT_ISSUER
    assert all(isinstance(v, str) for v in claims.values())
    assert (
        event["requestContext"]["authorizer"]["jwt"]["scopes"] is None
    )  # no authorizationScopes in the template


async def test_a_route_without_authorizer_has_no_authorizer_context(
    jwt_gw: tuple[GatewayProcess, Recorder],
) -> None:
    gateway, jwt_recorder = jwt_gw
    response, event = await http_event(gateway, jwt_recorder, "GET", "/health")
    assert response.status_code == 200
    assert "authorizer" not in event["requestContext"]


# ---------------------------------------------------------------------------------- Powertools


async def test_powertools_parser_models_accept_every_event_the_gateway_built(
    gw: GatewayProcess, recorder: Recorder
) -> None:
    async with opened(gw, recorder, query="a=1") as (ws, connect):
        connection_id = connect["requestContext"]["connectionId"]
        await ws.send('{"action":"ping"}')
        await ws.send("not json")
        await recorder.wait_for(of("MESSAGE", connection_id), "MESSAGE", count=2)
    await recorder.wait_for(of("DISCONNECT", connection_id), "DISCONNECT")
    await http_event(gw, recorder, "POST", "/invoke?x=1", json={"question": "q"}, headers={"cookie": "c=1"})
    events = recorder.events()  # everything this module's gateway built so far, not only the above
    assert {kind(e) for e in events} >= {"CONNECT", "MESSAGE", "DISCONNECT", "HTTP_V2"}
    for event in events:
        validate_with_powertools(event)
