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


@pytest.mark.parametrize("session_id", ['the "plan"', "Café ☕", "€uro", "a`b\\c", "😀"])
def test_any_printable_session_id_can_be_read_and_erased_over_http(
    aws: Aws, context: Any, session_id: str
) -> None:
    # Powertools' path pattern knows only some characters; API Gateway hands the id over decoded.
    # The route exists, so an id it missed was answered "405 method not allowed: use GET, DELETE".
    first = ask(aws, context, "What is the FAR in LR2?", session_id=session_id)
    assert first[-1]["type"] == "result" and first[-1]["session_id"] == session_id
    mine = {"x-session-token": first[0]["session_token"]}
    status, transcript = http(context, "GET", f"/sessions/{session_id}", **mine)
    assert status == 200 and transcript["session_id"] == session_id
    assert http(context, "DELETE", f"/sessions/{session_id}", **mine)[0] == 204
    status, body = http(context, "GET", f"/sessions/{session_id}", **mine)
    assert (status, body["code"]) == (404, "unknown_session")
    assert http(context, "PUT", f"/sessions/{session_id}", **mine)[0] == 405


def test_a_run_id_with_characters_powertools_misses_can_be_polled(aws: Aws, context: Any) -> None:
    status, started = http(
        context, "POST", "/runs", body={"question": "What is the FAR in LR2?", "request_id": "€-1"}
    )
    assert status == 202
    status, body = http(context, "GET", "/runs/€-1", **{"x-run-token": started["run_token"]})
    assert status == 200 and body["request_id"] == "€-1"
