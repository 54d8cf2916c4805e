"""The local gateway against API Gateway's behaviours, with in-process stand-in handlers.

Each test serves a :class:`Gateway` on a free loopback port in a background thread
(``serve_in_thread``) and talks to it with a real ``websockets`` client, a real boto3 client and
httpx, so the wire behaviour is what is checked, not the app's internals.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
import jwt as pyjwt
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from botocore.config import Config
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from selador.auth import authorizer_principal
from selador.local.events import request_time
from selador.local.gateway import Gateway, GatewayOptions
from selador.local.runtime import LambdaRuntime
from selador.local.serve import RunningGateway, serve_in_thread
from selador.local.template import JwtRouteAuth
from selador.settings import Settings

ROUTES = ("$connect", "$disconnect", "$default", "invoke", "ping")
HTTP_ROUTES = (("POST", "/invoke"), ("GET", "/health"))
CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")
WAIT = 10.0  # upper bound on any single wait; never an expectation about speed

Handler = Callable[[dict[str, Any], Any], Any]


MODELS = {
    "CONNECT": APIGatewayWebSocketConnectEventModel,
    "MESSAGE": APIGatewayWebSocketMessageEventModel,
    "DISCONNECT": APIGatewayWebSocketDisconnectEventModel,
}


class Recorder:
    """Collects every event the handler sees; lets tests wait for one without sleeping blindly.

    Every WebSocket event a test looks at is validated against Powertools' model for its type.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def add(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self._cond:
            found = [e for e in self.events if e.get("requestContext", {}).get("eventType") == event_type]
        for event in found:
            MODELS[event_type].model_validate(event)
        return found

    def wait_for(self, event_type: str, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT
        with self._cond:
            while len(self.of_type(event_type)) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {event_type} event within {WAIT} s: {self.events}"
                self._cond.wait(remaining)
        return self.of_type(event_type)


@contextmanager
def gateway(
    handler: Handler,
    *,
    timeout: float = 30,
    max_frame_bytes: int = 32 * 1024,
    concurrency: int = 256,
    **options: Any,
) -> Iterator[RunningGateway]:
    runtime = LambdaRuntime(
        handler, function_name="main-fn", timeout=timeout, memory_size=512, concurrency=concurrency
    )
    opts = GatewayOptions(
        stage="production",
        websocket_route_keys=options.pop("websocket_route_keys", ROUTES),
        http_routes=options.pop("http_routes", HTTP_ROUTES),
        function_name="main-fn",
        **options,
    )
    with serve_in_thread(Gateway(runtime, opts), max_frame_bytes=max_frame_bytes) as running:
        yield running
    runtime.shutdown()


def management(running: RunningGateway) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=running.endpoints.management_endpoint,
        region_name="us-west-2",
        config=Config(retries={"total_max_attempts": 1}),
    )


