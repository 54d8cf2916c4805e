"""The Python client library (clients/python/selador_client) against a real ``selador serve``.

Streaming to a result, several questions at once, drops from the server's side (``DELETE
@connections``) and from the network (a proxy cutting TCP) resumed without gaps or repeats,
cancel, refusals raised as :class:`SeladorError`, a conversation, tokens, and the app-level ping
keeping a connection past the gateway's idle timeout. Answers come from the deterministic offline
model, so a run that was cut and resumed must stream exactly what an uncut one does.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from selador.protocol import parse_frame
from selador_client import Client, Event, Frame, Run, SeladorConnectionError, SeladorError, connect

from .apidocs import validate_frame
from .conftest import REPO, SLOW_STREAM, WAIT, GatewayProcess, start_gateway
from .test_e2e_client import ACCEPTED, DELTA, dropping_proxy
from .test_runs_e2e import FINANCING, PERMITS, SECRET, ZONING, user_token

pytestmark = pytest.mark.e2e


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def slow_gateway() -> Iterator[GatewayProcess]:
    """Answers streamed in small deltas over about a second: time to drop or cancel midway."""
    with start_gateway(*SLOW_STREAM) as gateway:
        yield gateway


class Recorder:
    """Every event a client reports, by type."""

    def __init__(self, client: Client) -> None:
        self.events: list[Event] = []
        for kind in ("state", "frame", "disconnect", "reconnect", "resume"):
            client.add_listener(kind, self.events.append)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]

    def replayed_after_resume(self, run: Run) -> list[int]:
        """Seqs the client already had that arrived again after it resumed (none: it asked well).

        The resume asks for the frames after ``after_seq``; around the seam between replayed and
        live frames one may arrive twice, but never one at or before ``after_seq``.
        """
        [resume] = [i for i, e in enumerate(self.events) if e.type == "resume" and e.run is run]
        after = self.events[resume].after_seq
        later = [e.frame for e in self.events[resume:] if e.type == "frame" and e.frame is not None]
        return [f["seq"] for f in later if f.get("request_id") == run.request_id and f["seq"] <= after]

    def frames(self, request_id: str | None = None) -> list[Frame]:
        """Frames as they arrived (repeats included), of one request or all."""
        found = [e.frame for e in self.of("frame") if e.frame is not None]
        return [f for f in found if request_id is None or f.get("request_id") == request_id]


@asynccontextmanager
async def client_for(url: str, **options: Any) -> AsyncIterator[tuple[Client, Recorder]]:
    client = Client(url, **options)
    recorder = Recorder(client)
    async with asyncio.timeout(WAIT * 2):
        await client.open()
        try:
            yield client, recorder
        finally:
            await client.close()
    # Every frame with a type is one of the protocol's: the pydantic models of selador.protocol and
    # the schemas of docs/asyncapi.yaml (API Gateway's own messages have no type).
    for frame in recorder.frames():
        if "type" in frame:
            parse_frame(frame.raw)
            validate_frame(dict(frame))


def check_run(frames: Sequence[dict[str, Any]], run: Run) -> dict[str, Any]:
    """What the protocol promises of a run's frames as the client yields them; the terminal one."""
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1)), [f.get("seq") for f in frames]
    assert {f["request_id"] for f in frames} == {run.request_id}
    assert frames[0]["type"] == "status" and frames[0]["stage"] == "accepted", frames[0]
    assert frames[0]["run_token"] == run.run_token
    assert [f["type"] for f in frames].count("result") + [f["type"] for f in frames].count("error") == 1
    assert frames[-1]["type"] in ("result", "error")
    assert list(run.frames) == frames
    return frames[-1]


