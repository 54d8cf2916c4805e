"""The logic of durable runs, shared by the WebSocket routes, the HTTP routes and the jobs.

Nothing here knows an API Gateway event: callers pass who is asking (principal, connection) and
what they asked. Every decision that must be made exactly once is a conditional write in the store:

* a ``request_id`` runs once per owner at a time: the ``active#`` claim;
* a run is executed once: ``pending`` → ``running`` (the executor's claim, see :mod:`.executor`);
* a run ends once: its terminal frame is logged together with its final status, conditional on
  the status it was in (the executor, a failed hand-off, a cancel of a run nobody has started
  yet, or a reader noticing that the executor died, whichever gets there first).

Foreign and missing runs look the same to a caller: ``lookup`` answers ``None`` for both.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from selador import metrics
from selador.limits import LimitExceeded, Limits
from selador.observability import logger
from selador.protocol import (
    MAX_REQUEST_ID_CHARS,
    MAX_RUN_TOKEN_CHARS,
    ErrorFrame,
    QueryRequest,
    ResultFrame,
    StatusFrame,
)
from selador.runs.frames import fit_frame
from selador.runs.model import (
    LEASE_MARGIN_S,
    MAX_INVOCATION_S,
    Refused,
    Started,
    active_key,
    cancelled_frame,
    is_terminal,
    lease_expired,
    new_listener_id,
    new_run_id,
    new_run_token,
    run_name,
    stamp,
    terminal_finish,
    token_matches,
    token_run_id,
)
from selador.sessions.service import Opening, Sessions
from selador.store.base import RUN_ACTIVE_STATUSES, RunRecord
from selador.websocket.management import ConnectionGone, PostFailed

if TYPE_CHECKING:
    from selador.deps import Dependencies

HANDOFF_MAX_AGE_S = 600
"""How long an asynchronous hand-off may wait to start (the template's MaximumEventAgeInSeconds)."""
PENDING_LEASE_S = HANDOFF_MAX_AGE_S + 60
"""A run still ``pending`` this long after it was accepted will never start."""
ACCEPTED_TEXT = "Processing your query..."
STARTED_LATE_TEXT = "The query could not be started; please try again"
STOPPED_TEXT = "The query stopped unexpectedly; please try again"
READ_BATCH = 100
PENDING_GRACE_S = 5.0
"""A run still pending this long after it was accepted is cancelled where it stands."""
GLOBAL_RETRY_AFTER_S = 5
"""Seconds a caller refused at capacity (``LIMIT_RUNNING_ANSWERS``) is told to wait."""


CancelOutcome = Literal["cancelling", "unknown_run", "not_running"]
Delivery = Literal["delivered", "gone", "failed"]


class Runs:
    """Start, find, resume, cancel and end runs over the container's store.

    Args:
        deps: The container's dependencies (store, settings, management API).
    """

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps
        self.store = deps.store
        self.settings = deps.settings

    # -- starting ---------------------------------------------------------------------------------

    def start(
        self,
        request: QueryRequest,
        *,
        principal: str | None,
        scope: str | None,
        limit_subject: str | None,
        connection_id: str | None = None,
        endpoint: str | None = None,
    ) -> Started | Refused:
        """Admit a query and record it as a ``pending`` run with its ``accepted`` frame logged.

        Args:
            request: The validated query.
            principal: The authenticated owner, or ``None`` (the token holder owns the run).
            scope: Within what a ``request_id`` must be unique while running (``p:<principal>``,
                ``c:<connection>``), or ``None`` for no duplicate check.
            limit_subject: Whose limits apply (a connection id, ``user:<principal>``), or ``None``.
            connection_id: The listener, for a WebSocket query.
            endpoint: The listener's management endpoint.

        Returns:
            The started run, or why it was refused (nothing is held then).
        """
        now = time.time()
        run_id = new_run_id()
        token, digest = new_run_token(run_id)
        sessions = Sessions(self.store, self.settings)
        opening = sessions.resolve(request, principal) if request.session_id is not None else None
        accepted = StatusFrame(
            stage="accepted",
            message=ACCEPTED_TEXT,
            request_id=request.request_id,
            seq=1,
            run_token=token,
            session_id=opening.session_id if opening else None,
            session_token=opening.token if opening else None,
        ).to_json()
        lease = now + PENDING_LEASE_S
        # The name (how a principal finds the run) lives as long as the record does at creation, so
        # that is the longest life the run can have: started at the last moment, run for as long
        # as an invocation can, then kept for the log's TTL.
        longest = lease + MAX_INVOCATION_S + LEASE_MARGIN_S + self.settings.run_log_ttl_seconds
        run = RunRecord(
            run_id=run_id,
            request_id=request.request_id,
            token_digest=digest,
            status="pending",
            created_at=now,
            expires_at=int(longest) + 1,
            lease_until=lease,
            principal=principal,
            connection_id=connection_id,
            endpoint=endpoint,
            listener_id=new_listener_id() if connection_id else None,
            on_disconnect=request.on_disconnect,
            session_id=opening.session_id if opening else None,
            session_owner=opening.owner if opening else None,
        )
        # Everything that needs no store is built above: under load the writes below wait their
        # turn for the store, and SQLite makes them one transaction with one wait.
        claims: list[tuple[str, str]] = []
        try:
            with self.store.grouped():
                refused = self._admit(request, principal, scope, limit_subject, claims, opening)
                if refused is not None:
                    return refused
                if opening is not None and opening.record is None:
                    sessions.create(opening, request.question)
                run = replace(run, claims=tuple(claims))
                self.store.create_run(
                    run, name=run_name(principal, request.request_id) if principal else None
                )
                self.store.append_frame(run_id, 1, accepted, self.frame_expiry(run))
        except BaseException:
            self._release(claims)
            raise
        logger.info("run accepted", extra={"run_id": run_id, "principal": principal})
        metrics.count("QueriesStarted")
        return Started(
            run=run, token=token, accepted=accepted, session_token=opening.token if opening else None
        )

    def _admit(
        self,
        request: QueryRequest,
        principal: str | None,
        scope: str | None,
        limit_subject: str | None,
        claims: list[tuple[str, str]],
        opening: Opening | None,
    ) -> Refused | None:
        """Take the duplicate guard, the session's busy guard and the limits' slot into ``claims``.

        A refusal holds nothing.
        """
        settings = self.settings
        if scope is not None:
            # The duplicate check comes first: a resent running id is a duplicate, not a new query,
            # and must neither count against the limits nor be reported as one.
            key = active_key(scope, request.request_id)
            owner = self.store.claim(key, settings.run_claim_ttl_seconds)
            if owner is None:
                where = "for this user" if scope.startswith("p:") else "on this connection"
                return Refused(
                    "duplicate_request",
                    f"request_id {request.request_id!r} is already running {where}; send resume to follow it",
                )
            claims.append((key, owner))
        if opening is not None:
            # Like the duplicate check, before the limits: a query that cannot run in its session
            # must not count against them.
            # Held at least as long as a pending run may wait for its executor (which renews it):
            # a guard that expired before the run started would let a second turn run beside it.
            owner = self.store.claim(opening.busy_key, max(settings.run_claim_ttl_seconds, PENDING_LEASE_S))
            if owner is None:
                self._release(claims)
                claims.clear()
                return Refused(
                    "session_busy",
                    f"a query is already running in session {opening.session_id!r}; "
                    "wait for its result or cancel it",
                )
            claims.append((opening.busy_key, owner))
        cap = settings.limit_running_answers
        if cap:
            # Every run, whoever started it (anonymous HTTP callers have no other limit): the
            # function's concurrency is shared with $connect, so answers must leave it headroom.
            # Before the per-subject limits: a refusal at capacity must not use up the caller's
            # per-minute or daily allowance (and a later refusal gives the slot back below).
            slot = self._claim_global_slot(cap)
            if slot is None:
                logger.info("query refused at capacity", extra={"limit": "running_answers"})
                self._release(claims)
                claims.clear()
                return Refused(
                    "rate_limited",
                    f"capacity limit: {cap} answers are being generated across the service; "
                    f"retry in {GLOBAL_RETRY_AFTER_S} s",
                    GLOBAL_RETRY_AFTER_S,
                )
            claims.append(slot)
        if limit_subject is not None:
            admission = Limits(self.store, settings).admit(limit_subject, principal)
            if isinstance(admission, LimitExceeded):
                logger.info("query refused by a limit", extra={"limit": admission.limit})
                self._release(claims)
                claims.clear()
                return Refused("rate_limited", admission.message, admission.retry_after)
            if admission.slot is not None:
                claims.append(admission.slot)
        return None

    def _claim_global_slot(self, cap: int) -> tuple[str, str] | None:
        """One of the ``cap`` service-wide answer slots, or ``None`` when all are held.

        Tried from a random index so concurrent admissions rarely contend for the same claim; a
        full pass (``cap`` conditional writes) happens only at or near capacity.
        """
        first = secrets.randbelow(cap)
        ttl = self.settings.run_claim_ttl_seconds
        for offset in range(cap):
            key = f"slot#*answers*#{(first + offset) % cap}"
            owner = self.store.claim(key, ttl)
            if owner is not None:
                return key, owner
        return None

    def frame_expiry(self, run: RunRecord) -> int:
        """When a frame of ``run`` may be deleted: not before the record, even if it ends now."""
        return max(run.expires_at, int(time.time() + self.settings.run_log_ttl_seconds) + 1)

    # -- ending a run nobody is executing ------------------------------------------------------------

    def finish(
        self, run: RunRecord, frame: ErrorFrame | ResultFrame, *, expect_status: frozenset[str]
    ) -> bool:
        """End a run that no executor will end: log ``frame`` as its terminal frame and post it.

        Used when a hand-off failed, when a run is cancelled before it started, and when a run's
        executor died. Conditional on the run's status, so it never races an executor into a
        second terminal frame.

        Args:
            run: The run as last read.
            frame: The terminal frame, unstamped.
            expect_status: The statuses in which ending it here is right.

        Returns:
            ``True`` when this call ended the run (``False``: someone else did, or it changed).
        """
        last = 0
        for seq, _ in self.iter_frames(run.run_id):
            last = seq
        stamped = stamp(frame, run, last + 1)
        finish = terminal_finish(
            stamped, expect_status=expect_status, log_ttl_s=self.settings.run_log_ttl_seconds
        )
        data = fit_frame(stamped)
        # Released only if this call ends the run (else the run may still be running and hold
        # them); in one transaction with the end where the store can, so nobody sees the end first.
        with self.store.grouped():
            if not self.store.append_frame(run.run_id, last + 1, data, self.frame_expiry(run), finish=finish):
                return False
            self._release(run.claims)
        logger.info("run ended here", extra={"run_id": run.run_id, "status": finish.changes["status"]})
        current = self.store.get_run(run.run_id)
        if current is not None and current.connection_id:
            self.post(current.connection_id, current.endpoint or "", data)
        return True

    def reap(self, run: RunRecord) -> RunRecord:
        """End a run whose executor is presumed dead (its lease ran out); return it as it is now."""
        if not lease_expired(run):
            return run
        text = STARTED_LATE_TEXT if run.status == "pending" else STOPPED_TEXT
        logger.warning("run outlived its lease", extra={"run_id": run.run_id, "status": run.status})
        self.finish(run, ErrorFrame(code="internal_error", error=text), expect_status=frozenset({run.status}))
        return self.store.get_run(run.run_id) or run

    def release_claims(self, run: RunRecord) -> None:
        """Give back what a run held (its ``active#`` claim and concurrency slot); owner-checked."""
        self._release(run.claims)

    def _release(self, claims: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> None:
        for key, owner in claims:
            try:
                self.store.release(key, owner)
            except Exception:  # noqa: BLE001 - a claim left behind expires by its TTL
                logger.exception("could not release a claim", extra={"claim": key})

    # -- finding ------------------------------------------------------------------------------------

    def lookup(self, request_id: str, *, principal: str | None, token: str | None) -> RunRecord | None:
        """The run a caller may act on, or ``None`` (missing, expired and foreign look the same).

        An anonymous run belongs to whoever holds its token; a principal's run to that principal
        (with or without the token).

        Args:
            request_id: The run's ``request_id``.
            principal: The caller's authenticated subject, if any.
            token: The run token the caller sent, if any.

        Returns:
            The run, with an expired lease already dealt with.
        """
        if len(request_id) > MAX_REQUEST_ID_CHARS or (token and len(token) > MAX_RUN_TOKEN_CHARS):
            return None  # no run has such an id or token (and a store key cannot be that long)
        run = None
        if token:
            run_id = token_run_id(token)
            candidate = self.store.get_run(run_id) if run_id else None
            if (
                candidate is not None
                and candidate.request_id == request_id
                and token_matches(candidate, token)
                and candidate.principal in (None, principal)
            ):
                run = candidate
        if run is None and principal is not None:
            candidate = self.store.find_run(run_name(principal, request_id))
            if candidate is not None and candidate.principal == principal:
                run = candidate
        return None if run is None else self.reap(run)

    def iter_frames(self, run_id: str, after_seq: int = 0) -> Iterator[tuple[int, str]]:
        """Every logged frame after ``after_seq``, in order, up to and including a terminal one."""
        while True:
            batch = self.store.read_frames(run_id, after_seq, READ_BATCH)
            for seq, data in batch:
                yield seq, data
                if is_terminal(data):
                    return
            if len(batch) < READ_BATCH:
                return
            after_seq = batch[-1][0]

    def frame_count(self, run: RunRecord) -> int:
        """How many frames the run's log holds."""
        if not run.active:
            return run.frames
        count = 0
        for count, _ in self.iter_frames(run.run_id):  # noqa: B007 - the last seq is the count
            pass
        return count

    # -- resume and cancel --------------------------------------------------------------------------

    def resume(self, run: RunRecord, *, after_seq: int, connection_id: str, endpoint: str) -> int:
        """Replay a run's frames after ``after_seq`` to a connection, then make it the listener.

        The log is replayed, the connection attached, and the log read once more for what was
        logged in between; the run's sender, on its next poll, sends everything logged since its
        poll before the attach. Nothing falls between the two; a frame may come twice.

        Args:
            run: The run (from :meth:`lookup`).
            after_seq: The last ``seq`` the client has.
            connection_id: The resuming connection.
            endpoint: Its management endpoint.

        Returns:
            How many frames were replayed (fewer when a post failed: then the connection is not
            attached either).
        """
        metrics.count("Resumes")
        replayed, last = self._replay(run.run_id, after_seq, connection_id, endpoint)
        if last is None:
            return replayed  # the connection is gone again: do not attach it
        if run.active:
            attached = self.store.update_run(
                run.run_id,
                {"connection_id": connection_id, "endpoint": endpoint, "listener_id": new_listener_id()},
                expect_status=RUN_ACTIVE_STATUSES,
            )
            logger.info("run resumed", extra={"run_id": run.run_id, "attached": attached is not None})
            more, _ = self._replay(run.run_id, last, connection_id, endpoint)
            replayed += more
        return replayed

    def _replay(
        self, run_id: str, after_seq: int, connection_id: str, endpoint: str
    ) -> tuple[int, int | None]:
        count, last = 0, after_seq
        for seq, data in self.iter_frames(run_id, after_seq):
            if self.post(connection_id, endpoint, data.encode()) != "delivered":
                # A frame that did not arrive must not be skipped: stop here, do not attach; the
                # client sees no live frames and resumes again from what it has.
                return count, None
            count, last = count + 1, seq
        return count, last

    def cancel(
        self, run: RunRecord, *, connection_id: str | None = None, endpoint: str | None = None
    ) -> CancelOutcome:
        """Ask a run to stop; its terminal frame goes to ``connection_id`` when one is given.

        Idempotent. A run nobody has started yet is ended here at once; a running one by its
        executor at its next poll.

        Args:
            run: The run (from :meth:`lookup`).
            connection_id: The cancelling connection (it becomes the listener), or ``None`` (HTTP).
            endpoint: Its management endpoint.

        Returns:
            ``cancelling``, or ``not_running`` when the run had already ended.
        """
        if not run.active:
            return "not_running"
        changes: dict[str, object] = {"cancel_requested": True}
        if connection_id is not None and connection_id != run.connection_id:
            # The listener already (the usual Stop button) needs no new attach, which would make
            # the sender send it everything since its last poll again.
            changes.update(connection_id=connection_id, endpoint=endpoint, listener_id=new_listener_id())
        updated = self.store.update_run(run.run_id, changes, expect_status=RUN_ACTIVE_STATUSES)
        if updated is None:
            current = self.store.get_run(run.run_id)
            return "unknown_run" if current is None else "not_running"
        logger.info("cancel requested", extra={"run_id": run.run_id, "status": updated.status})
        metrics.count("Cancels")
        if updated.status == "pending" and time.time() - updated.created_at > PENDING_GRACE_S:
            # Its executor should have started by now and may never: end it here. A younger
            # pending run is left to its executor, which is about to start and sees the request
            # (ending it here could post its end before the route has posted its accepted frame).
            self.finish(updated, cancelled_frame(), expect_status=frozenset({"pending"}))
        return "cancelling"

    # -- waiting (HTTP) -------------------------------------------------------------------------------

    def wait(self, run_id: str, *, until: float) -> RunRecord | None:
        """Poll a run until it ends or ``until`` (``time.monotonic()``) passes; the last record read."""
        pause = 0.02
        while True:
            run = self.store.get_run(run_id)
            if run is None or not run.active:
                return run
            remaining = until - time.monotonic()
            if remaining <= 0:
                return run
            time.sleep(min(pause, remaining))
            pause = min(pause * 1.5, 0.25)

    # -- posting ------------------------------------------------------------------------------------

    def post(self, connection_id: str, endpoint: str, data: bytes | str) -> Delivery:
        """Post one frame outside a run's sender.

        Returns:
            ``delivered``; ``gone`` (410: the connection's record is deleted); or ``failed`` (429
            past the retry bound, a network error: the client may still be there).
        """
        payload = data.encode() if isinstance(data, str) else data
        api = self.deps.management(endpoint)
        try:
            api.post(connection_id, payload)
        except ConnectionGone:
            self.store.delete_connection(connection_id)
            logger.info("client gone", extra={"connection": connection_id})
            metrics.count("ClientGone")
            return "gone"
        except PostFailed as exc:
            logger.warning("frame not delivered", extra={"reason": str(exc)})
            return "failed"
        finally:
            metrics.count("ThrottledPosts", getattr(api, "throttled", 0))
        return "delivered"