def ws_connect(url: str, **kwargs: Any) -> connect:
    return connect(url, proxy=None, open_timeout=WAIT, max_size=None, ping_interval=None, **kwargs)


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def closed_code(ws: ClientConnection) -> int:
    """Read until the server closes; return the close code it sent."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert info.value.rcvd is not None, "the server closed without a close frame"
    return info.value.rcvd.code


def connection_id_of(running: RunningGateway, index: int = -1) -> str:
    return running.gateway.stats()["connections"][index]["connectionId"]


# ---------------------------------------------------------------------------------- events


async def test_every_event_validates_against_powertools_models() -> None:
    recorder = Recorder()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        recorder.add(event)
        return {"statusCode": 200}

    with gateway(handler) as running:
        url = running.endpoints.ws_url + "?token=abc&tag=one&tag=two"
        headers = {"X-Custom": "yes", "x-api-key": "k1", "cache-control": "no-cache"}
        async with ws_connect(url, additional_headers=headers, user_agent_header="unit-agent/1") as ws:
            await ws.send(json.dumps({"action": "invoke", "question": "q"}))
            await ws.send("plain text")
            recorder.wait_for("MESSAGE", 2)
            await ws.close(code=1000, reason="bye")
        recorder.wait_for("DISCONNECT")

    connect_ev = recorder.of_type("CONNECT")[0]
    text_ev, plain_ev = recorder.of_type("MESSAGE")
    disconnect_ev = recorder.of_type("DISCONNECT")[0]
    APIGatewayWebSocketConnectEventModel.model_validate(connect_ev)
    APIGatewayWebSocketMessageEventModel.model_validate(text_ev)
    APIGatewayWebSocketMessageEventModel.model_validate(plain_ev)
    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect_ev)

    ctx = connect_ev["requestContext"]
    assert CONNECTION_ID.match(ctx["connectionId"])
    for event in recorder.events:
        assert event["requestContext"]["requestId"] == event["requestContext"]["extendedRequestId"]
    assert {e["requestContext"]["connectionId"] for e in recorder.events} == {ctx["connectionId"]}
    assert ctx["stage"] == "production"
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "unit-agent/1"}
    for key in ("domainName", "apiId", "requestId", "extendedRequestId", "requestTime", "requestTimeEpoch"):
        assert ctx[key], key
    assert ctx["messageDirection"] == "IN"
    # Header names as the client sent them (nothing re-cased), hop-by-hop ones dropped.
    sent = connect_ev["headers"]
    assert {"X-Custom": "yes", "x-api-key": "k1", "cache-control": "no-cache"}.items() <= sent.items()
    assert {"Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "User-Agent"} <= sent.keys()
    assert not {k.lower() for k in sent} & {"connection", "upgrade"}
    assert connect_ev["multiValueHeaders"]["x-api-key"] == ["k1"]
    assert set(connect_ev["multiValueHeaders"]) == set(sent)
    assert sent["X-Forwarded-For"] == "127.0.0.1"
    assert connect_ev["queryStringParameters"] == {"token": "abc", "tag": "two"}
    assert connect_ev["multiValueQueryStringParameters"]["tag"] == ["one", "two"]

    assert text_ev["requestContext"]["routeKey"] == "invoke"
    assert text_ev["isBase64Encoded"] is False
    assert json.loads(text_ev["body"])["question"] == "q"
    assert text_ev["requestContext"]["messageId"] != plain_ev["requestContext"]["messageId"]
    assert text_ev["requestContext"]["connectedAt"] == ctx["connectedAt"]
    assert "headers" not in text_ev

    assert plain_ev["isBase64Encoded"] is False
    assert plain_ev["body"] == "plain text"
    assert plain_ev["requestContext"]["routeKey"] == "$default"

    assert disconnect_ev["requestContext"]["disconnectStatusCode"] == 1000
    assert disconnect_ev["requestContext"]["disconnectReason"] == "Connection Closed Normally"


async def test_connect_header_names_are_passed_as_received_and_hop_by_hop_ones_dropped() -> None:
    """A handshake written by hand: lower-case and odd-case names reach $connect unchanged."""
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        endpoints = running.endpoints
        reader, writer = await asyncio.open_connection(endpoints.host, endpoints.port)
        request = [
            f"GET /{endpoints.stage} HTTP/1.1",
            f"host: {endpoints.host}:{endpoints.port}",
            "upgrade: websocket",
            "connection: Upgrade",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version: 13",
            "Keep-Alive: timeout=5",
            "Proxy-Authorization: Basic eDp5",
            "TE: trailers",
            "X-MiXeD-Case: kept",
            "x-forwarded-for: 203.0.113.9",
            "",
            "",
        ]
        writer.write("\r\n".join(request).encode())
        await writer.drain()
        status_line = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).split(b"\r\n")[0]
        (event,) = recorder.wait_for("CONNECT")
        # The ASGI scope itself keeps lower-case names, as ASGI requires (Starlette's lookups).
        conn = running.gateway.connections[event["requestContext"]["connectionId"]]
        assert all(name == name.lower() for name, _ in conn.websocket.scope["headers"])
        assert conn.websocket.headers["x-mixed-case"] == "kept"
        writer.close()
    assert status_line == b"HTTP/1.1 101 Switching Protocols"
    headers = event["headers"]
    assert headers["host"] == f"{endpoints.host}:{endpoints.port}"
    assert headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert headers["X-MiXeD-Case"] == "kept"
    # What the client sent wins over what API Gateway would add; the rest is added.
    assert headers["x-forwarded-for"] == "203.0.113.9" and "X-Forwarded-For" not in headers
    assert (headers["X-Forwarded-Port"], headers["X-Forwarded-Proto"]) == (str(endpoints.port), "http")
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["X-Amzn-Trace-Id"])
    lowered = {name.lower() for name in headers}
    assert not lowered & {"upgrade", "connection", "keep-alive", "proxy-authorization", "te"}
    assert event["multiValueHeaders"]["X-MiXeD-Case"] == ["kept"]


async def test_close_without_status_reports_1005_as_api_gateway_words_it() -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            # A close frame with no status code: the public API always sends one, so go one level down.
            ws.protocol.send_close()
            ws.send_data()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
        (event,) = recorder.wait_for("DISCONNECT")
    assert event["requestContext"]["disconnectStatusCode"] == 1005
    assert event["requestContext"]["disconnectReason"] == "Client-side close frame status not set"


async def test_binary_frame_closes_with_1003_and_reaches_no_route() -> None:
    """API Gateway takes no binary frames on WebSocket APIs: it disconnects the client with 1003."""
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send(b'{"action": "ping"}')  # JSON, but in a binary frame
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), WAIT)
        (event,) = recorder.wait_for("DISCONNECT")
        counters = running.gateway.counters
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1003, "Unsupported data")
    context = event["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1003, "Unsupported data")
    assert recorder.of_type("MESSAGE") == []
    assert counters["binary_frames_1003"] == 1 and counters["messages_in"] == 0


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (1001, "", ""),  # a browser leaving the page: API Gateway reports no reason
        (1001, "tab closed", "tab closed"),
        (4000, "custom", "custom"),
    ],
)
async def test_client_close_codes_keep_the_clients_reason(code: int, reason: str, expected: str) -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.close(code=code, reason=reason)
        (event,) = recorder.wait_for("DISCONNECT")
    context = event["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (code, expected)


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "ping"}', "ping"),
        ('{"action": "invoke", "question": "x"}', "invoke"),
        ('{"action": "chat"}', "$default"),
        ('{"action": 3}', "$default"),
        ('{"question": "no action"}', "$default"),
        ("not json {", "$default"),
        ('["action", "invoke"]', "$default"),
        ('{"action": "$connect"}', "$default"),
    ],
)
async def test_route_selection_follows_request_body_action(body: str, route: str) -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send(body)
            (event,) = recorder.wait_for("MESSAGE")
    assert event["requestContext"]["routeKey"] == route
    assert event["body"] == body


@pytest.mark.parametrize("path", ["", "/", "/staging", "/production/", "/production/x"])
async def test_websocket_answers_on_the_stage_only(path: str) -> None:
    """As in AWS, the stage is part of the URL: without it (or with another) the handshake is 403."""
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        base = running.endpoints.ws_url.rsplit("/", 1)[0]
        with pytest.raises(InvalidStatus) as info:
            async with ws_connect(base + path):
                pass
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send('{"action": "ping"}')
            recorder.wait_for("MESSAGE")
    assert info.value.response.status_code == 403
    assert len(recorder.of_type("CONNECT")) == 1  # the refused handshake ran no $connect


# ---------------------------------------------------------------------------------- $connect


async def test_non_2xx_from_connect_rejects_the_handshake_with_that_status() -> None:
    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        token = (event.get("queryStringParameters") or {}).get("token")
        return {"statusCode": 200} if token == "good" else {"statusCode": 401, "body": "no token"}

    with gateway(handler) as running:
        with pytest.raises(InvalidStatus) as info:
            async with ws_connect(running.endpoints.ws_url):
                pass
        assert info.value.response.status_code == 401
        async with ws_connect(running.endpoints.ws_url + "?token=good") as ws:
            await ws.send('{"action": "ping"}')
        assert running.gateway.counters["connections_rejected"] == 1


async def test_connect_exception_is_a_502() -> None:
    def handler(event: dict[str, Any], _context: Any) -> None:
        if event["requestContext"]["eventType"] == "CONNECT":
            raise RuntimeError("boom")

    with gateway(handler) as running, pytest.raises(InvalidStatus) as info:
        async with ws_connect(running.endpoints.ws_url):
            pass
    assert info.value.response.status_code == 502


async def test_connect_can_accept_a_subprotocol() -> None:
    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        if event["requestContext"]["eventType"] == "CONNECT":
            return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "selador.v1"}}
        return {"statusCode": 200}

    with gateway(handler) as running:
        async with ws_connect(running.endpoints.ws_url, subprotocols=["selador.v1"]) as ws:
            assert ws.subprotocol == "selador.v1"


async def test_posting_from_connect_itself_is_gone() -> None:
    outcomes: list[str] = []
    holder: dict[str, Any] = {}

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        ctx = event["requestContext"]
        if ctx["eventType"] == "CONNECT":
            client = holder["client"]
            try:
                client.post_to_connection(ConnectionId=ctx["connectionId"], Data=b"too early")
                outcomes.append("delivered")
            except client.exceptions.GoneException:
                outcomes.append("gone")
        return {"statusCode": 200}

    with gateway(handler) as running:
        holder["client"] = management(running)
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send('{"action": "ping"}')
    assert outcomes == ["gone"]


# ---------------------------------------------------------------------------------- gateway frames


async def test_handler_exception_sends_internal_server_error_frame() -> None:
    recorder = Recorder()

    def handler(event: dict[str, Any], _context: Any) -> None:
        recorder.add(event)
        if event["requestContext"]["eventType"] == "MESSAGE":
            raise ValueError("bad")

    with gateway(handler) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send('{"action": "invoke"}')
            frame = await recv_json(ws)
            assert running.gateway.connections[frame["connectionId"]].state == "open"
    (event,) = recorder.of_type("MESSAGE")
    assert frame == {
        "message": "Internal server error",
        "connectionId": event["requestContext"]["connectionId"],
        "requestId": event["requestContext"]["requestId"],
    }


async def test_function_timeout_is_an_internal_server_error() -> None:
    release = threading.Event()

    def handler(event: dict[str, Any], _context: Any) -> None:
        if event["requestContext"]["eventType"] == "MESSAGE":
            release.wait(WAIT)

    with gateway(handler, timeout=0.2) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send('{"action": "invoke"}')
            frame = await recv_json(ws)
            release.set()
    assert frame["message"] == "Internal server error"


async def test_route_missing_without_default_answers_forbidden() -> None:
    recorder = Recorder()
    keys = ("$connect", "$disconnect", "invoke")
    with gateway(lambda e, c: recorder.add(e), websocket_route_keys=keys) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send('{"action": "chat"}')
            frame = await recv_json(ws)
    assert frame["message"] == "Forbidden"
    assert CONNECTION_ID.match(frame["connectionId"])
    assert recorder.of_type("MESSAGE") == []


async def test_integration_timeout_frame_then_the_run_keeps_posting() -> None:
    holder: dict[str, Any] = {}
    release = threading.Event()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        ctx = event["requestContext"]
        if ctx["eventType"] == "MESSAGE":
            if json.loads(event["body"])["action"] == "ping":
                raise RuntimeError("fails at once: API Gateway reports it")
            release.wait(WAIT)
            holder["client"].post_to_connection(ConnectionId=ctx["connectionId"], Data=b'{"type":"late"}')
            raise RuntimeError("fails after API Gateway gave up: nothing more reaches the client")
        return {"statusCode": 200}

    with gateway(handler, integration_timeout=0.2) as running:
        holder["client"] = management(running)
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send('{"action": "invoke"}')
            first = await recv_json(ws)
            release.set()
            second = await recv_json(ws)
            await ws.send('{"action": "ping"}')
            third = await recv_json(ws)
    assert first["message"] == "Endpoint request timed out"
    assert second == {"type": "late"}
    # The next frame is the ping's error, not an error for the timed-out invoke.
    assert third["message"] == "Internal server error"
    assert third["requestId"] != first["requestId"]
    assert running.gateway.counters["integration_timeouts"] == 1


# ---------------------------------------------------------------------------------- @connections


async def test_management_api_post_get_delete_and_gone() -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        client = management(running)
        async with ws_connect(running.endpoints.ws_url, user_agent_header="mgmt-test") as ws:
            connection_id = connection_id_of(running)
            client.post_to_connection(ConnectionId=connection_id, Data=b'{"n": 1}')
            assert await recv_json(ws) == {"n": 1}

            info = client.get_connection(ConnectionId=connection_id)
            assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "mgmt-test"}
            assert info["ConnectedAt"].timestamp() == pytest.approx(
                recorder.of_type("CONNECT")[0]["requestContext"]["connectedAt"] / 1000, abs=0.002
            )
            assert info["LastActiveAt"] >= info["ConnectedAt"]

            client.delete_connection(ConnectionId=connection_id)
            assert await closed_code(ws) == 1000
        (disconnect,) = recorder.wait_for("DISCONNECT")
        assert disconnect["requestContext"]["disconnectStatusCode"] == 1000

        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"late")
        with pytest.raises(client.exceptions.GoneException):
            client.get_connection(ConnectionId=connection_id)
        with pytest.raises(client.exceptions.GoneException):
            client.delete_connection(ConnectionId=connection_id)
        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId="NeverExisted0A=", Data=b"x")
        stats = running.gateway.stats()
    assert stats["posts_after_gone"] == 1
    assert stats["gone_410"] == 4
    (summary,) = stats["connections"]
    assert summary["postsAfterClose"] == 1
    assert summary["framesDelivered"] == 1


async def test_gone_carries_no_message_as_the_service_model_has_none() -> None:
    with gateway(lambda e, c: None) as running:
        client = management(running)
        with pytest.raises(client.exceptions.GoneException) as gone:
            client.post_to_connection(ConnectionId="NeverExisted0A=", Data=b"x")
        async with httpx.AsyncClient(base_url=running.endpoints.management_endpoint, timeout=WAIT) as http:
            raw = await http.post("/@connections/NeverExisted0A%3D", content=b"x")
    assert gone.value.response["Error"]["Code"] == "GoneException"
    assert gone.value.response["Error"]["Message"] == ""
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert raw.status_code == 410
    assert raw.headers["x-amzn-ErrorType"] == "GoneException"
    assert raw.json() == {}


async def test_post_over_128_kib_is_payload_too_large_and_exactly_128_kib_is_delivered() -> None:
    with gateway(lambda e, c: None) as running:
        client = management(running)
        async with ws_connect(running.endpoints.ws_url) as ws:
            connection_id = connection_id_of(running)
            with pytest.raises(client.exceptions.PayloadTooLargeException):
                client.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))
            client.post_to_connection(ConnectionId=connection_id, Data=b"y" * (128 * 1024))
            assert await asyncio.wait_for(ws.recv(), WAIT) == "y" * (128 * 1024)


async def test_post_with_wrong_stage_is_forbidden() -> None:
    with gateway(lambda e, c: None) as running:
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=running.endpoints.base + "/staging",
            region_name="us-west-2",
        )
        async with ws_connect(running.endpoints.ws_url):
            with pytest.raises(client.exceptions.ForbiddenException):
                client.post_to_connection(ConnectionId=connection_id_of(running), Data=b"x")


async def test_injected_429_is_limit_exceeded_and_not_delivered() -> None:
    with gateway(lambda e, c: None, inject_429=1.0) as running:
        client = management(running)
        async with ws_connect(running.endpoints.ws_url):
            with pytest.raises(client.exceptions.LimitExceededException):
                client.post_to_connection(ConnectionId=connection_id_of(running), Data=b"x")
        stats = running.gateway.stats()
    assert stats["injected_429"] == 1
    assert stats["connections"][0]["framesDelivered"] == 0


async def test_full_client_buffer_is_limit_exceeded() -> None:
    with gateway(lambda e, c: None, client_buffer_bytes=64) as running:
        client = management(running)
        async with ws_connect(running.endpoints.ws_url):
            with pytest.raises(client.exceptions.LimitExceededException):
                client.post_to_connection(ConnectionId=connection_id_of(running), Data=b"z" * 65)
        assert running.gateway.counters["buffer_full_429"] == 1


async def test_binary_post_is_delivered_as_binary_and_text_as_text() -> None:
    with gateway(lambda e, c: None) as running:
        client = management(running)
        async with ws_connect(running.endpoints.ws_url) as ws:
            connection_id = connection_id_of(running)
            client.post_to_connection(ConnectionId=connection_id, Data="héllo".encode())
            client.post_to_connection(ConnectionId=connection_id, Data=b"\xff\xfe")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "héllo"
            assert await asyncio.wait_for(ws.recv(), WAIT) == b"\xff\xfe"


# ---------------------------------------------------------------------------------- limits


async def test_message_over_128_kib_in_small_frames_closes_with_1009() -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            chunk = "a" * (16 * 1024)
            await ws.send([chunk] * 8 + ["b"])  # 128 KiB + 1 in frames under the 32 KiB limit
            assert await closed_code(ws) == 1009
        (event,) = recorder.wait_for("DISCONNECT")
    assert event["requestContext"]["disconnectStatusCode"] == 1009
    assert event["requestContext"]["disconnectReason"] == "Message too big"
    assert recorder.of_type("MESSAGE") == []


async def test_message_of_128_kib_in_frames_is_accepted() -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send(["a" * (32 * 1024)] * 4)
            (event,) = recorder.wait_for("MESSAGE")
    assert len(event["body"]) == 128 * 1024


async def test_frame_over_32_kib_closes_with_1009_and_32_kib_passes() -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send("c" * (32 * 1024))
            recorder.wait_for("MESSAGE")
            await ws.send("c" * (32 * 1024 + 1))
            assert await closed_code(ws) == 1009
        (event,) = recorder.wait_for("DISCONNECT")
    assert event["requestContext"]["disconnectReason"] == "Message too big"


async def test_idle_connection_closes_with_1001_and_protocol_pings_do_not_count() -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e), idle_timeout=0.5) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:

            async def keep_pinging() -> None:
                while True:
                    await ws.ping()
                    await asyncio.sleep(0.1)

            pinger = asyncio.create_task(keep_pinging())
            try:
                assert await closed_code(ws) == 1001
            finally:
                pinger.cancel()
        (event,) = recorder.wait_for("DISCONNECT")
    assert event["requestContext"]["disconnectStatusCode"] == 1001
    assert event["requestContext"]["disconnectReason"] == "Going away"


async def test_connection_older_than_the_maximum_closes_with_1001_despite_messages() -> None:
    with gateway(lambda e, c: None, max_connection_duration=0.6) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(int(WAIT / 0.05)):
                    await ws.send('{"action": "ping"}')  # activity does not extend the 2-hour cap
                    await asyncio.sleep(0.05)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001


# ---------------------------------------------------------------------------------- concurrency


async def test_concurrent_invocations_do_not_block_each_other_or_the_loop() -> None:
    count = 24
    barrier = threading.Barrier(count + 1, timeout=WAIT)

    def handler(event: dict[str, Any], _context: Any) -> None:
        if event["requestContext"]["eventType"] == "MESSAGE":
            barrier.wait()  # breaks (and the test fails) unless all run at once

    with gateway(handler) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            for _ in range(count):
                await ws.send('{"action": "invoke"}')
            async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
                deadline = time.monotonic() + WAIT
                while (await http.get("/_selador/stats")).json()["invocations_running"] < count:
                    assert time.monotonic() < deadline, "invocations did not all start"
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(barrier.wait)
    assert running.gateway.runtime.errors == 0


# ---------------------------------------------------------------------------------- HTTP API


async def test_http_routes_are_payload_v2_events_and_responses() -> None:
    recorder = Recorder()

    def handler(event: dict[str, Any], _context: Any) -> Any:
        recorder.add(event)
        if event["rawPath"] == "/health":
            return {"ok": True}
        return {
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-extra": "1"},
            "cookies": ["a=1"],
            "body": json.dumps({"echo": json.loads(event["body"])}),
        }

    with gateway(handler) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            created = await http.post("/invoke?x=1&x=2", json={"question": "q"}, headers={"X-Trace": "t"})
            health = await http.get("/health")
            missing = await http.get("/nope")
            binary = await http.post("/invoke", content=b"\xff\x00")
    assert created.status_code == 201
    assert created.json() == {"echo": {"question": "q"}}
    assert created.headers["x-extra"] == "1"
    assert created.headers["set-cookie"] == "a=1"
    assert health.status_code == 200
    assert health.json() == {"ok": True}
    assert missing.status_code == 404
    assert missing.json() == {"message": "Not Found"}

    post_event = recorder.events[0]
    assert post_event["version"] == "2.0"
    assert post_event["routeKey"] == "POST /invoke"
    assert post_event["rawPath"] == "/invoke"
    assert post_event["rawQueryString"] == "x=1&x=2"
    assert post_event["queryStringParameters"] == {"x": "1,2"}
    assert post_event["headers"]["x-trace"] == "t"
    assert post_event["requestContext"]["http"]["method"] == "POST"
    assert post_event["isBase64Encoded"] is False
    assert recorder.events[1]["routeKey"] == "GET /health"
    binary_event = recorder.events[2]
    assert binary_event["isBase64Encoded"] is True
    assert base64.b64decode(binary_event["body"]) == b"\xff\x00"
    assert binary.status_code == 500  # the stand-in cannot json-decode it: API Gateway's 500


async def test_http_events_carry_api_gateways_context_and_forwarded_headers() -> None:
    recorder = Recorder()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        recorder.add(event)
        return {"ok": True}

    hop_by_hop = {"Keep-Alive": "timeout=5", "TE": "trailers", "Proxy-Authorization": "Basic eDp5"}
    with gateway(handler) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            await http.get("/health", headers={"X-Custom": "1", **hop_by_hop})
            await http.get("/health", headers={"X-Forwarded-For": "203.0.113.5"})
        port = running.endpoints.port
    first, second = recorder.events
    context = first["requestContext"]
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
    assert context["time"] == request_time(context["timeEpoch"])
    assert abs(context["timeEpoch"] - time.time() * 1000) < 60_000
    assert context["domainName"] == "sel4d0rhttp.execute-api.us-west-2.amazonaws.com"
    assert context["domainPrefix"] == "sel4d0rhttp"
    assert CONNECTION_ID.fullmatch(context["requestId"])
    headers = first["headers"]
    assert headers["host"] == f"127.0.0.1:{port}"
    assert headers["x-custom"] == "1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert (headers["x-forwarded-port"], headers["x-forwarded-proto"]) == (str(port), "http")
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["x-amzn-trace-id"])
    assert not {"keep-alive", "te", "proxy-authorization", "connection"} & headers.keys()
    assert second["headers"]["x-forwarded-for"] == "203.0.113.5"  # the client's own is kept
    assert first["headers"]["x-amzn-trace-id"] != second["headers"]["x-amzn-trace-id"]


async def test_http_api_answers_404_for_no_route_whatever_the_reason() -> None:
    """A wrong method, a trailing slash, an unknown path, HEAD on a GET route: HTTP API's 404."""
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            answers = {
                "GET /invoke": await http.get("/invoke"),
                "PUT /health": await http.put("/health"),
                "GET /health/": await http.get("/health/"),
                "POST /invoke/": await http.post("/invoke/", json={}),
                "GET /nope": await http.get("/nope"),
                "HEAD /health": await http.head("/health"),
            }
        # The WebSocket stage still answers on the same port.
        async with ws_connect(running.endpoints.ws_url) as ws:
            await ws.send('{"action": "ping"}')
            recorder.wait_for("MESSAGE")
    for request, answer in answers.items():
        assert answer.status_code == 404, request
        assert answer.headers.get("location") is None, request  # no redirect
        if not request.startswith("HEAD"):
            assert answer.json() == {"message": "Not Found"}, request
    assert [e for e in recorder.events if "version" in e] == []  # the function never ran


