"""``python -m eval`` (``make eval``): run the question set, print the tables, write results.json.

Exit status 1 when any target FAILs on the overall scores (the table is printed either way),
2 when the question file's labels are broken.

Examples::

    python -m eval                         # every question, offline responder, bundled knowledge base
    python -m eval --type permits          # one query type
    python -m eval --id issue-far-lr2 -v   # one question, with its answer
    python -m eval --from-env              # model and knowledge base from the environment (Bedrock)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Before anything imports selador (in this process): the Powertools logger reads it at creation.
os.environ.setdefault("LOG_LEVEL", "WARNING")

from eval import report
from eval.dataset import KINDS, QUESTIONS_PATH, check_questions, load_questions
from eval.runner import QUESTION_TIMEOUT_S, build_orchestrator, eval_settings, run_questions
from selador.protocol import QUERY_TYPES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=Path, default=QUESTIONS_PATH, help="question file (YAML)")
    parser.add_argument("--output", type=Path, default=report.RESULTS_PATH, help="results file")
    parser.add_argument(
        "--type", action="append", choices=QUERY_TYPES, help="only this query type (repeatable)"
    )
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this kind (repeatable)")
    parser.add_argument("--id", action="append", help="only this question id (repeatable)")
    parser.add_argument(
        "--from-env",
        action="store_true",
        help="take the model and knowledge base from the environment instead of offline + bundled",
    )
    parser.add_argument(
        "--timeout", type=float, default=QUESTION_TIMEOUT_S, help="seconds per question (default %(default)s)"
    )
    parser.add_argument(
        "--max-failures", type=int, default=0, help="list at most this many failures (0: all)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; return the exit status."""
    args = _parser().parse_args(argv)
    questions = load_questions(args.questions)
    problems = check_questions(questions)
    if problems:
        print("The question labels are broken:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if args.type:
        questions = [q for q in questions if q.query_type in args.type]
    if args.kind:
        questions = [q for q in questions if q.kind in args.kind]
    if args.id:
        unknown = set(args.id) - {q.id for q in questions}
        if unknown:
            print(f"unknown question id(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        questions = [q for q in questions if q.id in args.id]
    if not questions:
        print("no questions selected", file=sys.stderr)
        return 2

    settings = eval_settings(from_env=args.from_env)
    started = time.monotonic()
    orchestrator = build_orchestrator(settings)
    observations = run_questions(questions, orchestrator, timeout_s=args.timeout)
    seconds = time.monotonic() - started
    scores = [report.score(q, o) for q, o in zip(questions, observations, strict=True)]

    setup = {
        "model": orchestrator.model_name,
        "knowledge_base": orchestrator.knowledge_base.name,
        "questions_file": str(args.questions),
        "questions": len(questions),
    }
    report.write(
        scores, args.output, argv=sys.argv[1:] if argv is None else argv, seconds=seconds, setup=setup
    )

    if args.verbose:
        for s in scores:
            print(f"=== {s.question.id} ({'ok' if s.passed else 'FAILED'})")
            print(s.observation.answer or f"(no answer: {s.observation.error})")
            print()
    bad = [s for s in scores if not s.passed]
    if bad:
        print(f"Questions not fully right ({len(bad)} of {len(scores)}):")
        print(report.failure_list(scores, limit=args.max_failures or None))
        print()
    print("By kind (reported, not judged):")
    print(report.kind_table(scores))
    print()
    print(
        f"Selador eval: {len(questions)} questions, model {setup['model']}, "
        f"knowledge base {setup['knowledge_base']}, {seconds:.1f} s"
    )
    print(report.table(scores))
    verdict = "FAIL" if report.failed(scores) else "PASS"
    print(f"\n{verdict}: results in {args.output}")
    return 1 if verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
