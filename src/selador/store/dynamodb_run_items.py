"""How run records become DynamoDB items and update/condition expressions.

Used by :class:`~selador.store.dynamodb_runs.DynamoRunsMixin`; the item layout is documented in
:mod:`selador.store.dynamodb`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from selador.store._dynamo import _RUN, _number
from selador.store.base import RunRecord
from selador.store.runs import run_from_dict, run_to_dict

# How each RunRecord field is stored: S a string, N a number, BOOL a boolean, CLAIMS a list of
# [key, owner] string lists. Every field is listed, so a field added to RunRecord without a kind
# here fails loudly on the first write instead of being dropped.
_RUN_KINDS: dict[str, str] = {
    "run_id": "S",
    "request_id": "S",
    "token_digest": "S",
    "status": "S",
    "created_at": "N",
    "expires_at": "N",
    "lease_until": "N",
    "principal": "S",
    "connection_id": "S",
    "endpoint": "S",
    "listener_id": "S",
    "cancel_requested": "BOOL",
    "on_disconnect": "S",
    "frames": "N",
    "ended_at": "N",
    "result": "S",
    "claims": "CLAIMS",
    "session_id": "S",
    "session_owner": "S",
}


def _encode_run_field(name: str, value: object) -> dict[str, Any]:
    """The attribute value of a non-``None`` run field.

    Raises:
        ValueError: ``name`` is not a :class:`RunRecord` field.
        TypeError: ``value`` does not fit the field.
    """
    kind = _RUN_KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown run field: {name}")
    if kind == "S" and isinstance(value, str):
        return {"S": value}
    # bool is an int subclass: True must not slip into a number field.
    if kind == "N" and isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value)
    if kind == "BOOL" and isinstance(value, bool):
        return {"BOOL": value}
    if kind == "CLAIMS" and isinstance(value, list | tuple):
        return {"L": [{"L": [{"S": key}, {"S": owner}]} for key, owner in value]}
    raise TypeError(f"run field {name} cannot hold {value!r}")


def _decode_run_field(kind: str, value: dict[str, Any]) -> object:
    if kind == "S":
        return value["S"]
    if kind == "N":
        return float(value["N"])  # run_from_dict makes the whole-number fields int again
    if kind == "BOOL":
        return bool(value["BOOL"])
    return [[part["S"] for part in pair["L"]] for pair in value["L"]]


def run_to_item(run: RunRecord) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute-value form) for a run record.

    Args:
        run: The record.

    Returns:
        The item, keyed ``run#<run id>``; ``None`` fields are left out.
    """
    item: dict[str, Any] = {"pk": {"S": _RUN + run.run_id}}
    for name, value in run_to_dict(run).items():
        if value is not None:
            item[name] = _encode_run_field(name, value)
    return item


def run_from_item(item: dict[str, Any]) -> RunRecord:
    """Parse an item written by :func:`run_to_item` (attributes it does not know are ignored).

    Args:
        item: The item in attribute-value form.

    Returns:
        The record; absent optional attributes are ``None``.
    """
    return run_from_dict(
        {name: _decode_run_field(kind, item[name]) for name, kind in _RUN_KINDS.items() if name in item}
    )


class _Expression:
    """Placeholders for one request's expressions.

    Every attribute name goes through a ``#n`` placeholder (``status``, ``data``, ``owner`` and
    ``result`` are reserved words) and every value through a ``:v`` one.
    """

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        if attribute not in self._names:
            self._names[attribute] = f"#n{len(self._names)}"
        return self._names[attribute]

    def value(self, value: dict[str, Any]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def params(self) -> dict[str, Any]:
        """``ExpressionAttributeNames`` and, when any, ``ExpressionAttributeValues`` (empty is refused)."""
        params: dict[str, Any] = {"ExpressionAttributeNames": {p: a for a, p in self._names.items()}}
        if self.values:
            params["ExpressionAttributeValues"] = dict(self.values)
        return params

    def run_update(self, changes: Mapping[str, object]) -> str:
        """``SET`` the given fields, ``REMOVE`` those set to ``None``."""
        sets = [
            f"{self.name(field)} = {self.value(_encode_run_field(field, value))}"
            for field, value in sorted(changes.items())
            if value is not None
        ]
        removes = [self.name(field) for field, value in sorted(changes.items()) if value is None]
        clauses = []
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
        return " ".join(clauses)

    def run_condition(
        self, now: float, expect_status: Collection[str] | None, expect: Mapping[str, object] | None
    ) -> str:
        """The run exists, is unexpired and meets :meth:`DynamoDbStore.update_run`'s conditions.

        ``expect_status`` must not be empty (``IN ()`` is not valid syntax; callers answer "no
        match" themselves).
        """
        parts = [
            f"attribute_exists({self.name('pk')})",
            f"{self.name('expires_at')} > {self.value(_number(now))}",
        ]
        if expect_status is not None:
            options = ", ".join(self.value({"S": status}) for status in sorted(set(expect_status)))
            parts.append(f"{self.name('status')} IN ({options})")
        for field, value in sorted((expect or {}).items()):
            if value is None:
                parts.append(f"attribute_not_exists({self.name(field)})")
            else:
                parts.append(f"{self.name(field)} = {self.value(_encode_run_field(field, value))}")
        return " AND ".join(parts)
