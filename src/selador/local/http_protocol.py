"""The gateway's HTTP/1.1 protocol: uvicorn's h11 protocol with a limit on request heads.

Without it, a handshake whose request line and headers run past a few KiB was parsed by h11 in
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

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

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


__all__ = ["MAX_HEAD_BYTES", "HeadLimitedH11Protocol"]