async def test_http_api_any_greedy_head_and_default_routes() -> None:
    recorder = Recorder()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        recorder.add(event)
        return {"statusCode": 200, "body": event["routeKey"]}

    routes = (("GET", "/health"), ("HEAD", "/health"), ("ANY", "/any"), ("GET", "/files/{proxy+}"))
    with gateway(handler, http_routes=(*routes, ("ANY", "$default"))) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            head = await http.head("/health")
            any_delete = await http.delete("/any")
            greedy = await http.get("/files/a/b.txt")
            fallback = await http.post("/elsewhere/x")
            wrong_method = await http.post("/health")
    assert head.status_code == 200
    assert recorder.events[0]["routeKey"] == "HEAD /health"
    assert any_delete.text == "ANY /any"
    assert recorder.events[1]["requestContext"]["http"]["method"] == "DELETE"
    assert greedy.text == "GET /files/{proxy+}"
    assert recorder.events[2]["pathParameters"] == {"proxy": "a/b.txt"}
    assert fallback.text == "$default" and "pathParameters" not in recorder.events[3]
    assert recorder.events[3]["rawPath"] == "/elsewhere/x"
    assert wrong_method.text == "$default"  # no POST /health: $default catches it


JWT_SECRET = "gateway-test-secret-0123456789abcdef-0123456789"
JWT_ISSUER = "https://issuer.selador.test/pool"
JWT_AUDIENCE = "selador-client"


