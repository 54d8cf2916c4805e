"""Durable runs (protocol 1.1) through a real ``selador serve``: resume, cancel, HTTP runs, ownership.

Every gateway here is the template's: process runtime, ``RUN_MODE=async`` (each run is a Lambda
``Event`` invocation of its own), SQLite store. Answers come from the deterministic offline model,
slowed down (``LOCAL_MODEL_TOKEN_DELAY_MS``) and streamed in small deltas (short
``STREAM_FLUSH_*`` windows) so that a connection can be dropped in the middle of an answer.

Clients follow the protocol's rules: keep every frame by ``seq``, drop a ``seq`` already seen,
resume after the highest ``seq`` up to which nothing is missing, and treat only a ``result`` or
``error`` *with* a ``seq`` as a run's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from selador.protocol import parse_frame

from .apidocs import validate_frame
from .conftest import SLOW_STREAM, WAIT, GatewayProcess, recv_json, signed_token, start_gateway, ws_connect

pytestmark = pytest.mark.e2e

ZONING = ("What are the zoning requirements for residential development?", "zoning")
FINANCING = ("What is the monthly payment on a $500,000 house with 20% down at 6.5% interest?", "financing")
PERMITS = ("What permits do I need to build a deck in Seattle?", "permits")
QUESTIONS = (ZONING, FINANCING, PERMITS)

SECRET = "e2e-runs-secret-0123456789abcdef-0123456789"
TERMINAL = ("result", "error")
QUIET_S = 1.0
"""How long "nothing more arrives" is watched for."""


def new_id(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------- gateways


@pytest.fixture(scope="module")
def runs_gateway() -> Iterator[GatewayProcess]:
    """Anonymous gateway with slow, finely streamed answers."""
    with start_gateway(*SLOW_STREAM) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def secured_gateway() -> Iterator[GatewayProcess]:
    """The same with ``AUTH_MODE=jwt`` (HS256 tokens from ``selador token``)."""
    with start_gateway(
        *SLOW_STREAM, "--env", "AUTH_MODE=jwt", "--env", f"AUTH_HS256_SECRET={SECRET}"
    ) as gateway:
        yield gateway


def user_token(sub: str) -> str:
    """A JWT for ``sub`` signed with :data:`SECRET`."""
    return signed_token(sub, SECRET)


# ---------------------------------------------------------------------------------- clients


@dataclass
class RunLog:
    """Everything one client received of one run, across all its connections.

    Attributes:
        request_id: The run's ``request_id``.
        token: The ``run_token`` of its ``accepted`` frame, once seen.
        raw: Each ``seq`` and the text it arrived as (first arrival).
        arrivals: Every ``seq`` in arrival order, repeats included.
        unsequenced: Frames naming the run but carrying no ``seq`` (errors about a message).
    """

    request_id: str
    token: str | None = None
    raw: dict[int, str] = field(default_factory=dict)
    arrivals: list[int] = field(default_factory=list)
    unsequenced: list[dict[str, Any]] = field(default_factory=list)

    def add(self, text: str) -> dict[str, Any] | None:
        """Record one received frame (checked against ``docs/asyncapi.yaml``); ``None`` when it
        belongs to another request."""
        frame = json.loads(text)
        validate_frame(frame)
        if frame.get("request_id") != self.request_id:
            return None
        seq = frame.get("seq")
        if seq is None:
            self.unsequenced.append(frame)
            return frame
        self.arrivals.append(seq)
        if seq in self.raw:
            # A repeat is the logged frame posted again: byte for byte the same.
            assert self.raw[seq] == text, f"seq {seq} arrived twice with different content"
        else:
            self.raw[seq] = text
        if frame.get("run_token"):
            self.token = frame["run_token"]
        return frame

    @property
    def contiguous(self) -> int:
        """The highest ``seq`` up to which nothing is missing (what to resume after)."""
        seq = 0
        while seq + 1 in self.raw:
            seq += 1
        return seq

    @property
    def frames(self) -> list[dict[str, Any]]:
        """Distinct frames in ``seq`` order."""
        return [json.loads(self.raw[seq]) for seq in sorted(self.raw)]

    @property
    def done(self) -> bool:
        """A terminal frame arrived and nothing before it is missing."""
        last = self.contiguous
        return last > 0 and json.loads(self.raw[last])["type"] in TERMINAL

    @property
    def ended(self) -> bool:
        """A terminal frame arrived (what came before it may not all be here)."""
        return any(json.loads(text)["type"] in TERMINAL for text in self.raw.values())

    @property
    def deltas(self) -> str:
        """The answer text received, in ``seq`` order."""
        return "".join(f["content"] for f in self.frames if f["type"] == "delta")

    def describe(self) -> str:
        return f"{self.request_id}: seqs {sorted(self.raw)}, arrivals {self.arrivals}"

    def check(self) -> dict[str, Any]:
        """The protocol's guarantees over everything received; returns the terminal frame."""
        frames = self.frames
        for frame in frames:
            parse_frame(json.dumps(frame))
        assert sorted(self.raw) == list(range(1, len(frames) + 1)), self.describe()
        assert frames[0]["type"] == "status" and frames[0]["stage"] == "accepted", frames[0]
        assert frames[0]["run_token"] == self.token
        terminals = [f for f in frames if f["type"] in TERMINAL]
        assert terminals == [frames[-1]], f"exactly one terminal frame, the last: {self.describe()}"
        return frames[-1]


