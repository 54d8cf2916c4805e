"""Bad input through the local API Gateway: each answer names the problem, the connection survives.

One gateway per module (the ``gateway`` fixture) runs the real handler with the offline model. Each
WebSocket case opens its own connection, sends one bad message, expects one ``error`` frame naming
the problem (or a ``result`` where the protocol says the input is accepted) and then proves the
connection is still usable with a ``ping`` → ``pong``. Messages over API Gateway's limits close the
connection with 1009 instead, and binary frames with 1003, as API Gateway does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from selador.protocol import parse_frame

from .conftest import WAIT, GatewayProcess, collect_frames, recv_json, ws_connect

pytestmark = pytest.mark.e2e

QUESTION = "What is the FAR in LR2?"


def invoke(**fields: Any) -> str:
    """An ``invoke`` message with ``fields`` (``question`` only when given)."""
    return json.dumps({"action": "invoke", **fields})


# (case id, message as sent, expected error code, text the error must contain)
WEBSOCKET_CASES: list[tuple[str, str | bytes, str, str]] = [
    ("not-json", "this is not json", "bad_request", "message must be JSON"),
    ("json-array", "[1, 2, 3]", "unknown_action", "message must be a JSON object"),
    ("json-number", "42", "unknown_action", "message must be a JSON object"),
    ("json-string", '"invoke"', "unknown_action", "message must be a JSON object"),
    ("json-null", "null", "unknown_action", "message must be a JSON object"),
    ("action-missing", json.dumps({"question": QUESTION}), "unknown_action", "action is required"),
    (
        "action-number",
        json.dumps({"action": 7, "question": QUESTION}),
        "unknown_action",
        "action must be a string",
    ),
    ("action-unknown", json.dumps({"action": "chat"}), "unknown_action", "unknown action 'chat'"),
    ("question-missing", invoke(), "bad_request", "question: is required"),
    ("question-empty", invoke(question=""), "bad_request", "question: must not be empty"),
    ("question-whitespace", invoke(question=" \t\n "), "bad_request", "must not be empty or only whitespace"),
    ("question-too-long", invoke(question="q" * 4001), "bad_request", "question: must be at most 4000"),
    ("question-number", invoke(question=42), "bad_request", "question: must be a string, not a number"),
    (
        "question-object",
        invoke(question={"q": 1}),
        "bad_request",
        "question: must be a string, not an object",
    ),
    ("context-array", invoke(question=QUESTION, context=["x"]), "bad_request", "context: must be a string"),
    (
        "context-too-long",
        invoke(question=QUESTION, context="c" * 4001),
        "bad_request",
        "context: must be at most",
    ),
    (
        "query-type-unknown",
        invoke(question=QUESTION, query_type="weather"),
        "bad_request",
        "query_type: must be one of",
    ),
    (
        "query-type-number",
        invoke(question=QUESTION, query_type=3),
        "bad_request",
        "query_type: must be a string",
    ),
    (
        "request-id-too-long",
        invoke(question=QUESTION, request_id="r" * 65),
        "bad_request",
        "request_id: must be 1 to 64",
    ),
    (
        "request-id-control",
        invoke(question=QUESTION, request_id="a\u0007b"),
        "bad_request",
        "request_id: must contain printable",
    ),
    (
        "request-id-newline",
        invoke(question=QUESTION, request_id="a\nb"),
        "bad_request",
        "request_id: must contain printable",
    ),
    (
        "request-id-number",
        invoke(question=QUESTION, request_id=5),
        "bad_request",
        "request_id: must be a string",
    ),
    # Under the 32 KiB frame limit, far past json's recursion limit.
    ("deeply-nested-array", "[" * 15_000 + "]" * 15_000, "bad_request", "nested too deeply"),
    (
        "deeply-nested-invoke",
        '{"action": "invoke", "question": ' + "[" * 15_000 + "]" * 15_000 + "}",
        "bad_request",
        "nested too deeply",
    ),
]


async def expect_pong(ws: ClientConnection) -> None:
    """The connection still works: a ``ping`` answers ``pong`` (skipping late frames of other requests)."""
    await ws.send(json.dumps({"action": "ping", "request_id": "still-open"}))
    while True:
        frame = await recv_json(ws)
        if frame.get("type") == "pong":
            assert frame.get("request_id") == "still-open"
            return


@pytest.mark.parametrize(
    ("message", "code", "expected"),
    [pytest.param(m, c, e, id=i) for i, m, c, e in WEBSOCKET_CASES],
)
async def test_bad_message_answers_one_error_and_keeps_the_connection(
    gateway: GatewayProcess, message: str | bytes, code: str, expected: str
) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(message)
        raw = await recv_json(ws)
        text = json.dumps(raw)
        assert "Traceback" not in text
        # API Gateway's own {"message": "Internal server error"} has no type: that would be a crash.
        assert raw.get("type") == "error", raw
        frame = parse_frame(text)
        assert frame.code == code, raw
        assert expected in raw["error"], raw
        assert "seq" not in raw, "a rejected message is not a query"
        await expect_pong(ws)


async def test_request_id_is_echoed_on_a_bad_request_when_readable(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(invoke(question="", request_id="q-bad-1"))
        frame = await recv_json(ws)
        assert frame["type"] == "error" and frame["request_id"] == "q-bad-1"
        await expect_pong(ws)


async def test_unknown_extra_fields_are_ignored_and_answered(gateway: GatewayProcess) -> None:
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(
            invoke(question=QUESTION, request_id="q-extra", colour="blue", nested={"a": [1, {"b": None}]})
        )
        frames = (await collect_frames(ws, {"q-extra"}))["q-extra"]
        assert frames[-1]["type"] == "result", frames[-1]
        assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
        await expect_pong(ws)


@pytest.mark.parametrize(
    "message",
    [b"\x00\x01not json\xff", b"[1]", invoke(question=QUESTION, request_id="q-binary").encode()],
    ids=["not-json", "json-array", "valid-question"],
)
async def test_binary_frame_closes_with_1003_whatever_it_holds(
    gateway: GatewayProcess, message: bytes
) -> None:
    """API Gateway takes no binary frames on WebSocket APIs: 1003, and the handler never sees it."""
    before = gateway.stats()["messages_in"]
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    assert gateway.stats()["messages_in"] == before


async def test_message_just_under_128_kib_in_fragments_is_accepted(gateway: GatewayProcess) -> None:
    """API Gateway takes messages up to 128 KiB when sent in frames of at most 32 KiB."""
    body = invoke(question=QUESTION, request_id="q-big", padding="")
    body = body[:-2] + "p" * (128 * 1024 - len(body.encode())) + body[-2:]
    assert len(body.encode()) == 128 * 1024
    fragments = [body[i : i + 16 * 1024] for i in range(0, len(body), 16 * 1024)]
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(fragments)
        frames = (await collect_frames(ws, {"q-big"}))["q-big"]
        assert frames[-1]["type"] == "result", frames[-1]
        await expect_pong(ws)


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragmented", "one-frame"])
async def test_message_over_128_kib_closes_with_1009(gateway: GatewayProcess, fragmented: bool) -> None:
    """128 KiB + 1 byte: API Gateway closes the connection with 1009 (no error frame, no handler)."""
    body = invoke(question=QUESTION, padding="")
    body = body[:-2] + "p" * (128 * 1024 + 1 - len(body.encode())) + body[-2:]
    assert len(body.encode()) == 128 * 1024 + 1
    message: Any = [body[i : i + 16 * 1024] for i in range(0, len(body), 16 * 1024)] if fragmented else body
    async with ws_connect(gateway.endpoints.ws_url) as ws:
        await ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv_json(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


JSON = {"content-type": "application/json"}
VALID = json.dumps({"question": QUESTION})

# (case id, method, path, body, headers, expected status, text the answer must contain)
HTTP_CASES: list[tuple[str, str, str, str | None, dict[str, str], int, str]] = [
    # A method without a route is no route at all to an HTTP API: 404, as for an unknown path.
    ("get-invoke", "GET", "/invoke", None, {}, 404, '{"message":"Not Found"}'),
    ("put-invoke", "PUT", "/invoke", VALID, JSON, 404, '{"message":"Not Found"}'),
    ("post-health", "POST", "/health", VALID, JSON, 404, '{"message":"Not Found"}'),
    ("trailing-slash", "GET", "/health/", None, {}, 404, '{"message":"Not Found"}'),
    ("no-content-type", "POST", "/invoke", VALID, {}, 415, "Content-Type must be application/json"),
    ("text-plain", "POST", "/invoke", VALID, {"content-type": "text/plain"}, 415, "not text/plain"),
    (
        "form",
        "POST",
        "/invoke",
        "question=x",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "not application/x-www-form-urlencoded",
    ),
    ("empty-body", "POST", "/invoke", "", JSON, 400, "the body is empty"),
    ("not-json", "POST", "/invoke", "{nope", JSON, 400, "message must be JSON"),
    ("json-array", "POST", "/invoke", "[1]", JSON, 400, "must be a JSON object, not an array"),
    ("json-null", "POST", "/invoke", "null", JSON, 400, "must be a JSON object, not null"),
    ("question-missing", "POST", "/invoke", "{}", JSON, 400, "question: is required"),
    ("question-number", "POST", "/invoke", '{"question": 1}', JSON, 400, "question: must be a string"),
    (
        "query-type-unknown",
        "POST",
        "/invoke",
        json.dumps({"question": "q", "query_type": "x"}),
        JSON,
        400,
        "query_type: must be one of",
    ),
    ("deeply-nested", "POST", "/invoke", "[" * 15_000 + "]" * 15_000, JSON, 400, "nested too deeply"),
    ("not-utf8", "POST", "/invoke", b'{"question": "\xff"}', JSON, 400, "not valid UTF-8 JSON: byte 0xff"),
    (
        "over-128-kib-in-bytes",
        "POST",
        "/invoke",
        json.dumps({"question": "\u00e9" * 70_000}, ensure_ascii=False),
        JSON,
        413,
        "at most 131072 bytes",
    ),
    ("unknown-path", "GET", "/nowhere", None, {}, 404, "Not Found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in HTTP_CASES],
)
def test_bad_http_request_answers_a_4xx_naming_the_problem(
    gateway: GatewayProcess,
    method: str,
    path: str,
    body: str | bytes | None,
    headers: dict[str, str],
    status: int,
    expected: str,
) -> None:
    with httpx.Client(base_url=gateway.endpoints.http_url, timeout=WAIT) as http:
        response = http.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert expected in response.text
    assert "Traceback" not in response.text
    answer = response.json()
    assert answer.get("error") or answer.get("message"), answer


def test_no_invocation_failed_while_rejecting_bad_input(gateway: GatewayProcess) -> None:
    """Every rejection above was an answer, not a function error API Gateway would report."""
    stats = gateway.stats()
    assert stats["invocation_errors"] == 0, stats
    assert "Traceback" not in gateway.output
