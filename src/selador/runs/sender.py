"""RunSender: a run's frames, numbered, coalesced, logged, and posted to whoever listens now.

The agent calls :meth:`RunSender.send` and :meth:`RunSender.delta`, which only take a lock and
append to a queue; one worker thread per run does the rest, in ``seq`` order:

1. **Coalesce.** The first delta goes out at once (first-token latency), then text collects for a
   window that starts at ``flush_ms`` and doubles up to ``flush_max_ms`` (a long answer costs tens
   of frames, not one per token), or until ``max_chars``. After any complete frame (a tool status,
   a message) the next delta goes out at once again and the window restarts: a model that says a
   sentence, calls a tool and then answers must not hold its answer back for the grown window.
2. **Log.** Every frame is appended to the run's log before it is posted, so whatever a client has
   seen can be replayed. The terminal frame is appended together with the run's final status, in
   one atomic step conditional on the run still being ours: exactly one party ever ends a run.
3. **Post** to the run's listener, if it has one. A 410 (or a delivery that keeps failing) detaches
   that connection; the run goes on (``on_disconnect: continue``) or stops (``cancel``).
4. **Poll** the run record every ``poll_ms``: a cancel request stops the agent; a new listener (a
   ``resume`` from another connection) receives every frame logged since the previous poll, then
   the live ones. The resume route replays the log up to its attach; the two overlap, never gap.
   A run that asked to end with its connection (``on_disconnect: cancel``) also checks that the
   listener's connection record still exists (``$disconnect`` deletes it).
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selador.observability import logger
from selador.protocol import DeltaFrame, ErrorFrame, ResultFrame, _Frame
from selador.runs.frames import fit_frame
from selador.runs.model import stamp, terminal_finish
from selador.store.base import RunFinish, RunRecord, Store
from selador.websocket.management import ConnectionGone, ManagementApi, PostFailed

_STOP = object()

INTERNAL_ERROR_TEXT = "Something went wrong while answering; please try again"
_LOG_ATTEMPTS = 3
_LOG_RETRY_FIRST_S = 0.05
"""Retries of a failed log write: 50 ms, then 200 ms (the store's client retries inside each)."""


@dataclass
class SenderStats:
    """What one sender did, for logs, metrics, tests and benchmarks.

    Times are ``time.time()`` values taken when the worker had logged a frame and, if the run had
    a listener, posted it: ``first_frame_at`` for the first frame, ``first_delta_at`` for the
    first answer text. ``outcome`` is the terminal frame's stop reason (``error`` for an error
    frame, whose code is ``error_code``) once this sender ended the run.
    """

    frames_queued: int = 0
    frames_logged: int = 0
    frames_posted: int = 0
    bytes_posted: int = 0
    frames_dropped: int = 0
    reposted: int = 0
    throttled: int = 0
    gone: bool = False
    failed: str | None = None
    finished: bool = False
    superseded: bool = False
    log_failed: bool = False
    first_frame_at: float | None = None
    first_delta_at: float | None = None
    outcome: str | None = None
    error_code: str | None = None


class RunSender:
    """Logs and posts one run's frames (implements :class:`selador.sink.FrameSink`).

    Args:
        run: The run as its executor took it (listener, ``on_disconnect``, lease).
        store: Where the log and the run record live.
        management: Maps a management endpoint to its adapter.
        flush_ms: First coalescing window after the first delta, in milliseconds.
        flush_max_ms: Largest coalescing window, in milliseconds.
        max_chars: Largest amount of answer text in one delta frame.
        poll_ms: How often the run record is read for a cancel request or a new listener.
        log_ttl_s: How long the log stays readable after the run ends.
        first_seq: The ``seq`` of the first frame (the route logged and posted the ones before).
        on_gone: Called with a connection id that turned out to be gone (deletes its record).
        before_end: Called just before the terminal frame is logged (with it, in one transaction
            where the store can): whatever the run held is free before anyone can see it ended.
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        run: RunRecord,
        *,
        store: Store,
        management: Callable[[str], ManagementApi],
        flush_ms: int = 100,
        flush_max_ms: int = 1500,
        max_chars: int = 8192,
        poll_ms: int = 200,
        log_ttl_s: int = 3600,
        first_seq: int = 1,
        on_gone: Callable[[str], object] | None = None,
        before_end: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run = run
        self.request_id = run.request_id
        self._store = store
        self._management = management
        self._flush_s = flush_ms / 1000
        self._flush_max_s = max(flush_max_ms, flush_ms) / 1000
        self._window_s = self._flush_s
        self._max_chars = max_chars
        self._poll_s = poll_ms / 1000
        self._log_ttl_s = log_ttl_s
        # Frames must not expire before the record: it expires log_ttl after the end, which is
        # before the lease runs out plus log_ttl (and the record's own expiry may be later still).
        self._frame_expiry = max(run.expires_at, int(run.lease_until + log_ttl_s) + 1)
        self._on_gone = on_gone
        self._before_end = before_end
        self._clock = clock
        self.cancel_signal = threading.Event()
        self.cancel_reason: str | None = "cancel requested" if run.cancel_requested else None
        if run.cancel_requested:
            self.cancel_signal.set()
        self.stats = SenderStats()
        # Producer side, under the lock.
        self._lock = threading.Lock()
        self._queue: queue.Queue[object] = queue.Queue()
        self._seq = first_seq - 1
        self._pending: list[str] = []
        self._pending_chars = 0
        self._deadline: float | None = None
        self._delta_now = True
        self._closed = False
        self._terminal_queued = False
        self._wake = threading.Event()
        # Worker side only.
        self._frames: dict[int, bytes] = {}
        self._logged_seq = first_seq - 1
        self._listener = run.connection_id
        self._listener_id = run.listener_id
        self._endpoint = run.endpoint
        self._next_post = first_seq
        self._seen_by_poll = first_seq - 1
        self._next_poll = clock() + self._poll_s
        self._ended = False
        # Run the worker in a copy of this context so its log lines carry the invocation's keys
        # (connection_id, request_id…), which live in context variables, not in the logger.
        context = contextvars.copy_context()
        self._worker = threading.Thread(
            target=context.run, args=(self._run,), name=f"frames-{run.request_id}", daemon=True
        )
        self._worker.start()

    # -- producer side (the agent's thread or event loop) ------------------------------------

    @property
    def gone(self) -> bool:
        """Whether the listener turned out to be gone."""
        return self.stats.gone

    def send(self, frame: _Frame) -> None:
        """Queue a complete frame after any pending answer text; nothing follows a terminal one."""
        with self._lock:
            if self._closed or self._terminal_queued:
                self.stats.frames_dropped += 1
                return
            self._flush_locked()
            self._enqueue_locked(frame)
            if isinstance(frame, ResultFrame | ErrorFrame):
                self._terminal_queued = True
            # Whatever comes next starts a new stretch of text: send its first piece at once.
            self._delta_now = True
            self._window_s = self._flush_s

    def delta(self, text: str) -> None:
        """Queue answer text; the first piece after a complete frame goes out at once."""
        if not text:
            return
        with self._lock:
            if self._closed or self._terminal_queued:
                return
            if self._delta_now:
                self._delta_now = False
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
        """Flush, end the run if nothing did, wait until every frame is logged and posted.

        A run must never end silently: when no terminal frame was sent (the run raised before it
        could send one), an ``internal_error`` frame ends it here.

        Args:
            timeout: Seconds to wait for the worker.

        Returns:
            What the sender did.
        """
        with self._lock:
            if not self._closed:
                self._flush_locked()
                if not self._terminal_queued:
                    self._terminal_queued = True
                    self._enqueue_locked(ErrorFrame(code="internal_error", error=INTERNAL_ERROR_TEXT))
                self._closed = True
                self._queue.put(_STOP)
                self._wake.set()
        self._worker.join(timeout)
        return self.stats

    # -- internals: producer ---------------------------------------------------------------------

    def _chunks(self, text: str) -> list[str]:
        step = self._max_chars
        return [text[i : i + step] for i in range(0, len(text), step)] or [text]

    def _enqueue_locked(self, frame: _Frame) -> None:
        self._seq += 1
        stamped = stamp(frame, self.run, self._seq)
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

    # -- internals: worker -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # noqa: BLE001 - a dead worker would strand the run without a terminal frame
            logger.exception("run sender failed")
            self.stats.failed = self.stats.failed or "sender failed"
            self.cancel_signal.set()

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = None
            if item is None:
                now = self._clock()
                with self._lock:
                    deadline = self._deadline
                    if deadline is not None and now >= deadline:
                        self._flush_locked()
                        continue
                # After the terminal frame there is nothing left to poll for: wait for close().
                next_poll = None if self._ended else self._next_poll
                if next_poll is not None and now >= next_poll:
                    self._poll()
                    continue
                wakes = [t for t in (deadline, next_poll) if t is not None]
                self._wake.wait(max(0.0, min(wakes) - now) if wakes else None)
                self._wake.clear()
                continue
            if item is _STOP:
                return
            assert isinstance(item, _Frame)
            self._deliver(item)
            if not self._ended and self._clock() >= self._next_poll:
                self._poll()

    def _deliver(self, frame: _Frame) -> None:
        if self._ended:
            self.stats.frames_dropped += 1
            return
        seq = frame.seq or 0
        terminal = isinstance(frame, ResultFrame | ErrorFrame)
        data = fit_frame(frame)
        if terminal:
            with self._store.grouped():
                self._end_claims()
                logged = self._log(frame, seq, data, terminal)
        else:
            logged = self._log(frame, seq, data, terminal)
        if not logged:
            return
        self._frames[seq] = data.encode()
        if terminal:
            self._ended = True
            if isinstance(frame, ErrorFrame):
                self.stats.outcome, self.stats.error_code = "error", frame.code
            elif isinstance(frame, ResultFrame):
                self.stats.outcome = frame.data.stop_reason
            # Anyone who resumed or cancelled did so before the run ended (both need an active
            # run), so reading the record now finds the listener the terminal frame belongs to.
            self._poll()
        self._pump()
        now = time.time()
        if self.stats.first_frame_at is None:
            self.stats.first_frame_at = now
        if self.stats.first_delta_at is None and isinstance(frame, DeltaFrame):
            self.stats.first_delta_at = now

    def _log(self, frame: _Frame, seq: int, data: str, terminal: bool) -> bool:
        """Append to the log; ``False`` when the frame must not be posted.

        Nothing is ever posted that is not in the log: a client that saw a frame can always get it
        again, and whoever ends a run after a failure (the lease reaper) numbers its terminal frame
        after everything a client may have seen.
        """
        finish = None
        if terminal:
            finish = terminal_finish(frame, expect_status=frozenset({"running"}), log_ttl_s=self._log_ttl_s)
        written = self._append(seq, data, finish)
        if written is None:
            # The store keeps failing: stop the run here; its lease runs out and whoever looks at
            # it next ends it with a terminal frame after the last logged one.
            logger.error("the frame log cannot be written; the run stops", extra={"seq": seq})
            self.stats.log_failed = True
            return self._stop_here()
        if not written and self._already_logged(seq, data):
            # A resent write whose first attempt had landed (its answer was lost): the frame is ours.
            written = True
        if not written:
            # The seq was taken or the run had already ended: someone else ended this run (its
            # lease ran out). Posting more would put frames after its terminal one.
            logger.warning("run ended elsewhere; this executor stops", extra={"seq": seq})
            self.stats.superseded = True
            return self._stop_here()
        self._logged_seq = seq
        self.stats.frames_logged += 1
        if terminal:
            self.stats.finished = True
        return True

    def _append(self, seq: int, data: str, finish: RunFinish | None) -> bool | None:
        """``append_frame`` with a few retries; ``None`` when the store kept failing."""
        pause = _LOG_RETRY_FIRST_S
        for attempt in range(1, _LOG_ATTEMPTS + 1):
            try:
                return self._store.append_frame(self.run.run_id, seq, data, self._frame_expiry, finish=finish)
            except Exception:  # noqa: BLE001 - retried, then the run stops (see _log)
                logger.exception("could not log a frame", extra={"seq": seq, "attempt": attempt})
            if attempt < _LOG_ATTEMPTS:
                time.sleep(pause)
                pause *= 4
        return None

    def _stop_here(self) -> bool:
        self._ended = True
        self.cancel_signal.set()
        self.stats.frames_dropped += 1
        return False

    def _listener_closed(self) -> bool:
        try:
            return self._listener is not None and self._store.get_connection(self._listener) is None
        except Exception:  # noqa: BLE001 - unknown: the next post will tell
            logger.exception("could not read the listener's connection record")
            return False

    def _end_claims(self) -> None:
        if self._before_end is None:
            return
        try:
            self._before_end()
        except Exception:  # noqa: BLE001 - a claim left behind expires by its TTL
            logger.exception("could not release what the run held")

    def _already_logged(self, seq: int, data: str) -> bool:
        try:
            return self._store.read_frames(self.run.run_id, seq - 1, 1) == [(seq, data)]
        except Exception:  # noqa: BLE001 - unknown: treat the seq as taken, which stops this run safely
            logger.exception("could not read back a frame")
            return False

    def _pump(self) -> None:
        """Post every frame the listener has not been sent yet, in order."""
        while self._listener is not None and self._next_post in self._frames:
            listener, endpoint = self._listener, self._endpoint or ""
            data = self._frames[self._next_post]
            api: Any = None
            try:
                # Inside the try: a client that cannot be built (a bad endpoint) must detach the
                # listener like any failed post, not kill the worker and strand the run.
                api = self._management(endpoint)
                api.post(listener, data)
            except ConnectionGone:
                self._detach(listener, gone=True, reason="connection gone (410)")
                return
            except PostFailed as exc:
                self._detach(listener, gone=False, reason=str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - an unexpected failure must not kill the worker
                logger.exception("frame delivery failed unexpectedly")
                self._detach(listener, gone=False, reason=type(exc).__name__)
                return
            finally:
                # The adapter counts the 429s it retried; one adapter per post, so add them all.
                self.stats.throttled += getattr(api, "throttled", 0)
            self.stats.frames_posted += 1
            self.stats.bytes_posted += len(data)
            self._next_post += 1

    def _detach(self, listener: str, *, gone: bool, reason: str) -> None:
        """Stop posting to ``listener``; cancel the run when it asked to end with its connection."""
        self._listener = None
        if gone:
            self.stats.gone = True
        else:
            self.stats.failed = reason
        cancel = self.run.on_disconnect == "cancel" and not self._ended
        logger.warning(
            "listener detached",
            extra={"reason": reason, "frames_posted": self.stats.frames_posted, "cancel_run": cancel},
        )
        if cancel:
            self.cancel_reason = reason
            self.cancel_signal.set()
        try:
            # Only if nobody attached since (a resume, even from this same connection, gets a new
            # listener_id): a late detach must not undo it.
            self._store.update_run(
                self.run.run_id,
                {"connection_id": None, "endpoint": None, "listener_id": None},
                expect={"listener_id": self._listener_id},
            )
        except Exception:  # noqa: BLE001 - the next poll corrects our view either way
            logger.exception("could not detach the listener in the store")
        if gone and self._on_gone is not None:
            try:
                self._on_gone(listener)
            except Exception:  # noqa: BLE001 - a failed cleanup must not kill the worker; TTL expires it
                logger.exception("could not remove the stale connection record")

    def _poll(self) -> None:
        """Read the run record: a cancel request, or a listener that changed since the last read."""
        logged_before = self._logged_seq
        self._next_poll = self._clock() + self._poll_s
        try:
            run = self._store.get_run(self.run.run_id)
        except Exception:  # noqa: BLE001 - a failed poll is retried at the next one
            logger.exception("could not read the run record")
            return
        if run is None:
            return
        if self.run.on_disconnect == "cancel" and self._listener is not None and self._listener_closed():
            # $disconnect deleted its record: stop now, not at the next post (which may be far off
            # in a long tool call, or never come if a resume moves the run elsewhere first).
            self._detach(self._listener, gone=True, reason="connection closed")
        if run.cancel_requested and not self.cancel_signal.is_set():
            logger.info("cancel requested")
            self.cancel_reason = "cancel requested"
            self.cancel_signal.set()
        if run.connection_id is not None and run.listener_id != self._listener_id:
            # The new listener's resume replayed the log as it stood after its attach, which is
            # after our previous poll: everything logged before that poll reached it, so start
            # just after (some frames may arrive twice; clients drop a seq they have seen).
            logger.info("listener changed", extra={"listener": run.connection_id})
            self._listener, self._listener_id, self._endpoint = (
                run.connection_id,
                run.listener_id,
                run.endpoint,
            )
            self.stats.reposted += max(0, self._next_post - (self._seen_by_poll + 1))
            self._next_post = self._seen_by_poll + 1
            self._pump()
        self._seen_by_poll = logged_before
