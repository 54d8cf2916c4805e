"""Helpers both stores share for run records: (de)serialisation, conditions, owner tokens."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from selador.store.base import RUN_MUTABLE_FIELDS, RunRecord

_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord))


def new_owner() -> str:
    """A claim owner token: unique, not secret (it never leaves the backend)."""
    return uuid.uuid4().hex


_REQUIRED_FIELDS = frozenset({"status", "lease_until", "expires_at", "cancel_requested", "frames"})
"""Mutable fields every run has: they may change but never be cleared."""


def check_changes(changes: Mapping[str, object]) -> None:
    """Refuse a change to a field that is fixed at creation (or does not exist), or clears a required one.

    Raises:
        ValueError: naming the offending fields.
    """
    bad = sorted(set(changes) - RUN_MUTABLE_FIELDS)
    if bad:
        raise ValueError(f"run fields cannot be changed: {', '.join(bad)}")
    cleared = sorted(name for name in _REQUIRED_FIELDS if name in changes and changes[name] is None)
    if cleared:
        raise ValueError(f"run fields cannot be cleared: {', '.join(cleared)}")


def check_expect(expect: Mapping[str, object] | None) -> None:
    """Refuse a condition on a field runs do not have.

    Raises:
        ValueError: naming the offending fields.
    """
    bad = sorted(set(expect or ()) - _RUN_FIELDS)
    if bad:
        raise ValueError(f"unknown run fields in expect: {', '.join(bad)}")


def run_matches(
    run: RunRecord, expect_status: Collection[str] | None, expect: Mapping[str, object] | None
) -> bool:
    """Whether ``run`` meets :meth:`~selador.store.base.RunStore.update_run`'s conditions."""
    if expect_status is not None and run.status not in expect_status:
        return False
    return all(getattr(run, name) == value for name, value in (expect or {}).items())


def run_to_dict(run: RunRecord) -> dict[str, Any]:
    """A JSON-ready dict of every field (``claims`` as lists)."""
    data = dataclasses.asdict(run)
    data["claims"] = [list(pair) for pair in run.claims]
    return data


def run_from_dict(data: Mapping[str, Any]) -> RunRecord:
    """Rebuild a record from :func:`run_to_dict`'s output; unknown members are dropped.

    Args:
        data: The stored members.

    Returns:
        The record.
    """
    fields = {k: v for k, v in data.items() if k in _RUN_FIELDS}
    fields["claims"] = tuple((str(k), str(o)) for k, o in fields.get("claims") or ())
    fields["expires_at"] = int(fields["expires_at"])
    fields["frames"] = int(fields.get("frames") or 0)
    return RunRecord(**fields)


def run_to_json(run: RunRecord) -> str:
    """Compact JSON of a record."""
    return json.dumps(run_to_dict(run), ensure_ascii=False, separators=(",", ":"))


def run_from_json(text: str) -> RunRecord:
    """Parse :func:`run_to_json`'s output."""
    return run_from_dict(json.loads(text))
