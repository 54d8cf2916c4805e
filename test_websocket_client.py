#!/usr/bin/env python3
r"""Ask Selador one question over its WebSocket API and stream the answer to the terminal.

Usage examples::

    # the local gateway (`make serve`)
    python test_websocket_client.py "What are the zoning requirements?" --query-type zoning
    python test_websocket_client.py "What permits do I need?" --context "Capitol Hill lot"
    # every frame of the run as raw JSON, one per line, in seq order
    python test_websocket_client.py "What permits do I need?" --json
    # a deployed stack (or: export SELADOR_WS_URL=...)
    python test_websocket_client.py "What is the FAR in LR2?" \
        --url "wss://{apiId}.execute-api.us-west-2.amazonaws.com/production?token=$TOKEN"
    # a dropped connection ends the client (exit 2) instead of reconnecting
    python test_websocket_client.py "What is the FAR in LR2?" --no-reconnect
    # ask the server to stop the run when this connection drops
    python test_websocket_client.py "What is the FAR in LR2?" --on-disconnect cancel

Connects to ``--url``, else ``SELADOR_WS_URL``, else the local gateway at
ws://127.0.0.1:3001/production. Status lines print as they arrive, answer text streams inline,
then the result's metadata. ``--json`` prints the run's raw frames instead.

Every question is a durable run (protocol 1.1, docs/protocol.md "Runs: resume and cancel"):

* Frames are deduplicated and delivered in ``seq`` order: one that arrives ahead of a gap waits
  until the gap fills (a gap still open after a few seconds is asked for again with ``resume``).
* When the connection drops (no close frame, i.e. 1006, or a close with 1001 going away, 1011,
  1012, 1013 or 1014) the client reconnects by itself, waiting 0.25 s, then twice as long each
  time up to 8 s, for at most 10 attempts without progress, and sends ``resume`` with the last
  contiguous ``seq`` it has and the run token, saying so on stderr::

      [reconnected after 0.5 s; resuming cli-3f2a after seq 12]

  A close with 1000 (the server or API Gateway's DeleteConnection closing on purpose) or any
  other code is not a drop: the client stops (exit 2). ``--no-reconnect`` turns reconnection off.
* Ctrl-C sends ``cancel`` and waits for the run's terminal frame (a ``result`` whose
  ``stop_reason`` is ``cancelled``, or the normal end when the run finished first); a second
  Ctrl-C quits at once.

Exit status:

* 0: a ``result`` frame (the run finished).
* 1: the query failed: an ``error`` frame, API Gateway's own error frame, a ``result`` of a
  cancelled run (Ctrl-C, or cancelled elsewhere: the answer is incomplete), or a run that
  cannot be resumed (``unknown_run``).
* 2: a connection or usage problem: the connection cannot be made, it closed before the answer
  was complete and could not be resumed (or ``--no-reconnect``), or ``--timeout`` passed.
* 130: quit by Ctrl-C without waiting for the run to end (a second Ctrl-C, or Ctrl-C before the
  question was sent).

Needs only the ``websockets`` package.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

DEFAULT_URL = "ws://127.0.0.1:3001/production"
QUERY_TYPES = ("general", "zoning", "building_codes", "permits", "financing")
ON_DISCONNECT = ("continue", "cancel")

EXIT_RESULT = 0
EXIT_ERROR = 1
EXIT_CANCELLED = EXIT_ERROR
EXIT_CONNECTION = 2
EXIT_INTERRUPTED = 130

RECONNECT_FIRST_DELAY_S = 0.25
RECONNECT_MAX_DELAY_S = 8.0
RECONNECT_ATTEMPTS = 10
"""Connection attempts without progress (a new frame of the run) before giving up."""
RETRYABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes after which the run is resumed on a new connection (1006: no close frame)."""
GAP_RESUME_AFTER_S = 2.0
"""How long a gap in the ``seq`` numbers may stay open before the missing frames are asked for."""
REORDER_WINDOW = 256
"""Frames further than this ahead of the next expected ``seq`` are dropped (a resume resends them)."""

# API Gateway's own frames carry "message" and no "type". The 29-second one is not terminal: the
# function goes on and its frames still arrive.
GATEWAY_TIMEOUT = "Endpoint request timed out"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description="Ask Selador a question over WebSocket and stream the answer.",
        epilog="Exit status: 0 answered, 1 the query failed or was cancelled, "
        "2 connection problem or timeout, 130 quit by a second Ctrl-C.",
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
    parser.add_argument(
        "--no-reconnect",
        action="store_true",
        help="do not reconnect and resume when the connection drops (exit 2 instead)",
    )
    parser.add_argument(
        "--on-disconnect",
        choices=ON_DISCONNECT,
        help="what the server does with the run when this connection drops (default: not sent; "
        "the server continues)",
    )
    parser.add_argument(
        "--session-id",
        help='ask in this conversation ("new" starts one); the session id and token are printed',
    )
    parser.add_argument(
        "--session-token",
        default=os.environ.get("SELADOR_SESSION_TOKEN") or None,
        help="the session_token of an anonymous conversation (default: $SELADOR_SESSION_TOKEN)",
    )
    return parser.parse_args(argv)


