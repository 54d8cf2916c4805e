"""The run and frame-log half of the DynamoDB store.

:class:`DynamoRunsMixin` holds the :class:`~selador.store.base.RunStore` methods; it is mixed into
:class:`~selador.store.dynamodb.DynamoDbStore`, whose module documents the item layout. Kept apart
so neither half outgrows a readable module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from selador.store._dynamo import (
    _FRAME,
    _RUN,
    _RUN_NAME,
    _error_code,
    _expires_at,
    _is_conditional_failure,
    _number,
)
from selador.store.base import RunFinish, RunRecord
from selador.store.dynamodb_run_items import _Expression, run_from_item, run_to_item
from selador.store.runs import check_changes, check_expect, run_matches

_T = TypeVar("_T")

_TRANSACTION_CANCELED = "TransactionCanceledException"
# A single-item write that touched an item an unfinished transaction holds.
_TRANSACTION_CONFLICT = "TransactionConflictException"
# Cancellation reason codes (one per transaction item; "None" for an item that was fine).
_REASON_CONDITION = "ConditionalCheckFailed"
_REASON_CONFLICT = "TransactionConflict"

# BatchGetItem takes at most 100 keys per request and may leave some unprocessed (16 MB response
# cap, throttling); they are asked for again after a pause, this many rounds at most.
_BATCH_GET_KEYS = 100
_BATCH_ROUNDS = 8
# Attempts at a write that lost to a concurrent transaction on the same item. botocore does not
# retry these (they are not throttling), yet the next attempt normally goes through at once.
_CONFLICT_ROUNDS = 5
_FIRST_PAUSE = 0.01
_MAX_PAUSE = 0.5


def _frame_key(run_id: str, seq: int) -> str:
    return f"{_FRAME}{run_id}#{seq}"


def _cancellation_codes(exc: ClientError) -> set[str]:
    """The reasons a cancelled transaction gives for its failed items (empty for other errors)."""
    if _error_code(exc) != _TRANSACTION_CANCELED:
        return set()
    reasons = exc.response.get("CancellationReasons") or []
    return {str(r.get("Code")) for r in reasons if r.get("Code") not in (None, "None")}


def _is_condition_cancel(exc: ClientError) -> bool:
    """Whether a transaction was cancelled by its conditions and nothing else."""
    return _cancellation_codes(exc) == {_REASON_CONDITION}


def _is_transaction_conflict(exc: ClientError) -> bool:
    """Whether a write lost a race with another transaction and may simply be sent again."""
    if _error_code(exc) == _TRANSACTION_CONFLICT:
        return True
    codes = _cancellation_codes(exc)
    return _REASON_CONFLICT in codes and codes <= {_REASON_CONDITION, _REASON_CONFLICT}


class DynamoRunsMixin:
    """Runs and frame logs in the DynamoDB table: the run half of the DynamoDB store.

    Not a store on its own: it relies on attributes that
    :class:`~selador.store.dynamodb.DynamoDbStore`'s ``__init__`` sets.

    Attributes:
        table_name: The table every item lives in.
    """

    # Set by DynamoDbStore.__init__; declared here so the methods below type-check on their own.
    _client: Any
    table_name: str
    _now: Callable[[], float]
    _sleep: Callable[[float], None]

    def create_run(self, run: RunRecord, *, name: str | None = None) -> None:
        """Store a new run and, when ``name`` is given, point that name at it.

        Args:
            run: The record; its ``expires_at`` doubles as the item's TTL.
            name: A name :meth:`find_run` resolves to this run until the record expires.
        """
        self._client.put_item(TableName=self.table_name, Item=run_to_item(run))
        if name is not None:
            # Written after the run, so a name never points at a run that was not stored; a failure
            # in between leaves an unnamed run that expires on its own.
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": _RUN_NAME + name},
                    "run_id": {"S": run.run_id},
                    "expires_at": _number(run.expires_at),
                },
            )

    def get_run(self, run_id: str) -> RunRecord | None:
        """Read a run (strongly consistent: the status decides who may act next).

        Args:
            run_id: The run.

        Returns:
            The record, or ``None`` when absent or expired.
        """
        item = self._client.get_item(
            TableName=self.table_name, Key={"pk": {"S": _RUN + run_id}}, ConsistentRead=True
        ).get("Item")
        if not item or _expires_at(item) <= self._now():
            return None
        return run_from_item(item)

    def find_run(self, name: str) -> RunRecord | None:
        """The run last created under ``name`` (two strongly consistent reads: name, then run).

        Args:
            name: The name given to :meth:`create_run`.

        Returns:
            The record, or ``None`` when the name or its run is absent or expired.
        """
        item = self._client.get_item(
            TableName=self.table_name, Key={"pk": {"S": _RUN_NAME + name}}, ConsistentRead=True
        ).get("Item")
        if not item or _expires_at(item) <= self._now():
            return None
        return self.get_run(item["run_id"]["S"])

    def update_run(
        self,
        run_id: str,
        changes: Mapping[str, object],
        *,
        expect_status: Collection[str] | None = None,
        expect: Mapping[str, object] | None = None,
    ) -> RunRecord | None:
        """Change a run atomically when it exists, is unexpired and meets the conditions.

        One conditional ``UpdateItem``: ``SET`` for the changes (``REMOVE`` for ``None``), the
        conditions in its ``ConditionExpression``.

        Args:
            run_id: The run.
            changes: Fields to set (``None`` clears an optional field).
            expect_status: Statuses the run must be in.
            expect: Fields that must hold exactly these values (``None``: unset).

        Returns:
            The record after the change, or ``None`` when nothing changed.

        Raises:
            ValueError: ``changes`` names a field that cannot change or clears one every run has,
                or ``expect`` names a field runs do not have.
        """
        check_changes(changes)
        check_expect(expect)
        if expect_status is not None and not expect_status:
            return None  # no status is in an empty set (and "IN ()" is not valid syntax)
        if not changes:
            # UpdateItem wants something to update; a consistent read answers the same question.
            run = self.get_run(run_id)
            return run if run is not None and run_matches(run, expect_status, expect) else None

        def attempt() -> dict[str, Any]:
            expr = _Expression()
            update = expr.run_update(changes)
            condition = expr.run_condition(self._now(), expect_status, expect)
            answer: dict[str, Any] = self._client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": _RUN + run_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
                **expr.params(),
            )
            return answer

        try:
            answer = self._retry_conflicts(attempt)
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return None
            raise
        return run_from_item(answer["Attributes"])

    def append_frame(
        self, run_id: str, seq: int, data: str, expires_at: int, *, finish: RunFinish | None = None
    ) -> bool:
        """Log frame ``seq`` unless it is there already; with ``finish``, end the run in the same step.

        Without ``finish`` this is a ``PutItem`` conditioned on the frame being absent; with it, a
        ``TransactWriteItems`` of that put and an ``UpdateItem`` of the run conditioned on its
        status, so either both land or neither does.

        Args:
            run_id: The run.
            seq: The frame's ``seq``.
            data: Its JSON text, stored as is.
            expires_at: When the frame may be deleted (its TTL).
            finish: The change that ends the run, applied only if the run is unexpired and in one
                of ``finish.expect_status``.

        Returns:
            ``True`` when written, ``False`` when the seq was taken or the finish's condition failed.

        Raises:
            ValueError: ``finish.changes`` names a field that cannot change or clears one every
                run has.
        """
        frame: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {
                "pk": {"S": _frame_key(run_id, seq)},
                "data": {"S": data},
                "expires_at": _number(expires_at),
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if finish is None:
            try:
                self._retry_conflicts(lambda: self._client.put_item(**frame))
            except ClientError as exc:
                if _is_conditional_failure(exc):
                    return False
                raise
            return True

        check_changes(finish.changes)
        if not finish.expect_status:
            return False  # no status is in an empty set (and "IN ()" is not valid syntax)

        def attempt() -> None:
            expr = _Expression()
            run: dict[str, Any] = {"TableName": self.table_name, "Key": {"pk": {"S": _RUN + run_id}}}
            update = expr.run_update(finish.changes)
            run["ConditionExpression"] = expr.run_condition(self._now(), finish.expect_status, None)
            run.update(expr.params())
            if update:
                run["UpdateExpression"] = update
                ending = {"Update": run}
            else:
                ending = {"ConditionCheck": run}  # nothing to change, only the status to check
            self._client.transact_write_items(TransactItems=[{"Put": frame}, ending])

        try:
            self._retry_conflicts(attempt)
        except ClientError as exc:
            # Either condition failing (the seq is taken, the run is not in an expected status)
            # cancels the whole transaction; anything else (throttling, validation) is an error.
            if _is_condition_cancel(exc):
                return False
            raise
        return True

    def read_frames(self, run_id: str, after_seq: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Logged frames after ``after_seq``, in order, up to the first gap.

        The keys are known in advance (``after_seq + 1`` onwards), so this is a strongly consistent
        ``BatchGetItem`` per 100 seqs; a batch that shows a gap ends the read.

        Args:
            run_id: The run.
            after_seq: Only frames after this one.
            limit: At most this many.

        Returns:
            ``(seq, data)`` pairs with contiguous seqs from ``after_seq + 1``; an expired frame
            counts as missing.

        Raises:
            RuntimeError: DynamoDB kept leaving a needed key unprocessed (not expected in practice).
        """
        now = self._now()
        frames: list[tuple[int, str]] = []
        last = after_seq + limit
        first = after_seq + 1
        while first <= last:
            batch = range(first, min(last, first + _BATCH_GET_KEYS - 1) + 1)
            found = self._get_frames(run_id, batch, now)
            for seq in batch:
                if seq not in found:
                    return frames
                frames.append((seq, found[seq]))
            first = batch.stop
        return frames

    def _get_frames(self, run_id: str, seqs: range, now: float) -> dict[int, str]:
        """Unexpired frames among ``seqs`` (at most 100), every one up to the first missing seq read.

        Unprocessed keys are asked for again, but only those before a seq known to be missing: the
        caller stops there anyway.
        """
        pending = {_frame_key(run_id, seq): seq for seq in seqs}
        found: dict[int, str] = {}
        first_missing = math.inf
        pause = _FIRST_PAUSE
        for round_ in range(_BATCH_ROUNDS):
            if round_:
                self._sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            answer = self._client.batch_get_item(
                RequestItems={
                    self.table_name: {
                        "Keys": [{"pk": {"S": pk}} for pk in pending],
                        "ConsistentRead": True,
                        "ProjectionExpression": "#k, #d, #e",
                        "ExpressionAttributeNames": {"#k": "pk", "#d": "data", "#e": "expires_at"},
                    }
                }
            )
            unprocessed = {
                key["pk"]["S"]
                for key in answer.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
            }
            for item in answer.get("Responses", {}).get(self.table_name, []):
                if _expires_at(item) > now:  # the TTL sweeper is lazy
                    found[pending[item["pk"]["S"]]] = item["data"]["S"]
            for pk, seq in list(pending.items()):
                if pk not in unprocessed:
                    del pending[pk]
                    if seq not in found:
                        first_missing = min(first_missing, seq)
            pending = {pk: seq for pk, seq in pending.items() if seq < first_missing}
            if not pending:
                return found
        raise RuntimeError(
            f"read_frames of run {run_id!r}: {len(pending)} keys unprocessed after {_BATCH_ROUNDS} rounds"
        )

    def _retry_conflicts(self, call: Callable[[], _T]) -> _T:
        """Run a write, sending it again (after a short pause) while it loses to a concurrent transaction.

        A conflict means nothing was written, so sending the same request again is safe; conditions
        are evaluated afresh each time.
        """
        pause = _FIRST_PAUSE
        for _ in range(_CONFLICT_ROUNDS - 1):
            try:
                return call()
            except ClientError as exc:
                if not _is_transaction_conflict(exc):
                    raise
            self._sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)
        return call()
