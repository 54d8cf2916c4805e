"""The gateway's wire protocols: uvicorn's h11 and WebSocket protocols, made to behave as API Gateway.

* :class:`HeadLimitedH11Protocol` limits request heads (below);
* :class:`RawHeaderH11Protocol` hands WebSocket upgrades on with header names as the client sent
  them;
* :func:`frame_limited_protocol` enforces the 32 KiB frame quota, answers handshakes the WebSocket
  library refused, closes bad UTF-8 with 1007 in one log line, reports vanished clients as 1006.

Without the head limit, a handshake whose request line and headers run past a few KiB was parsed by h11 in
one piece, then refused by the WebSocket library, and the connection was neither answered nor
closed. Here every request head (request line and headers, WebSocket handshakes included) is
measured as it arrives; past :data:`MAX_HEAD_BYTES` the client gets ``431 Request Header Fields
Too Large`` with a JSON message naming the limit, and the connection is closed at once.

Pipelined requests (a second head in the same read as the first request) are measured by h11's
own limit only (``h11_max_incomplete_event_size``); no browser or SDK pipelines.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request
from websockets.protocol import State

from selador.local.websocket_api import RAW_HEADERS_EXTENSION

_HEAD_END = re.compile(rb"\r?\n\r?\n")
MAX_HEAD_BYTES = 10 * 1024
"""API Gateway's quota on the combined size of the request line and header values (10,240 bytes)."""

log = logging.getLogger("selador.gateway")


class HeadLimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol refusing request heads over :data:`MAX_HEAD_BYTES` with 431."""

    max_head_bytes = MAX_HEAD_BYTES
    _head = b""
    _refused = False

    def data_received(self, data: bytes) -> None:
        """Measure the head of a new request before h11 (and any upgrade) sees it."""
        if self._refused:
            return  # the rest of a refused head, arriving while the connection closes
        if self.conn.their_state is h11.IDLE:
            head = self._head + data
            end = _HEAD_END.search(head)  # h11 also takes bare LF line ends
            size = len(head) if end is None else end.end()
            if size > self.max_head_bytes:
                self._refuse(size)
                return
            self._head = head if end is None else b""
        else:
            self._head = b""
        super().data_received(data)

    def _refuse(self, size: int) -> None:
        self._head, self._refused = b"", True
        log.info("refused a request head of %s+ bytes (limit %d)", size, self.max_head_bytes)
        body = json.dumps(
            {
                "message": f"Request Header Fields Too Large: the request line and headers exceed "
                f"{self.max_head_bytes} bytes"
            }
        ).encode()
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()


def frame_limited_protocol(max_frame_bytes: int) -> type[WebSocketsSansIOProtocol]:
    """The WebSocket protocol of uvicorn, closing with 1009 on a frame over ``max_frame_bytes``.

    API Gateway limits frames to 32 KiB as well as messages to 128 KiB; ASGI only sees whole
    messages, so the frame check sits in the protocol, where frames are still visible. The
    protocol also keeps the handshake's header names as the client sent them, for ``$connect``
    (see :data:`selador.local.gateway.RAW_HEADERS_EXTENSION`), and reports a vanished client as
    1006.

    Args:
        max_frame_bytes: Largest frame payload accepted (0: no frame limit).

    Returns:
        A protocol class for ``uvicorn.Config(ws=...)``.
    """

    class FrameLimitedProtocol(WebSocketsSansIOProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.handshake_initiated and self.conn.handshake_exc is not None and not self.close_sent:
                # A handshake the WebSocket library refused (a header line over 8 KiB, too many
                # headers, not HTTP): it has queued its 4xx answer (or nothing), but uvicorn
                # neither writes it nor closes, and the client would wait forever.
                self.close_sent = True
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.transport.close()

        def handle_connect(self, event: Request) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)  # unset when the handshake was refused
            if scope is not None:
                # ASGI wants lower-case names (Starlette's lookups rely on it); the names as sent
                # travel beside them for the $connect event.
                raw = scope["headers"]
                scope["headers"] = [(name.lower(), value) for name, value in raw]
                scope["extensions"][RAW_HEADERS_EXTENSION] = raw

        def _too_big(self, event: Frame) -> bool:
            if not max_frame_bytes or len(event.data) <= max_frame_bytes:
                return False
            if not self.close_sent:
                self.conn.fail(
                    CloseCode.MESSAGE_TOO_BIG,
                    f"frame of {len(event.data)} bytes exceeds the {max_frame_bytes}-byte limit",
                )
                self.handle_parser_exception()
            return True

        def handle_text(self, event: Frame) -> None:
            if not self._too_big(event):
                super().handle_text(event)

        def handle_bytes(self, event: Frame) -> None:
            if not self._too_big(event):
                super().handle_bytes(event)

        def handle_cont(self, event: Frame) -> None:
            if not self._too_big(event):
                super().handle_cont(event)

        async def send(self, message: Any) -> None:
            await super().send(message)
            if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
                # A refused handshake (denial response) is a complete answer; without this uvicorn
                # logs "ASGI callable returned without completing handshake" for every refusal.
                self.handshake_complete = True

        def send_receive_event_to_app(self) -> None:
            if self.curr_msg_data_type == "text" and not self.close_sent:
                data = b"".join(self.frames)
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    # uvicorn would log this with a traceback; it is the client's error, one line.
                    self.frames = []
                    closing = self.conn.state is not State.OPEN
                    log.warning(
                        "ws %s: %s, a text message is not valid UTF-8 (%s)",
                        f"{self.client[0]}:{self.client[1]}" if self.client else "client",
                        "message dropped (the client is closing)" if closing else "closed with 1007",
                        exc.reason,
                    )
                    if not closing:  # else the client's close frame, in the same read, ends it
                        self.conn.send_close(CloseCode.INVALID_DATA, "Invalid UTF-8 in text message")
                        self.handle_parser_exception()
                    return
            super().send_receive_event_to_app()

        def connection_lost(self, exc: Exception | None) -> None:
            # uvicorn reports a connection that vanished without a close frame as 1005; API
            # Gateway (and RFC 6455) call that 1006. The gateway reads the first disconnect only.
            if self.handshake_complete and self.conn.close_rcvd is None:
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
            super().connection_lost(exc)

    return FrameLimitedProtocol


class RawHeaderH11Protocol(HeadLimitedH11Protocol):
    """uvicorn's h11 HTTP protocol, handing WebSocket upgrades on with header names as sent.

    uvicorn rebuilds the upgrade request for the WebSocket protocol from lower-cased names, while
    API Gateway passes the client's casing to ``$connect`` (``Sec-WebSocket-Key``, ``x-api-key``
    as sent). h11 keeps the raw names, so the rebuilt request uses them, and the WebSocket
    protocol (:func:`frame_limited_protocol`) keeps them for the event. Plain HTTP requests are
    untouched: HTTP APIs lower-case header names anyway. Request heads are limited as
    :class:`HeadLimitedH11Protocol` does.
    """

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Hand the upgrade to the WebSocket protocol with the raw header names."""
        self.headers = list(event.headers.raw_items())
        super().handle_websocket_upgrade(event)


__all__ = ["MAX_HEAD_BYTES", "HeadLimitedH11Protocol", "RawHeaderH11Protocol", "frame_limited_protocol"]
