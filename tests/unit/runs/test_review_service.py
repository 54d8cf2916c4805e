"""Review of durable runs: interleavings and store failures that break the runs contract.

Each test reproduces an interleaving or failure a review found; they guard the fixes.

Real SqliteStore on a temp file, real threads, a fake management API; the agent is replaced by a
function that sends a few frames (the executor imports ``run_query`` at call time).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import selador.agents.orchestrator as orchestrator
from selador.deps import Dependencies
from selador.protocol import QueryRequest, ResultData, ResultFrame, StatusFrame
from selador.runs.executor import execute
from selador.runs.model import Started
from selador.runs.service import Runs
from selador.settings import Settings
from selador.store.sqlite import SqliteStore
from selador.websocket.management import PostFailed

ENDPOINT = "https://mgmt"


class Net:
    """The management API: records every delivered frame; ``fail_once`` makes one post fail."""

    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = defaultdict(list)
        self.calls: dict[str, int] = defaultdict(int)
        self.fail_at: dict[str, int] = {}
        self.lock = threading.Lock()

    def fail_once(self, connection_id: str, call: int) -> None:
        """The ``call``-th post to ``connection_id`` (1-based) raises PostFailed (429 past the bound)."""
        self.fail_at[connection_id] = call

    def __call__(self, endpoint: str) -> Net:
        return self

    def post(self, connection_id: str, data: bytes) -> None:
        with self.lock:
            self.calls[connection_id] += 1
            if self.fail_at.get(connection_id) == self.calls[connection_id]:
                raise PostFailed("LimitExceededException after 6 attempt(s)")
            self.received[connection_id].append(data)

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(d) for d in self.received[connection_id]]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def result_frame() -> ResultFrame:
    return ResultFrame(
        data=ResultData(
            content="FAR 1.3",
            agent="rag",
            query_type="zoning",
            tools_available=5,
            tools_used=1,
            stop_reason="end_turn",
        )
    )


def fake_agent(
    request: QueryRequest,
    sink: Any,
    *,
    settings: Settings,
    deadline: float | None = None,
    conversation: Any = None,
) -> None:
    sink.send(StatusFrame(stage="routing", message="routing"))
    sink.send(StatusFrame(stage="tool", message="searching"))
    sink.send(result_frame())


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orchestrator, "run_query", fake_agent)


def make_deps(store: SqliteStore, net: Net) -> Dependencies:
    settings = Settings(run_poll_ms=20)
    return Dependencies(settings=settings, store_factory=lambda _: store, management_factory=net)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "review.sqlite3")


def start(runs: Runs, request_id: str, *, principal: str | None = None, conn: str = "c1") -> Started:
    started = runs.start(
        QueryRequest(question="What is the FAR in LR2?", request_id=request_id),
        principal=principal,
        scope=f"p:{principal}" if principal else f"c:{conn}",
        limit_subject=None,
        connection_id=conn,
        endpoint=ENDPOINT,
    )
    assert isinstance(started, Started), started
    runs.post(conn, ENDPOINT, started.accepted)
    return started


def terminal_types(frames: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(f["type"], f["seq"]) for f in frames if f["type"] in ("result", "error")]


# -- a store failure in the sender --------------------------------------------------------------------


class FailingAppends(SqliteStore):
    """``append_frame`` raises once for each seq in ``fail_seqs`` (``terminal``: for the finish write)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.fail_seqs: set[int] = set()
        self.fail_terminal = False

    def append_frame(self, run_id: str, seq: int, data: str, expires_at: int, *, finish: Any = None) -> bool:
        if seq in self.fail_seqs:
            self.fail_seqs.discard(seq)
            raise sqlite3.OperationalError("database is locked")
        if finish is not None and self.fail_terminal:
            self.fail_terminal = False
            raise sqlite3.OperationalError("database is locked")
        return super().append_frame(run_id, seq, data, expires_at, finish=finish)


def test_review_one_transient_append_failure_hides_the_terminal_frame_from_resume(path: str) -> None:
    store, net = FailingAppends(path), Net()
    runs = Runs(make_deps(store, net))
    request = QueryRequest(question="What is the FAR in LR2?", request_id="r-gap")
    started = start(runs, "r-gap")
    store.fail_seqs = {2}  # the first frame the executor logs hits a busy database once
    assert execute(runs.deps, None, started.run.run_id, request)

    ended = store.get_run(started.run.run_id)
    assert ended is not None and ended.status == "succeeded" and ended.frames == 4
    assert terminal_types(net.frames("c1")) == [("result", 4)]  # the live client was fine

    run = runs.lookup("r-gap", principal=None, token=started.token)
    assert run is not None
    runs.resume(run, after_seq=0, connection_id="c2", endpoint=ENDPOINT)
    # The contract: "Resuming a finished run replays up to and including its terminal frame."
    assert terminal_types(net.frames("c2")) == [("result", 4)], [f["seq"] for f in net.frames("c2")]


