"""What a client reports to its listeners: state changes, frames, drops, reconnections, resumes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .frames import Frame
    from .run import Run

log = logging.getLogger("selador_client")

State = Literal["connecting", "open", "reconnecting", "closed"]
EventType = Literal["state", "frame", "disconnect", "reconnect", "resume"]


@dataclass(frozen=True)
class Event:
    """Something the client went through; listeners get one (see :meth:`Emitter.add_listener`).

    Attributes:
        type: ``state`` (``state`` changed), ``frame`` (``frame`` arrived: every frame, pongs,
            duplicates and API Gateway's own messages included), ``disconnect`` (the connection
            closed with ``code``/``reason``; ``reconnecting`` says what comes next),
            ``reconnect`` (attempt ``attempt`` starts after ``delay`` seconds) or ``resume``
            (a new connection is open: ``run`` is about to be resumed after ``after_seq``, or
            asked again when ``reinvoke``, because its ``accepted`` frame never came).
    """

    type: EventType
    state: State | None = None
    frame: Frame | None = None
    code: int | None = None
    reason: str = ""
    reconnecting: bool = False
    attempt: int = 0
    delay: float = 0.0
    run: Run | None = None
    after_seq: int = 0
    reinvoke: bool = False


Listener = Callable[[Event], None]


class Emitter:
    """Listeners by event type (the client's counterpart of a browser ``EventTarget``)."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def add_listener(self, event: EventType, listener: Listener) -> None:
        """Call ``listener(Event)`` on each ``event``; it runs inside the client, so keep it short.

        A listener that raises is logged and the client goes on.
        """
        self._listeners.setdefault(event, []).append(listener)

    def remove_listener(self, event: EventType, listener: Listener) -> None:
        """Stop calling ``listener`` on ``event``."""
        if listener in self._listeners.get(event, []):
            self._listeners[event].remove(listener)

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners.get(event.type, ())):
            try:
                listener(event)
            except Exception:
                # A listener's bug must not stop the connection.
                log.exception("a %s listener failed", event.type)