def deltas(frames: Sequence[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f["type"] == "delta")


async def reference(url: str, question: tuple[str, str]) -> str:
    """The answer text of ``question`` asked with nothing in the way."""
    async with client_for(url) as (client, _):
        run = await client.ask(question[0], query_type=question[1])
        frames = [frame async for frame in run]
    return deltas(frames)


async def delete_connection(gateway: GatewayProcess, tag: str) -> None:
    """The server side's drop: the management API's DeleteConnection (the gateway closes with 1000)."""
    connection = await asyncio.to_thread(gateway.connection, tag)
    endpoint = gateway.endpoints.management_endpoint
    async with httpx.AsyncClient(timeout=WAIT) as http:
        deleted = await http.delete(f"{endpoint}/@connections/{quote(connection['connectionId'], safe='')}")
    assert deleted.status_code == 204, deleted.text


# ---------------------------------------------------------------------------------- answers


async def test_a_question_streams_to_its_result(gateway: GatewayProcess) -> None:
    async with connect(gateway.endpoints.ws_url) as client:
        assert client.state == "open"
        run = await client.ask(ZONING[0], query_type=ZONING[1], context="Capitol Hill lot", request_id="py-1")
        frames = [frame async for frame in run]
        data = await run.result()
        assert [frame async for frame in run] == frames  # iterating again replays the same frames
    assert client.state == "closed"
    terminal = check_run(frames, run)
    assert terminal["type"] == "result" and terminal["data"] == data
    assert run.request_id == "py-1" and run.run_token and run.run_token.startswith("rt1.")
    assert data["success"] is True and data["stop_reason"] == "end_turn" and data["query_type"] == "zoning"
    assert data["content"] == deltas(frames) and len(data["content"]) > 100
    assert data["sources"] and {"title", "location"} <= set(data["sources"][0])
    assert [f["stage"] for f in frames if f["type"] == "status"][:2] == ["accepted", "routed"]
    assert run.session_id is None and run.session_token is None


async def test_several_questions_at_once_on_one_client(gateway: GatewayProcess) -> None:
    questions = (ZONING, FINANCING, PERMITS)
    expected = [await reference(gateway.endpoints.ws_url, q) for q in questions]
    async with client_for(gateway.endpoints.ws_url) as (client, _):
        runs = [await client.ask(q, query_type=t) for q, t in questions]
        assert len({run.request_id for run in runs}) == 3 and len(client.runs) == 3

        async def follow(run: Run) -> list[dict[str, Any]]:
            return [frame async for frame in run]

        followed = await asyncio.gather(*(follow(run) for run in runs))
        assert client.runs == ()
    for run, frames, answer in zip(runs, followed, expected, strict=True):
        assert check_run(frames, run)["type"] == "result"
        assert deltas(frames) == answer


async def test_a_conversation_continues_with_the_runs_session(gateway: GatewayProcess) -> None:
    async with connect(gateway.endpoints.ws_url) as client:
        first = await client.ask("What is the FAR in LR2?", query_type="zoning", session_id="new")
        assert "1.4" in (await first.result())["content"]
        assert first.session_id and first.session_id.startswith("s-")
        assert first.session_token and first.session_token.startswith("st1.")
        follow_up = await client.ask(
            "And in LR3?", query_type="zoning", session_id=first.session_id, session_token=first.session_token
        )
        data = await follow_up.result()
    assert "1.8" in data["content"], data["content"]
    assert data["session_id"] == follow_up.session_id == first.session_id
    assert all(frame["session_id"] == first.session_id for frame in follow_up.frames)


# ---------------------------------------------------------------------------------- drops


async def test_a_server_side_drop_mid_answer_reconnects_and_resumes(slow_gateway: GatewayProcess) -> None:
    expected = await reference(slow_gateway.endpoints.ws_url, ZONING)
    tag = new_id("py-drop")
    async with client_for(f"{slow_gateway.endpoints.ws_url}?tag={tag}") as (client, recorder):
        run = await client.ask(ZONING[0], query_type=ZONING[1])
        frames: list[Frame] = []
        async for frame in run:
            frames.append(frame)
            if frame["type"] == "delta" and not any(f["type"] == "delta" for f in frames[:-1]):
                await delete_connection(slow_gateway, tag)  # at the first piece of text
        data = await run.result()
        # Two connections with that tag: the deleted one and the one the run was resumed on.
        tagged = [c for c in slow_gateway.stats()["connections"] if c["query"].get("tag") == tag]
        assert sorted((c["state"], c["closeCode"] or 0) for c in tagged) == [("closed", 1000), ("open", 0)]
    terminal = check_run(frames, run)
    assert terminal["type"] == "result" and data["stop_reason"] == "end_turn"
    assert deltas(frames) == data["content"] == expected
    [drop] = recorder.of("disconnect")
    assert (drop.code, drop.reconnecting) == (1000, True)
    [resume] = recorder.of("resume")
    assert resume.run is run and not resume.reinvoke
    assert 1 < resume.after_seq < terminal["seq"]  # it had the accepted frame and some text
    assert recorder.replayed_after_resume(run) == []
    assert [e.state for e in recorder.of("state")] == ["open", "reconnecting", "open", "closed"]


async def test_a_network_drop_mid_answer_is_resumed_without_gaps_or_repeats(
    slow_gateway: GatewayProcess,
) -> None:
    expected = await reference(slow_gateway.endpoints.ws_url, PERMITS)
    async with (
        dropping_proxy(slow_gateway, drop_before=(DELTA, 3)) as proxy,
        client_for(proxy.url, backoff=(0.05, 0.5)) as (client, recorder),
    ):
        run = await client.ask(PERMITS[0], query_type=PERMITS[1])
        frames = [frame async for frame in run]
    assert proxy.dropped and proxy.deltas_before_drop
    assert check_run(frames, run)["type"] == "result"
    assert deltas(frames) == expected
    assert [(e.code, e.reconnecting) for e in recorder.of("disconnect")] == [(1006, True)]
    assert [e.after_seq > 1 and not e.reinvoke for e in recorder.of("resume")] == [True]
    assert sorted({f["seq"] for f in recorder.frames(run.request_id)}) == [f["seq"] for f in frames]
    assert recorder.replayed_after_resume(run) == []


async def test_a_drop_before_the_run_was_accepted_asks_again(slow_gateway: GatewayProcess) -> None:
    expected = await reference(slow_gateway.endpoints.ws_url, ZONING)
    async with (
        dropping_proxy(slow_gateway, drop_before=(ACCEPTED, 1)) as proxy,
        client_for(proxy.url, backoff=(0.05, 0.5)) as (client, recorder),
    ):
        run = await client.ask(ZONING[0], query_type=ZONING[1], request_id="py-early")
        frames = [frame async for frame in run]
    assert proxy.dropped and proxy.connections == 2
    [again] = recorder.of("resume")
    assert again.reinvoke and again.run is run
    assert check_run(frames, run)["type"] == "result"
    assert deltas(frames) == expected


async def test_without_reconnect_a_drop_ends_the_run_with_a_connection_error(
    slow_gateway: GatewayProcess,
) -> None:
    tag = new_id("py-norec")
    async with client_for(f"{slow_gateway.endpoints.ws_url}?tag={tag}", reconnect=False) as (
        client,
        recorder,
    ):
        run = await client.ask(ZONING[0], query_type=ZONING[1])
        frames: list[Frame] = []
        async for frame in run:
            frames.append(frame)
            if frame["type"] == "delta" and not any(f["type"] == "delta" for f in frames[:-1]):
                await delete_connection(slow_gateway, tag)
        with pytest.raises(SeladorConnectionError) as lost:
            await run.result()
        assert client.state == "closed"
        with pytest.raises(SeladorConnectionError):
            await client.ask("What is the FAR in LR2?")
    assert lost.value.code == "connection_lost" and lost.value.close_code == 1000
    assert frames and all(f["type"] not in ("result", "error") for f in frames)
    assert recorder.of("reconnect") == [] and recorder.of("resume") == []
    # The run goes on in the server, to its end: its token reads it over HTTP.
    url = f"{slow_gateway.endpoints.http_url}/runs/{run.request_id}"
    headers = {"X-Run-Token": run.run_token or ""}
    ended = await asyncio.to_thread(
        slow_gateway.wait_for,
        lambda: (
            body
            if (body := httpx.get(url, headers=headers, timeout=WAIT).json())["status"] != "running"
            else None
        ),
        "the run to end in the server",
    )
    assert ended["status"] == "succeeded", ended


# ---------------------------------------------------------------------------------- cancel


async def test_cancel_ends_the_run_with_its_cancelled_result(slow_gateway: GatewayProcess) -> None:
    async with client_for(slow_gateway.endpoints.ws_url) as (client, _):
        run = await client.ask(ZONING[0], query_type=ZONING[1])
        frames = []
        async for frame in run:
            frames.append(frame)
            if [f["type"] for f in frames].count("delta") == 2:
                assert await run.cancel() is True
        data = await run.result()
        assert await run.cancel() is False  # it has ended
    terminal = check_run(frames, run)
    assert terminal["type"] == "result"
    assert data["stop_reason"] == "cancelled" and data["success"] is False
    assert data["content"] == deltas(frames)
    assert len(data["content"]) < len(await reference(slow_gateway.endpoints.ws_url, ZONING))


async def test_cancel_before_the_accepted_frame_goes_out_once_it_arrives(
    slow_gateway: GatewayProcess,
) -> None:
    async with client_for(slow_gateway.endpoints.ws_url) as (client, recorder):
        run = await client.ask(ZONING[0], query_type=ZONING[1])
        cancelling = asyncio.create_task(run.cancel())
        data = await run.result()
        assert await cancelling is True
    assert data["stop_reason"] == "cancelled" and data["success"] is False
    assert check_run(list(run.frames), run)["data"] == data
    assert not any(f.get("code") for f in recorder.frames(run.request_id))  # no unknown_run / not_running


# ---------------------------------------------------------------------------------- refusals


async def test_a_refused_question_raises_with_the_servers_code(gateway: GatewayProcess) -> None:
    async with connect(gateway.endpoints.ws_url) as client:
        run = await client.ask("x" * 5000)
        with pytest.raises(SeladorError) as refused:
            await run.result()
        frames = [frame async for frame in run]
        blank = await client.ask("   ", query_type="zoning")
        with pytest.raises(SeladorError) as empty:
            await blank.result()
        wrong_type = await client.ask("What is the FAR?", query_type="gardening")
        with pytest.raises(SeladorError) as unknown:
            await wrong_type.result()
        # An id the server could not read is refused before anything is sent.
        with pytest.raises(SeladorError) as bad_id:
            await client.ask("What is the FAR?", request_id="tab\there")
        # The connection is fine: the next question is answered.
        assert (await (await client.ask("What is the FAR in LR2?")).result())["success"] is True
    assert refused.value.code == "bad_request" and "question" in refused.value.message
    assert refused.value.frame is not None and "seq" not in refused.value.frame
    assert frames == [refused.value.frame]  # the refusal is the iteration's one and last frame
    assert (empty.value.code, empty.value.message) == (
        "bad_request",
        "question: must not be empty or only whitespace",
    )
    assert unknown.value.code == "bad_request" and "query_type" in unknown.value.message
    assert bad_id.value.code == "bad_request" and bad_id.value.frame is None


async def test_a_second_question_in_a_busy_session_raises_session_busy(slow_gateway: GatewayProcess) -> None:
    async with connect(slow_gateway.endpoints.ws_url) as client:
        first = await client.ask(ZONING[0], query_type=ZONING[1], session_id="new")
        async for frame in first:
            if frame.get("stage") == "accepted":  # the session is held from here to the result
                break
        second = await client.ask(
            "And in LR3?", query_type="zoning", session_id=first.session_id, session_token=first.session_token
        )
        with pytest.raises(SeladorError) as busy:
            await second.result()
        data = await first.result()
    assert busy.value.code == "session_busy" and busy.value.frame is not None
    assert busy.value.frame["request_id"] == second.request_id and "seq" not in busy.value.frame
    assert data["success"] is True and data["session_id"] == first.session_id


async def test_the_same_request_id_twice_on_one_client_is_refused_here(gateway: GatewayProcess) -> None:
    async with connect(gateway.endpoints.ws_url) as client:
        run = await client.ask("What is the FAR in LR2?", request_id="twice")
        with pytest.raises(SeladorError) as twice:
            await client.ask("And in LR3?", request_id="twice")
        await run.result()
        # Once its run has ended the id is free again.
        again = await client.ask("What is the FAR in LR3?", request_id="twice")
        assert (await again.result())["success"] is True
    assert twice.value.code == "duplicate_request"


# ---------------------------------------------------------------------------------- connections


async def test_a_connection_that_cannot_be_made_raises_connect_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, not listening: the connection is refused
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}/production"
        with pytest.raises(SeladorConnectionError) as failed:
            await connect(url)
    assert failed.value.code == "connect_failed"


