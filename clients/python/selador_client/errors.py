"""The errors a run ends with: the server's (an ``error`` frame) and the connection's."""

from __future__ import annotations

from typing import Any


class SeladorError(Exception):
    """A run ended without a result: an ``error`` frame, a refusal, or a lost connection.

    Attributes:
        code: The protocol's machine-readable code (``bad_request``, ``session_busy``,
            ``rate_limited``, ``model_error``…, see docs/protocol.md), or one of
            :class:`SeladorConnectionError`'s codes.
        message: A sentence safe to show a user.
        frame: The ``error`` frame, when the server sent one.
    """

    def __init__(self, code: str, message: str, frame: dict[str, Any] | None = None) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.frame = frame


class SeladorConnectionError(SeladorError):
    """The connection failed, or closed and was not (or could not be) made again.

    Codes: ``connect_failed`` (the first connection), ``connection_lost`` (it closed and the
    client's ``reconnect`` rule said not to reconnect), ``reconnect_failed`` (every attempt
    failed, or the handshake was refused with 401/403), ``closed`` (the client was closed or
    aborted before the run ended). The run itself may go on in the server: resume it later with
    its ``request_id`` and ``run_token``.

    Attributes:
        close_code: The WebSocket close code (1006: the connection vanished without one), when
            a connection closed.
        reason: The close reason, when one was sent.
    """

    def __init__(self, code: str, message: str, close_code: int | None = None, reason: str = "") -> None:
        super().__init__(code, message)
        self.close_code = close_code
        self.reason = reason