class RunClient:
    """One client following one run: reconnects, resumes after what it has, cancels.

    Args:
        url: The WebSocket URL to (re)connect to.
        request_id: The run's ``request_id``.
    """

    def __init__(self, url: str, request_id: str | None = None) -> None:
        self.url = url
        self.log = RunLog(request_id or new_id())
        self.ws: ClientConnection | None = None
        self.others: list[dict[str, Any]] = []
        self.drops = 0
        self.planned_drops = 0

    @property
    def request_id(self) -> str:
        return self.log.request_id

    async def connect(self, url: str | None = None, **kwargs: Any) -> ClientConnection:
        self.ws = await ws_connect(url or self.url, **kwargs)
        return self.ws

    async def send(self, **message: Any) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def invoke(self, question: str, query_type: str = "general", **fields: Any) -> None:
        await self.send(
            action="invoke", question=question, query_type=query_type, request_id=self.request_id, **fields
        )

    async def resume(self, *, after_seq: int | None = None, token: bool = True) -> None:
        message: dict[str, Any] = {
            "action": "resume",
            "request_id": self.request_id,
            "after_seq": self.log.contiguous if after_seq is None else after_seq,
        }
        if token:
            message["run_token"] = self.log.token
        await self.send(**message)

    async def cancel(self) -> None:
        await self.send(action="cancel", request_id=self.request_id, run_token=self.log.token)

    async def read(
        self, until: Callable[[RunLog], bool] | None = None, timeout: float = WAIT
    ) -> dict[str, Any] | None:
        """Receive frames until ``until(log)`` holds (default: the run is done); the last frame read.

        Frames of other requests go to :attr:`others`.
        """
        assert self.ws is not None
        done = until or (lambda log: log.done)
        last = None
        try:
            async with asyncio.timeout(timeout):
                while not done(self.log):
                    text = await self.ws.recv()
                    assert isinstance(text, str)
                    last = self.log.add(text)
                    if last is None:
                        self.others.append(json.loads(text))
        except TimeoutError:
            pytest.fail(f"timed out reading {self.log.describe()}")
        return last

    async def next_unsequenced(self, timeout: float = WAIT) -> dict[str, Any]:
        """Wait for the next frame about this request that carries no ``seq``."""
        seen = len(self.log.unsequenced)
        await self.read(lambda log: len(log.unsequenced) > seen, timeout)
        return self.log.unsequenced[seen]

    async def quiet(self, seconds: float = QUIET_S) -> list[dict[str, Any]]:
        """Everything that arrives within ``seconds`` (recorded like any frame; often expected empty)."""
        assert self.ws is not None
        received = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    text = await self.ws.recv()
                    assert isinstance(text, str)
                    self.log.add(text)
                    received.append(json.loads(text))
        return received

    async def drop(self) -> None:
        """Cut the TCP connection: no close frame, nothing more read."""
        assert self.ws is not None
        self.ws.transport.abort()  # the socket closes on the loop's next turn
        await asyncio.wait_for(self.ws.wait_closed(), WAIT)
        self.drops += 1

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close()
            self.ws = None


