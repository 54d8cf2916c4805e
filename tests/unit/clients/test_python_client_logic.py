"""The Python client's own logic: seq bookkeeping, backoff, messages, and a run's life.

Protocol edge cases the real gateway seldom produces (frames out of order or twice, a gap that
stays open, a ``not_running`` answer, handshakes refused on reconnection) are played by a scripted
``websockets`` server on a free port; tests/e2e/test_python_client.py runs the client against
``selador serve``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from selador.protocol import ProtocolError, parse_run_command
from selador_client import (
    Backoff,
    Client,
    Frame,
    Run,
    RunFrames,
    SeladorConnectionError,
    SeladorError,
    connect,
)
from selador_client import run as run_module
from selador_client.messages import check_request_id, with_token

WAIT = 10.0

# ---------------------------------------------------------------------------------- seq bookkeeping


def test_run_frames_release_in_order_once_each() -> None:
    frames = RunFrames()

    def add(seq: int) -> list[int]:
        return [f for f, _ in frames.add(seq, seq, "")]

    assert add(1) == [1]
    assert add(4) == [] and add(3) == []  # wait for 2
    assert frames.gap_since is not None and frames.last_seq == 1
    assert add(3) == []  # a repeat of a waiting frame
    assert add(2) == [2, 3, 4]
    assert frames.gap_since is None and frames.last_seq == 4
    assert add(1) == [] and add(4) == []  # seen
    assert add(4 + 1 + 256) == []  # too far ahead: dropped, a resume resends it
    assert add(6) == [] and frames.gap_since is not None
    frames.forget_waiting()
    assert add(5) == [5] and frames.gap_since is None  # 6 was forgotten


# ---------------------------------------------------------------------------------- backoff


def test_backoff_doubles_to_its_maximum_and_resets() -> None:
    backoff = Backoff(0.25, 5.0, 2.0, jitter=0)
    assert [backoff.next() for _ in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 0.25


def test_backoff_jitter_stays_within_its_fraction() -> None:
    backoff = Backoff(1.0, 1.0, 2.0, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next() for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert min(delays) < 0.9 and max(delays) > 1.1  # spread, not constant


@pytest.mark.parametrize(
    ("arguments", "named"),
    [((0, 5), "initial"), ((1, 0.5), "maximum"), ((1, 5, 0.5), "factor"), ((1, 5, 2, 1.0), "jitter")],
)
def test_backoff_out_of_range_is_a_clear_error(arguments: tuple[float, ...], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Backoff(*arguments)


# ---------------------------------------------------------------------------------- messages


@given(st.text(max_size=70))
def test_request_ids_are_refused_exactly_when_the_server_would(request_id: str) -> None:
    try:
        parse_run_command({"request_id": request_id})
        server_accepts = True
    except ProtocolError:
        server_accepts = False
    try:
        check_request_id(request_id)
        client_accepts = True
    except SeladorError as refused:
        assert refused.code == "bad_request" and refused.message.startswith("request_id: ")
        client_accepts = False
    assert client_accepts == server_accepts


@pytest.mark.parametrize(
    ("url", "token", "expected"),
    [
        ("ws://h:1/production", None, "ws://h:1/production"),
        ("ws://h:1/production", "a.b.c", "ws://h:1/production?token=a.b.c"),
        ("wss://h/prod?tag=x", "a+b/c=", "wss://h/prod?tag=x&token=a%2Bb%2Fc%3D"),
    ],
)
def test_the_token_goes_in_the_query_string(url: str, token: str | None, expected: str) -> None:
    assert with_token(url, token) == expected


def test_frames_parse_json_objects_only() -> None:
    frame = Frame.parse(b'{"type":"pong","timestamp":1.5}')
    assert frame == {"type": "pong", "timestamp": 1.5} and frame is not None
    assert frame.raw == '{"type":"pong","timestamp":1.5}' and frame.seq is None
    assert Frame.parse("[1, 2]") is None and Frame.parse("not json") is None
    assert [Frame.parse(json.dumps({"seq": s})).seq for s in (3, 0, True, "4")] == [3, None, None, None]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------- a run


def frame(seq: int, kind: str = "delta", **fields: Any) -> Frame:
    data = {"type": kind, "request_id": "r-1", "seq": seq, **fields}
    return Frame(data, json.dumps(data))


async def no_cancel(_: Run) -> None:
    return None


async def test_a_run_yields_in_seq_order_and_ends_with_its_result() -> None:
    run = Run({"action": "invoke", "question": "q", "request_id": "r-1", "session_id": "new"}, no_cancel)
    assert run.session_id is None and not run.accepted
    accepted = frame(
        1, "status", stage="accepted", run_token="rt1.x", session_id="s-1", session_token="st1.y"
    )
    for item in (accepted, frame(3, content="b"), frame(2, content="a"), frame(2, content="a")):
        run.deliver(item, item["seq"])
    assert (run.run_token, run.session_id, run.session_token) == ("rt1.x", "s-1", "st1.y")
    assert [f["seq"] for f in run.frames] == [1, 2, 3] and not run.done
    run.deliver(frame(5, "delta", content="late"), 5)
    assert run.watch_at() is not None  # a gap: it will be asked for
    run.deliver(frame(4, "result", data={"content": "ab"}), 4)
    assert run.done and await run.result() == {"content": "ab"}
    assert [f["seq"] for f in run.frames] == [1, 2, 3, 4]  # nothing after the terminal frame
    assert [f["seq"] async for f in run] == [1, 2, 3, 4]
    assert await run.cancel() is False


async def test_a_run_ends_with_an_error_a_refusal_or_a_lost_connection() -> None:
    failed = Run({"request_id": "r-1"}, no_cancel)
    failed.deliver(frame(1, "error", code="model_error", error="the model failed"), 1)
    with pytest.raises(SeladorError) as error:
        await failed.result()
    assert (error.value.code, error.value.message) == ("model_error", "the model failed")

    refused = Run({"request_id": "r-1"}, no_cancel)
    refusal = Frame({"type": "error", "code": "session_busy", "error": "busy", "request_id": "r-1"}, "{}")
    refused.refuse(refusal)
    with pytest.raises(SeladorError) as busy:
        await refused.result()
    assert busy.value.code == "session_busy" and busy.value.frame is refusal
    assert [f async for f in refused] == [refusal]

    lost = Run({"request_id": "r-1"}, no_cancel)
    following = asyncio.create_task(_collect(lost))
    await asyncio.sleep(0)
    lost.fail(SeladorConnectionError("connection_lost", "gone", 1006))
    assert await following == []
    with pytest.raises(SeladorConnectionError):
        await lost.result()


async def _collect(run: Run) -> list[Frame]:
    return [f async for f in run]


# ---------------------------------------------------------------------------------- a scripted server


Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def scripted(handler: Handler, **options: Any) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/production"


async def receive(ws: ServerConnection) -> dict[str, Any]:
    message = json.loads(await ws.recv())
    assert isinstance(message, dict)
    return message


def wire(seq: int, kind: str = "delta", **fields: Any) -> str:
    return json.dumps({"type": kind, "request_id": "r-1", "seq": seq, "timestamp": 1.0, **fields})


ACCEPTED = wire(1, "status", stage="accepted", message="Processing your query...", run_token="rt1.t")
RESULT = wire(4, "result", data={"content": "ab", "success": True})


async def test_frames_out_of_order_twice_or_foreign_are_yielded_once_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(ws: ServerConnection) -> None:
        assert (await receive(ws))["action"] == "invoke"
        for text in (
            ACCEPTED,
            "not JSON",
            '{"message": "Endpoint request timed out", "connectionId": "c", "requestId": "a"}',
            wire(3, content="b"),
            wire(2, content="a"),
            wire(3, content="b"),
            wire(1, "status", stage="accepted", message="Processing your query...", run_token="rt1.t"),
            json.dumps({"type": "delta", "request_id": "other", "seq": 2, "content": "x", "timestamp": 1.0}),
            RESULT,
        ):
            await ws.send(text)
        await ws.wait_closed()

    async with scripted(handler) as url, connect(url, ping_interval=None) as client:
        run = await client.ask("q", request_id="r-1")
        frames = [f async for f in run]
    assert [(f["seq"], f.get("content")) for f in frames] == [(1, None), (2, "a"), (3, "b"), (4, None)]
    assert "not a JSON object" in caplog.text


async def test_a_gap_left_open_is_asked_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "GAP_RESUME_AFTER_S", 0.05)
    resumes: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        await receive(ws)
        await ws.send(ACCEPTED)
        await ws.send(wire(3, content="b"))  # 2 was "lost"
        resumes.append(await receive(ws))
        for text in (wire(2, content="a"), wire(3, content="b"), RESULT):
            await ws.send(text)
        await ws.wait_closed()

    async with scripted(handler) as url, connect(url, ping_interval=None) as client:
        run = await client.ask("q", request_id="r-1")
        data = await asyncio.wait_for(run.result(), WAIT)
    assert resumes == [{"action": "resume", "request_id": "r-1", "after_seq": 1, "run_token": "rt1.t"}]
    assert data["content"] == "ab" and [f["seq"] for f in run.frames] == [1, 2, 3, 4]


async def test_a_cancel_after_the_end_fetches_the_terminal_frame() -> None:
    sent: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        sent.append(await receive(ws))
        await ws.send(ACCEPTED)
        sent.append(await receive(ws))  # the cancel: the run has ended meanwhile
        await ws.send(
            json.dumps({"type": "error", "code": "not_running", "error": "ended", "request_id": "r-1"})
        )
        sent.append(await receive(ws))  # the resume
        for text in (wire(2, content="a"), wire(3, content="b"), RESULT):
            await ws.send(text)
        await ws.wait_closed()

    async with scripted(handler) as url, connect(url, ping_interval=None) as client:
        run = await client.ask("q", request_id="r-1")
        async for item in run:
            if item["seq"] == 1:
                assert await run.cancel() is True
        data = await asyncio.wait_for(run.result(), WAIT)
    assert [m["action"] for m in sent] == ["invoke", "cancel", "resume"]
    assert sent[1] == {"action": "cancel", "request_id": "r-1", "run_token": "rt1.t"}
    assert sent[2]["after_seq"] == 1 and data["success"] is True


async def test_a_reconnection_refused_with_401_ends_the_runs() -> None:
    connections = 0

    def refuse_after_the_first(_: Any, request: Any) -> Response | None:
        nonlocal connections
        connections += 1
        if connections == 1:
            return None
        return Response(401, "Unauthorized", Headers(), b"no token")

    async def handler(ws: ServerConnection) -> None:
        await receive(ws)
        await ws.send(ACCEPTED)
        ws.transport.abort()  # the network drops it

    async with (
        scripted(handler, process_request=refuse_after_the_first) as url,
        connect(url, ping_interval=None, backoff=(0.01, 0.01)) as client,
    ):
        run = await client.ask("q", request_id="r-1")
        with pytest.raises(SeladorConnectionError) as refused:
            await asyncio.wait_for(run.result(), WAIT)
        assert client.state == "closed"
    assert refused.value.code == "reconnect_failed" and "401" in refused.value.message
    assert connections == 2  # no retrying a refused token


async def test_reconnection_gives_up_after_its_attempts() -> None:
    async def handler(ws: ServerConnection) -> None:
        await receive(ws)
        await ws.wait_closed()

    states: list[str] = []
    async with scripted(handler) as url:
        client = await connect(url, ping_interval=None, backoff=(0.01, 0.02), max_reconnect_attempts=3)
        client.add_listener("state", lambda event: states.append(str(event.state)))
        run = await client.ask("q", request_id="r-1")
    # The server is gone: every attempt is refused.
    with pytest.raises(SeladorConnectionError) as gave_up:
        await asyncio.wait_for(run.result(), WAIT)
    assert gave_up.value.code == "reconnect_failed" and "3 attempts" in gave_up.value.message
    assert states == ["reconnecting", "closed"]
    await client.close()


async def test_a_broken_listener_is_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(ws: ServerConnection) -> None:
        await receive(ws)
        for text in (ACCEPTED, wire(2, content="a"), wire(3, content="b"), RESULT):
            await ws.send(text)
        await ws.wait_closed()

    async with scripted(handler) as url, connect(url, ping_interval=None) as client:
        client.add_listener("frame", lambda _: 1 / 0)
        run = await client.ask("q", request_id="r-1")
        data = await asyncio.wait_for(run.result(), WAIT)
    assert data["content"] == "ab"
    assert "a frame listener failed" in caplog.text


async def test_a_question_asked_while_connecting_goes_out_once_open() -> None:
    received: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        received.append(await receive(ws))
        for text in (ACCEPTED, wire(2, content="a"), wire(3, content="b"), RESULT):
            await ws.send(text)
        await ws.wait_closed()

    async with scripted(handler) as url:
        client = Client(url, ping_interval=None)
        opening = asyncio.create_task(client.open())
        run = await client.ask("q", request_id="r-1")  # before the handshake: nothing to send on yet
        assert client.state == "connecting" and not run.sent
        async with client:  # already opening: the same client
            assert await opening is client
            data = await asyncio.wait_for(run.result(), WAIT)
        assert client.state == "closed"
    assert [m["request_id"] for m in received] == ["r-1"] and data["content"] == "ab"
