"""Review findings on conversations over the HTTP API: odd input is answered, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Aws
from .test_sessions import ask, http


@pytest.mark.parametrize("limit", ["²", "①", "٣"])
def test_a_limit_of_non_ascii_digits_is_a_bad_request(aws: Aws, context: Any, limit: str) -> None:
    # str.isdigit() accepts "²" and "①", which int() refuses: that was a 500.
    mine = {"x-session-token": ask(aws, context, "Hello", session_id="one")[0]["session_token"]}
    status, body = http(context, "GET", "/sessions", query={"limit": limit}, **mine)
    assert (status, body["code"]) == (400, "bad_request")
