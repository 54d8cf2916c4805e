#!/usr/bin/env python3
"""Ask Selador one question over its WebSocket API and stream the answer to the terminal.

    python test_websocket_client.py "What are the zoning requirements?" --query-type zoning

Connects to ``--url``, else ``SELADOR_WS_URL``, else the local gateway (``make serve``) at
ws://127.0.0.1:3001/production. Status lines print as they arrive, answer text streams inline,
then the result's metadata. ``--json`` prints every raw frame instead.

Exit status: 0 on a ``result`` frame, 1 on an ``error`` frame (or API Gateway's own error frame),
2 when the connection fails or closes early, or ``--timeout`` passes.

Needs only the ``websockets`` package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from typing import Any, TextIO

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

DEFAULT_URL = "ws://127.0.0.1:3001/production"
QUERY_TYPES = ("general", "zoning", "building_codes", "permits", "financing")

EXIT_RESULT = 0
EXIT_ERROR = 1
EXIT_CONNECTION = 2

# API Gateway's own frames carry "message" and no "type". The 29-second one is not terminal: the
# function goes on and its frames still arrive.
GATEWAY_TIMEOUT = "Endpoint request timed out"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description="Ask Selador a question over WebSocket and stream the answer."
    )
    parser.add_argument("question", help="the question to ask")
    parser.add_argument("--context", help="optional context for the question")
    parser.add_argument("--query-type", default="general", choices=QUERY_TYPES, help="default %(default)s")
    parser.add_argument(
        "--url",
        default=os.environ.get("SELADOR_WS_URL") or DEFAULT_URL,
        help="WebSocket URL (default: $SELADOR_WS_URL or %(default)s)",
    )
    parser.add_argument("--request-id", help="request id to send (default: a fresh one)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")
    parser.add_argument("--json", action="store_true", help="print raw frames, one per line")
    return parser.parse_args(argv)


class Printer:
    """Human-readable output: status lines, inline deltas, then the result."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.streamed = ""

    def _end_stream_line(self) -> None:
        if self.streamed and not self.streamed.endswith("\n"):
            self.out.write("\n")
            self.streamed += "\n"

    def status(self, frame: dict[str, Any]) -> None:
        """Print a status frame on a line of its own."""
        self._end_stream_line()
        self.out.write(f"[status] {frame.get('message', '')}\n")
        self.out.flush()

    def delta(self, frame: dict[str, Any]) -> None:
        """Append answer text to the current line, as it arrives."""
        text = str(frame.get("content", ""))
        self.streamed += text
        self.out.write(text)
        self.out.flush()

    def message(self, frame: dict[str, Any]) -> None:
        """Print a completed message, unless its text already streamed as deltas."""
        if not self.streamed:
            self.out.write(str(frame.get("content", "")) + "\n")

    def result(self, frame: dict[str, Any]) -> None:
        """Finish the answer and print the result's metadata and sources."""
        data = frame.get("data") or {}
        content = str(data.get("content", ""))
        if not self.streamed.strip():
            self.out.write(content)
        self._end_stream_line()
        if self.streamed and content and self.streamed.strip() != content.strip():
            self.out.write("\n[final answer]\n" + content + "\n")
        usage = data.get("usage") or {}
        self.out.write(
            f"\n[result] agent={data.get('agent')} query_type={data.get('query_type')} "
            f"tools_used={data.get('tools_used')}/{data.get('tools_available')} "
            f"tokens={usage.get('total_tokens', 0)} duration={data.get('duration_ms')} ms\n"
        )
        for source in data.get("sources") or []:
            section = f" §{source['section']}" if source.get("section") else ""
            self.out.write(f"  source: {source.get('title')} ({source.get('location')}){section}\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """Print an error on stderr."""
        self._end_stream_line()
        self.err.write(f"[error] {text}\n")
        self.err.flush()

    def note(self, text: str) -> None:
        """Print a note on stderr (something ignored on purpose)."""
        self._end_stream_line()
        self.err.write(f"[note] {text}\n")
        self.err.flush()


async def ask(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Send one ``invoke`` and follow its frames to the terminal one.

    Args:
        args: Parsed command line.
        out: Where answers go.
        err: Where errors and notes go.

    Returns:
        The exit status.
    """
    printer = Printer(out, err)
    request_id = args.request_id or f"cli-{uuid.uuid4().hex[:12]}"
    message: dict[str, Any] = {
        "action": "invoke",
        "question": args.question,
        "query_type": args.query_type,
        "request_id": request_id,
    }
    if args.context:
        message["context"] = args.context
    try:
        async with asyncio.timeout(args.timeout):
            async with connect(args.url, proxy=None, open_timeout=min(args.timeout, 10), max_size=None) as ws:
                await ws.send(json.dumps(message))
                async for raw in ws:
                    if args.json:
                        out.write((raw if isinstance(raw, str) else raw.decode("utf-8", "replace")) + "\n")
                        out.flush()
                    status = handle_frame(raw, request_id, printer, quiet=args.json)
                    if status is not None:
                        return status
                printer.error("the server closed the connection before the answer was complete")
                return EXIT_CONNECTION
    except TimeoutError:
        printer.error(f"no answer within {args.timeout:g} s")
        return EXIT_CONNECTION
    except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
        printer.error(f"cannot talk to {args.url}: {exc}")
        return EXIT_CONNECTION


def handle_frame(raw: str | bytes, request_id: str, printer: Printer, *, quiet: bool = False) -> int | None:
    """Act on one frame.

    Args:
        raw: The frame as received.
        request_id: Ours; frames of other requests are ignored.
        printer: Output.
        quiet: Print nothing but notes and errors (``--json`` already printed the frame).

    Returns:
        The exit status once a terminal frame arrived, else ``None``.
    """
    try:
        frame = json.loads(raw)
    except ValueError:
        printer.note(f"ignoring a frame that is not JSON: {raw[:80]!r}")
        return None
    if not isinstance(frame, dict):
        return None
    if "type" not in frame and "message" in frame:
        if frame["message"] == GATEWAY_TIMEOUT:
            printer.note("API Gateway stopped waiting for the route (29 s); the answer keeps streaming")
            return None
        printer.error(f"API Gateway: {frame['message']} (requestId {frame.get('requestId')})")
        return EXIT_ERROR
    if frame.get("request_id") not in (None, request_id):
        return None
    kind = frame.get("type")
    if kind == "result":
        if not quiet:
            printer.result(frame)
        return EXIT_RESULT
    if kind == "error":
        # Without a request_id it is still the answer to our message: the server could not read
        # the id (this connection carries nothing else).
        printer.error(f"{frame.get('error')} ({frame.get('code', 'error')})")
        return EXIT_ERROR
    if quiet:
        return None
    if kind == "status":
        printer.status(frame)
    elif kind == "delta":
        printer.delta(frame)
    elif kind == "message":
        printer.message(frame)
    return None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    try:
        return asyncio.run(ask(args))
    except KeyboardInterrupt:
        return EXIT_CONNECTION


if __name__ == "__main__":
    sys.exit(main())
