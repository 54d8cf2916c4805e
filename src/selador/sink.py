"""Where a query's frames go: the WebSocket sender, or a collector for the HTTP API.

The orchestrator builds frames without ``request_id``/``seq``; the sink stamps both, so numbering
is contiguous per request whatever produces the frames.
"""

from __future__ import annotations

import threading
from typing import Protocol

from selador.protocol import DeltaFrame, ErrorFrame, ResultFrame, _Frame


class FrameSink(Protocol):
    """Receives one query's frames in order.

    ``send`` and ``delta`` never block on the network: a sink that posts does so off the caller's
    path. ``cancel_signal`` is set when the client is gone, so the agent can stop.
    """

    cancel_signal: threading.Event

    def send(self, frame: _Frame) -> None:
        """Queue a complete frame (status, message, result, error…)."""

    def delta(self, text: str) -> None:
        """Queue answer text; the sink may coalesce consecutive deltas."""


class CollectingSink:
    """Keeps every frame in memory: the HTTP API's sink and a test helper.

    Args:
        request_id: Stamped on every frame.
    """

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.cancel_signal = threading.Event()
        self.frames: list[_Frame] = []
        self._lock = threading.Lock()

    def send(self, frame: _Frame) -> None:
        """Record a frame, stamped with the request id and the next ``seq``."""
        with self._lock:
            self.frames.append(
                frame.model_copy(update={"request_id": self.request_id, "seq": len(self.frames) + 1})
            )

    def delta(self, text: str) -> None:
        """Record answer text as its own delta frame (nothing to save by coalescing in memory)."""
        if text:
            self.send(DeltaFrame(content=text))

    @property
    def terminal(self) -> ResultFrame | ErrorFrame | None:
        """The ``result`` or ``error`` frame, once sent."""
        for frame in reversed(self.frames):
            if isinstance(frame, ResultFrame | ErrorFrame):
                return frame
        return None