@dataclass
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    blackholed: bool = False

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class TcpProxy:
    """A TCP forwarder in front of the gateway, to fail the network under a WebSocket connection.

    ``drop()`` resets every link on both sides (the gateway sees the TCP connection vanish, no close
    frame); ``blackhole()`` keeps the sockets open but forwards nothing more either way (a dead
    mobile network: the gateway keeps accepting posts for a client that never gets them).
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.links: list[_Link] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.drop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def url(self, stage: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/{stage}" + (f"?{query}" if query else "")

    def drop(self) -> None:
        for link in self.links:
            link.abort()

    def blackhole(self) -> None:
        for link in self.links:
            link.blackholed = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            link = _Link(writer, up_writer)
            self.links.append(link)
            await asyncio.gather(
                self._pipe(reader, up_writer, link),
                self._pipe(up_reader, writer, link),
                return_exceptions=True,
            )
            link.abort()
        finally:
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link) -> None:
        while data := await source.read(65536):
            if not link.blackholed:
                sink.write(data)
                await sink.drain()
        link.abort()


@contextlib.asynccontextmanager
async def proxy_for(gateway: GatewayProcess) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(gateway.endpoints.host, gateway.endpoints.port) as proxy:
        yield proxy


# ---------------------------------------------------------------------------------- references

_REFERENCES: dict[tuple[str, str, str], RunLog] = {}


async def reference(gateway: GatewayProcess, question: tuple[str, str], url: str | None = None) -> RunLog:
    """The uninterrupted run of ``question`` on ``gateway`` (cached: the offline model is deterministic).

    Args:
        gateway: The gateway.
        question: Question and query type.
        url: The URL to connect to, when not the gateway's own (a token in the query string).
    """
    key = (gateway.endpoints.base, *question)
    if key not in _REFERENCES:
        client = RunClient(url or gateway.endpoints.ws_url)
        await client.connect()
        try:
            await client.invoke(*question)
            await client.read()
        finally:
            await client.close()
        terminal = client.log.check()
        assert terminal["type"] == "result" and terminal["data"]["stop_reason"] == "end_turn", terminal
        _REFERENCES[key] = client.log
    return _REFERENCES[key]


def http_run(
    gateway: GatewayProcess, request_id: str, token: str | None, method: str = "GET"
) -> httpx.Response:
    headers = {"X-Run-Token": token} if token is not None else {}
    url = f"{gateway.endpoints.http_url}/runs/{quote(request_id, safe='')}"
    return httpx.request(method, url, headers=headers, timeout=WAIT)


def wait_ended(gateway: GatewayProcess, request_id: str, token: str) -> dict[str, Any]:
    """Poll ``GET /runs/{id}`` until the run is no longer running; its last body."""

    def probe() -> dict[str, Any] | None:
        response = http_run(gateway, request_id, token)
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["status"] != "running" else None

    return gateway.wait_for(probe, f"run {request_id} to end")


# ---------------------------------------------------------------------------------- 1. drop and resume


@pytest.mark.parametrize("failure", ["abort", "proxy-reset", "proxy-blackhole"])
async def test_dropped_connection_resumes_with_every_frame_once(
    runs_gateway: GatewayProcess, failure: str
) -> None:
    """A connection lost mid-answer (no close frame); a new one resumes after the last seq seen."""
    expected = await reference(runs_gateway, ZONING)
    client = RunClient(runs_gateway.endpoints.ws_url)
    tag = new_id("first")
    async with proxy_for(runs_gateway) as proxy:
        # "abort": the client's own socket is cut; otherwise the network in between fails.
        direct = f"{runs_gateway.endpoints.ws_url}?tag={tag}"
        await client.connect(
            direct if failure == "abort" else proxy.url(runs_gateway.endpoints.stage, f"tag={tag}")
        )
        await client.invoke(*ZONING)
        # Mid-answer: a few deltas in, most of the answer still to come.
        await client.read(lambda log: sum(f["type"] == "delta" for f in log.frames) >= 3)
        assert not client.log.done
        seen_before = client.log.contiguous
        if failure == "abort":
            await client.drop()
        elif failure == "proxy-reset":
            proxy.drop()
            await client.drop()
        else:
            proxy.blackhole()  # the gateway still believes the old connection is there
        await client.connect()
        await client.resume()
        await client.read()
        await client.close()
        if failure == "proxy-blackhole":
            # The server never learnt that the first connection was dead: the resume alone moved
            # the run's frames to the new one.
            assert (await asyncio.to_thread(runs_gateway.connection, tag))["state"] == "open"
    terminal = client.log.check()
    assert terminal["type"] == "result" and terminal["data"]["success"] is True, terminal
    assert terminal["data"]["stop_reason"] == "end_turn"
    assert client.log.deltas == expected.deltas
    assert terminal["data"]["content"].strip() == expected.deltas.strip()
    # Something was left to resume: the drop really was mid-answer.
    assert terminal["seq"] > seen_before + 1


# ---------------------------------------------------------------------------------- 2. twenty clients


async def _flaky_client(gateway: GatewayProcess, rng: random.Random, question: tuple[str, str]) -> RunClient:
    drop_after = [rng.randint(1, 3) for _ in range(rng.randint(1, 3))]
    pauses = [rng.uniform(0.0, 0.15) for _ in drop_after]
    client = RunClient(gateway.endpoints.ws_url)
    await client.connect()
    await client.invoke(*question)
    for new_frames, pause in zip(drop_after, pauses, strict=True):
        have = len(client.log.raw)
        await client.read(lambda log, want=have + new_frames: len(log.raw) >= want or log.done)
        if client.log.done:
            break
        assert client.log.token is not None
        await client.drop()
        await asyncio.sleep(pause)
        await client.connect()
        await client.resume()
    await client.read()
    await client.close()
    client.planned_drops = len(drop_after)
    return client


async def test_twenty_clients_dropping_and_resuming_all_get_their_whole_answer(
    runs_gateway: GatewayProcess,
) -> None:
    references = dict(
        zip(QUESTIONS, await asyncio.gather(*(reference(runs_gateway, q) for q in QUESTIONS)), strict=True)
    )
    rng = random.Random(20251129)
    plan = [(random.Random(rng.random()), QUESTIONS[i % len(QUESTIONS)]) for i in range(20)]
    clients = await asyncio.gather(*(_flaky_client(runs_gateway, r, q) for r, q in plan))
    for client, (_, question) in zip(clients, plan, strict=True):
        terminal = client.log.check()
        assert terminal["type"] == "result" and terminal["data"]["success"] is True, terminal
        assert client.log.deltas == references[question].deltas, client.request_id
        # The plan drops 1-3 times; a later drop is skipped only if the whole answer came first.
        assert 1 <= client.drops <= client.planned_drops, client.request_id
    assert sum(c.drops for c in clients) > len(clients)
    # No run is left behind: each one ended as succeeded, with the frames its client saw.
    for client in clients:
        response = http_run(runs_gateway, client.request_id, client.log.token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "succeeded", body
        assert body["frames"] == len(client.log.raw)
    runs_gateway.wait_for(lambda: runs_gateway.stats()["invocations_running"] == 0, "every run to return")


# ---------------------------------------------------------------------------------- 3. cancel


async def test_cancel_mid_answer_ends_with_a_cancelled_result_and_nothing_after(
    runs_gateway: GatewayProcess,
) -> None:
    client = RunClient(runs_gateway.endpoints.ws_url)
    await client.connect()
    await client.invoke(*ZONING)
    await client.read(lambda log: any(f["type"] == "delta" for f in log.frames))
    await client.cancel()
    await client.read()
    terminal = client.log.check()
    assert terminal["type"] == "result", terminal
    data = terminal["data"]
    assert data["stop_reason"] == "cancelled" and data["success"] is False
    assert data["content"] == client.log.deltas
    assert len(data["content"]) < len((await reference(runs_gateway, ZONING)).deltas)
    # Nothing of the run after its terminal frame.
    assert [f for f in await client.quiet() if f.get("request_id") == client.request_id] == []
    # Cancelling again: the run has ended.
    await client.cancel()
    again = await client.next_unsequenced()
    assert again["type"] == "error" and again["code"] == "not_running", again
    assert "seq" not in again and again["request_id"] == client.request_id
    assert await client.quiet(0.5) == []
    assert len(client.log.raw) == terminal["seq"]
    await client.close()
    body = http_run(runs_gateway, client.request_id, client.log.token).json()
    assert body["status"] == "cancelled" and body["result"] == data
    assert body["frames"] == terminal["seq"]


async def test_cancel_from_another_connection_brings_the_end_there(runs_gateway: GatewayProcess) -> None:
    first = RunClient(runs_gateway.endpoints.ws_url)
    await first.connect()
    await first.invoke(*PERMITS)
    await first.read(lambda log: sum(f["type"] == "delta" for f in log.frames) >= 2)
    other = RunClient(runs_gateway.endpoints.ws_url, first.request_id)
    other.log.token = first.log.token
    await other.connect()
    await other.cancel()
    await other.read(lambda log: log.ended)
    terminal = other.log.frames[-1]
    assert terminal["type"] == "result" and terminal["data"]["stop_reason"] == "cancelled", terminal
    await first.quiet(0.3)  # what reached the first connection before the switch, still unread
    # The first connection saw the run up to some point, the cancelling one from there on.
    merged = RunLog(first.request_id, token=first.log.token, raw={**first.log.raw, **other.log.raw})
    merged.check()
    assert terminal["data"]["content"] == merged.deltas
    assert not first.log.done
    for client in (first, other):
        await client.close()


async def test_cancel_as_soon_as_accepted_ends_each_run_once(runs_gateway: GatewayProcess) -> None:
    """Cancels racing the hand-off: a run is ended by whoever gets there first, exactly once."""

    async def cancel_at_once(question: tuple[str, str]) -> RunClient:
        client = RunClient(runs_gateway.endpoints.ws_url)
        await client.connect()
        await client.invoke(*question)
        await client.read(lambda log: log.token is not None)
        await client.cancel()
        await client.read()
        await client.quiet(0.5)
        await client.close()
        return client

    clients = await asyncio.gather(*(cancel_at_once(QUESTIONS[i % len(QUESTIONS)]) for i in range(10)))
    for client in clients:
        terminal = client.log.check()
        assert terminal["type"] == "result", terminal
        assert terminal["data"]["stop_reason"] == "cancelled" and terminal["data"]["success"] is False
        assert terminal["data"]["content"] == client.log.deltas
        assert client.log.unsequenced == [] and client.others == []
        body = http_run(runs_gateway, client.request_id, client.log.token).json()
        assert body["status"] == "cancelled" and body["frames"] == terminal["seq"], body


# ---------------------------------------------------------------------------------- 4. no oracle


def _template(frame: dict[str, Any]) -> tuple[str, str]:
    """An error's code and text with its request id blanked out."""
    return frame["code"], frame["error"].replace(repr(frame["request_id"]), "<id>")


