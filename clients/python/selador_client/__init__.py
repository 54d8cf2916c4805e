"""Selador's Python client: ask questions over the WebSocket API and follow their runs.

Needs only ``websockets``. Reconnects with backoff, resumes every unfinished run after the last
``seq`` it has, drops repeated frames, and keeps the connection alive with app-level pings::

    from selador_client import connect, SeladorError

    async with connect("ws://127.0.0.1:3001/production") as client:
        run = await client.ask("What is the FAR in LR2?", query_type="zoning")
        async for frame in run:
            if frame["type"] == "delta":
                print(frame["content"], end="", flush=True)
        data = await run.result()  # SeladorError on an error frame or a refusal

The protocol is docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from .backoff import Backoff
from .client import Client
from .errors import SeladorConnectionError, SeladorError
from .events import Event, EventType, State
from .frames import Frame, RunFrames
from .run import Run

__all__ = [
    "Backoff",
    "Client",
    "Connecting",
    "Event",
    "EventType",
    "Frame",
    "Run",
    "RunFrames",
    "SeladorConnectionError",
    "SeladorError",
    "State",
    "connect",
]


class Connecting:
    """What :func:`connect` returns: ``await`` it, or use it as ``async with``.

    Args:
        client: The client to open.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def __await__(self) -> Generator[Any, None, Client]:
        return self.client.open().__await__()

    async def __aenter__(self) -> Client:
        return await self.client.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.close()


def connect(url: str, **options: Any) -> Connecting:
    """Open a :class:`Client` to ``url``: use the result with ``async with`` or ``await`` it.

    Args:
        url: The WebSocket URL (``ws://127.0.0.1:3001/production``, a stack's ``WebSocketURL``).
        **options: :class:`Client`'s keyword arguments (``token``, ``ping_interval``, ``backoff``…).

    Returns:
        An awaitable async context manager giving the open :class:`Client`.

    Raises:
        SeladorConnectionError: ``connect_failed`` (once awaited) when the connection cannot be made.
    """
    return Connecting(Client(url, **options))