def test_review_terminal_append_failure_leads_to_a_second_terminal_frame(path: str) -> None:
    store, net = FailingAppends(path), Net()
    runs = Runs(make_deps(store, net))
    request = QueryRequest(question="What is the FAR in LR2?", request_id="r-two")
    started = start(runs, "r-two")
    store.fail_terminal = True
    assert execute(runs.deps, None, started.run.run_id, request)
    assert terminal_types(net.frames("c1")) == [("result", 4)]  # the client heard the end

    # The record still says running; its lease ends (Lambda's 15 minutes later, in production).
    assert store.update_run(started.run.run_id, {"lease_until": time.time() - 1}) is not None
    runs.lookup("r-two", principal=None, token=started.token)  # any reader reaps it

    assert terminal_types(net.frames("c1")) == [("result", 4)], terminal_types(net.frames("c1"))
    assert store.get_run(started.run.run_id).status == "succeeded"  # type: ignore[union-attr]


# -- invariant 3: claims are free before the client hears the end -------------------------------------


class SlowRelease(SqliteStore):
    """``release`` waits for ``gate`` (a slow store write) before doing its work."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate.set()

    def release(self, key: str, owner: str) -> bool:
        self.gate.wait(10)
        return super().release(key, owner)


def test_review_the_end_is_visible_while_the_active_claim_is_still_held(path: str) -> None:
    store, net = SlowRelease(path), Net()
    runs = Runs(make_deps(store, net))
    request = QueryRequest(question="What is the FAR in LR2?", request_id="r-claim")
    started = start(runs, "r-claim", principal="alice")
    store.gate.clear()
    worker = threading.Thread(target=execute, args=(runs.deps, None, started.run.run_id, request))
    worker.start()
    try:
        # What POST /invoke's wait loop and GET /runs/{id} look at.
        assert wait_for(lambda: not store.get_run(started.run.run_id).active)  # type: ignore[union-attr]
        again = runs.start(request, principal="alice", scope="p:alice", limit_subject=None)
        assert isinstance(again, Started), again
    finally:
        store.gate.set()
        worker.join(10)


# -- a listener detached after it resumed ---------------------------------------------------------------


class PausingDetach(SqliteStore):
    """The sender's detach (``connection_id`` -> None) waits for ``go`` after setting ``detaching``."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.detaching = threading.Event()
        self.go = threading.Event()

    def update_run(self, run_id: str, changes: Any, **kwargs: Any) -> Any:
        if "connection_id" in changes and changes["connection_id"] is None:
            self.detaching.set()
            self.go.wait(10)
        return super().update_run(run_id, changes, **kwargs)


def test_review_a_resume_from_the_same_connection_is_undone_by_a_late_detach(path: str) -> None:
    from selador.runs.sender import RunSender

    store, net = PausingDetach(path), Net()
    runs = Runs(make_deps(store, net))
    started = start(runs, "r-same", conn="A")  # A receives the accepted frame (call 1)
    run = store.update_run(started.run.run_id, {"status": "running"})
    assert run is not None
    sender = RunSender(run, store=store, management=net, flush_ms=10_000, poll_ms=20, first_seq=2)
    net.fail_once("A", call=3)  # the sender's 2nd frame hits a throttled management API
    sender.send(StatusFrame(stage="routing", message="a"))
    sender.send(StatusFrame(stage="tool", message="b"))
    assert store.detaching.wait(5)
    # The client on A resumes from what it has (seq 2) while the sender is detaching A.
    current = runs.lookup("r-same", principal=None, token=started.token)
    assert current is not None
    runs.resume(current, after_seq=2, connection_id="A", endpoint=ENDPOINT)
    store.go.set()
    time.sleep(0.1)  # a few polls
    sender.send(StatusFrame(stage="composing", message="c"))
    sender.send(result_frame())
    sender.close()

    seqs = [f["seq"] for f in net.frames("A")]
    # Everything reaches A (a seq may come twice around the resume), and the end comes last.
    assert sorted(set(seqs)) == [1, 2, 3, 4, 5] and seqs[-1] == 5, seqs


def test_review_a_closed_listener_is_not_reattached_by_the_same_poll(path: str) -> None:
    from selador.runs.sender import RunSender
    from selador.store.base import ConnectionRecord, RunRecord

    store, net = SqliteStore(path), Net()
    store.put_connection(ConnectionRecord(connection_id="A", connected_at=time.time(), expires_at=2**31))
    now = time.time()
    run = RunRecord(
        run_id="run-closed",
        request_id="q-closed",
        token_digest="d",
        status="running",
        created_at=now,
        expires_at=int(now) + 7200,
        lease_until=now + 3600,
        connection_id="A",
        endpoint=ENDPOINT,
        on_disconnect="cancel",
    )
    store.create_run(run)
    sender = RunSender(run, store=store, management=net, flush_ms=10_000, poll_ms=20, first_seq=1)
    sender.send(StatusFrame(stage="routing", message="working"))
    # Posting is the sender thread's: the close must come after frame 1 went out, as the test says.
    assert wait_for(lambda: bool(net.frames("A")))
    store.delete_connection("A")  # the client closes; $disconnect deletes its record
    assert wait_for(sender.cancel_signal.is_set)  # the next poll notices
    time.sleep(0.1)  # a few more polls
    sender.send(result_frame())
    sender.close()
    # Frame 1 went out once, before the close; nothing may go to the closed connection after it.
    assert [f["seq"] for f in net.frames("A")] == [1], [f["seq"] for f in net.frames("A")]
