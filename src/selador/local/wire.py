"""Small pieces every endpoint of the local gateway shares: AWS error answers, clocks, body checks."""

from __future__ import annotations

import time
import uuid

from starlette.responses import JSONResponse, Response


def now_ms() -> int:
    """Epoch milliseconds, the unit of every timestamp in API Gateway's events."""
    return int(time.time() * 1000)


def aws_error(status: int, error_type: str, message: str) -> Response:
    """An error in the shape botocore's rest-json parser maps to ``client.exceptions.<error_type>``.

    Args:
        status: HTTP status.
        error_type: The service model's error shape (``GoneException``).
        message: The ``message`` member.

    Returns:
        The answer, with ``x-amzn-ErrorType`` (what botocore reads first) and a request id.
    """
    headers = {"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())}
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def is_text(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (the gateway's test for "a text body")."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
