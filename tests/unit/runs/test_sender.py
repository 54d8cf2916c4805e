"""RunSender: ordering, coalescing, the frame log, listeners that vanish or change, cancel, one end."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest

from selador.protocol import (
    MAX_MESSAGE_BYTES,
    ErrorFrame,
    MessageFrame,
    ResultData,
    ResultFrame,
    StatusFrame,
    parse_frame,
)
from selador.runs.frames import FRAME_BUDGET_BYTES, fit_frame
from selador.runs.model import terminal_finish
from selador.runs.sender import RunSender
from selador.store.base import RunRecord
from selador.store.sqlite import SqliteStore
from selador.websocket.management import ConnectionGone, PostFailed


class Net:
    """Stands in for the management API: records what each connection received, fails on demand."""

    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = defaultdict(list)
        self.failures: dict[str, tuple[int, type[Exception]]] = {}
        self.calls: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def fail(self, connection_id: str, after: int = 0, exc: type[Exception] = ConnectionGone) -> None:
        self.failures[connection_id] = (after, exc)

    def __call__(self, endpoint: str) -> Net:
        assert endpoint == "https://mgmt"
        return self

    def post(self, connection_id: str, data: bytes) -> None:
        with self.lock:
            self.calls[connection_id] += 1
            failure = self.failures.get(connection_id)
            if failure is not None and self.calls[connection_id] > failure[0]:
                raise failure[1]("x")
            self.received[connection_id].append(data)

    def frames(self, connection_id: str) -> list[dict]:
        with self.lock:
            return [json.loads(d) for d in self.received[connection_id]]


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    sqlite = SqliteStore(":memory:")
    yield sqlite
    sqlite.close()


def new_run(store: SqliteStore, *, listener: str | None = "c1", on_disconnect: str = "continue") -> RunRecord:
    now = time.time()
    run = RunRecord(
        run_id=f"run-{time.monotonic_ns()}",
        request_id="q-1",
        token_digest="d",
        status="running",
        created_at=now,
        expires_at=int(now) + 7200,
        lease_until=now + 3600,
        connection_id=listener,
        endpoint="https://mgmt" if listener else None,
        on_disconnect=on_disconnect,
    )
    store.create_run(run)
    return run


def make_sender(store: SqliteStore, net: Net, run: RunRecord, **kwargs: object) -> RunSender:
    options: dict[str, object] = {"flush_ms": 10_000, "poll_ms": 5000, "first_seq": 1}
    options.update(kwargs)
    return RunSender(run, store=store, management=net, **options)  # type: ignore[arg-type]


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def result(content: str = "done", stop_reason: str = "end_turn") -> ResultFrame:
    return ResultFrame(
        data=ResultData(
            content=content,
            agent="rag",
            query_type="zoning",
            tools_available=5,
            tools_used=1,
            stop_reason=stop_reason,
        )
    )


def logged(store: SqliteStore, run: RunRecord) -> list[bytes]:
    return [data.encode() for _, data in store.read_frames(run.run_id, 0, 10_000)]


# -- order, coalescing, the log ------------------------------------------------------------------


def test_frames_are_stamped_logged_and_posted_byte_identical(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run)
    sender.send(StatusFrame(message="a"))
    sender.delta("Hello")
    sender.delta(" world")
    sender.send(StatusFrame(message="b"))
    sender.send(result())
    stats = sender.close()

    frames = net.frames("c1")
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert {f["request_id"] for f in frames} == {"q-1"}
    # First delta at once; the second flushed by the following status frame; order kept.
    assert [(f["type"], f.get("content") or f.get("message")) for f in frames[:4]] == [
        ("status", "a"),
        ("delta", "Hello"),
        ("delta", " world"),
        ("status", "b"),
    ]
    assert logged(store, run) == net.received["c1"]  # what a resume replays is what was posted
    assert stats.frames_posted == stats.frames_logged == 5 and stats.finished
    for frame in frames:
        parse_frame(json.dumps(frame))


def test_the_terminal_frame_ends_the_run_in_the_same_write(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, log_ttl_s=600)
    sender.delta("partial")
    sender.send(result("the answer"))
    sender.close()
    ended = store.get_run(run.run_id)
    assert ended is not None
    assert ended.status == "succeeded" and ended.frames == 2
    assert json.loads(ended.result or "")["content"] == "the answer"
    assert ended.ended_at is not None and ended.expires_at == pytest.approx(ended.ended_at + 600, abs=2)


@pytest.mark.parametrize(
    ("terminal", "status"),
    [(ErrorFrame(code="timeout", error="too long"), "failed"), (result("so far", "cancelled"), "cancelled")],
)
def test_the_final_status_follows_the_terminal_frame(
    store: SqliteStore, terminal: object, status: str
) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run)
    sender.send(terminal)  # type: ignore[arg-type]
    sender.close()
    ended = store.get_run(run.run_id)
    assert ended is not None and ended.status == status


def test_nothing_follows_the_terminal_frame(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run)
    sender.send(result())
    sender.send(ErrorFrame(code="internal_error", error="late"))
    sender.delta("late text")
    stats = sender.close()
    assert [f["type"] for f in net.frames("c1")] == ["result"]
    assert len(logged(store, run)) == 1 and stats.frames_dropped == 1


def test_closing_without_a_terminal_frame_ends_the_run_with_internal_error(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run)
    sender.delta("half an answer")
    sender.close()
    frames = net.frames("c1")
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "internal_error"
    ended = store.get_run(run.run_id)
    assert ended is not None and ended.status == "failed"


def test_deltas_are_coalesced_after_the_first(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, flush_ms=60_000)
    tokens = [f"t{i} " for i in range(500)]
    for token in tokens:
        sender.delta(token)
    sender.send(result())
    sender.close()
    deltas = [f["content"] for f in net.frames("c1") if f["type"] == "delta"]
    assert "".join(deltas) == "".join(tokens)
    assert deltas[0] == "t0 " and len(deltas) == 2  # the first at once, the rest flushed by the result


def test_size_cap_splits_long_text(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, flush_ms=60_000, max_chars=100)
    sender.delta("x")
    sender.delta("y" * 1050)
    sender.close()
    deltas = [f["content"] for f in net.frames("c1") if f["type"] == "delta"]
    assert "".join(deltas) == "x" + "y" * 1050
    assert max(len(d) for d in deltas) <= 100


def test_time_window_flushes_without_more_input(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, flush_ms=20)
    sender.delta("first")
    sender.delta("second")
    assert wait_for(lambda: len(net.frames("c1")) == 2)
    assert [f["content"] for f in net.frames("c1")] == ["first", "second"]
    sender.close()


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_window_grows_and_restarts_after_a_complete_frame(store: SqliteStore) -> None:
    """A model that says a sentence, calls a tool, then answers: the answer starts at once."""
    clock, net, run = ManualClock(), Net(), new_run(store)
    sender = make_sender(store, net, run, flush_ms=100, flush_max_ms=1500, clock=clock)

    def contents() -> list[str]:
        return [f.get("content") or f.get("message") for f in net.frames("c1")]

    sender.delta("Let me look that up. ")  # at once
    assert wait_for(lambda: contents() == ["Let me look that up. "])
    sender.delta("More")
    clock.t += 0.1  # the first window (100 ms) passes
    assert wait_for(lambda: contents()[-1:] == ["More"])
    sender.delta(" text")
    clock.t += 0.1  # the window has grown to 200 ms: not yet
    time.sleep(0.25)
    assert contents()[-1] == "More"
    clock.t += 0.1
    assert wait_for(lambda: contents()[-1:] == [" text"])

    sender.send(StatusFrame(message="Calling a tool"))  # a complete frame: start over
    sender.delta("The answer")  # at once again, no clock movement at all
    assert wait_for(lambda: contents()[-2:] == ["Calling a tool", "The answer"])
    sender.delta(" continues")
    clock.t += 0.1  # and the window is back to 100 ms
    assert wait_for(lambda: contents()[-1:] == [" continues"])
    sender.close()


# -- listeners that vanish -----------------------------------------------------------------------


def test_a_vanished_listener_detaches_and_the_run_goes_on(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    net.fail("c1", after=2)
    gone: list[str] = []
    sender = make_sender(store, net, run, flush_ms=0, on_gone=gone.append)
    for i in range(6):
        sender.send(StatusFrame(message=str(i)))
    sender.send(result())
    stats = sender.close()

    assert not sender.cancel_signal.is_set()  # on_disconnect: continue
    assert stats.gone and gone == ["c1"]
    assert net.calls["c1"] == 3  # two delivered, the third hit 410, nothing posted there after
    assert len(logged(store, run)) == 7  # but every frame is in the log for a resume
    ended = store.get_run(run.run_id)
    assert ended is not None and ended.status == "succeeded" and ended.connection_id is None


def test_a_run_that_asked_to_end_with_its_connection_is_cancelled(store: SqliteStore) -> None:
    net, run = Net(), new_run(store, on_disconnect="cancel")
    net.fail("c1", after=1)
    sender = make_sender(store, net, run)
    sender.send(StatusFrame(message="a"))
    sender.send(StatusFrame(message="b"))
    assert wait_for(sender.cancel_signal.is_set)
    sender.send(result("so far", "cancelled"))  # what the orchestrator does when it sees the signal
    sender.close()
    ended = store.get_run(run.run_id)
    assert ended is not None and ended.status == "cancelled"
    assert json.loads(logged(store, run)[-1])["data"]["stop_reason"] == "cancelled"


@pytest.mark.parametrize("exc", [PostFailed, RuntimeError])
def test_a_delivery_failure_detaches_without_deleting_the_connection(
    store: SqliteStore, exc: type[Exception]
) -> None:
    net, run = Net(), new_run(store)
    net.fail("c1", after=1, exc=exc)
    gone: list[str] = []
    sender = make_sender(store, net, run, on_gone=gone.append)
    for i in range(3):
        sender.send(StatusFrame(message=str(i)))
    stats = sender.close()
    assert stats.failed and not stats.gone and gone == []
    assert stats.frames_posted == 1 and net.calls["c1"] == 2
    assert not sender.cancel_signal.is_set()


# -- the record: cancel and new listeners ----------------------------------------------------------


def test_a_cancel_request_in_the_store_stops_the_agent_within_a_poll(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, poll_ms=20)
    sender.delta("working")
    store.update_run(run.run_id, {"cancel_requested": True})
    assert wait_for(sender.cancel_signal.is_set, timeout=1.0)
    assert sender.cancel_reason == "cancel requested"
    sender.close()


def test_a_new_listener_gets_everything_since_the_last_poll_then_the_live_frames(store: SqliteStore) -> None:
    """The resume seam: log read after the attach plus what the sender sends covers every seq."""
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, poll_ms=20, flush_ms=0)
    for i in range(5):
        sender.send(StatusFrame(message=f"before {i}"))
    assert wait_for(lambda: len(net.frames("c1")) == 5)
    # What resume does: attach, then read the log.
    store.update_run(run.run_id, {"connection_id": "c2", "endpoint": "https://mgmt", "listener_id": "l-2"})
    replayed = {seq for seq, _ in store.read_frames(run.run_id, 0, 100)}
    for i in range(5):
        sender.send(StatusFrame(message=f"after {i}"))
    sender.send(result())
    sender.close()

    live = [f["seq"] for f in net.frames("c2")]
    assert live == sorted(live) and live[-1] == 11  # in order, through the terminal frame
    assert replayed | set(live) == set(range(1, 12))  # nothing falls between replay and live
    assert len(net.frames("c1")) < 11  # the old listener stopped getting frames


def test_a_cancel_just_before_the_end_still_brings_the_terminal_frame_to_the_canceller(
    store: SqliteStore,
) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, poll_ms=60_000)  # no periodic poll will see the change
    sender.send(StatusFrame(message="a"))
    assert wait_for(lambda: len(net.frames("c1")) == 1)
    store.update_run(
        run.run_id,
        {"cancel_requested": True, "connection_id": "c9", "endpoint": "https://mgmt", "listener_id": "l-9"},
    )
    sender.send(result())
    sender.close()
    # Everything since the sender's last look at the record (here: since the start), then the end.
    assert [f["type"] for f in net.frames("c9")] == ["status", "result"]


# -- exactly one end ---------------------------------------------------------------------------------


def test_a_run_ended_elsewhere_stops_this_sender(store: SqliteStore) -> None:
    """Someone ended the run (its lease ran out): this executor must not post after that end."""
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, flush_ms=0)
    sender.send(StatusFrame(message="a"))
    assert wait_for(lambda: len(net.frames("c1")) == 1)
    other = ErrorFrame(code="internal_error", error="stopped", request_id="q-1", seq=2)
    finish = terminal_finish(other, expect_status=frozenset({"running"}), log_ttl_s=60)
    assert store.append_frame(run.run_id, 2, other.to_json(), run.expires_at, finish=finish)
    sender.send(StatusFrame(message="b"))  # seq 2 is taken
    sender.send(result())
    stats = sender.close()
    assert stats.superseded and sender.cancel_signal.is_set()
    assert [f["seq"] for f in net.frames("c1")] == [1]
    assert [json.loads(d)["type"] for d in logged(store, run)] == ["status", "error"]


def test_nothing_is_posted_that_the_log_does_not_hold(store: SqliteStore) -> None:
    """A store that keeps failing stops the run (its lease reaper ends it after the last logged seq)."""

    class Broken(SqliteStore):
        def append_frame(self, *args: object, **kwargs: object) -> bool:
            raise OSError("disk full")

    broken = Broken(":memory:")
    net, run = Net(), new_run(broken)
    sender = make_sender(broken, net, run)
    sender.send(StatusFrame(message="a"))
    sender.send(result())
    stats = sender.close()
    assert stats.log_failed and sender.cancel_signal.is_set()
    assert net.frames("c1") == []


def test_a_log_write_that_fails_once_is_retried_and_the_log_stays_whole(store: SqliteStore) -> None:
    class Flaky(SqliteStore):
        failures = 1

        def append_frame(self, *args: object, **kwargs: object) -> bool:
            if self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database is locked")
            return super().append_frame(*args, **kwargs)  # type: ignore[arg-type]

    flaky = Flaky(":memory:")
    net, run = Net(), new_run(flaky)
    sender = make_sender(flaky, net, run)
    sender.send(StatusFrame(message="a"))
    sender.send(StatusFrame(message="b"))
    sender.send(result())
    stats = sender.close()
    assert not stats.log_failed and [f["seq"] for f in net.frames("c1")] == [1, 2, 3]
    assert logged(flaky, run) == net.received["c1"]


# -- frame size -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [200_000, 1_100_000])
def test_fit_frame_truncates_long_results_under_the_limit(size: int) -> None:
    content = ('a"\n\u00e9' * (size // 4))[:size]
    frame = result(content).model_copy(update={"request_id": "q", "seq": 9})
    text = fit_frame(frame)
    assert len(text.encode()) <= FRAME_BUDGET_BYTES < MAX_MESSAGE_BYTES
    parsed = parse_frame(text)
    assert isinstance(parsed, ResultFrame)
    assert parsed.data.content_truncated is True
    assert parsed.data.content_length == size
    assert content.startswith(parsed.data.content)

    message = fit_frame(MessageFrame(content=content))
    parsed_message = parse_frame(message)
    assert isinstance(parsed_message, MessageFrame)
    assert parsed_message.content_truncated is True
    assert len(message.encode()) <= FRAME_BUDGET_BYTES


def test_small_frames_are_not_truncated() -> None:
    text = fit_frame(MessageFrame(content="short"))
    loaded = json.loads(text)
    assert loaded.pop("timestamp") > 0
    assert loaded == {"type": "message", "role": "assistant", "content": "short"}


def test_one_megabyte_answer_arrives_whole_through_deltas(store: SqliteStore) -> None:
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, flush_ms=5, max_chars=8192)
    piece = "word \u00e9\u4e2d\n" * 10
    total = ""
    while len(total) < 1_000_000:
        sender.delta(piece)
        total += piece
    sender.close()
    frames = net.frames("c1")
    assert "".join(f["content"] for f in frames if f["type"] == "delta") == total
    assert max(len(d) for d in net.received["c1"]) <= MAX_MESSAGE_BYTES


def test_the_largest_allowed_delta_of_control_characters_fits(store: SqliteStore) -> None:
    from selador.settings import Settings

    limit = Settings.model_fields["stream_max_frame_chars"].metadata[-1].le
    net, run = Net(), new_run(store)
    sender = make_sender(store, net, run, max_chars=limit)
    sender.delta("\x01" * limit)  # 6 bytes each once escaped in JSON
    stats = sender.close()
    assert stats.failed is None and max(len(d) for d in net.received["c1"]) <= MAX_MESSAGE_BYTES


def test_worker_log_lines_carry_the_invocation_keys(store: SqliteStore) -> None:
    """Keys live in context variables (concurrent invocations share a process locally)."""
    import logging

    from selador.observability import logger

    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Collect()
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.name).addHandler(handler)
    logger.thread_safe_append_keys(connection_id="conn-A", request_id="q-A")
    try:
        net, run = Net(), new_run(store)
        net.fail("c1")
        sender = make_sender(store, net, run)
        sender.send(StatusFrame(message="x"))
        sender.close()
    finally:
        logger.thread_safe_remove_keys(["connection_id", "request_id"])
        logging.getLogger(logger.name).removeHandler(handler)
    detached = [line for line in lines if line["message"] == "listener detached"]
    assert detached and detached[0]["connection_id"] == "conn-A" and detached[0]["request_id"] == "q-A"


def test_a_run_that_ends_with_its_connection_stops_when_disconnect_removed_the_record(
    store: SqliteStore,
) -> None:
    """No post needed: $disconnect deleted the record, the next poll cancels the run."""
    from selador.store.base import ConnectionRecord

    store.put_connection(ConnectionRecord(connection_id="c1", connected_at=time.time(), expires_at=2**31))
    net, run = Net(), new_run(store, on_disconnect="cancel")
    sender = make_sender(store, net, run, poll_ms=20)
    sender.send(StatusFrame(message="working"))
    time.sleep(0.1)
    assert not sender.cancel_signal.is_set()  # the connection is there: keep going
    store.delete_connection("c1")  # what $disconnect does
    assert wait_for(sender.cancel_signal.is_set, timeout=2.0)
    assert sender.cancel_reason == "connection closed"
    sender.send(result("so far", "cancelled"))
    sender.close()
    assert [f["type"] for f in net.frames("c1")] == ["status"]  # nothing posted to the closed one


def test_a_continuing_run_ignores_a_closed_connection_until_a_post_fails(store: SqliteStore) -> None:
    net, run = Net(), new_run(store, on_disconnect="continue")  # c1 has no record at all
    sender = make_sender(store, net, run, poll_ms=20)
    sender.send(StatusFrame(message="a"))
    time.sleep(0.15)
    assert not sender.cancel_signal.is_set()
    sender.close()


# -- the totals metrics are made of ----------------------------------------------------------------


class ThrottledNet(Net):
    """Every post "retried" two 429s inside the adapter before it went through."""

    def __init__(self) -> None:
        super().__init__()
        self.throttled = 0

    def __call__(self, endpoint: str) -> ThrottledNet:
        # One adapter per post, as deps.management builds it: its counter starts at zero.
        fresh = self.__class__.__new__(self.__class__)
        fresh.__dict__ = {**self.__dict__, "throttled": 2}
        return fresh


def test_the_sender_totals_name_the_outcome_first_frames_and_429s(store: SqliteStore) -> None:
    net = ThrottledNet()
    run = new_run(store)
    sender = make_sender(store, net, run)
    sender.send(StatusFrame(stage="routed", message="routed"))
    sender.delta("Hello")
    sender.send(result(stop_reason="max_tokens"))
    stats = sender.close()
    assert stats.frames_posted == 3 and stats.throttled == 6
    assert stats.outcome == "max_tokens" and stats.error_code is None
    assert stats.first_frame_at is not None and stats.first_delta_at is not None
    assert run.created_at <= stats.first_frame_at <= stats.first_delta_at


def test_an_error_frame_ends_with_outcome_error_and_its_code(store: SqliteStore) -> None:
    sender = make_sender(store, Net(), new_run(store, listener=None))
    sender.send(ErrorFrame(code="timeout", error="too long"))
    stats = sender.close()
    assert (stats.outcome, stats.error_code) == ("error", "timeout")
    assert stats.first_delta_at is None and stats.frames_posted == 0


def test_a_management_client_that_cannot_be_built_detaches_the_listener(store: SqliteStore) -> None:
    class Broken(Net):
        def __call__(self, endpoint: str) -> Net:
            raise ValueError("Invalid endpoint: " + endpoint)

    run = new_run(store)
    sender = RunSender(run, store=store, management=Broken(), flush_ms=10_000, poll_ms=5000, first_seq=1)
    sender.send(StatusFrame(stage="routed", message="routed"))
    sender.send(result())
    stats = sender.close(timeout=3)
    assert stats.failed == "ValueError"
    assert store.get_run(run.run_id).status != "running", "the run still ends with its terminal frame"