def jwt_for(secret: str = JWT_SECRET, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "alice", "iat": now, "exp": now + 300, "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, **claims}
    return pyjwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


@contextmanager
def secured(handler: Handler, **options: Any) -> Iterator[RunningGateway]:
    """A gateway whose POST /invoke is behind the template's JWT authorizer, with AUTH_MODE=jwt."""
    settings = Settings(
        auth_mode="jwt", auth_hs256_secret=JWT_SECRET, auth_issuer=JWT_ISSUER, auth_audience=JWT_AUDIENCE
    )
    routes = {("POST", "/invoke"): JwtRouteAuth("OidcJwt"), **options.pop("http_jwt_routes", {})}
    with gateway(handler, http_jwt_routes=routes, auth_settings=settings, **options) as running:
        yield running


async def test_jwt_authorizer_refuses_before_the_function_runs() -> None:
    recorder = Recorder()
    with secured(lambda e, c: recorder.add(e)) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            missing = await http.post("/invoke", json={})
            garbage = await http.post("/invoke", json={}, headers={"Authorization": "Bearer not.a.jwt"})
            audience = await http.post(
                "/invoke", json={}, headers={"Authorization": f"Bearer {jwt_for(aud='someone-else')}"}
            )
            expired = await http.post("/invoke", json={}, headers={"authorization": jwt_for(exp=1)})
            forged = await http.post(
                "/invoke", json={}, headers={"Authorization": f"Bearer {jwt_for(secret='w' * 48)}"}
            )
            health = await http.get("/health")  # the template leaves it open
    for refused in (missing, garbage, audience, expired, forged):
        assert refused.status_code == 401
        assert refused.json() == {"message": "Unauthorized"}
    assert missing.headers["www-authenticate"] == "Bearer"
    assert audience.headers["www-authenticate"] == (
        'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"'
    )
    assert expired.headers["www-authenticate"].startswith('Bearer scope="" error="invalid_token" ')
    assert health.status_code == 200
    assert [e["routeKey"] for e in recorder.events] == ["GET /health"]  # /invoke never ran
    assert "authorizer" not in recorder.events[0]["requestContext"]


async def test_jwt_authorizer_passes_claims_and_scopes_as_the_v2_format_does() -> None:
    recorder = Recorder()
    with secured(lambda e, c: recorder.add(e) or {"ok": True}) as running:
        token = jwt_for(groups=["admin", "ops"], email_verified=True, scope="read write")
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            with_bearer = await http.post("/invoke", json={}, headers={"Authorization": f"Bearer {token}"})
            bare = await http.post("/invoke", json={}, headers={"Authorization": jwt_for(sub="bob")})
    assert with_bearer.status_code == bare.status_code == 200
    first, second = (e["requestContext"]["authorizer"]["jwt"] for e in recorder.events)
    claims = first["claims"]
    assert claims["sub"] == "alice" and claims["iss"] == JWT_ISSUER
    # Every claim is a string, arrays as "[a b]", as the HTTP API hands them over.
    assert claims["groups"] == "[admin ops]"
    assert claims["email_verified"] == "true"
    assert claims["exp"].isdigit()
    assert first["scopes"] == ["read", "write"]
    assert second["claims"]["sub"] == "bob"  # "The identitySource can include only the token"
    assert second["scopes"] is None
    # The handler reads the principal from there as it does in AWS.
    assert authorizer_principal(recorder.events[0]) == "alice"


async def test_jwt_authorizer_route_scopes_need_one_in_the_token() -> None:
    scoped = {("GET", "/health"): JwtRouteAuth("OidcJwt", scopes=("selador/admin", "selador/ops"))}
    with secured(lambda e, c: {"ok": True}, http_jwt_routes=scoped) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            none = await http.get("/health", headers={"Authorization": f"Bearer {jwt_for()}"})
            other = await http.get("/health", headers={"Authorization": f"Bearer {jwt_for(scope='read')}"})
            one = await http.get(
                "/health", headers={"Authorization": f"Bearer {jwt_for(scp=['selador/ops'])}"}
            )
    assert (none.status_code, other.status_code, one.status_code) == (403, 403, 200)
    assert none.json() == {"message": "Forbidden"}


async def test_jwt_authorizer_is_off_when_authentication_is_off() -> None:
    recorder = Recorder()
    routes = {("POST", "/invoke"): JwtRouteAuth("OidcJwt")}
    with gateway(lambda e, c: recorder.add(e) or {"ok": True}, http_jwt_routes=routes) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            answer = await http.post("/invoke", json={})
    assert answer.status_code == 200
    assert "authorizer" not in recorder.events[0]["requestContext"]


async def test_http_handler_exception_is_internal_server_error() -> None:
    def handler(_event: dict[str, Any], _context: Any) -> None:
        raise RuntimeError("boom")

    with gateway(handler) as running:
        async with httpx.AsyncClient(base_url=running.endpoints.base, timeout=WAIT) as http:
            response = await http.get("/health")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


# ---------------------------------------------------------------------------------- Lambda API


def lambda_client(running: RunningGateway) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=running.endpoints.lambda_endpoint,
        region_name="us-west-2",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_lambda_request_response_and_function_error() -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("fail"):
            raise KeyError("missing")
        return {"got": event, "function": context.function_name}

    with gateway(handler) as running:
        client = lambda_client(running)
        ok = client.invoke(FunctionName="main-fn", Payload=json.dumps({"a": 1}))
        failed = client.invoke(
            FunctionName="arn:aws:lambda:us-west-2:123456789012:function:main-fn", Payload=b'{"fail": true}'
        )
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="other-fn", Payload=b"{}")
    assert ok["StatusCode"] == 200
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read()) == {"got": {"a": 1}, "function": "main-fn"}
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "KeyError"