class Printer:
    """Human-readable output: status lines, inline deltas, then the result.

    Answer text goes to ``out`` exactly as the deltas carry it; notes and errors go to ``err``.
    A note in the middle of a streamed line starts with a line break on ``err`` (so a terminal
    showing both stays readable) and leaves ``out`` untouched.
    """

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.streamed = ""
        self._out_mid_line = False  # what was written to ``out`` ends inside a line
        self._screen_mid_line = False  # the same, for a terminal showing ``out`` and ``err``

    def _write_out(self, text: str) -> None:
        if text:
            self.out.write(text)
            self._out_mid_line = self._screen_mid_line = not text.endswith("\n")

    def _end_stream_line(self) -> None:
        if self._out_mid_line:
            self._write_out("\n")

    def status(self, frame: dict[str, Any]) -> None:
        """Print a status frame on a line of its own."""
        self._end_stream_line()
        self._write_out(f"[status] {frame.get('message', '')}\n")
        if frame.get("stage") == "accepted" and frame.get("session_id"):
            token = frame.get("session_token")
            self.note(
                f"session {frame['session_id']}"
                + (
                    f" (continue with --session-id {frame['session_id']} --session-token {token})"
                    if token
                    else ""
                )
            )
        self.out.flush()

    def delta(self, frame: dict[str, Any]) -> None:
        """Append answer text to the current line, as it arrives."""
        text = str(frame.get("content", ""))
        self.streamed += text
        self._write_out(text)
        self.out.flush()

    def message(self, frame: dict[str, Any]) -> None:
        """Print a completed message, unless its text already streamed as deltas."""
        if not self.streamed:
            self._write_out(str(frame.get("content", "")) + "\n")

    def result(self, frame: dict[str, Any]) -> None:
        """Finish the answer and print the result's metadata and sources."""
        data = frame.get("data") or {}
        content = str(data.get("content", ""))
        if not self.streamed.strip():
            self._write_out(content)
        self._end_stream_line()
        if self.streamed and content and self.streamed.strip() != content.strip():
            self._write_out("\n[final answer]\n" + content + "\n")
        stop_reason = data.get("stop_reason")
        if stop_reason == "cancelled":
            self._write_out("[cancelled] the run was stopped before it finished; the answer is incomplete\n")
        elif stop_reason not in (None, "end_turn"):
            self._write_out(f"[stopped early] {stop_reason}\n")
        usage = data.get("usage") or {}
        self._write_out(
            f"\n[result] agent={data.get('agent')} query_type={data.get('query_type')} "
            f"tools_used={data.get('tools_used')}/{data.get('tools_available')} "
            f"tokens={usage.get('total_tokens', 0)} duration={data.get('duration_ms')} ms\n"
        )
        for source in data.get("sources") or []:
            section = f" §{source['section']}" if source.get("section") else ""
            self._write_out(f"  source: {source.get('title')} ({source.get('location')}){section}\n")
        self.out.flush()

    def raw(self, raw: str | bytes) -> None:
        """Print one frame as received (``--json``)."""
        self._write_out((raw if isinstance(raw, str) else raw.decode("utf-8", "replace")) + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """Print an error on stderr."""
        self._end_stream_line()
        self.err.write(f"[error] {text}\n")
        self.err.flush()

    def note(self, text: str) -> None:
        """Print a note on stderr: something ignored on purpose."""
        self.event(f"note: {text}")

    def event(self, text: str) -> None:
        """Print ``[text]`` on stderr: a drop, a reconnection, a cancel."""
        self.out.flush()
        if self._screen_mid_line:
            self.err.write("\n")
            self._screen_mid_line = False
        self.err.write(f"[{text}]\n")
        self.err.flush()


class RunFrames:
    """The frames of one run: drops a ``seq`` already seen, releases frames in ``seq`` order.

    Attributes:
        next_seq: The ``seq`` the next frame to release must have.
        gap_since: ``time.monotonic()`` when frames started waiting for a gap to fill, else ``None``.
    """

    def __init__(self) -> None:
        self.next_seq = 1
        self.gap_since: float | None = None
        self._waiting: dict[int, tuple[dict[str, Any], str | bytes]] = {}

    @property
    def last_seq(self) -> int:
        """The last ``seq`` released: everything up to it has been delivered."""
        return self.next_seq - 1

    def add(
        self, seq: int, frame: dict[str, Any], raw: str | bytes
    ) -> list[tuple[dict[str, Any], str | bytes]]:
        """Take one frame of the run.

        Args:
            seq: Its ``seq``.
            frame: The frame, decoded.
            raw: The frame as received.

        Returns:
            The frames that became deliverable, in ``seq`` order (empty for a duplicate or a frame
            that has to wait).
        """
        if seq < self.next_seq or seq in self._waiting or seq >= self.next_seq + REORDER_WINDOW:
            return []
        self._waiting[seq] = (frame, raw)
        ready = []
        while self.next_seq in self._waiting:
            ready.append(self._waiting.pop(self.next_seq))
            self.next_seq += 1
        if not self._waiting:
            self.gap_since = None
        elif ready or self.gap_since is None:
            self.gap_since = time.monotonic()
        return ready

    def forget_waiting(self) -> None:
        """Drop frames waiting for a gap (before asking for the run again from scratch)."""
        self._waiting.clear()
        self.gap_since = None


@dataclass(frozen=True)
class Drop:
    """A connection that ended before the run did, in a way worth reconnecting after.

    Attributes:
        code: The close code (1006 when no close frame arrived).
        at: ``time.monotonic()`` when it was noticed.
    """

    code: int
    at: float


class Client:
    """Asks one question and follows its run to the end, across reconnections.

    Args:
        args: Parsed command line.
        out: Where answers go.
        err: Where errors and notes go.
    """

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.printer = Printer(out, err)
        self.request_id: str = args.request_id or f"cli-{uuid.uuid4().hex[:12]}"
        self.frames = RunFrames()
        self.run_token: str | None = None
        self.ws: ClientConnection | None = None
        self.sent_invoke = False  # the question has been sent at least once
        self.reinvoked = False  # sent again on a new connection (the first one never said accepted)
        self.cancel_requested = False
        self.cancel_sent = False  # a cancel reached the socket at least once
        self.quitting = False
        self.finished = False
        self._delay = RECONNECT_FIRST_DELAY_S
        self._attempts = 0  # connection attempts since the run last made progress
        self._task: asyncio.Task[int] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- the whole run --------------------------------------------------------------------------

    async def run(self) -> int:
        """Ask the question and follow the run to its terminal frame.

        Returns:
            The exit status.
        """
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
            handles_sigint = True
        except (NotImplementedError, RuntimeError):  # no signal handlers here (Windows, a thread)
            handles_sigint = False
        try:
            async with asyncio.timeout(self.args.timeout):
                return await self._follow()
        except TimeoutError:
            self.printer.error(f"no answer within {self.args.timeout:g} s")
            return EXIT_CONNECTION
        except asyncio.CancelledError:
            if not self.quitting:
                raise
            if self._task is not None:
                self._task.uncancel()
            if not self.sent_invoke:
                what = "nothing was sent"
            elif self.cancel_sent:
                what = f"the run {self.request_id} was asked to cancel"
            else:
                what = f"the run {self.request_id} goes on in the server"
            self.printer.event(f"interrupted: quit without waiting for the run to end ({what})")
            return EXIT_INTERRUPTED
        finally:
            if handles_sigint:
                loop.remove_signal_handler(signal.SIGINT)
            for task in self._background:
                task.cancel()

    async def _follow(self) -> int:
        try:
            ws = await self._connect()
        except TimeoutError:
            raise  # the outer handler says "no answer within"
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            self.printer.error(f"cannot talk to {self.args.url}: {exc}")
            return EXIT_CONNECTION
        drop: Drop | None = None
        while True:
            outcome = await self._converse(ws, drop)
            if isinstance(outcome, int):
                return outcome
            drop = outcome
            if self.args.no_reconnect:
                self.printer.error(
                    f"the connection was lost ({drop.code}) before the answer was complete (--no-reconnect)"
                )
                return EXIT_CONNECTION
            self.printer.event(f"connection lost ({drop.code}); reconnecting")
            reconnected = await self._reconnect()
            if isinstance(reconnected, int):
                return reconnected
            ws = reconnected

    async def _connect(self) -> ClientConnection:
        self._attempts += 1
        return await connect(
            self.args.url, proxy=None, open_timeout=min(self.args.timeout, 10), max_size=None
        )

    async def _reconnect(self) -> ClientConnection | int:
        """A new connection after a drop, with exponential backoff; an exit status when none comes."""
        last: BaseException | None = None
        while self._attempts < RECONNECT_ATTEMPTS:
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, RECONNECT_MAX_DELAY_S)
            try:
                return await self._connect()
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    # The token in the URL is no longer accepted: retrying cannot help.
                    self.printer.error(f"cannot reconnect to {self.args.url}: {exc}")
                    return EXIT_CONNECTION
                last = exc
            except (OSError, InvalidHandshake, InvalidURI) as exc:  # TimeoutError is an OSError
                last = exc
        self.printer.error(
            f"the connection was lost and {RECONNECT_ATTEMPTS} attempts to reconnect failed"
            + (f" (last: {last})" if last else "")
        )
        return EXIT_CONNECTION

    # -- one connection ----------------------------------------------------------------------------

    async def _converse(self, ws: ClientConnection, drop: Drop | None) -> int | Drop:
        """Start or resume the run on ``ws`` and read frames until the run ends or ``ws`` drops."""
        self.ws = ws
        try:
            try:
                if drop is None:
                    await ws.send(json.dumps(self._invoke_message()))
                    self.sent_invoke = True
                else:
                    await self._resume_after_drop(ws, drop)
                while True:
                    raw = await self._recv(ws)
                    if raw is None:
                        continue
                    status = self._on_raw(ws, raw)
                    if status is not None:
                        self.finished = True
                        await ws.close()
                        return status
            except ConnectionClosed as exc:
                return self._after_close(exc)
        finally:
            self.ws = None
            if ws.state is not State.CLOSED:
                ws.transport.abort()  # left by an exception (timeout, Ctrl-C): nothing to wait for

    async def _resume_after_drop(self, ws: ClientConnection, drop: Drop) -> None:
        elapsed = time.monotonic() - drop.at
        if self.frames.next_seq == 1 and self.run_token is None:
            # The run never said "accepted" here: without its token it cannot be resumed
            # (anonymously), so ask again under the same request_id. An authenticated user whose
            # first run did start hears duplicate_request and resumes it then (by ownership).
            self.printer.event(
                f"reconnected after {elapsed:.1f} s; asking again as {self.request_id} "
                "(the run had not been accepted yet)"
            )
            self.frames.forget_waiting()
            self.reinvoked = True
            await ws.send(json.dumps(self._invoke_message()))
            self.sent_invoke = True
            return
        self.printer.event(
            f"reconnected after {elapsed:.1f} s; resuming {self.request_id} after seq {self.frames.last_seq}"
        )
        await ws.send(json.dumps(self._resume_message()))
        if self.cancel_requested:
            await self._send(ws, self._cancel_message())

    async def _recv(self, ws: ClientConnection) -> str | bytes | None:
        """The next message; ``None`` after asking for frames missing behind a gap for too long."""
        if self.frames.gap_since is None:
            return await ws.recv()
        remaining = self.frames.gap_since + GAP_RESUME_AFTER_S - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0)):
                return await ws.recv()
        except TimeoutError:
            self.frames.gap_since = time.monotonic()
            await ws.send(json.dumps(self._resume_message()))
            return None

    def _after_close(self, exc: ConnectionClosed) -> int | Drop:
        """Decide whether a closed connection is a drop to recover from, or the end."""
        if exc.rcvd is None:
            return Drop(1006, time.monotonic())  # no close frame: the network or the server vanished
        code, reason = exc.rcvd.code, exc.rcvd.reason
        if code in RETRYABLE_CLOSE_CODES:
            return Drop(code, time.monotonic())
        self.printer.error(
            f"the server closed the connection ({code}{' ' + reason if reason else ''}) "
            "before the answer was complete"
        )
        return EXIT_CONNECTION

    # -- frames --------------------------------------------------------------------------------

    def _on_raw(self, ws: ClientConnection, raw: str | bytes) -> int | None:
        """Act on one message; the exit status once the run is over, else ``None``."""
        try:
            frame = json.loads(raw)
        except ValueError:
            self.printer.note(f"ignoring a frame that is not JSON: {raw[:80]!r}")
            return None
        seq = frame.get("seq") if isinstance(frame, dict) else None
        if (
            isinstance(frame, dict)
            and frame.get("request_id") == self.request_id
            and isinstance(seq, int)
            and not isinstance(seq, bool)
            and seq >= 1
        ):
            for ready, ready_raw in self.frames.add(seq, frame, raw):
                status = self._deliver(ws, ready, ready_raw)
                if status is not None:
                    return status
            return None
        # Not a frame of the run: an answer about a message, API Gateway's own frame, or noise.
        if self.args.json:
            self.printer.raw(raw)
        if not isinstance(frame, dict):
            return None
        if "type" not in frame and "message" in frame:
            if frame["message"] == GATEWAY_TIMEOUT:
                self.printer.note(
                    "API Gateway stopped waiting for the route (29 s); the answer keeps streaming"
                )
                return None
            self.printer.error(f"API Gateway: {frame['message']} (requestId {frame.get('requestId')})")
            return EXIT_ERROR
        if frame.get("request_id") not in (None, self.request_id) or frame.get("type") != "error":
            return None
        # An error about one of our messages (no seq). Without a request_id it is still ours: the
        # server could not read the id (this connection carries nothing else).
        code = frame.get("code")
        if code == "not_running":
            # Our cancel came after the run ended: its terminal frame is logged; make sure it comes.
            self._spawn(self._send(ws, self._resume_message()))
            return None
        if code == "duplicate_request" and self.reinvoked:
            # Asked again after a drop and the first run did start (an authenticated owner): follow it.
            self._spawn(self._send(ws, self._resume_message()))
            return None
        self.printer.error(f"{frame.get('error')} ({code or 'error'})")
        return EXIT_ERROR

    def _deliver(self, ws: ClientConnection, frame: dict[str, Any], raw: str | bytes) -> int | None:
        """Show one frame of the run, in order; the exit status when it is the terminal one."""
        self._attempts = 0  # progress: the reconnection budget starts again
        self._delay = RECONNECT_FIRST_DELAY_S
        if isinstance(frame.get("run_token"), str):
            self.run_token = frame["run_token"]
            if self.cancel_requested:
                self._spawn(self._send(ws, self._cancel_message()))
        if self.args.json:
            self.printer.raw(raw)
        kind = frame.get("type")
        if kind == "result":
            data = frame.get("data") or {}
            if not self.args.json:
                self.printer.result(frame)
            if data.get("stop_reason") == "cancelled" or data.get("success") is False:
                return EXIT_CANCELLED
            return EXIT_RESULT
        if kind == "error":
            self.printer.error(f"{frame.get('error')} ({frame.get('code', 'error')})")
            return EXIT_ERROR
        if self.args.json:
            return None
        if kind == "status":
            self.printer.status(frame)
        elif kind == "delta":
            self.printer.delta(frame)
        elif kind == "message":
            self.printer.message(frame)
        return None

    # -- messages --------------------------------------------------------------------------------

    def _invoke_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "action": "invoke",
            "question": self.args.question,
            "query_type": self.args.query_type,
            "request_id": self.request_id,
        }
        if self.args.context:
            message["context"] = self.args.context
        if self.args.on_disconnect:
            message["on_disconnect"] = self.args.on_disconnect
        if self.args.session_id:
            message["session_id"] = self.args.session_id
        if self.args.session_token:
            message["session_token"] = self.args.session_token
        return message

    def _resume_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "action": "resume",
            "request_id": self.request_id,
            "after_seq": self.frames.last_seq,
        }
        if self.run_token is not None:
            message["run_token"] = self.run_token
        return message

    def _cancel_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"action": "cancel", "request_id": self.request_id}
        if self.run_token is not None:
            message["run_token"] = self.run_token
        return message

    async def _send(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        # A connection that dropped meanwhile is noticed by the reader, which resumes (and
        # cancels again when asked to) on the next connection.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(message))
            if message["action"] == "cancel":
                self.cancel_sent = True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- Ctrl-C -------------------------------------------------------------------------------------

    def _on_sigint(self) -> None:
        """First Ctrl-C: cancel the run and wait for its end. Second (or nothing to cancel): quit."""
        if self.finished:
            return
        if self.cancel_requested or not self.sent_invoke:
            self.quitting = True
            if self.ws is not None:
                self.ws.transport.abort()  # no closing handshake to wait for
            if self._task is not None:
                self._task.cancel()
            return
        self.cancel_requested = True
        self.printer.event(f"cancelling {self.request_id}; press Ctrl-C again to quit at once")
        if self.ws is not None and self.run_token is not None:
            self._spawn(self._send(self.ws, self._cancel_message()))
        # Otherwise the cancel goes out once the run's token arrives, or after the reconnection.


async def ask(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Send one ``invoke`` and follow its run to the terminal frame, reconnecting when it drops.

    Args:
        args: Parsed command line.
        out: Where answers go.
        err: Where errors and notes go.

    Returns:
        The exit status.
    """
    return await Client(args, out, err).run()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    try:
        return asyncio.run(ask(args))
    except KeyboardInterrupt:  # Ctrl-C where asyncio cannot handle SIGINT itself
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
