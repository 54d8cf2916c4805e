"""Small helpers and constants every part of the DynamoDB store shares.

The item layout these key prefixes build is documented in :mod:`selador.store.dynamodb`. Like the
rest of the DynamoDB store this module imports botocore, so :mod:`selador.store` must not import it.
"""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import ClientError

# Partition-key prefixes: one table holds every kind of item, told apart by its key.
_CONN = "conn#"
_CLAIM = "claim#"
_COUNTER = "ctr#"
_RUN = "run#"
_RUN_NAME = "runname#"
_FRAME = "frame#"
_SESSION = "sess#"
_SESSION_AGENT = "sagent#"
_SESSION_MESSAGE = "smsg#"
_SESSION_TURN = "sturn#"

_CONDITIONAL_FAILED = "ConditionalCheckFailedException"


def _expiry(now: float, ttl_seconds: int) -> int:
    """Whole epoch seconds, rounded up: TTL wants integers and a TTL is never cut short."""
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    return math.ceil(now + ttl_seconds)


def _number(value: float) -> dict[str, str]:
    if not math.isfinite(value):
        raise ValueError(f"DynamoDB numbers must be finite, got {value}")
    return {"N": repr(int(value)) if float(value).is_integer() else repr(float(value))}


def _expires_at(item: dict[str, Any]) -> float:
    return float(item["expires_at"]["N"]) if "expires_at" in item else math.inf


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == _CONDITIONAL_FAILED)
