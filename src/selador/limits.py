"""Abuse limits on queries, kept in the connection store (DynamoDB in AWS, SQLite locally).

Three limits, checked in this order before any model call:

* ``concurrent``: queries running at once on one connection. Each running query holds one of
  ``LIMIT_CONCURRENT_PER_CONNECTION`` slot claims (``slot#{connection}#{n}``), released when the run
  ends. Claims, not a counter, because a claim expires on its own if a run dies without releasing it
  (Lambda killed at its timeout), while a counter's lost decrement would shrink the limit for good.
* ``per_minute``: queries one connection may start per calendar minute, a fixed-window counter
  (``rate#{connection}#{minute}``, 120 s TTL so the window outlives a clock edge).
* ``daily``: queries one principal may start per UTC day (``budget#{principal}#{yyyy-mm-dd}``,
  two-day TTL). Anonymous connections (``AUTH_MODE=none``) have no principal and no budget.

Only queries admitted by the first two limits count against the daily budget, so a client that
hammers its connection's limits does not also burn its day. A limit set to 0 is off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from selador.settings import Settings
from selador.store.base import ConnectionStore

RATE_WINDOW_S = 60
RATE_TTL_S = 120
BUDGET_TTL_S = 2 * 24 * 3600


@dataclass(frozen=True)
class LimitExceeded:
    """A refused query.

    Attributes:
        limit: ``concurrent``, ``per_minute`` or ``daily``.
        message: Safe to show the client; names the limit and its value.
        retry_after: Seconds until the limit may admit a query again, when known.
    """

    limit: str
    message: str
    retry_after: int | None = None


@dataclass(frozen=True)
class Admission:
    """An admitted query: hand it back to :meth:`Limits.finish` when the run ends.

    Attributes:
        slot: The concurrency claim the run holds as ``(key, owner)``, or ``None`` when that limit
            is off.
    """

    slot: tuple[str, str] | None = None


class Limits:
    """The limits of one container, over its store.

    Args:
        store: The connection store (atomic ``claim``/``release``/``increment``).
        settings: ``LIMIT_*`` values and ``RUN_CLAIM_TTL_SECONDS`` (the slot lifetime).
        now: Epoch-seconds clock; tests inject a fake one.
    """

    def __init__(
        self, store: ConnectionStore, settings: Settings, *, now: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._settings = settings
        self._now = now

    def admit(self, connection_id: str, principal: str | None) -> Admission | LimitExceeded:
        """Check every limit for a new query and reserve what it uses.

        Args:
            connection_id: The connection asking.
            principal: Its authenticated subject, or ``None`` when anonymous.

        Returns:
            An :class:`Admission` to pass to :meth:`finish`, or the first limit exceeded (nothing
            stays reserved then).
        """
        settings = self._settings
        slot = None
        cap = settings.limit_concurrent_per_connection
        if cap:
            slot = self._claim_slot(connection_id, cap)
            if slot is None:
                return LimitExceeded(
                    "concurrent",
                    f"concurrent limit: at most {cap} queries may run at once on a connection; "
                    "wait for one to finish",
                )
        try:
            return self._count(connection_id, principal, slot)
        except Exception:
            self._release(slot)  # a store failure must not leave the slot held until its TTL
            raise

    def _count(
        self, connection_id: str, principal: str | None, slot: tuple[str, str] | None
    ) -> Admission | LimitExceeded:
        settings = self._settings
        now = self._now()
        per_minute = settings.limit_queries_per_minute
        if per_minute:
            minute = int(now // RATE_WINDOW_S)
            count = self._store.increment(f"rate#{connection_id}#{minute}", RATE_TTL_S)
            if count > per_minute:
                self._release(slot)
                retry = max(1, RATE_WINDOW_S - int(now % RATE_WINDOW_S))
                return LimitExceeded(
                    "per_minute",
                    f"per_minute limit: at most {per_minute} queries a minute on a connection; "
                    f"retry in {retry} s",
                    retry,
                )
        daily = settings.limit_daily_queries_per_principal
        if daily and principal:
            day = time.strftime("%Y-%m-%d", time.gmtime(now))
            count = self._store.increment(f"budget#{principal}#{day}", BUDGET_TTL_S)
            if count > daily:
                self._release(slot)
                retry = max(1, 86_400 - int(now % 86_400))
                return LimitExceeded(
                    "daily",
                    f"daily limit: at most {daily} queries a day per user; the budget resets at 00:00 UTC",
                    retry,
                )
        return Admission(slot=slot)

    def finish(self, admission: Admission | None) -> None:
        """Give back what an admitted query held (its concurrency slot)."""
        if admission is not None:
            self._release(admission.slot)

    def _claim_slot(self, connection_id: str, cap: int) -> tuple[str, str] | None:
        ttl = self._settings.run_claim_ttl_seconds
        for index in range(cap):
            key = slot_key(connection_id, index)
            owner = self._store.claim(key, ttl)
            if owner is not None:
                return key, owner
        return None

    def _release(self, slot: tuple[str, str] | None) -> None:
        if slot is not None:
            self._store.release(*slot)


def slot_key(connection_id: str, index: int) -> str:
    """The claim of concurrency slot ``index`` on a connection."""
    return f"slot#{connection_id}#{index}"
