"""FrameSender: ordering, coalescing, size limits, 410 and 429 handling."""

from __future__ import annotations

import json
import threading

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
from selador.websocket.management import ConnectionGone, PostFailed
from selador.websocket.sender import FRAME_BUDGET_BYTES, FrameSender, fit_frame


class Recorder:
    """A post function that records frames and can fail on demand."""

    def __init__(self, fail_after: int | None = None, exc: type[Exception] = ConnectionGone) -> None:
        self.frames: list[dict] = []
        self.sizes: list[int] = []
        self.fail_after = fail_after
        self.exc = exc
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, data: bytes) -> None:
        with self.lock:
            self.calls += 1
            if self.fail_after is not None and self.calls > self.fail_after:
                raise self.exc("x")
            self.sizes.append(len(data))
            self.frames.append(json.loads(data))


def test_frames_are_stamped_with_request_id_and_contiguous_seq() -> None:
    rec = Recorder()
    sender = FrameSender(rec, request_id="q-1", flush_ms=10_000)
    sender.send(StatusFrame(message="a"))
    sender.delta("Hello")
    sender.delta(" world")
    sender.send(StatusFrame(message="b"))
    stats = sender.close()

    assert [f["seq"] for f in rec.frames] == list(range(1, len(rec.frames) + 1))
    assert {f["request_id"] for f in rec.frames} == {"q-1"}
    # first delta immediately, second flushed by the following status frame, order kept
    assert [(f["type"], f.get("content") or f.get("message")) for f in rec.frames] == [
        ("status", "a"),
        ("delta", "Hello"),
        ("delta", " world"),
        ("status", "b"),
    ]
    assert stats.frames_posted == 4
    for frame in rec.frames:
        parse_frame(json.dumps(frame))  # every frame is valid protocol


def test_deltas_are_coalesced_after_the_first() -> None:
    rec = Recorder()
    sender = FrameSender(rec, request_id="q", flush_ms=60_000)
    tokens = [f"t{i} " for i in range(500)]
    for token in tokens:
        sender.delta(token)
    sender.close()

    deltas = [f["content"] for f in rec.frames if f["type"] == "delta"]
    assert "".join(deltas) == "".join(tokens)
    assert deltas[0] == "t0 "
    assert len(deltas) == 2  # the first at once, the rest in one flush at close


def test_size_cap_splits_long_text() -> None:
    rec = Recorder()
    sender = FrameSender(rec, request_id="q", flush_ms=60_000, max_chars=100)
    sender.delta("x")
    sender.delta("y" * 1050)
    sender.close()
    deltas = [f["content"] for f in rec.frames if f["type"] == "delta"]
    assert "".join(deltas) == "x" + "y" * 1050
    assert max(len(d) for d in deltas) <= 100


def test_time_window_flushes_without_more_input() -> None:
    rec = Recorder()
    sender = FrameSender(rec, request_id="q", flush_ms=20)
    sender.delta("first")
    sender.delta("second")
    # The worker flushes on its own once the window passes; wait on the observable result.
    for _ in range(200):
        if len(rec.frames) == 2:
            break
        threading.Event().wait(0.01)
    assert [f["content"] for f in rec.frames] == ["first", "second"]
    sender.close()


def test_gone_sets_cancel_drops_the_rest_and_calls_on_gone_once() -> None:
    rec = Recorder(fail_after=2)
    gone_calls: list[int] = []
    sender = FrameSender(rec, request_id="q", flush_ms=0, on_gone=lambda: gone_calls.append(1))
    for i in range(10):
        sender.send(StatusFrame(message=str(i)))
    stats = sender.close()

    assert sender.cancel_signal.is_set()
    assert stats.gone
    assert gone_calls == [1]
    assert rec.calls == 3  # two delivered, the third hit 410, nothing attempted after
    assert stats.frames_posted == 2
    sender.send(StatusFrame(message="late"))  # no error, nothing posted
    assert rec.calls == 3


