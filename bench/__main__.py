"""``python -m bench`` (``make bench``): run the measurements, print the table, write results.json.

Exit status 1 when any target FAILs (SKIPs do not fail the run); the table is printed either way.

Examples::

    python -m bench                       # everything (a few minutes on 2 cores)
    python -m bench --quick               # smoke run: fewer repetitions, 100 clients, shorter answers
    python -m bench --only cold_start --only memory
    python -m bench --levels 100,250 --reps 9
    python -m bench --env STREAM_FLUSH_MAX_MS=1500   # try a setting (streaming, concurrency, resume, cancel)
    python -m bench --only resume --only cancel --env RUN_POLL_MS=100
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

# Before anything imports selador (in this process): the Powertools logger reads it at creation.
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench import results as results_module
from bench.results import Result, skipped

GROUPS = (
    "cold_start",
    "memory",
    "streaming",
    "responder",
    "concurrency",
    "resume",
    "cancel",
    "sessions",
    "bundle",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run (fewer repetitions and clients)")
    parser.add_argument("--only", action="append", choices=GROUPS, help="run only this group (repeatable)")
    parser.add_argument(
        "--reps",
        type=int,
        help="fresh processes / runs per cold-start and overhead sample (default 7, quick 3)",
    )
    parser.add_argument(
        "--first-token-queries", type=int, help="queries for first-token latency (default 100, quick 20)"
    )
    parser.add_argument(
        "--economy-reps", type=int, help="2,000-token answers for frame economy (default 2, quick 1)"
    )
    parser.add_argument("--economy-tokens", type=int, default=2000, help="answer length for frame economy")
    parser.add_argument(
        "--levels", help="concurrent clients, comma separated (default 100,250,500; quick 100)"
    )
    parser.add_argument(
        "--resume-runs", type=int, help="finished runs resumed for resume.first_frame (default 50, quick 10)"
    )
    parser.add_argument(
        "--mid-answer-resumes",
        type=int,
        help="runs resumed mid-answer, reported without a target (default 10, quick 3)",
    )
    parser.add_argument(
        "--cancel-runs", type=int, help="runs cancelled for cancel.latency (default 40, quick 10)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="handler setting for streaming, concurrency, resume and cancel",
    )
    parser.add_argument(
        "--isolation",
        choices=["process", "thread"],
        default="process",
        help="the local gateway's --isolation for concurrency, resume and cancel (default %(default)s)",
    )
    parser.add_argument("--build", action="store_true", help="run sam build when no .aws-sam build exists")
    parser.add_argument("--output", default=str(results_module.RESULTS_PATH), help="results file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements; return the exit status."""
    args = _parser().parse_args(argv)
    quick = args.quick
    reps = args.reps or (3 if quick else 7)
    first_token_queries = args.first_token_queries or (20 if quick else 100)
    economy_reps = args.economy_reps or (1 if quick else 2)
    levels = [int(v) for v in (args.levels or ("100" if quick else "100,250,500")).split(",")]
    resume_runs = args.resume_runs or (10 if quick else 50)
    mid_answer_resumes = (
        args.mid_answer_resumes if args.mid_answer_resumes is not None else (3 if quick else 10)
    )
    cancel_runs = args.cancel_runs or (10 if quick else 40)
    env = dict(pair.split("=", 1) for pair in args.env)
    groups = args.only or list(GROUPS)
    started = time.monotonic()
    collected: list[Result] = []

    def attempt(group: str, names: list[tuple[str, str, float]], call: object) -> None:
        # One failing measurement must not hide the others: record it as FAIL with the reason.
        print(f"-- {group} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            collected.extend(call())  # type: ignore[operator]
        except Exception as exc:
            traceback.print_exc()
            for name, unit, target in names:
                failed = skipped(name, unit, target, f"error: {type(exc).__name__}: {exc}"[:160])
                failed.status = "FAIL"
                collected.append(failed)
        print(f"   {group}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    if "cold_start" in groups or "memory" in groups:
        from bench import cold_start

        if "cold_start" in groups:
            attempt(
                "cold_start (light routes)",
                [("cold_start.connect", "x", 1.3), ("cold_start.health", "x", 1.5)],
                lambda: cold_start.light_routes(reps),
            )
        wanted = [r for r in ("cold_start", "memory") if r in groups]
        attempt(
            "cold_start (invoke) + memory",
            [("cold_start.invoke", "x", 1.3), ("memory.peak_rss", "MB", 150.0)],
            lambda: [
                r
                for r in cold_start.invoke(reps)
                if ("cold_start" in wanted and r.name.startswith("cold"))
                or ("memory" in wanted and r.name.startswith("memory"))
            ],
        )
    if "streaming" in groups:
        from bench import streaming

        attempt(
            "streaming (overhead, first token, frames)",
            [
                ("streaming.overhead", "x", 1.05),
                ("first_token.p50", "ms", 5.0),
                ("first_token.p99", "ms", 30.0),
                ("frames.per_answer", "frames", 40),
            ],
            lambda: streaming.run(
                reps,
                first_token_queries,
                economy_reps,
                500 if quick and args.economy_tokens == 2000 else args.economy_tokens,
                env,
            ),
        )
    if "responder" in groups:
        from bench import responder

        attempt(
            "responder (CPU per query)",
            [
                ("responder.cpu_per_query", "x", responder.RATIO_TARGET),
                ("responder.adversarial_worst", "x", responder.WORST_TARGET),
            ],
            lambda: responder.run(3 if quick else 5),
        )
    if "concurrency" in groups:
        from bench import concurrency

        attempt(
            "concurrency",
            [(f"concurrency.{n}", "x", 3.0) for n in levels],
            lambda: concurrency.run(levels, env, isolation=args.isolation),
        )
    if "resume" in groups:
        from bench import runs

        attempt(
            "resume (first replayed frame)",
            [
                ("resume.first_frame.p50", "ms", runs.RESUME_P50_MS),
                ("resume.first_frame.p99", "ms", runs.RESUME_P99_MS),
            ],
            lambda: runs.resume(resume_runs, mid_answer_resumes, env, isolation=args.isolation),
        )
    if "cancel" in groups:
        from bench import cancel

        attempt(
            "cancel (cancel to terminal frame)",
            [("cancel.latency.p95", "ms", cancel.CANCEL_P95_MS)],
            lambda: cancel.cancel(cancel_runs, env, isolation=args.isolation),
        )
    if "sessions" in groups:
        from bench import sessions

        attempt(
            "sessions (a question in a 20-turn session over one alone)",
            [("sessions.history_overhead.p50", "ms", sessions.HISTORY_OVERHEAD_P50_MS)],
            lambda: sessions.run(10 if quick else 40),
        )
    if "bundle" in groups:
        from bench import bundle

        attempt("bundle", [("bundle.zipped", "MiB", bundle.TARGET_MIB)], lambda: bundle.run(args.build))

    seconds = time.monotonic() - started
    from pathlib import Path

    results_module.write(
        collected, Path(args.output), argv=sys.argv[1:] if argv is None else argv, seconds=seconds
    )
    print()
    print(results_module.table(collected))
    print(f"\n{len(collected)} targets in {seconds:.0f} s; results in {args.output}")
    if quick:
        print("(--quick: fewer samples and a 500-token frame-economy answer; not the figures of record)")
    return 1 if any(r.status == "FAIL" for r in collected) else 0


if __name__ == "__main__":
    sys.exit(main())
