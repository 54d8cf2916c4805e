"""Pure logic of the run benchmarks and the soak: seq dedupe, judging, client plans (no timings)."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# `bench/` lives at the repository root, which the pytest entry point does not put on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench._run_clients import cancel_outcome, count, latency_results
from bench._soak_clients import Client, Conn, Query, plan_clients
from bench.concurrency import floor_ratio
from bench.inproc import HTTP_ROUTES, WS_ROUTES
from bench.sequence import SeqLog, SeqProblems, add_problems
from bench.soak import posts_after_410, report

REPO = Path(__file__).resolve().parents[3]


def _frames(seqs: list[int], terminal_at: int | None = None) -> list[dict[str, object]]:
    return [{"type": "result" if s == terminal_at else "delta", "seq": s} for s in seqs]


def _log(seqs: list[int], terminal_at: int | None = None) -> SeqLog:
    log = SeqLog()
    for frame in _frames(seqs, terminal_at):
        log.offer_frame(frame)
    return log


# -- SeqLog -----------------------------------------------------------------------------------------


def test_a_clean_stream_has_no_problems() -> None:
    log = _log([1, 2, 3, 4], terminal_at=4)
    problems = log.problems()
    assert problems == SeqProblems(lost=0, out_of_order=0, terminals=1, after_terminal=0, duplicates=0)
    assert problems.ok
    assert log.contiguous == 4
    assert log.ended
    assert log.terminal_type == "result"


def test_repeats_at_the_resume_seam_are_dropped_not_counted_as_faults() -> None:
    # Frames 1-5 live, a drop, the replay from 4 and the sender's repost from 2 overlap.
    log = _log([1, 2, 3, 4, 5, 4, 5, 2, 3, 4, 5, 6, 7], terminal_at=7)
    problems = log.problems()
    assert problems.ok
    assert problems.duplicates == 6
    assert log.kept == [1, 2, 3, 4, 5, 6, 7]


def test_offer_reports_whether_the_seq_is_new() -> None:
    log = SeqLog()
    assert log.offer(1) is True
    assert log.offer(1) is False
    assert log.duplicates == 1


def test_a_gap_is_lost_and_the_missing_terminal_counts_once() -> None:
    log = _log([1, 2, 4])
    problems = log.problems()
    assert problems.lost == 2  # seq 3 and the terminal frame
    assert problems.out_of_order == 0
    assert problems.terminals == 0
    assert not problems.ok
    assert log.contiguous == 2


def test_a_late_fill_is_out_of_order_but_not_lost() -> None:
    problems = _log([1, 2, 4, 3, 5], terminal_at=5).problems()
    assert problems.lost == 0
    assert problems.out_of_order == 1
    assert not problems.ok


def test_two_terminal_frames_and_frames_after_the_terminal_are_faults() -> None:
    log = SeqLog()
    for frame in [
        {"type": "delta", "seq": 1},
        {"type": "result", "seq": 2},
        {"type": "delta", "seq": 3},
        {"type": "error", "seq": 4},
    ]:
        log.offer_frame(frame)
    problems = log.problems()
    assert problems.terminals == 2
    assert problems.after_terminal == 2
    assert not problems.ok
    assert log.terminal_frame == {"type": "result", "seq": 2}


def test_frames_without_a_seq_are_set_aside() -> None:
    log = SeqLog()
    assert log.offer_frame({"type": "error", "code": "unknown_run"}) is False
    assert log.offer_frame({"type": "error", "code": "x", "seq": True}) is False  # a bool is no seq
    assert len(log.unnumbered) == 2
    assert log.kept == []
    assert not log.ended


def test_contiguous_ignores_frames_past_a_gap() -> None:
    assert _log([1, 2, 3, 5, 6]).contiguous == 3
    assert SeqLog().contiguous == 0


def test_add_problems_accumulates() -> None:
    total: dict[str, int] = {}
    add_problems(total, _log([1, 2], terminal_at=2).problems())
    add_problems(total, _log([1, 3, 2, 2]).problems())
    assert total == {
        "lost": 1,
        "out_of_order": 1,
        "not_one_terminal": 1,
        "after_terminal": 0,
        "duplicates_dropped": 1,
    }


# -- judging ----------------------------------------------------------------------------------------


def test_latency_results_judge_each_percentile() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1..100 ms
    p50, p99 = latency_results("resume.first_frame", samples, {50: 20.0, 99: 100.0})
    assert p50.name == "resume.first_frame.p50"
    assert p50.measured == pytest.approx(50.5)
    assert p50.status == "FAIL"
    assert p99.name == "resume.first_frame.p99"
    assert p99.measured == pytest.approx(99.01)
    assert p99.status == "PASS"
    assert p99.detail["latency_ms"]["n"] == 100


def test_latency_results_fail_on_any_failure_reason_and_without_samples() -> None:
    (result,) = latency_results("cancel.latency", [10.0, 20.0], {95: 500.0}, failures=["2 frames after"])
    assert result.status == "FAIL"
    assert "2 frames after" in result.note
    (empty,) = latency_results("cancel.latency", [], {95: 500.0})
    assert empty.status == "FAIL"
    assert empty.measured is None


@pytest.mark.parametrize(
    ("terminal", "unnumbered", "expected"),
    [
        (
            {"type": "result", "seq": 9, "data": {"success": False, "stop_reason": "cancelled"}},
            [],
            "cancelled",
        ),
        (
            {"type": "result", "seq": 9, "data": {"success": True, "stop_reason": "end_turn"}},
            [],
            "result:end_turn",
        ),
        (
            {"type": "result", "seq": 9, "data": {"success": True, "stop_reason": "cancelled"}},
            [],
            "result:cancelled",
        ),
        ({"type": "error", "seq": 9, "code": "internal_error"}, [], "error:internal_error"),
        (None, [{"type": "error", "code": "not_running"}], "message_error:not_running"),
        (None, [], "no_terminal"),
    ],
)
def test_cancel_outcome(
    terminal: dict[str, object] | None, unnumbered: list[dict[str, object]], expected: str
) -> None:
    assert cancel_outcome(terminal, unnumbered) == expected


def test_count() -> None:
    assert count(["a", "b", "a"]) == {"a": 2, "b": 1}


def test_floor_ratio() -> None:
    assert floor_ratio(30.0, 10.0) == 3.0
    assert floor_ratio(None, 10.0) == float("inf")
    assert floor_ratio(5.0, None) == pytest.approx(5e9)


# -- the in-process gateway's routes ------------------------------------------------------------------


def test_inproc_routes_match_the_template() -> None:
    from selador.local.template import load_template

    template = load_template(REPO / "template.yaml")
    assert set(WS_ROUTES) == set(template.websocket_route_keys)
    assert set(HTTP_ROUTES) == set(template.http_routes)


# -- the soak -----------------------------------------------------------------------------------------


def test_plan_clients_spreads_one_to_three_drops_over_a_droppers_questions() -> None:
    clients = plan_clients(400, random.Random(7), leave_rate=0.25, drop_rate=0.25)
    kinds = count(c.kind for c in clients)
    assert set(kinds) == {"stay", "leave", "drop"}
    for client in clients:
        assert 1 <= client.questions <= 3
        if client.kind == "drop":
            assert len(client.drops_planned) == client.questions
            assert 1 <= sum(client.drops_planned) <= 3
        else:
            assert client.drops_planned == []
        if client.kind == "leave":
            assert client.leave_at is not None and 0 <= client.leave_at < client.questions
            assert client.on_disconnect in ("cancel", "continue")
        else:
            assert client.on_disconnect == "continue"


def test_posts_allowed_after_close() -> None:
    assert Conn("t").posts_allowed_after_close == 0
    assert Conn("t", closed_mid_run=True).posts_allowed_after_close == 1
    assert Conn("t", resumes=1, closed_mid_run=True).posts_allowed_after_close == 2
    assert Conn("t", resumes=1).posts_allowed_after_close == 1


def test_posts_after_410_counts_only_what_exceeds_each_connections_allowance() -> None:
    client = Client(
        0, 1, kind="drop", connections=[Conn("soak-0-0", closed_mid_run=True), Conn("soak-0-1", 1)]
    )
    stayer = Client(1, 1, connections=[Conn("soak-1-0")])
    stats = [
        {"query": {"tag": "soak-0-0"}, "postsAfterClose": 3},  # allowed 1: 2 beyond
        {"query": {"tag": "soak-0-1"}, "postsAfterClose": 1},  # a resume's replay: allowed
        {"query": {"tag": "soak-1-0"}, "postsAfterClose": 1},  # a stayer: none allowed
    ]
    assert posts_after_410([client, stayer], stats) == (3, 5)


def _query(request_id: str, seqs: list[int], status: str = "succeeded", terminal: bool = True) -> Query:
    query = Query(request_id, token="rt1.x.y", final_status=status)
    for frame in _frames(seqs, seqs[-1] if terminal else None):
        query.log.offer_frame(frame)
    return query


def _stats(clients: list[Client], after_close: dict[str, int] | None = None) -> dict[str, object]:
    after_close = after_close or {}
    connections = [
        {"query": {"tag": conn.tag}, "postsAfterClose": after_close.get(conn.tag, 0)}
        for client in clients
        for conn in client.connections
    ]
    counters = dict.fromkeys(
        (
            "posts",
            "posts_delivered",
            "injected_429",
            "buffer_full_429",
            "gone_410",
            "posts_after_gone",
            "payload_too_large_413",
            "invocations_total",
            "async_invocations",
            "invocations_running",
            "invocation_errors",
        ),
        0,
    )
    return {**counters, "connections": connections}


def _clients() -> list[Client]:
    stayer = Client(0, 1, connections=[Conn("soak-0-0")], queries=[_query("c0-q0", [1, 2, 3])])
    dropper = Client(
        1,
        1,
        kind="drop",
        drops_planned=[1],
        connections=[Conn("soak-1-0", closed_mid_run=True), Conn("soak-1-1", resumes=1)],
        queries=[_query("c1-q0", [1, 2, 3, 2, 3, 4, 5])],
    )
    dropper.queries[0].drops = 1
    leaver = Client(
        2,
        2,
        kind="leave",
        leave_at=0,
        on_disconnect="cancel",
        left=True,
        connections=[Conn("soak-2-0", closed_mid_run=True)],
        queries=[_query("c2-q0", [1, 2], status="cancelled", terminal=False)],
    )
    return [stayer, dropper, leaver]


def test_report_passes_a_clean_soak(capsys: pytest.CaptureFixture[str]) -> None:
    clients = _clients()
    assert report(clients, _stats(clients, {"soak-1-0": 1, "soak-2-0": 1}), elapsed=1, grace=1, settled=0.1)
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert "connections dropped mid-answer and resumed: 1 (planned 1)" in out


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (lambda cs: cs[0].queries.__setitem__(0, _query("c0-q0", [1, 3])), "frames lost"),
        (lambda cs: cs[1].queries.__setitem__(0, _query("c1-q0", [1, 3, 2, 4])), "out of order"),
        (lambda cs: setattr(cs[2].queries[0], "final_status", "running"), "runs not ended"),
        (lambda cs: setattr(cs[2], "on_disconnect", "continue"), "despite on_disconnect continue"),
        (
            lambda cs: cs[1].queries[0].log.unnumbered.append({"type": "error", "code": "unknown_run"}),
            "errors",
        ),
        (lambda cs: setattr(cs[1].queries[0], "drops", 0), "dropped mid-answer"),
    ],
)
def test_report_fails_each_broken_invariant(
    change: Callable[[list[Client]], object], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    clients = _clients()
    change(clients)
    assert not report(clients, _stats(clients), elapsed=1, grace=1, settled=None)
    failed = [row for row in capsys.readouterr().out.splitlines() if row.startswith("FAIL")]
    assert any(line in row for row in failed), failed


def test_report_fails_a_post_to_a_closed_stayer(capsys: pytest.CaptureFixture[str]) -> None:
    clients = _clients()
    assert not report(clients, _stats(clients, {"soak-0-0": 1}), elapsed=1, grace=1, settled=None)
    assert "FAIL posts after a 410 beyond the one each needs: 1" in capsys.readouterr().out