async def test_runs_you_may_not_act_on_all_look_unknown(runs_gateway: GatewayProcess) -> None:
    owner = RunClient(runs_gateway.endpoints.ws_url)
    await owner.connect()
    await owner.invoke(*ZONING)
    await owner.read(lambda log: log.token is not None)
    bystander = RunClient(runs_gateway.endpoints.ws_url)
    await bystander.connect()
    await bystander.invoke(*PERMITS)
    await bystander.read(lambda log: log.token is not None)
    owner_token, other_token = owner.log.token, bystander.log.token
    assert owner_token is not None and other_token is not None
    run_id = owner_token.split(".")[1]
    forged = f"rt1.{run_id}.{'A' * len(owner_token.split('.')[2])}"  # the right run, a wrong secret

    stranger = RunClient(runs_gateway.endpoints.ws_url, owner.request_id)
    await stranger.connect()
    missing = new_id("nobody")
    probes: list[tuple[str, str, str | None]] = []
    for action in ("resume", "cancel"):
        for token in (forged, other_token, None, "not-a-token"):
            probes.append((action, owner.request_id, token))
        probes += [(action, missing, None), (action, missing, owner_token)]
    # An anonymous run belongs to its token: even the connection that started it needs it.
    await owner.send(action="cancel", request_id=owner.request_id)
    own = await owner.next_unsequenced()
    assert own["code"] == "unknown_run" and "seq" not in own, own
    following = asyncio.create_task(owner.read())
    answers: dict[str, list[dict[str, Any]]] = {"resume": [], "cancel": []}
    for action, request_id, token in probes:
        message: dict[str, Any] = {"action": action, "request_id": request_id}
        if token is not None:
            message["run_token"] = token
        await stranger.send(**message)
        answer = await recv_json(stranger.ws)  # type: ignore[arg-type]
        assert answer["type"] == "error" and answer["code"] == "unknown_run", (message, answer)
        assert "seq" not in answer and answer["request_id"] == request_id
        answers[action].append(answer)
    answers["cancel"].append(own)
    for action, frames in answers.items():
        assert len({_template(f) for f in frames}) == 1, f"{action} answers differ: {frames}"
        assert {frozenset(f) for f in frames} == {frozenset(frames[0])}
        texts = {f["error"] for f in frames if f["request_id"] == owner.request_id}
        assert len(texts) == 1

    await following
    terminal = owner.log.check()
    # None of the refused cancels stopped it, and none of its frames went to the stranger.
    assert terminal["type"] == "result" and terminal["data"]["stop_reason"] == "end_turn"
    assert owner.log.deltas == (await reference(runs_gateway, ZONING)).deltas
    assert await stranger.quiet(0.5) == []
    assert stranger.log.raw == {} and stranger.others == []
    await bystander.read()
    for client in (owner, bystander, stranger):
        await client.close()


