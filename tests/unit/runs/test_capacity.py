"""LIMIT_RUNNING_ANSWERS: a service-wide cap on answers generating at once, whoever asked.

Real SqliteStore on a temp file; runs are started and finished through the real service.
"""

from __future__ import annotations

from pathlib import Path

from selador.deps import Dependencies
from selador.protocol import ErrorFrame, QueryRequest
from selador.runs.model import Refused, Started
from selador.runs.service import Runs
from selador.settings import Settings
from selador.store.sqlite import SqliteStore


def runs_with_cap(tmp_path: Path, cap: int) -> Runs:
    store = SqliteStore(str(tmp_path / "cap.sqlite3"))
    settings = Settings(limit_running_answers=cap)
    return Runs(Dependencies(settings=settings, store_factory=lambda _: store))


def start(runs: Runs, request_id: str, principal: str | None = None) -> Started | Refused:
    return runs.start(
        QueryRequest(question="What is the FAR in LR2?", request_id=request_id),
        principal=principal,
        scope=f"p:{principal}" if principal else None,
        limit_subject=None,  # anonymous HTTP: no other limit applies, the cap still does
    )


def test_answers_past_the_cap_are_refused_with_a_retry_hint(tmp_path: Path) -> None:
    runs = runs_with_cap(tmp_path, 2)
    first, second = start(runs, "a"), start(runs, "b", principal="alice")
    assert isinstance(first, Started) and isinstance(second, Started)
    third = start(runs, "c", principal="bob")
    assert isinstance(third, Refused)
    assert third.code == "rate_limited" and third.retry_after == 5
    assert third.message.startswith("capacity limit: 2 answers are being generated")
    # The refusal holds nothing: bob's request id is free for his retry.
    assert start(runs, "c", principal="bob") == third


def test_a_finished_answer_gives_its_slot_back(tmp_path: Path) -> None:
    runs = runs_with_cap(tmp_path, 1)
    first = start(runs, "a")
    assert isinstance(first, Started)
    assert isinstance(start(runs, "b"), Refused)
    ended = runs.finish(
        first.run,
        ErrorFrame(code="internal_error", error="stopped"),
        expect_status=frozenset({"pending"}),
    )
    assert ended
    assert isinstance(start(runs, "b"), Started)


def test_no_cap_by_default(tmp_path: Path) -> None:
    runs = runs_with_cap(tmp_path, 0)
    assert all(isinstance(start(runs, f"q{i}"), Started) for i in range(25))


def test_a_refusal_at_capacity_does_not_use_up_the_callers_limits(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "cap.sqlite3"))
    settings = Settings(limit_running_answers=1, limit_queries_per_minute=2)
    runs = Runs(Dependencies(settings=settings, store_factory=lambda _: store))
    held = start(runs, "held")
    assert isinstance(held, Started)

    def ask(request_id: str) -> Started | Refused:
        return runs.start(
            QueryRequest(question="What is the FAR in LR2?", request_id=request_id),
            principal=None,
            scope="c:conn-1",
            limit_subject="conn-1",
        )

    for i in range(5):
        refused = ask(f"r{i}")
        assert isinstance(refused, Refused) and refused.message.startswith("capacity limit")
    runs.finish(held.run, ErrorFrame(code="internal_error", error="x"), expect_status=frozenset({"pending"}))
    assert isinstance(ask("after"), Started), "five refusals at capacity must not count per minute"
