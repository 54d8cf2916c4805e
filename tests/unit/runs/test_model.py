"""Run tokens, names and terminal outcomes."""

from __future__ import annotations

import json

import pytest

from selador.protocol import ErrorFrame, ResultData, ResultFrame, StatusFrame
from selador.runs.model import (
    active_key,
    new_run_id,
    new_run_token,
    run_name,
    terminal_finish,
    token_matches,
    token_run_id,
)
from selador.store.base import RunRecord


def record(run_id: str, digest: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        request_id="q",
        token_digest=digest,
        status="running",
        created_at=0,
        expires_at=1,
        lease_until=1,
    )


def test_a_token_names_its_run_and_only_matches_it() -> None:
    run_id = new_run_id()
    token, digest = new_run_token(run_id)
    assert token_run_id(token) == run_id
    assert token_matches(record(run_id, digest), token)
    assert digest not in token  # only the digest is stored, and it does not appear in the token
    other_token, _ = new_run_token(run_id)
    assert other_token != token
    assert not token_matches(record(run_id, digest), other_token)
    assert not token_matches(record("another-run", digest), token)


@pytest.mark.parametrize("bad", ["", "rt1", "rt1..", "rt2.a.b", "rt1.a", "rt1.a.b.c", "x.y.z"])
def test_malformed_tokens_name_no_run(bad: str) -> None:
    assert token_run_id(bad) is None
    assert not token_matches(record("a", "d"), bad)


def test_tokens_carry_at_least_128_random_bits() -> None:
    secrets = {new_run_token("r")[0].rsplit(".", 1)[1] for _ in range(200)}
    assert len(secrets) == 200
    assert min(len(s) for s in secrets) * 6 >= 128  # base64url: 6 bits a character


def test_names_and_claims_cannot_collide_across_owners() -> None:
    assert run_name("a#b", "c") != run_name("a", "b#c")
    assert active_key("p:a#b", "c") != active_key("p:a", "b#c")
    assert run_name("alice", "q-1") == run_name("alice", "q-1")


def test_the_terminal_frame_decides_the_final_status() -> None:
    data = ResultData(content="x", agent="rag", query_type="zoning", tools_available=1, tools_used=0)
    done = terminal_finish(
        ResultFrame(data=data, seq=7), expect_status=frozenset({"running"}), log_ttl_s=60, now=100
    )
    assert done.changes["status"] == "succeeded" and done.changes["frames"] == 7
    assert done.changes["expires_at"] == 161 and done.changes["ended_at"] == 100
    assert json.loads(str(done.changes["result"]))["content"] == "x"
    cancelled = data.model_copy(update={"stop_reason": "cancelled", "success": False})
    finish = terminal_finish(
        ResultFrame(data=cancelled, seq=3), expect_status=frozenset({"running"}), log_ttl_s=60
    )
    assert finish.changes["status"] == "cancelled"
    failed = terminal_finish(
        ErrorFrame(code="timeout", error="slow", seq=4), expect_status=frozenset({"pending"}), log_ttl_s=60
    )
    assert failed.changes["status"] == "failed"
    assert json.loads(str(failed.changes["result"])) == {"code": "timeout", "error": "slow"}
    assert failed.expect_status == frozenset({"pending"})
    with pytest.raises(TypeError):
        terminal_finish(StatusFrame(message="x"), expect_status=frozenset({"running"}), log_ttl_s=60)
