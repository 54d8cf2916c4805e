"""FrameSender: a query's frames to one connection, ordered, coalesced, off the model's path.

The agent calls :meth:`FrameSender.send` and :meth:`FrameSender.delta`, which only take a lock and
append to a queue; one worker thread per query posts in ``seq`` order. Deltas are coalesced: the
first goes out at once (first-token latency), then text collects for a window that starts at
``flush_ms`` and doubles up to ``flush_max_ms`` (so a long answer costs tens of frames, not one
per token), or until ``max_chars`` have collected. A complete frame flushes pending text first,
so order is kept.

On 410 the sender sets ``cancel_signal`` (the agent stops), drops what is queued and calls
``on_gone`` once (which deletes *this* connection's record). On 429 past the retry bound it does
the same and logs why.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from selador.observability import logger
from selador.protocol import MAX_MESSAGE_BYTES, DeltaFrame, MessageFrame, ResultFrame, _Frame
from selador.websocket.management import ConnectionGone, PostFailed

_STOP = object()
FRAME_BUDGET_BYTES = MAX_MESSAGE_BYTES - 4096
"""Largest frame we post: under API Gateway's 128 KiB with room for encoding slack."""


@dataclass
class SenderStats:
    """What one sender did, for logs, tests and benchmarks."""

    frames_queued: int = 0
    frames_posted: int = 0
    bytes_posted: int = 0
    frames_dropped: int = 0
    gone: bool = False
    failed: str | None = None


def fit_frame(frame: _Frame) -> str:
    """Serialise a frame, truncating a long ``content`` so the frame stays under the budget.

    Only ``message`` and ``result`` frames carry whole answers; their ``content`` is cut (marked
    ``content_truncated``, and ``content_length`` on results) because the deltas already carried
    the complete text. Any other frame type is built small by construction.

    Args:
        frame: The stamped frame.

    Returns:
        The JSON text to post.
    """
    text = frame.to_json()
    size = len(text.encode())
    if size <= FRAME_BUDGET_BYTES:
        return text
    if not isinstance(frame, MessageFrame | ResultFrame):
        raise ValueError(f"{frame.__class__.__name__} exceeds {FRAME_BUDGET_BYTES} bytes")
    content = frame.content if isinstance(frame, MessageFrame) else frame.data.content
    keep = len(content)
    while size > FRAME_BUDGET_BYTES and keep > 0:
        # Escaping makes bytes-per-character uneven, so scale by the measured ratio and re-check.
        keep = int(keep * FRAME_BUDGET_BYTES / size * 0.95)
        if isinstance(frame, MessageFrame):
            text = frame.model_copy(update={"content": content[:keep], "content_truncated": True}).to_json()
        else:
            data = frame.data.model_copy(
                update={"content": content[:keep], "content_truncated": True, "content_length": len(content)}
            )
            text = frame.model_copy(update={"data": data}).to_json()
        size = len(text.encode())
    return text