def test_post_failure_stops_without_calling_on_gone() -> None:
    rec = Recorder(fail_after=0, exc=PostFailed)
    gone_calls: list[int] = []
    sender = FrameSender(rec, request_id="q", on_gone=lambda: gone_calls.append(1))
    sender.send(StatusFrame(message="x"))
    sender.send(StatusFrame(message="y"))
    stats = sender.close()
    assert stats.failed
    assert not stats.gone
    assert gone_calls == []
    assert sender.cancel_signal.is_set()
    assert rec.calls == 1


def test_error_frame_still_sent_after_a_deadline_cancel() -> None:
    rec = Recorder()
    sender = FrameSender(rec, request_id="q")
    sender.cancel_signal.set()  # the run was cancelled for time, the client is still there
    sender.send(ErrorFrame(error="The query took too long", code="timeout"))
    sender.close()
    assert rec.frames[-1]["type"] == "error"


@pytest.mark.parametrize("size", [200_000, 1_100_000])
def test_fit_frame_truncates_long_results_under_the_limit(size: int) -> None:
    content = ('a"\n\u00e9' * (size // 4))[:size]
    result = ResultFrame(
        data=ResultData(content=content, agent="rag", query_type="zoning", tools_available=5, tools_used=1),
        request_id="q",
        seq=9,
    )
    text = fit_frame(result)
    assert len(text.encode()) <= FRAME_BUDGET_BYTES < MAX_MESSAGE_BYTES
    frame = parse_frame(text)
    assert isinstance(frame, ResultFrame)
    assert frame.data.content_truncated is True
    assert frame.data.content_length == size
    assert content.startswith(frame.data.content)

    message = fit_frame(MessageFrame(content=content))
    parsed = parse_frame(message)
    assert isinstance(parsed, MessageFrame)
    assert parsed.content_truncated is True
    assert len(message.encode()) <= FRAME_BUDGET_BYTES


def test_small_frames_are_not_truncated() -> None:
    text = fit_frame(MessageFrame(content="short"))
    assert json.loads(text) == {
        "type": "message",
        "role": "assistant",
        "content": "short",
        "timestamp": ANY_FLOAT,
    }


class _AnyFloat:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, float)


ANY_FLOAT = _AnyFloat()


def test_one_megabyte_answer_arrives_whole_through_deltas() -> None:
    rec = Recorder()
    sender = FrameSender(rec, request_id="q", flush_ms=5, max_chars=8192)
    piece = "word \u00e9\u4e2d\n" * 10
    total = ""
    while len(total) < 1_000_000:
        sender.delta(piece)
        total += piece
    sender.close()
    assert "".join(f["content"] for f in rec.frames if f["type"] == "delta") == total
    assert max(rec.sizes) <= MAX_MESSAGE_BYTES


def test_worker_log_lines_carry_the_invocation_keys() -> None:
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
        sender = FrameSender(Recorder(fail_after=0), request_id="q-A")
        sender.send(StatusFrame(message="x"))
        sender.close()
    finally:
        logger.thread_safe_remove_keys(["connection_id", "request_id"])
        logging.getLogger(logger.name).removeHandler(handler)
    stop = [line for line in lines if line["message"] == "stopping the stream"]
    assert stop and stop[0]["connection_id"] == "conn-A" and stop[0]["request_id"] == "q-A"


def test_an_unexpected_post_error_stops_the_run_instead_of_killing_the_worker() -> None:
    rec = Recorder(fail_after=1, exc=RuntimeError)
    sender = FrameSender(rec, request_id="q")
    for i in range(3):
        sender.send(StatusFrame(message=str(i)))
    stats = sender.close()
    assert stats.failed == "RuntimeError"
    assert sender.cancel_signal.is_set()  # the agent stops instead of spending tokens for nobody
    assert stats.frames_posted == 1 and stats.frames_dropped == 2


def test_the_largest_allowed_delta_of_control_characters_fits() -> None:
    from selador.settings import Settings

    limit = Settings.model_fields["stream_max_frame_chars"].metadata[-1].le
    rec = Recorder()
    sender = FrameSender(rec, request_id="q", max_chars=limit)
    sender.delta("\x01" * limit)  # 6 bytes each once escaped in JSON
    stats = sender.close()
    assert stats.failed is None and max(rec.sizes) <= MAX_MESSAGE_BYTES
