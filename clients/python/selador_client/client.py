"""The connection: reconnects with backoff, resumes every unfinished run, keeps itself alive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .backoff import Backoff
from .errors import SeladorConnectionError, SeladorError
from .events import Emitter, Event, State
from .frames import Frame
from .messages import (
    PING,
    cancel_message,
    check_request_id,
    invoke_message,
    new_request_id,
    resume_message,
    with_token,
)
from .run import Run

log = logging.getLogger("selador_client")

ReconnectRule = bool | Callable[[int], bool]
_CONNECT_ERRORS = (OSError, InvalidHandshake, InvalidURI)  # TimeoutError is an OSError


class Client(Emitter):
    """One WebSocket connection to Selador that outlives drops: :func:`connect`, or ``async with``.

    After any close it did not ask for, it reconnects with backoff and resumes every unfinished run
    after its last contiguous ``seq`` (or asks again when the ``accepted`` frame never came); see
    clients/python/README.md. App-level pings keep it under API Gateway's 10-minute idle timeout
    (protocol-level pings do not count there).

    Args:
        url: The WebSocket URL (``ws://127.0.0.1:3001/production``, a stack's ``WebSocketURL``).
        token: A JWT for ``AUTH_MODE=jwt``: sent as ``?token=``.
        ping_interval: Seconds between app-level pings; ``None`` sends none.
        backoff: ``(first, longest)`` delay between reconnection attempts, in seconds.
        backoff_factor: Each delay is the previous one times this.
        jitter: Each delay is spread by up to this fraction (0: exact delays).
        max_reconnect_attempts: Attempts without a frame in between before giving up (``None``:
            never give up).
        reconnect: Whether to reconnect after a close: ``True``, ``False``, or a function of the
            close code (1006 when the connection vanished without one).
        open_timeout: Seconds for one connection's handshake.
        **options: Passed on to ``websockets.asyncio.client.connect`` (``additional_headers``,
            ``proxy``, ``ssl``, ``max_size``…).

    Raises:
        ValueError: for an out-of-range interval or backoff.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ping_interval: float | None = 300.0,
        backoff: tuple[float, float] = (0.25, 5.0),
        backoff_factor: float = 2.0,
        jitter: float = 0.2,
        max_reconnect_attempts: int | None = None,
        reconnect: ReconnectRule = True,
        open_timeout: float | None = 10.0,
        **options: Any,
    ) -> None:
        if ping_interval is not None and not ping_interval > 0:
            raise ValueError(f"ping_interval must be > 0 seconds or None (got {ping_interval!r})")
        self.url = url
        self._connect_url = with_token(url, token)
        self._ping_interval = ping_interval
        self._backoff = Backoff(backoff[0], backoff[1], backoff_factor, jitter)
        self._max_attempts = max_reconnect_attempts
        self._reconnect_rule = reconnect
        self._options = {"open_timeout": open_timeout, **options}
        super().__init__()
        self._state: State = "connecting"
        self._runs: dict[str, Run] = {}
        self._ws: ClientConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._attempts = 0
        self._opened = False
        self._closing = False
        self._closed_error = SeladorConnectionError("closed", "the client is closed")

    # -- public ---------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``connecting``, ``open``, ``reconnecting`` or ``closed``."""
        return self._state

    @property
    def runs(self) -> tuple[Run, ...]:
        """The runs asked on this client that have not ended yet."""
        return tuple(self._runs.values())

    async def open(self) -> Client:
        """Make the first connection (:func:`connect` does this).

        Returns:
            The client, open.

        Raises:
            SeladorConnectionError: ``connect_failed`` when the connection cannot be made.
        """
        if self._opened:
            if self._state == "closed":
                raise self._closed_error
            return self
        self._opened = True
        try:
            ws = await self._open_socket()
        except _CONNECT_ERRORS as exc:
            self._shutdown(SeladorConnectionError("connect_failed", f"cannot connect: {exc}"))
            raise self._closed_error from exc
        if self._closing:  # closed while the handshake ran
            await ws.close()
            raise self._closed_error
        # Questions asked while this connection was being made go out on it.
        restart = self._attach(ws)
        self._supervisor = asyncio.create_task(self._supervise(ws, restart), name="selador-client")
        return self

    async def __aenter__(self) -> Client:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ask(
        self,
        question: str,
        *,
        context: str | None = None,
        query_type: str | None = None,
        session_id: str | None = None,
        session_token: str | None = None,
        request_id: str | None = None,
        on_disconnect: str | None = None,
    ) -> Run:
        """Send a question (``invoke``) and return its run; while reconnecting it goes out after.

        Args:
            question: The question.
            context: Optional context for it.
            query_type: ``general`` (the server's default), ``zoning``, ``building_codes``,
                ``permits`` or ``financing``.
            session_id: The conversation to continue, or ``"new"`` to start one.
            session_token: An anonymous conversation's token (``run.session_token`` of its first run).
            request_id: The run's id (default: a fresh ``py-…``).
            on_disconnect: ``continue`` (the server's default) or ``cancel``.

        Returns:
            The run: iterate over it, await :meth:`Run.result`, :meth:`Run.cancel` it.

        Raises:
            SeladorError: ``bad_request`` for a ``request_id`` the server could not read, or
                ``duplicate_request`` when this client already follows a run with that id.
            SeladorConnectionError: when the client is closed.
        """
        if self._state == "closed":
            raise self._closed_error
        request_id = check_request_id(new_request_id() if request_id is None else request_id)
        if request_id in self._runs:
            raise SeladorError("duplicate_request", f"request_id {request_id!r} is already running here")
        message = invoke_message(
            question,
            request_id,
            context=context,
            query_type=query_type,
            session_id=session_id,
            session_token=session_token,
            on_disconnect=on_disconnect,
        )
        run = Run(message, self._request_cancel)
        self._runs[request_id] = run
        # Registered before looking at the socket: a connection being attached now resumes it.
        if self._ws is not None:
            run.sent = True
            await self._send(self._ws, message)
        return run

    async def close(self) -> None:
        """Close the connection (with the closing handshake); unfinished runs end here.

        The runs go on in the server: resume them with their ``request_id`` and ``run_token``.
        """
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        ws = self._ws
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            await asyncio.wait([supervisor])
        if ws is not None:
            await ws.close()
        self._shutdown(SeladorConnectionError("closed", "the client was closed before the run ended"))

    def abort(self) -> None:
        """Drop the connection at once, without the closing handshake; unfinished runs end here."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        if self._ws is not None:
            self._ws.transport.abort()
        self._shutdown(SeladorConnectionError("closed", "the client was aborted before the run ended"))

    # -- connections ------------------------------------------------------------------------------

    async def _open_socket(self) -> ClientConnection:
        return await ws_connect(self._connect_url, **self._options)

    def _attach(self, ws: ClientConnection) -> list[Run]:
        """Make ``ws`` current; the runs to resume on it (asked later, they send themselves)."""
        self._ws = ws
        self._set_state("open")
        return list(self._runs.values())

    async def _supervise(self, ws: ClientConnection, restart: list[Run]) -> None:
        try:
            while True:
                code, reason = await self._serve(ws, restart)
                self._ws = None
                if self._closing:
                    return
                again = self._wants_reconnect(code)
                self._emit(Event("disconnect", code=code, reason=reason, reconnecting=again))
                if not again:
                    detail = f"{code} {reason}".strip()
                    raise SeladorConnectionError(
                        "connection_lost", f"the connection closed ({detail})", code, reason
                    )
                self._set_state("reconnecting")
                ws = await self._reconnect()
                restart = self._attach(ws)
        except SeladorConnectionError as exc:
            self._shutdown(exc)
        except Exception as exc:
            # A bug here must not leave runs waiting forever.
            log.exception("selador_client stopped")
            self._shutdown(SeladorConnectionError("closed", f"the client stopped: {exc!r}"))

    def _wants_reconnect(self, code: int) -> bool:
        rule = self._reconnect_rule
        return bool(rule(code)) if callable(rule) else bool(rule)

    async def _reconnect(self) -> ClientConnection:
        last: BaseException | None = None
        while self._max_attempts is None or self._attempts < self._max_attempts:
            delay = self._backoff.next()
            self._attempts += 1
            self._emit(Event("reconnect", attempt=self._attempts, delay=delay))
            await asyncio.sleep(delay)
            try:
                return await self._open_socket()
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    # The token is no longer accepted: retrying cannot help.
                    raise SeladorConnectionError(
                        "reconnect_failed", f"reconnecting was refused: {exc}"
                    ) from exc
                last = exc
            except _CONNECT_ERRORS as exc:
                last = exc
        raise SeladorConnectionError(
            "reconnect_failed",
            f"the connection was lost and {self._attempts} attempts to reconnect failed"
            + (f" (last: {last})" if last else ""),
        )

    async def _serve(self, ws: ClientConnection, restart: list[Run]) -> tuple[int, str]:
        """Resume ``restart`` on ``ws``, then read it until it closes; its close code and reason."""
        pinger = asyncio.create_task(self._ping(ws)) if self._ping_interval else None
        try:
            for run in restart:
                if not run.done:
                    await self._restart(ws, run)
            while True:
                watch = min(filter(None, (run.watch_at() for run in self._runs.values())), default=None)
                try:
                    async with asyncio.timeout(None if watch is None else max(0.0, watch - time.monotonic())):
                        message = await ws.recv()
                except TimeoutError:
                    await self._watchdog(ws)
                    continue
                await self._on_message(ws, message)
        except ConnectionClosed as exc:
            # No close frame (the network or the server vanished) reads as 1006, as in browsers.
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")
        finally:
            if pinger is not None:
                pinger.cancel()

    async def _ping(self, ws: ClientConnection) -> None:
        assert self._ping_interval is not None
        while True:
            await asyncio.sleep(self._ping_interval)
            if not await self._send(ws, PING):
                return

    async def _send(self, ws: ClientConnection, message: dict[str, Any] | str) -> bool:
        """Send on ``ws``; ``False`` when it has closed (the reader notices and reconnects)."""
        try:
            await ws.send(message if isinstance(message, str) else json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    # -- runs --------------------------------------------------------------------------------------

    async def _restart(self, ws: ClientConnection, run: Run) -> None:
        if not run.accepted:
            if run.sent:
                # The accepted frame never came: without its token the run cannot be resumed
                # (anonymously), so ask again under the same request_id.
                run.reinvoked = True
                self._emit(Event("resume", run=run, reinvoke=True))
            run.seqs.forget_waiting()
            run.sent = True
            await ws.send(json.dumps(run.message))
            return
        self._emit(Event("resume", run=run, after_seq=run.last_seq))
        await self._resume(ws, run)
        if run.cancel_requested:
            # The cancel may have been lost with the connection; cancelling is idempotent.
            await self._cancel(ws, run)

    async def _resume(self, ws: ClientConnection, run: Run) -> None:
        await ws.send(json.dumps(resume_message(run.request_id, run.last_seq, run.run_token)))
        run.resumed()

    async def _cancel(self, ws: ClientConnection, run: Run) -> None:
        await ws.send(json.dumps(cancel_message(run.request_id, run.run_token)))
        run.cancel_sent()

    async def _request_cancel(self, run: Run) -> None:
        # Before "accepted" the run may not exist yet in the server: the cancel waits for it.
        if self._ws is not None and run.accepted:
            with contextlib.suppress(ConnectionClosed):  # sent again after the reconnection
                await self._cancel(self._ws, run)

    async def _watchdog(self, ws: ClientConnection) -> None:
        now = time.monotonic()
        for run in list(self._runs.values()):
            watch = run.watch_at()
            if watch is not None and watch <= now:
                await self._resume(ws, run)

    async def _on_message(self, ws: ClientConnection, message: str | bytes) -> None:
        frame = Frame.parse(message)
        if frame is None:
            log.warning("ignoring a message that is not a JSON object: %.80r", message)
            return
        self._attempts = 0  # the connection works: the reconnection budget starts again
        self._backoff.reset()
        self._emit(Event("frame", frame=frame))
        request_id = frame.get("request_id")
        run = self._runs.get(request_id) if isinstance(request_id, str) else None
        if run is None:
            return
        seq = frame.seq
        if seq is not None:
            run.deliver(frame, seq)
            if run.done:
                self._runs.pop(run.request_id, None)
            elif run.cancel_pending and run.accepted:
                await self._cancel(ws, run)
        elif frame.get("type") == "error":
            code = frame.get("code")
            if code == "not_running" or (code == "duplicate_request" and run.reinvoked):
                # Our cancel came after the end (or the first invoke did start): fetch the frames.
                await self._resume(ws, run)
                return
            run.refuse(frame)
            self._runs.pop(run.request_id, None)

    # -- plumbing ----------------------------------------------------------------------------------

    def _shutdown(self, error: SeladorConnectionError) -> None:
        self._ws = None
        for run in list(self._runs.values()):
            run.fail(error)
        self._runs.clear()
        if self._state != "closed":
            self._closed_error = error
            self._set_state("closed")

    def _set_state(self, state: State) -> None:
        if state != self._state:
            self._state = state
            self._emit(Event("state", state=state))