def test_lambda_event_invocation_is_accepted_runs_later_and_retries_on_error() -> None:
    calls: list[dict[str, Any]] = []
    done = threading.Event()

    def handler(event: dict[str, Any], _context: Any) -> None:
        calls.append(event)
        if len(calls) == 3:
            done.set()
        raise RuntimeError("always fails")

    with gateway(handler, async_retries=2, async_retry_delay=0.01) as running:
        response = lambda_client(running).invoke(
            FunctionName="main-fn", InvocationType="Event", Payload=b'{"job": 7}'
        )
        assert response["StatusCode"] == 202
        assert done.wait(WAIT)
        assert running.gateway.counters["async_retries"] == 2
    assert calls == [{"job": 7}] * 3


def test_lambda_event_invocations_can_be_delivered_twice_and_dry_run_runs_nothing() -> None:
    calls: list[dict[str, Any]] = []
    twice = threading.Event()

    def handler(event: dict[str, Any], _context: Any) -> None:
        calls.append(event)
        if len(calls) == 2:
            twice.set()

    with gateway(handler, async_duplicate_rate=1.0) as running:
        client = lambda_client(running)
        assert (
            client.invoke(FunctionName="main-fn", InvocationType="DryRun", Payload=b"{}")["StatusCode"] == 204
        )
        client.invoke(FunctionName="main-fn", InvocationType="Event", Payload=b'{"job": 1}')
        assert twice.wait(WAIT)
    assert calls == [{"job": 1}, {"job": 1}]