async def test_with_auth_runs_belong_to_their_user(secured_gateway: GatewayProcess) -> None:
    url = secured_gateway.endpoints.ws_url
    alice_jwt, bob_jwt = user_token("alice"), user_token("bob")
    expected = await reference(secured_gateway, ZONING, url=f"{url}?token={alice_jwt}")
    shared = new_id("shared")
    alice = RunClient(f"{url}?token={alice_jwt}", shared)
    await alice.connect()
    await alice.invoke(*ZONING)
    await alice.read(lambda log: any(f["type"] == "delta" for f in log.frames))
    alice_token = alice.log.token
    following = asyncio.create_task(alice.read())

    bob = RunClient(f"{url}?token={bob_jwt}", shared)
    await bob.connect()
    refusals = []
    for action in ("resume", "cancel"):
        for token in (None, alice_token):
            message: dict[str, Any] = {"action": action, "request_id": shared, "after_seq": 0}
            if token is not None:
                message["run_token"] = token
            if action == "cancel":
                del message["after_seq"]
            await bob.send(**message)
            refusal = await bob.next_unsequenced()
            assert refusal["code"] == "unknown_run" and "seq" not in refusal, refusal
            refusals.append(refusal)
        await bob.send(action=action, request_id=new_id("nobody"))
        unknown = await recv_json(bob.ws)  # type: ignore[arg-type]
        assert unknown["code"] == "unknown_run" and "seq" not in unknown, unknown
        refusals.append(unknown)
    assert len({_template(f) for f in refusals if "to resume" in f["error"]}) == 1
    assert len({_template(f) for f in refusals if "to cancel" in f["error"]}) == 1
    # Over HTTP too: bob's bearer token does not reach alice's run, even with its run token.
    for token in (None, alice_token):
        headers = {"Authorization": f"Bearer {bob_jwt}"} | ({"X-Run-Token": token} if token else {})
        seen = httpx.get(f"{secured_gateway.endpoints.http_url}/runs/{shared}", headers=headers, timeout=WAIT)
        assert seen.status_code == 404 and seen.json()["code"] == "unknown_run", seen.text

    # Alice follows her run from a second connection by its request_id alone.
    again = RunClient(f"{url}?token={alice_jwt}", shared)
    await again.connect()
    await again.resume(after_seq=0, token=False)
    await again.read()
    terminal = again.log.check()
    assert terminal["type"] == "result" and terminal["data"]["stop_reason"] == "end_turn", terminal
    assert again.log.deltas == expected.deltas
    assert again.log.token == alice_token
    following.cancel()  # the second connection took over the live frames
    with contextlib.suppress(asyncio.CancelledError):
        await following
    assert not any("seq" in f for f in bob.others) and bob.log.raw == {}
    mine = httpx.get(
        f"{secured_gateway.endpoints.http_url}/runs/{shared}",
        headers={"Authorization": f"Bearer {alice_jwt}"},
        timeout=WAIT,
    )
    assert mine.status_code == 200 and mine.json()["status"] == "succeeded", mine.text

    # The same request_id is bob's own to use: his run, his token.
    await bob.invoke(*PERMITS)
    await bob.read()
    assert bob.log.check()["type"] == "result" and bob.log.token != alice_token
    for client in (alice, bob, again):
        await client.close()