class FrameSender:
    """Posts one query's frames to one connection (implements :class:`selador.sink.FrameSink`).

    Args:
        post: Delivers one frame's bytes; raises ``ConnectionGone`` or ``PostFailed``.
        request_id: Stamped on every frame.
        flush_ms: First coalescing window after the first delta, in milliseconds.
        flush_max_ms: Largest coalescing window, in milliseconds.
        max_chars: Largest amount of answer text in one delta frame.
        on_gone: Called once when the connection turns out to be gone.
        first_seq: The ``seq`` of the first frame (1 unless frames were sent before).
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        post: Callable[[bytes], None],
        *,
        request_id: str,
        flush_ms: int = 100,
        flush_max_ms: int = 1500,
        max_chars: int = 8192,
        on_gone: Callable[[], None] | None = None,
        first_seq: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._post = post
        self.request_id = request_id
        self._flush_s = flush_ms / 1000
        self._flush_max_s = max(flush_max_ms, flush_ms) / 1000
        self._window_s = self._flush_s
        self._max_chars = max_chars
        self._on_gone = on_gone
        self._clock = clock
        self.cancel_signal = threading.Event()
        self.stats = SenderStats()
        self._lock = threading.Lock()
        self._queue: queue.Queue[object] = queue.Queue()
        self._seq = first_seq - 1
        self._pending: list[str] = []
        self._pending_chars = 0
        self._deadline: float | None = None
        self._first_delta_sent = False
        self._closed = False
        self._wake = threading.Event()
        # Run the worker in a copy of this context so its log lines carry the invocation's keys
        # (connection_id, request_id…), which live in context variables, not in the logger.
        context = contextvars.copy_context()
        self._worker = threading.Thread(
            target=context.run, args=(self._run,), name=f"frames-{request_id}", daemon=True
        )
        self._worker.start()

    # -- producer side (the agent's thread or event loop) ------------------------------------

    @property
    def gone(self) -> bool:
        """Whether the client turned out to be gone."""
        return self.stats.gone

    def send(self, frame: _Frame) -> None:
        """Queue a complete frame after any pending answer text."""
        with self._lock:
            if self._closed or self.stats.gone:
                self.stats.frames_dropped += 1
                return
            self._flush_locked()
            self._enqueue_locked(frame)

    def delta(self, text: str) -> None:
        """Queue answer text; the first piece goes out at once, the rest is coalesced."""
        if not text:
            return
        with self._lock:
            if self._closed or self.stats.gone:
                return
            if not self._first_delta_sent:
                self._first_delta_sent = True
                for chunk in self._chunks(text):
                    self._enqueue_locked(DeltaFrame(content=chunk))
                return
            self._pending.append(text)
            self._pending_chars += len(text)
            if self._pending_chars >= self._max_chars:
                self._flush_locked()
            elif self._deadline is None:
                self._deadline = self._clock() + self._window_s
                self._wake.set()

    def close(self, timeout: float | None = 30.0) -> SenderStats:
        """Flush, wait until every queued frame is posted (or dropped), stop the worker.

        Args:
            timeout: Seconds to wait for the worker.

        Returns:
            What the sender did.
        """
        with self._lock:
            if not self._closed:
                self._flush_locked()
                self._closed = True
                self._queue.put(_STOP)
                self._wake.set()
        self._worker.join(timeout)
        return self.stats

    # -- internals ---------------------------------------------------------------------------

    def _chunks(self, text: str) -> list[str]:
        step = self._max_chars
        return [text[i : i + step] for i in range(0, len(text), step)] or [text]

    def _enqueue_locked(self, frame: _Frame) -> None:
        self._seq += 1
        stamped = frame.model_copy(update={"request_id": self.request_id, "seq": self._seq})
        self.stats.frames_queued += 1
        self._queue.put(stamped)
        self._wake.set()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_chars = 0
        self._deadline = None
        for chunk in self._chunks(text):
            self._enqueue_locked(DeltaFrame(content=chunk))
        # Later windows grow: early text should appear quickly, a long tail needs few frames.
        self._window_s = min(self._flush_max_s, max(self._window_s * 2, self._flush_s))

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = None
            if item is None:
                with self._lock:
                    deadline = self._deadline
                    if deadline is not None and self._clock() >= deadline:
                        self._flush_locked()
                        continue
                wait = None if deadline is None else max(0.0, deadline - self._clock())
                self._wake.wait(wait)
                self._wake.clear()
                continue
            if item is _STOP:
                return
            assert isinstance(item, _Frame)
            self._deliver(item)

    def _deliver(self, frame: _Frame) -> None:
        if self.stats.gone or self.stats.failed:
            self.stats.frames_dropped += 1
            return
        try:
            data = fit_frame(frame).encode()
            self._post(data)
        except ConnectionGone:
            self._stop(gone=True, reason="connection gone (410)")
            self.stats.frames_dropped += 1
            return
        except PostFailed as exc:
            self._stop(gone=False, reason=str(exc))
            self.stats.frames_dropped += 1
            return
        except Exception as exc:  # noqa: BLE001 - a dead worker would lose every later frame silently
            logger.exception("frame delivery failed unexpectedly")
            self._stop(gone=False, reason=type(exc).__name__)
            self.stats.frames_dropped += 1
            return
        self.stats.frames_posted += 1
        self.stats.bytes_posted += len(data)

    def _stop(self, *, gone: bool, reason: str) -> None:
        with self._lock:
            if gone:
                self.stats.gone = True
            else:
                self.stats.failed = reason
            self._pending.clear()
            self._deadline = None
        self.cancel_signal.set()
        logger.warning(
            "stopping the stream", extra={"reason": reason, "frames_posted": self.stats.frames_posted}
        )
        if gone and self._on_gone is not None:
            try:
                self._on_gone()
            except Exception:  # noqa: BLE001 - a failed cleanup must not kill the worker; TTL expires it
                logger.exception("could not remove the stale connection record")