def test_lambda_event_invocation_without_retries_runs_once() -> None:
    calls: list[int] = []

    def handler(_event: dict[str, Any], _context: Any) -> None:
        calls.append(1)
        raise RuntimeError("fails")

    with gateway(handler, async_retries=0) as running:
        lambda_client(running).invoke(FunctionName="main-fn", InvocationType="Event", Payload=b"{}")
        deadline = time.monotonic() + WAIT
        while running.gateway.runtime.total < 1 or running.gateway.runtime.running:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert running.gateway.counters["async_retries"] == 0
    assert calls == [1]


def test_a_failed_event_invocation_comes_back_as_an_sqs_on_failure_record() -> None:
    calls: list[dict[str, Any]] = []
    done = threading.Event()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        calls.append(event)
        if "Records" in event:
            done.set()
            return {"batchItemFailures": []}
        raise RuntimeError("the job broke")

    with gateway(handler, async_retries=1, async_retry_delay=0.01, async_on_failure=True) as running:
        lambda_client(running).invoke(FunctionName="main-fn", InvocationType="Event", Payload=b'{"job": 3}')
        assert done.wait(WAIT)
        assert running.gateway.counters["async_failures"] == 1
    assert calls[:2] == [{"job": 3}, {"job": 3}]
    (record,) = calls[2]["Records"]
    assert record["eventSource"] == "aws:sqs"
    destination = json.loads(record["body"])
    assert destination["requestPayload"] == {"job": 3}
    assert destination["requestContext"]["condition"] == "RetriesExhausted"
    assert destination["requestContext"]["approximateInvokeCount"] == 2
    assert destination["requestContext"]["functionArn"].endswith(":function:main-fn:$LATEST")
    assert destination["responsePayload"] == {"errorMessage": "the job broke", "errorType": "RuntimeError"}