# ---------------------------------------------------------------------------------- 5. HTTP


async def test_http_run_matches_the_websocket_answer_and_resumes_over_websocket(
    runs_gateway: GatewayProcess,
) -> None:
    expected = await reference(runs_gateway, FINANCING)
    request_id = new_id("h")
    question, query_type = FINANCING
    started = httpx.post(
        f"{runs_gateway.endpoints.http_url}/runs",
        json={"question": question, "query_type": query_type, "request_id": request_id},
        timeout=WAIT,
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["request_id"] == request_id and body["status"] == "running"
    assert started.headers["location"] == f"/runs/{request_id}"
    token = body["run_token"]
    assert http_run(runs_gateway, request_id, token).json()["status"] == "running"
    # Followed live over WebSocket with its token while it runs.
    live = RunClient(runs_gateway.endpoints.ws_url, request_id)
    live.log.token = token
    await live.connect()
    await live.resume(after_seq=0)
    await live.read()
    live.log.check()
    assert live.log.deltas == expected.deltas

    ended = wait_ended(runs_gateway, request_id, token)
    assert ended["status"] == "succeeded", ended
    assert ended["result"]["content"] == expected.frames[-1]["data"]["content"]
    assert ended["result"]["success"] is True
    # A resume from the start replays exactly the logged frames, up to the terminal one.
    replay = RunClient(runs_gateway.endpoints.ws_url, request_id)
    replay.log.token = token
    await replay.connect()
    await replay.resume(after_seq=0)
    await replay.read()
    terminal = replay.log.check()
    assert ended["frames"] == len(replay.log.arrivals) == terminal["seq"]
    assert terminal["data"] == ended["result"]
    assert await replay.quiet(0.3) == []
    for client in (live, replay):
        await client.close()


async def test_http_cancel_and_unknown_runs(runs_gateway: GatewayProcess) -> None:
    request_id = new_id("h")
    question, query_type = ZONING
    started = httpx.post(
        f"{runs_gateway.endpoints.http_url}/runs",
        json={"question": question, "query_type": query_type, "request_id": request_id},
        timeout=WAIT,
    )
    assert started.status_code == 202, started.text
    token = started.json()["run_token"]
    runs_gateway.wait_for(
        lambda: http_run(runs_gateway, request_id, token).json()["frames"] >= 6, "a few frames logged"
    )
    cancelling = http_run(runs_gateway, request_id, token, "DELETE")
    assert cancelling.status_code == 202, cancelling.text
    assert cancelling.json() == {"request_id": request_id, "status": "cancelling"}
    ended = wait_ended(runs_gateway, request_id, token)
    assert ended["status"] == "cancelled", ended
    assert ended["result"]["stop_reason"] == "cancelled" and ended["result"]["success"] is False
    again = http_run(runs_gateway, request_id, token, "DELETE")
    assert again.status_code == 409 and again.json()["code"] == "not_running", again.text
    # The log holds what was streamed: the cancelled result's content is its deltas.
    replay = RunClient(runs_gateway.endpoints.ws_url, request_id)
    replay.log.token = token
    await replay.connect()
    await replay.resume(after_seq=0)
    await replay.read()
    await replay.close()
    assert replay.log.check()["data"] == ended["result"]
    assert ended["result"]["content"] == replay.log.deltas
    # No token, a wrong one, an unknown id: one and the same 404.
    wrong = f"rt1.{token.split('.')[1]}.{'B' * 24}"
    refusals = [
        http_run(runs_gateway, request_id, None),
        http_run(runs_gateway, request_id, wrong),
        http_run(runs_gateway, request_id, "garbage"),
        http_run(runs_gateway, request_id, None, "DELETE"),
        http_run(runs_gateway, request_id, wrong, "DELETE"),
    ]
    for refusal in refusals:
        assert refusal.status_code == 404, refusal.text
        assert refusal.json()["code"] == "unknown_run"
    assert len({r.text for r in refusals}) == 1
    missing = new_id("h")
    unknown = http_run(runs_gateway, missing, token)
    assert unknown.status_code == 404
    assert unknown.text == refusals[0].text.replace(request_id, missing)


@pytest.mark.parametrize("request_id", ["h%41", "h ü+é"])
def test_location_of_an_unusual_request_id_finds_its_run(
    runs_gateway: GatewayProcess, request_id: str
) -> None:
    started = httpx.post(
        f"{runs_gateway.endpoints.http_url}/runs",
        json={"question": "What is the FAR in LR2?", "request_id": request_id},
        timeout=WAIT,
    )
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    assert location == "/runs/" + quote(request_id, safe="")
    seen = httpx.get(
        runs_gateway.endpoints.http_url + location,
        headers={"X-Run-Token": started.json()["run_token"]},
        timeout=WAIT,
    )
    assert seen.status_code == 200, seen.text
    assert seen.json()["request_id"] == request_id


def test_a_request_id_with_a_slash_has_no_http_path_as_in_api_gateway(runs_gateway: GatewayProcess) -> None:
    """HTTP APIs decode %2F before routing, so such an id matches no route (documented limit)."""
    started = httpx.post(
        f"{runs_gateway.endpoints.http_url}/runs",
        json={"question": "What is the FAR in LR2?", "request_id": "h/1"},
        timeout=WAIT,
    )
    assert started.status_code == 202, started.text
    seen = httpx.get(
        runs_gateway.endpoints.http_url + started.headers["location"],
        headers={"X-Run-Token": started.json()["run_token"]},
        timeout=WAIT,
    )
    assert (seen.status_code, seen.json()) == (404, {"message": "Not Found"})


# ---------------------------------------------------------------------------------- 6. on_disconnect


async def test_on_disconnect_cancel_stops_the_run_when_its_connection_drops(
    runs_gateway: GatewayProcess,
) -> None:
    tag = new_id("leaver")
    client = RunClient(runs_gateway.endpoints.ws_url + f"?tag={tag}")
    await client.connect()
    await client.invoke(*ZONING, on_disconnect="cancel")
    await client.read(lambda log: any(f["type"] == "delta" for f in log.frames))
    await client.drop()
    # The run meets the vanished connection when it next posts to it.
    await asyncio.to_thread(
        runs_gateway.wait_for,
        lambda: runs_gateway.connection(tag)["postsAfterClose"] >= 1,
        "a post to the dropped connection",
    )
    await client.connect(runs_gateway.endpoints.ws_url)
    await client.resume()
    await client.read()
    await client.close()
    terminal = client.log.check()
    assert terminal["type"] == "result", terminal
    assert terminal["data"]["stop_reason"] == "cancelled" and terminal["data"]["success"] is False
    assert terminal["data"]["content"] == client.log.deltas
    assert len(client.log.deltas) < len((await reference(runs_gateway, ZONING)).deltas)


# ---------------------------------------------------------------------------------- 7. duplicates


async def test_duplicate_request_id_while_running_is_refused_and_harmless(
    runs_gateway: GatewayProcess,
) -> None:
    expected = await reference(runs_gateway, ZONING)
    client = RunClient(runs_gateway.endpoints.ws_url)
    await client.connect()
    await client.invoke(*ZONING)
    await client.read(lambda log: log.token is not None)
    await client.invoke(*PERMITS)
    refusal = await client.next_unsequenced()
    assert refusal["type"] == "error" and refusal["code"] == "duplicate_request", refusal
    assert "seq" not in refusal and refusal["request_id"] == client.request_id
    await client.read()
    terminal = client.log.check()
    assert terminal["type"] == "result" and terminal["data"]["stop_reason"] == "end_turn"
    assert client.log.deltas == expected.deltas
    assert client.log.unsequenced == [refusal]
    # Anonymous ids are unique per connection: another connection may use the same one meanwhile.
    await client.close()


async def test_anonymous_request_ids_are_per_connection(runs_gateway: GatewayProcess) -> None:
    first = RunClient(runs_gateway.endpoints.ws_url)
    second = RunClient(runs_gateway.endpoints.ws_url, first.request_id)
    for client, question in ((first, ZONING), (second, PERMITS)):
        await client.connect()
        await client.invoke(*question)
        await client.read(lambda log: log.token is not None)
    await asyncio.gather(first.read(), second.read())
    assert first.log.token != second.log.token
    assert first.log.deltas == (await reference(runs_gateway, ZONING)).deltas
    assert second.log.deltas == (await reference(runs_gateway, PERMITS)).deltas
    for client in (first, second):
        assert client.log.check()["type"] == "result" and client.log.unsequenced == []
        await client.close()


async def test_request_id_is_free_again_once_its_result_arrived(runs_gateway: GatewayProcess) -> None:
    async def reuse() -> list[dict[str, Any]]:
        client = RunClient(runs_gateway.endpoints.ws_url)
        await client.connect()
        await client.invoke(*ZONING)
        await client.read()
        first_token = client.log.token
        # The run has ended (its terminal frame is here): the id is free again.
        client.log = RunLog(client.request_id)
        await client.invoke(*ZONING)
        await client.read(lambda log: log.done or bool(log.unsequenced))
        await client.close()
        if not client.log.unsequenced:
            assert client.log.check()["type"] == "result" and client.log.token != first_token
        return client.log.unsequenced

    refusals = [r for found in await asyncio.gather(*(reuse() for _ in range(10))) for r in found]
    assert refusals == []
