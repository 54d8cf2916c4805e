"""lambda_handler with WebSocket events shaped like API Gateway's, AWS under moto."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from selador.deps import Dependencies, use_dependencies
from selador.handler import lambda_handler
from selador.local.events import connect_event, disconnect_event, message_event, new_connection_id
from selador.protocol import QUERY_TYPES, parse_frame
from selador.settings import get_settings
from selador.websocket.management import ManagementApi


def invoke_body(**fields) -> str:
    body = {"action": "invoke", "question": "What is the maximum height and FAR in the LR2 zone?"}
    body.update(fields)
    return json.dumps(body)


def test_connect_records_the_connection_with_headers_and_query(aws, context) -> None:
    event = connect_event(query={"lang": "en"}, headers={"Origin": "https://app.selador.example"})
    response = lambda_handler(event, context)

    assert response["statusCode"] == 200
    record = aws.store.get_connection(event["requestContext"]["connectionId"])
    assert record is not None
    assert record.source_ip == "127.0.0.1"
    assert record.stage == "production"
    assert record.api_id == event["requestContext"]["apiId"]


def test_disconnect_removes_the_record(aws, context) -> None:
    conn = new_connection_id()
    lambda_handler(connect_event(connection_id=conn), context)
    response = lambda_handler(
        disconnect_event(connection_id=conn, status_code=1001, reason="Going away"), context
    )
    assert response["statusCode"] == 200
    assert aws.store.get_connection(conn) is None


def test_invoke_streams_the_exact_frame_sequence(aws, context) -> None:
    conn = new_connection_id()
    lambda_handler(connect_event(connection_id=conn), context)
    response = lambda_handler(
        message_event(invoke_body(query_type="zoning", request_id="q-17"), connection_id=conn), context
    )
    assert response["statusCode"] == 200

    frames = aws.frames(conn)
    for frame in frames:
        parse_frame(json.dumps(frame))
    types = [f["type"] for f in frames]
    assert {f["request_id"] for f in frames} == {"q-17"}
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))

    # status(accepted) status(routed) status(tool)+ status(composing) delta+ message result
    assert frames[0]["stage"] == "accepted" and frames[0]["message"] == "Processing your query..."
    assert frames[1]["stage"] == "routed" and frames[1]["agent"] == "rag"
    tool_frames = [f for f in frames if f.get("stage") == "tool"]
    assert tool_frames and [f["step"] for f in tool_frames] == list(range(1, len(tool_frames) + 1))
    composing = types.index("status", 2 + len(tool_frames))
    assert frames[composing]["stage"] == "composing"
    assert types[composing + 1] == "delta"
    assert types[-2:] == ["message", "result"]
    assert set(types[composing + 1 : -2]) == {"delta"}

    result = frames[-1]["data"]
    answer = "".join(f["content"] for f in frames if f["type"] == "delta")
    assert result["success"] is True
    assert result["content"] == answer == frames[-2]["content"]
    assert result["agent"] == "rag" and result["query_type"] == "zoning"
    assert result["tools_used"] == len(tool_frames) == sum(result["tool_calls"].values())
    assert result["tools_available"] >= result["tools_used"]
    assert result["sources"] and all(s["title"] and s["location"] for s in result["sources"])
    assert result["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("query_type", QUERY_TYPES)
def test_every_query_type_ends_in_one_result(aws, context, query_type) -> None:
    conn = new_connection_id()
    lambda_handler(message_event(invoke_body(query_type=query_type), connection_id=conn), context)
    frames = aws.frames(conn)
    terminal = [f for f in frames if f["type"] in ("result", "error")]
    assert len(terminal) == 1 and terminal[0]["type"] == "result"
    assert terminal[0]["data"]["query_type"] == query_type


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"action": "invoke"}', "question: is required"),
        ('{"action": "invoke", "question": ""}', "question: must not be empty"),
        ('{"action": "invoke", "question": "   "}', "question: must not be empty or only whitespace"),
        ('{"action": "invoke", "question": 42}', "question: must be a string, not a number"),
        (
            json.dumps({"action": "invoke", "question": "q" * 4001}),
            "question: must be at most 4000 characters",
        ),
        (
            '{"action": "invoke", "question": "hi", "context": ["x"]}',
            "context: must be a string, not an array",
        ),
        (
            '{"action": "invoke", "question": "hi", "query_type": "weather"}',
            "query_type: must be one of general, zoning, building_codes, permits, financing",
        ),
        (
            '{"action": "invoke", "question": "hi", "request_id": "' + "x" * 65 + '"}',
            "request_id: must be 1 to 64",
        ),
        (
            '{"action": "invoke", "question": "hi", "request_id": "a\\u0000b"}',
            "request_id: must contain printable",
        ),
    ],
)
def test_invalid_invoke_answers_one_error_frame(aws, context, body, expected) -> None:
    conn = new_connection_id()
    response = lambda_handler(message_event(body, connection_id=conn, route_key="invoke"), context)
    assert response["statusCode"] == 200
    frames = aws.frames(conn)
    assert len(frames) == 1
    assert frames[0]["type"] == "error" and frames[0]["code"] == "bad_request"
    assert expected in frames[0]["error"]


def test_unknown_extra_fields_are_ignored(aws, context) -> None:
    conn = new_connection_id()
    lambda_handler(message_event(invoke_body(color="blue", nested={"a": 1}), connection_id=conn), context)
    assert aws.frames(conn)[-1]["type"] == "result"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json at all", "message must be JSON"),
        ("", "message must be JSON: the body is empty"),
        ("[1, 2]", "message must be a JSON object"),
        ("42", "message must be a JSON object"),
        ('"text"', "message must be a JSON object"),
        ("null", "message must be a JSON object"),
        ('{"question": "hi"}', "action is required: one of invoke, resume, cancel, ping"),
        ('{"action": 7}', "action must be a string: one of invoke, resume, cancel, ping"),
        ('{"action": "chat"}', "unknown action 'chat': valid actions are invoke, resume, cancel, ping"),
        ("[" * 100_000 + "]" * 100_000, "message must be JSON"),
    ],
)
def test_default_route_names_the_problem(aws, context, body, expected) -> None:
    conn = new_connection_id()
    event = message_event(body, connection_id=conn)
    assert event["requestContext"]["routeKey"] == "$default"
    assert lambda_handler(event, context)["statusCode"] == 200
    frames = aws.frames(conn)
    assert len(frames) == 1 and frames[0]["type"] == "error"
    assert expected in frames[0]["error"]


def test_binary_frames_are_decoded_and_bad_base64_is_reported(aws, context) -> None:
    conn = new_connection_id()
    lambda_handler(message_event(invoke_body().encode(), connection_id=conn, route_key="invoke"), context)
    assert aws.frames(conn)[-1]["type"] == "result"

    conn2 = new_connection_id()
    event = message_event(b"x", connection_id=conn2, route_key="invoke")
    event["body"] = "!!!not-base64!!!"
    lambda_handler(event, context)
    assert "not valid base64" in aws.frames(conn2)[0]["error"]


def test_ping_answers_pong(aws, context) -> None:
    conn = new_connection_id()
    lambda_handler(message_event('{"action": "ping", "request_id": "p1"}', connection_id=conn), context)
    assert [(f["type"], f.get("request_id")) for f in aws.frames(conn)] == [("pong", "p1")]


def test_unrecognised_events_get_a_clear_400(context) -> None:
    for event in ({}, {"foo": "bar"}, [], None, "text", {"requestContext": {"eventType": "MESSAGE"}}):
        response = lambda_handler(event, context)
        assert response["statusCode"] == 400
        assert "unrecognised event" in response["body"]


def test_gone_stops_the_run_and_deletes_only_the_stale_connection(aws, context) -> None:
    """After a 410 the sender stops: no further posts, the run is cancelled, the record removed."""
    conn, other = new_connection_id(), new_connection_id()
    lambda_handler(connect_event(connection_id=conn), context)
    lambda_handler(connect_event(connection_id=other), context)

    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url="https://x.execute-api.us-west-2.amazonaws.com/p"
    )
    stub = Stubber(client)
    stub.add_response("post_to_connection", {})  # accepted status
    stub.add_response("post_to_connection", {})  # routed status
    stub.add_client_error("post_to_connection", "GoneException", http_status_code=410)
    stub.activate()
    posts: list[bytes] = []

    class CountingApi(ManagementApi):
        def post(self, connection_id: str, data: bytes) -> None:
            posts.append(data)
            super().post(connection_id, data)

    deps = Dependencies(settings=get_settings(), management_factory=lambda endpoint: CountingApi(client))
    with use_dependencies(deps):
        response = lambda_handler(message_event(invoke_body(), connection_id=conn), context)
    assert response["statusCode"] == 200
    stub.assert_no_pending_responses()
    assert len(posts) == 3  # nothing was attempted after the 410
    assert aws.store.get_connection(conn) is None
    assert aws.store.get_connection(other) is not None