def test_without_an_on_failure_destination_a_failed_event_invocation_is_only_counted() -> None:
    calls: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], _context: Any) -> None:
        calls.append(event)
        raise RuntimeError("fails")

    with gateway(handler, async_retries=0) as running:
        lambda_client(running).invoke(FunctionName="main-fn", InvocationType="Event", Payload=b"{}")
        deadline = time.monotonic() + WAIT
        while running.gateway.counters["async_failures"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        while running.gateway.runtime.running:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert calls == [{}]


async def test_dropped_disconnect_is_never_invoked(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    caplog.set_level(logging.INFO, logger="selador.gateway")
    with gateway(lambda e, c: recorder.add(e), disconnect_drop_rate=1.0) as running:
        async with ws_connect(running.endpoints.ws_url):
            pass
        deadline = time.monotonic() + WAIT
        while "dropped (--drop-disconnect)" not in caplog.text:
            assert time.monotonic() < deadline, "the close was never handled"
            await asyncio.sleep(0.02)
    assert recorder.of_type("DISCONNECT") == []
    assert len(recorder.of_type("CONNECT")) == 1


# ---------------------------------------------------------------------------------- shutdown


async def test_close_all_closes_with_1001_and_runs_disconnect() -> None:
    recorder = Recorder()
    with gateway(lambda e, c: recorder.add(e)) as running:
        async with ws_connect(running.endpoints.ws_url) as ws:
            loop = running.server.servers[0].get_loop()
            future = asyncio.run_coroutine_threadsafe(running.gateway.close_all(), loop)
            assert await closed_code(ws) == 1001
            await asyncio.wrap_future(future)
        (event,) = recorder.wait_for("DISCONNECT")
    assert event["requestContext"]["disconnectStatusCode"] == 1001


def test_ids_stay_distinct_when_the_global_generator_is_seeded() -> None:
    # Hypothesis seeds ``random`` per example; connection ids drawn from it would repeat and two
    # connections would share per-connection state.
    import random

    from selador.local.events import new_connection_id, new_message_id

    ids = []
    for _ in range(3):
        random.seed(1234)
        ids += [new_connection_id(), new_message_id()]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{15}=", i) for i in ids)
