"""The store interface shared by the DynamoDB and SQLite implementations.

Besides connections, the store keeps *runs* (one query's durable state: who owns it, who listens,
whether it was asked to stop, how it ended) and each run's *frame log* (every frame with a ``seq``,
in order), so a run outlives the connection and the Lambda invocation that started it. It also
keeps *sessions* (conversations and their history, :mod:`selador.store.sessions`), so a
conversation outlives every run that added a turn to it.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from selador.store.sessions import SessionStore

RUN_ACTIVE_STATUSES = frozenset({"pending", "running"})
"""A run is ``pending`` until an executor takes it, then ``running``."""
RUN_FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
"""How a run ended; a final status never changes again."""

RUN_MUTABLE_FIELDS = frozenset(
    {
        "status",
        "lease_until",
        "expires_at",
        "connection_id",
        "endpoint",
        "listener_id",
        "cancel_requested",
        "frames",
        "ended_at",
        "result",
    }
)
"""The :class:`RunRecord` fields :meth:`RunStore.update_run` may change; the rest are fixed at creation."""


@dataclass(frozen=True)
class ConnectionRecord:
    """One open WebSocket connection.

    Attributes:
        connection_id: API Gateway's connection id.
        connected_at: Epoch seconds of the handshake.
        expires_at: Epoch seconds after which the record is stale (DynamoDB TTL attribute).
        domain_name: ``requestContext.domainName`` of the connect event.
        stage: ``requestContext.stage``.
        api_id: ``requestContext.apiId``.
        source_ip: The client's address.
        user_agent: The client's User-Agent header.
        principal: The authenticated subject, when authentication is on.
        attributes: Free-form extra string attributes.
    """

    connection_id: str
    connected_at: float
    expires_at: int
    domain_name: str = ""
    stage: str = ""
    api_id: str = ""
    source_ip: str = ""
    user_agent: str = ""
    principal: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


class ConnectionStore(abc.ABC):
    """Connections plus the small atomic primitives the reliability and security work needs.

    Declared before :class:`RunStore`; the concrete stores implement :class:`Store`, both at once.
    """

    @abc.abstractmethod
    def put_connection(self, record: ConnectionRecord) -> None:
        """Create or replace a connection record."""

    @abc.abstractmethod
    def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        """The record, or ``None`` when absent or expired."""

    @abc.abstractmethod
    def delete_connection(self, connection_id: str) -> bool:
        """Delete a record; ``True`` when one existed."""

    @abc.abstractmethod
    def claim(self, key: str, ttl_seconds: int) -> str | None:
        """Atomically create ``key`` if absent or expired (idempotency, duplicate detection).

        Returns:
            A fresh owner token for the first caller (pass it to :meth:`release` and :meth:`renew`),
            ``None`` while an unexpired claim exists.
        """

    @abc.abstractmethod
    def release(self, key: str, owner: str) -> bool:
        """Remove a claim, but only the one ``owner`` took (no error when absent or not ours).

        A claim that expired and was taken again belongs to its new owner: releasing it with the old
        token must not free what someone else now holds.

        Returns:
            ``True`` when this owner's claim was removed.
        """

    @abc.abstractmethod
    def renew(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """Set an unexpired claim of ``owner`` to expire ``ttl_seconds`` from now.

        Returns:
            ``False`` when the claim is gone, expired or someone else's (nothing changed then).
        """

    def grouped(self) -> contextlib.AbstractContextManager[None]:
        """Make the calls in a ``with`` block one unit of work, where the backend can, for speed.

        SQLite runs them as one transaction under one lock; DynamoDB, whose calls are each atomic
        on their own, does nothing. Callers must not rely on the grouping for correctness.
        """
        return contextlib.nullcontext()

    @abc.abstractmethod
    def increment(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
        """Atomically add to a counter that expires ``ttl_seconds`` after its creation.

        Returns:
            The counter's value after the increment (an expired counter restarts at ``amount``).
        """


@dataclass(frozen=True)
class RunRecord:
    """The durable state of one run (one query), shared by every invocation that touches it.

    Attributes:
        run_id: Server-generated, unique per run (a finished ``request_id`` may be reused, a
            ``run_id`` never is); keys the record and the frame log.
        request_id: The client's id for the query.
        token_digest: SHA-256 hex digest of the run token (the token itself is never stored).
        status: ``pending``, ``running``, ``succeeded``, ``failed`` or ``cancelled``.
        created_at: Epoch seconds.
        expires_at: Epoch seconds after which the record (and so its log) is gone (TTL).
        lease_until: Epoch seconds after which an active run's executor (or its pending hand-off)
            is presumed dead and the run may be ended by whoever notices.
        principal: The owner's authenticated subject, or ``None`` for an anonymous run (owned by
            whoever holds its token).
        connection_id: The WebSocket connection the run's live frames go to, or ``None``.
        endpoint: That connection's management endpoint.
        listener_id: New at every attach (``resume``, ``cancel``), so an attach can be told from
            an earlier one of the same connection (a detach must not undo a newer attach).
        cancel_requested: A client asked to stop the run; its executor ends it.
        on_disconnect: ``continue`` or ``cancel``: what a vanished listener does to the run.
        frames: How many frames the log holds, set when the run ends.
        ended_at: Epoch seconds of the terminal frame.
        result: JSON text of how the run ended (the ``result`` frame's data, or ``{"code", "error"}``).
        claims: ``(key, owner)`` pairs of the claims the run holds (duplicate guard, concurrency
            slot, session busy guard); whoever ends the run releases them.
        session_id: The conversation the query was asked in, or ``None``.
        session_owner: That session's owner (``p:<principal>`` or ``t:<token digest>``).
    """

    run_id: str
    request_id: str
    token_digest: str
    status: str
    created_at: float
    expires_at: int
    lease_until: float
    principal: str | None = None
    connection_id: str | None = None
    endpoint: str | None = None
    listener_id: str | None = None
    cancel_requested: bool = False
    on_disconnect: str = "continue"
    frames: int = 0
    ended_at: float | None = None
    result: str | None = None
    claims: tuple[tuple[str, str], ...] = ()
    session_id: str | None = None
    session_owner: str | None = None

    @property
    def active(self) -> bool:
        """Whether the run has not ended yet."""
        return self.status in RUN_ACTIVE_STATUSES


@dataclass(frozen=True)
class RunFinish:
    """The change that ends a run, applied atomically with appending its terminal frame.

    Attributes:
        expect_status: The statuses the run must be in for the run to end here (so only one
            party ever ends it).
        changes: Fields of the run to set (from :data:`RUN_MUTABLE_FIELDS`).
    """

    expect_status: Collection[str]
    changes: Mapping[str, object]


class RunStore(abc.ABC):
    """Runs and their frame logs."""

    @abc.abstractmethod
    def create_run(self, run: RunRecord, *, name: str | None = None) -> None:
        """Store a new run.

        Args:
            run: The record; its ``run_id`` is fresh.
            name: When given, ``find_run(name)`` returns this run from now on (an older run of the
                same name is no longer found by name). The name expires when the record *as
                created* does: a later ``update_run`` of ``expires_at`` does not move it, so a
                run that may be extended is created with the longest life it can have.
        """

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or ``None`` when absent or expired (strongly consistent)."""

    @abc.abstractmethod
    def find_run(self, name: str) -> RunRecord | None:
        """The run last created with ``name``, or ``None`` when absent or expired."""

    @abc.abstractmethod
    def update_run(
        self,
        run_id: str,
        changes: Mapping[str, object],
        *,
        expect_status: Collection[str] | None = None,
        expect: Mapping[str, object] | None = None,
    ) -> RunRecord | None:
        """Atomically change a run when it exists, is unexpired and meets the conditions.

        Args:
            run_id: The run.
            changes: Field values to set (names from :data:`RUN_MUTABLE_FIELDS`; ``None`` clears).
            expect_status: When given, the run's status must be one of these.
            expect: Fields that must hold exactly these values (``None``: unset).

        Returns:
            The record after the change, or ``None`` when the run is absent, expired, or a
            condition failed (nothing changed then).

        Raises:
            ValueError: ``changes`` names a field that cannot change.
        """

    @abc.abstractmethod
    def append_frame(
        self, run_id: str, seq: int, data: str, expires_at: int, *, finish: RunFinish | None = None
    ) -> bool:
        """Add frame ``seq`` to a run's log, unless that ``seq`` is already there.

        Args:
            run_id: The run.
            seq: The frame's ``seq`` (from 1, contiguous).
            data: The frame's JSON text, exactly as posted.
            expires_at: Epoch seconds after which the frame may be deleted (the record's own
                expiry decides visibility before that).
            finish: When given, the run is ended in the same atomic step: nothing is written
                unless the run's status is in ``finish.expect_status`` as well.

        Returns:
            ``True`` when the frame (and the finish) was written.
        """

    @abc.abstractmethod
    def read_frames(self, run_id: str, after_seq: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Logged frames with ``seq > after_seq``, in order, stopping before the first missing seq.

        Args:
            run_id: The run.
            after_seq: Only frames after this one.
            limit: At most this many (call again from the last seq for more).

        Returns:
            ``(seq, data)`` pairs; the seqs are ``after_seq + 1``, ``after_seq + 2``…
        """


class Store(ConnectionStore, RunStore, SessionStore, abc.ABC):
    """Everything the backend keeps.

    Connections, claims and counters (:class:`ConnectionStore`), runs and their frame logs
    (:class:`RunStore`), and sessions with their agent records, messages and committed turns
    (:class:`~selador.store.sessions.SessionStore`).
    """
