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

Run it as ``python test_websocket_client.py`` from the repository (or ``python -m selador_client``
where this package is installed). The library does the reconnecting, resuming, ordering and
cancelling; this module chooses when to reconnect, and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
import uuid
from typing import TextIO

from .client import Client
from .errors import SeladorConnectionError, SeladorError
from .events import Event
from .frames import Frame
from .printer import NotePrinter, Printer
from .run import Run

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
"""Connection attempts without progress (a frame) before giving up."""
RETRYABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes after which the run is resumed on a new connection (1006: no close frame). A close
with 1000 is the server (or API Gateway's DeleteConnection) closing on purpose: this client stops
there, although the library would reconnect by default."""

# API Gateway's own frames carry "message" and no "type". The 29-second one is not terminal: the
# function goes on and its frames still arrive.
GATEWAY_TIMEOUT = "Endpoint request timed out"


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    """Read the command line (``argv`` defaults to ``sys.argv[1:]``; ``prog`` names the command)."""
    parser = argparse.ArgumentParser(
        prog=prog,
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


class Cli:
    """Asks one question and follows its run to the end, printing as it goes.

    Args:
        args: Parsed command line.
        out: Where answers go.
        err: Where errors and notes go.
    """

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.printer = Printer(out, err)
        self.request_id: str = args.request_id or f"cli-{uuid.uuid4().hex[:12]}"
        self.client: Client | None = None
        self.run: Run | None = None
        self.cancel_requested = False
        self.cancel_sent = False  # a cancel reached the socket
        self.quitting = False
        self.finished = False
        self.dropped_at = 0.0
        self._failure: asyncio.Future[int] | None = None  # API Gateway's own error frame
        self._task: asyncio.Task[int] | None = None
        self._cancelling: asyncio.Task[bool] | None = None

    # -- the whole run --------------------------------------------------------------------------

    async def main(self) -> int:
        """Ask the question and follow the run to its terminal frame.

        Returns:
            The exit status.
        """
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._failure = loop.create_future()
        try:
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
            handles_sigint = True
        except (NotImplementedError, RuntimeError):  # no signal handlers here (Windows, a thread)
            handles_sigint = False
        notes = NotePrinter(self.printer)
        logging.getLogger("selador_client").addHandler(notes)
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
            if self.run is None:
                what = "nothing was sent"
            elif self.cancel_sent:
                what = f"the run {self.request_id} was asked to cancel"
            else:
                what = f"the run {self.request_id} goes on in the server"
            self.printer.event(f"interrupted: quit without waiting for the run to end ({what})")
            return EXIT_INTERRUPTED
        finally:
            self.finished = True
            logging.getLogger("selador_client").removeHandler(notes)
            if handles_sigint:
                loop.remove_signal_handler(signal.SIGINT)
            if self.client is not None and self.client.state != "closed":
                self.client.abort()  # left by an exception (timeout, Ctrl-C): nothing to wait for

    async def _follow(self) -> int:
        client = self.client = Client(
            self.args.url,
            ping_interval=300.0,
            backoff=(RECONNECT_FIRST_DELAY_S, RECONNECT_MAX_DELAY_S),
            jitter=0,
            max_reconnect_attempts=RECONNECT_ATTEMPTS,
            reconnect=False if self.args.no_reconnect else RETRYABLE_CLOSE_CODES.__contains__,
            open_timeout=min(self.args.timeout, 10),
            proxy=None,
            max_size=None,
        )
        client.add_listener("frame", self._on_frame)
        client.add_listener("disconnect", self._on_disconnect)
        client.add_listener("resume", self._on_resume)
        try:
            await client.open()
        except SeladorConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise TimeoutError from exc  # the outer handler says "no answer within"
            self.printer.error(f"cannot talk to {self.args.url}: {exc.__cause__ or exc.message}")
            return EXIT_CONNECTION
        try:
            self.run = await client.ask(
                self.args.question,
                context=self.args.context or None,
                query_type=self.args.query_type,
                session_id=self.args.session_id,
                session_token=self.args.session_token,
                request_id=self.request_id,
                on_disconnect=self.args.on_disconnect,
            )
        except SeladorError as exc:
            self.printer.error(f"{exc.message} ({exc.code})")
            return EXIT_ERROR
        assert self._failure is not None
        following = asyncio.ensure_future(self._print_run(self.run))
        await asyncio.wait({following, self._failure}, return_when=asyncio.FIRST_COMPLETED)
        if not following.done():
            following.cancel()
            return self._failure.result()
        self.finished = True
        await client.close()
        return following.result()

    async def _print_run(self, run: Run) -> int:
        async for frame in run:
            if frame.seq is not None:  # refusals were printed as they arrived (_on_frame)
                self._show(frame)
        try:
            data = await run.result()
        except SeladorConnectionError as exc:
            self.printer.error(self._describe_loss(exc))
            return EXIT_CONNECTION
        except SeladorError as exc:
            self.printer.error(f"{exc.message} ({exc.code})")
            return EXIT_ERROR
        if data.get("stop_reason") == "cancelled" or data.get("success") is False:
            return EXIT_CANCELLED
        return EXIT_RESULT

    def _describe_loss(self, exc: SeladorConnectionError) -> str:
        if exc.code == "connection_lost" and self.args.no_reconnect:
            return (
                f"the connection was lost ({exc.close_code}) before the answer was complete (--no-reconnect)"
            )
        if exc.code == "connection_lost":
            reason = f" {exc.reason}" if exc.reason else ""
            return (
                f"the server closed the connection ({exc.close_code}{reason}) before the answer was complete"
            )
        if exc.code == "reconnect_failed" and "refused" in exc.message:
            return f"cannot reconnect to {self.args.url}: {exc.message}"
        return exc.message

    # -- what the library reports -----------------------------------------------------------------

    def _show(self, frame: Frame) -> None:
        """Print one frame of the run, in order."""
        if self.args.json:
            self.printer.raw(frame.raw)
            return
        kind = frame.get("type")
        if kind == "status":
            self.printer.status(frame)
        elif kind == "delta":
            self.printer.delta(frame)
        elif kind == "message":
            self.printer.message(frame)
        elif kind == "result":
            self.printer.result(frame)

    def _on_frame(self, event: Event) -> None:
        """Every frame as it arrives: what is not a frame of the run is handled here."""
        frame = event.frame
        assert frame is not None
        if frame.get("request_id") == self.request_id and frame.seq is not None:
            return  # the run's own: printed in order by _print_run
        if self.args.json and frame.get("type") != "pong":
            self.printer.raw(frame.raw)
        if "type" not in frame and "message" in frame:
            if frame["message"] == GATEWAY_TIMEOUT:
                self.printer.note(
                    "API Gateway stopped waiting for the route (29 s); the answer keeps streaming"
                )
            else:
                self.printer.error(f"API Gateway: {frame['message']} (requestId {frame.get('requestId')})")
                self._fail(EXIT_ERROR)
        elif frame.get("type") == "error" and frame.get("request_id") is None:
            # About one of our messages, whose id the server could not read: this connection
            # carries nothing else.
            self.printer.error(f"{frame.get('error')} ({frame.get('code') or 'error'})")
            self._fail(EXIT_ERROR)

    def _on_disconnect(self, event: Event) -> None:
        if event.reconnecting:
            self.dropped_at = time.monotonic()
            self.printer.event(f"connection lost ({event.code}); reconnecting")

    def _on_resume(self, event: Event) -> None:
        if event.run is not self.run:
            return
        elapsed = time.monotonic() - self.dropped_at
        if event.reinvoke:
            self.printer.event(
                f"reconnected after {elapsed:.1f} s; asking again as {self.request_id} "
                "(the run had not been accepted yet)"
            )
        else:
            self.printer.event(
                f"reconnected after {elapsed:.1f} s; resuming {self.request_id} after seq {event.after_seq}"
            )

    def _fail(self, status: int) -> None:
        if self._failure is not None and not self._failure.done():
            self._failure.set_result(status)

    # -- Ctrl-C -------------------------------------------------------------------------------------

    def _on_sigint(self) -> None:
        """First Ctrl-C: cancel the run and wait for its end. Second (or nothing to cancel): quit."""
        if self.finished:
            return
        if self.cancel_requested or self.run is None:
            self.quitting = True
            if self.client is not None:
                self.client.abort()  # no closing handshake to wait for
            if self._task is not None:
                self._task.cancel()
            return
        self.cancel_requested = True
        self.printer.event(f"cancelling {self.request_id}; press Ctrl-C again to quit at once")
        # Sent now, or once the run's token arrives, or after a reconnection.
        self._cancelling = asyncio.ensure_future(self.run.cancel())
        self._cancelling.add_done_callback(self._cancel_done)

    def _cancel_done(self, task: asyncio.Task[bool]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.cancel_sent = task.result()


async def ask(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Send one ``invoke`` and follow its run to the terminal frame, reconnecting when it drops.

    Args:
        args: Parsed command line.
        out: Where answers go.
        err: Where errors and notes go.

    Returns:
        The exit status.
    """
    return await Cli(args, out, err).main()


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point: parse ``argv``, ask, and return the exit status."""
    args = parse_args(argv, prog)
    try:
        return asyncio.run(ask(args))
    except KeyboardInterrupt:  # Ctrl-C where asyncio cannot handle SIGINT itself
        return EXIT_INTERRUPTED
