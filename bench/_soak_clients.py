"""The soak's clients (:mod:`bench.soak`): their plan, the three kinds, and what each saw.

A client **stays** (follows every question to its terminal frame), **leaves** (closes its
connection for good mid-answer) or **drops** (aborts its connection mid-answer, reconnects and
sends ``resume``); see :mod:`bench.soak` for the plan's rates and what the report checks.
"""

from __future__ import annotations

import asyncio
import json
import random
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.sequence import SeqLog

QUESTIONS: list[tuple[str, str]] = [
    ("What are the zoning requirements for residential development in LR2?", "zoning"),
    ("What is the maximum height and FAR in the NC2-55 zone?", "zoning"),
    ("Which building code applies to a new duplex, and what are the energy code rules?", "building_codes"),
    ("What permits do I need to build a deck, and what will the permit fee be for $40,000?", "permits"),
    ("How much would a $600,000 house cost per month with 20% down at 6.5%?", "financing"),
    ("Can I add a backyard cottage (DADU) in a neighborhood residential zone?", "general"),
]
Kind = Literal["stay", "leave", "drop"]


@dataclass
class Query:
    """What one client saw of one query, over every connection it used."""

    request_id: str
    on_disconnect: str = "continue"
    log: SeqLog = field(default_factory=SeqLog)
    token: str | None = None
    drops: int = 0
    """Times the connection was dropped during this query (each followed by a ``resume``)."""
    final_status: str | None = None
    """The run's status from ``GET /runs`` at the end (``http 404`` when it could not be read)."""

    @property
    def terminal(self) -> str | None:
        """How it ended for the client: ``result``, ``error`` or ``None``."""
        return self.log.terminal_type


@dataclass
class Conn:
    """One WebSocket connection a client opened (``tag`` finds it in the gateway's stats)."""

    tag: str
    resumes: int = 0
    closed_mid_run: bool = False

    @property
    def posts_allowed_after_close(self) -> int:
        """Posts to it after it closed that are not a fault (see :mod:`bench.soak`'s docstring)."""
        return int(self.closed_mid_run) + min(self.resumes, 1)


@dataclass
class Client:
    """One client's plan and what it saw."""

    index: int
    questions: int
    kind: Kind = "stay"
    leave_at: int | None = None
    """Index of the question during which a leaver leaves."""
    on_disconnect: str = "continue"
    drops_planned: list[int] = field(default_factory=list)
    """Per question, how many times a dropper drops its connection during it."""
    queries: list[Query] = field(default_factory=list)
    connections: list[Conn] = field(default_factory=list)
    left: bool = False
    failure: str | None = None

    @property
    def drops_done(self) -> int:
        return sum(q.drops for q in self.queries)


def plan_clients(count: int, rng: random.Random, leave_rate: float, drop_rate: float) -> list[Client]:
    """Who stays, leaves or drops, how many questions each asks, and when the leavers and droppers act."""
    clients = []
    for index in range(count):
        questions = rng.randint(1, 3)
        draw = rng.random()
        client = Client(index, questions)
        if draw < leave_rate:
            client.kind = "leave"
            client.leave_at = rng.randrange(questions)
            client.on_disconnect = rng.choice(("cancel", "continue"))
        elif draw < leave_rate + drop_rate:
            client.kind = "drop"
            client.drops_planned = [0] * questions
            for _ in range(rng.randint(1, 3)):
                client.drops_planned[rng.randrange(questions)] += 1
        clients.append(client)
    return clients


class Session:
    """A client's current connection; reconnects after a drop under a new tag."""

    def __init__(self, client: Client, url: str) -> None:
        self.client = client
        self.url = url
        self.ws: ClientConnection | None = None
        self.conn: Conn | None = None

    async def open(self) -> ClientConnection:
        conn = Conn(f"soak-{self.client.index}-{len(self.client.connections)}")
        self.client.connections.append(conn)
        self.ws = await connect(
            self.url + f"?tag={conn.tag}",
            proxy=None,
            open_timeout=60,
            max_size=None,
            ping_interval=None,
            close_timeout=5,
        )
        self.conn = conn
        return self.ws

    async def close(self) -> None:
        if self.ws is not None:
            with suppress(ConnectionClosed, WebSocketException, OSError):
                await self.ws.close()

    def abort(self) -> None:
        """Drop the connection with no close frame (the client's network went away)."""
        if self.ws is not None and self.ws.transport is not None:
            self.ws.transport.abort()


async def _follow(
    session: Session, query: Query, by_id: dict[str, Query], rng: random.Random, number: int
) -> None:
    """Read frames until ``query`` ends; leave or drop-and-resume mid-answer when planned."""
    client = session.client
    leave = client.kind == "leave" and client.leave_at == number
    drops_left = client.drops_planned[number] if client.kind == "drop" else 0
    trigger = rng.randint(1, 2)
    new_deltas = 0
    while True:
        assert session.ws is not None
        frame = json.loads(await session.ws.recv())
        owner = by_id.get(str(frame.get("request_id")))
        if owner is None:
            continue  # API Gateway's own messages (none expected)
        new = owner.log.offer_frame(frame)
        if owner is not query:
            continue  # a late frame of an earlier query: judged with that query
        if new and frame.get("run_token"):
            query.token = str(frame["run_token"])
        if query.log.ended:
            return
        if "seq" not in frame and frame.get("type") == "error":
            return  # an error about our message (refused invoke, unknown_run): the query is over
        if not new or frame.get("type") != "delta":
            continue
        new_deltas += 1
        if leave:
            assert session.conn is not None
            session.conn.closed_mid_run = True
            await session.close()
            client.left = True
            return
        if drops_left and new_deltas >= trigger and query.token:
            assert session.conn is not None
            session.conn.closed_mid_run = True
            session.abort()
            drops_left -= 1
            query.drops += 1
            await asyncio.sleep(rng.uniform(0, 0.05))
            ws = await session.open()
            assert session.conn is not None
            session.conn.resumes += 1
            await ws.send(
                json.dumps(
                    {
                        "action": "resume",
                        "request_id": query.request_id,
                        "after_seq": query.log.contiguous,
                        "run_token": query.token,
                    }
                )
            )
            new_deltas, trigger = 0, rng.randint(1, 2)


async def run_client(
    client: Client, url: str, rng: random.Random, start: asyncio.Event, timeout: float
) -> None:
    """Connect, ask the questions in turn; leave, or drop and resume, mid-answer when planned."""
    session = Session(client, url)
    by_id: dict[str, Query] = {}
    try:
        await session.open()
        try:
            await start.wait()  # every client connects first: all at once, then all ask
            for number in range(client.questions):
                question, query_type = rng.choice(QUESTIONS)
                query = Query(request_id=f"c{client.index}-q{number}", on_disconnect=client.on_disconnect)
                client.queries.append(query)
                by_id[query.request_id] = query
                assert session.ws is not None
                await session.ws.send(
                    json.dumps(
                        {
                            "action": "invoke",
                            "question": question,
                            "query_type": query_type,
                            "request_id": query.request_id,
                            "on_disconnect": client.on_disconnect,
                        }
                    )
                )
                await asyncio.wait_for(_follow(session, query, by_id, rng, number), timeout)
                if client.left:
                    return
        finally:
            if not client.left:
                await session.close()
    except (TimeoutError, ConnectionClosed, WebSocketException, OSError) as exc:
        client.failure = f"{type(exc).__name__}: {exc}"