@pytest.fixture(scope="module")
def secured_gateway() -> Iterator[GatewayProcess]:
    with start_gateway("--env", "AUTH_MODE=jwt", "--env", f"AUTH_HS256_SECRET={SECRET}") as gateway:
        yield gateway


async def test_the_token_is_sent_as_the_query_parameter(secured_gateway: GatewayProcess) -> None:
    url = secured_gateway.endpoints.ws_url
    with pytest.raises(SeladorConnectionError) as refused:
        await connect(url)
    assert refused.value.code == "connect_failed" and "401" in refused.value.message
    async with connect(url, token=user_token("py-alice")) as client:
        data = await (await client.ask("What is the FAR in LR2?", query_type="zoning")).result()
    assert data["success"] is True


async def test_app_level_pings_keep_a_connection_past_the_idle_timeout() -> None:
    with start_gateway("--idle-timeout", "2") as gateway:
        tag = new_id("py-ping")
        async with client_for(f"{gateway.endpoints.ws_url}?tag={tag}", ping_interval=0.2) as (
            client,
            recorder,
        ):
            pongs = asyncio.Event()
            client.add_listener("frame", lambda _: pongs.set() if len(recorder.frames()) >= 15 else None)
            await pongs.wait()  # 15 pongs: three seconds of pings, past the 2 s idle timeout
            assert {f["type"] for f in recorder.frames()} == {"pong"}
            assert recorder.of("disconnect") == [] and client.state == "open"
            assert (await asyncio.to_thread(gateway.connection, tag))["state"] == "open"
        # Without them the same gateway closes an idle connection (1001), and the client reconnects.
        async with client_for(gateway.endpoints.ws_url, ping_interval=None) as (client, recorder):
            reconnected = asyncio.Event()
            client.add_listener("state", lambda e: reconnected.set() if e.state == "open" else None)
            await reconnected.wait()
        assert [(e.code, e.reconnecting) for e in recorder.of("disconnect")] == [(1001, True)]


# ---------------------------------------------------------------------------------- the README


def test_the_readme_example_runs(gateway: GatewayProcess) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Python\n", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in example.splitlines() if line.strip()]) <= 12, "a ten-line example"
    assert "ws://127.0.0.1:3001/production" in example
    script = example.replace("ws://127.0.0.1:3001/production", gateway.endpoints.ws_url)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        | {"PYTHONPATH": str(REPO / "clients" / "python")},
    )
    assert done.returncode == 0, done.stderr
    assert "LR2" in done.stdout and "rag, " in done.stdout and "session s-" in done.stdout, done.stdout
