"""One question's run as the client follows it: its frames in ``seq`` order, its outcome, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .errors import SeladorError
from .frames import TERMINAL_TYPES, Frame, RunFrames

GAP_RESUME_AFTER_S = 2.0
"""How long a gap in the ``seq`` numbers may stay open before the missing frames are asked for."""
RESUME_SILENCE_S = 3.0
"""After a ``resume``, how long to hear nothing of the run before sending it again (docs/protocol.md:
a replay that could not be delivered leaves the connection without the run's live frames)."""
RESUME_SILENCE_MAX_S = 60.0
"""The wait doubles each time nothing came; a run thinking quietly costs a resume a minute at most."""
NEW_SESSION = "new"


def _retrieve(future: asyncio.Future[Any]) -> None:
    # An outcome nobody awaited must not be logged as "exception was never retrieved".
    if not future.cancelled():
        future.exception()


class Run:
    """A question asked with :meth:`selador_client.Client.ask`, followed to its terminal frame.

    ``async for frame in run`` yields the run's frames (dicts, see :class:`~selador_client.Frame`)
    in ``seq`` order, each ``seq`` once, across reconnections, and ends after the terminal frame
    (a ``result`` or ``error``). A refusal (an ``error`` without ``seq`` naming this
    ``request_id``: ``bad_request``, ``rate_limited``, ``session_busy``…) is yielded last; a lost
    connection just ends the iteration. Either way :meth:`result` says why. Iterating again starts
    from the first frame.

    Attributes:
        request_id: The run's ``request_id``.
        run_token: The token from its ``accepted`` frame (``None`` until then): with it the run can
            be resumed or cancelled from anywhere, so treat it like a password.
        session_id: The conversation it belongs to (filled in from the ``accepted`` frame when
            asked with ``session_id="new"``), else ``None``.
        session_token: An anonymous conversation's token (from the ``accepted`` frame): pass it
            with the ``session_id`` to the next :meth:`~selador_client.Client.ask`.
    """

    def __init__(self, message: dict[str, Any], cancel: Callable[[Run], Awaitable[None]]) -> None:
        self.request_id: str = message["request_id"]
        self.run_token: str | None = None
        session_id = message.get("session_id")
        self.session_id: str | None = None if session_id == NEW_SESSION else session_id
        self.session_token: str | None = message.get("session_token")
        self.message = message
        """The ``invoke`` message (sent again when a connection drops before ``accepted``)."""
        self.sent = False
        self.reinvoked = False
        self.seqs = RunFrames()
        self._send_cancel = cancel
        self._frames: list[Frame] = []
        loop = asyncio.get_running_loop()
        self._outcome: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._outcome.add_done_callback(_retrieve)
        self._changed = asyncio.Event()
        self._cancel: asyncio.Future[bool] | None = None
        self._resume_at: float | None = None
        self._silence = RESUME_SILENCE_S

    # -- what callers use ---------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """The run has ended here: its terminal frame, a refusal, or a lost connection."""
        return self._outcome.done()

    @property
    def accepted(self) -> bool:
        """Its ``accepted`` frame (``seq`` 1) has been received."""
        return self.seqs.last_seq >= 1

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` up to which every frame has been received."""
        return self.seqs.last_seq

    @property
    def frames(self) -> tuple[Frame, ...]:
        """The frames delivered so far, in ``seq`` order."""
        return tuple(self._frames)

    @property
    def cancel_requested(self) -> bool:
        """:meth:`cancel` was called."""
        return self._cancel is not None

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Frame]:
        index = 0
        while True:
            while index < len(self._frames):
                yield self._frames[index]
                index += 1
            if self.done:
                return
            await self._changed.wait()

    async def result(self) -> dict[str, Any]:
        """Wait for the run's end.

        Returns:
            The ``result`` frame's ``data`` (also for a cancelled run: ``stop_reason`` is
            ``"cancelled"`` and ``success`` false).

        Raises:
            SeladorError: for an ``error`` frame or a refusal (``code`` is the server's).
            SeladorConnectionError: when the connection was lost for good, or the client closed.
        """
        return await asyncio.shield(self._outcome)

    async def cancel(self) -> bool:
        """Ask the server to stop the run; it then ends with its cancelled ``result``.

        Before the ``accepted`` frame (or while reconnecting) the ``cancel`` goes out as soon as it
        can; after a reconnection it is sent again. Idempotent.

        Returns:
            Whether a ``cancel`` was sent (``False``: the run had already ended here).
        """
        if self.done:
            return False
        if self._cancel is None:
            self._cancel = asyncio.get_running_loop().create_future()
            await self._send_cancel(self)
        return await asyncio.shield(self._cancel)

    def __repr__(self) -> str:
        state = "done" if self.done else f"after seq {self.last_seq}"
        return f"<Run {self.request_id} {state}>"

    # -- what the client does -------------------------------------------------------------------

    @property
    def cancel_pending(self) -> bool:
        """A cancel was asked for and has not been sent yet."""
        return self._cancel is not None and not self._cancel.done()

    def cancel_sent(self) -> None:
        """Record that a ``cancel`` message went out."""
        if self._cancel is not None and not self._cancel.done():
            self._cancel.set_result(True)

    def deliver(self, frame: Frame, seq: int) -> None:
        """Take one frame carrying this run's ``request_id`` and ``seq``."""
        ready = self.seqs.add(seq, frame, frame.raw)
        for item, _ in ready:
            self._remember(item)
            self._frames.append(item)
            if item.get("type") in TERMINAL_TYPES:
                self._end_with(item)
                break
        if ready:
            self._resume_at = None
            self._silence = RESUME_SILENCE_S
            self._changed.set()
            self._changed = asyncio.Event()

    def refuse(self, frame: Frame) -> None:
        """End with a refusal: an ``error`` without ``seq`` about this run."""
        self._frames.append(frame)
        self._end_with(frame)
        self._changed.set()

    def fail(self, error: SeladorError) -> None:
        """End without a terminal frame (the connection is gone for good, or the client closed)."""
        if not self.done:
            self._outcome.set_exception(error)
            self._finish()
        self._changed.set()

    def watch_at(self) -> float | None:
        """``time.monotonic()`` when the run should be resumed again for lack of frames, or ``None``."""
        if self.done or self.run_token is None:
            return None  # an anonymous run cannot be resumed before its token arrives
        gap = self.seqs.gap_since
        times = [t for t in (self._resume_at, None if gap is None else gap + GAP_RESUME_AFTER_S) if t]
        return min(times) if times else None

    def resumed(self) -> None:
        """Record a ``resume`` sent: expect frames, or send it again after a growing silence."""
        now = time.monotonic()
        self._resume_at = now + self._silence
        self._silence = min(self._silence * 2, RESUME_SILENCE_MAX_S)
        if self.seqs.gap_since is not None:
            self.seqs.gap_since = now

    def _remember(self, frame: Frame) -> None:
        for name in ("run_token", "session_id", "session_token"):
            value = frame.get(name)
            if isinstance(value, str) and value:
                setattr(self, name, value)

    def _end_with(self, frame: Frame) -> None:
        if self.done:
            return
        if frame.get("type") == "result" and isinstance(frame.get("data"), dict):
            self._outcome.set_result(frame["data"])
        else:
            code = frame.get("code")
            message = frame.get("error") or frame.get("message") or "the run failed"
            self._outcome.set_exception(
                SeladorError(code if isinstance(code, str) else "error", str(message), frame)
            )
        self._finish()

    def _finish(self) -> None:
        self._resume_at = None
        if self._cancel is not None and not self._cancel.done():
            self._cancel.set_result(False)
