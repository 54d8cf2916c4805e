"""Target: the offline responder's CPU per query, against the responder issue 12 replaced.

Every question of the evaluation set (tests/eval/questions.yaml) runs through the real orchestrator
(offline responder, bundled knowledge base, no token delay) in this process, after one warm-up
pass that builds the index; the figure is process CPU time per query, median of the passes.

**Target**: at most 1.25x the CPU per query of the responder before issue 12 (rule-based tool
choice without reading, one-sentence quoting), measured on this 2-core machine on 2026-11-30 over
the same 122 questions with the same harness: 8.85 ms at commit ae390b6. The baseline is a
constant: re-measure it (``git worktree add`` that commit, run this module with PYTHONPATH at its
``src``) on another machine before trusting the ratio there.

**Target**: the slowest of a few adversarial questions (a 4000-digit run, an 800-letter word,
endless separators, hundreds of figures, one zone named 1000 times; all within the 4000-character
question limit), each run alone, costs at most 10x the median question's CPU: the readers are
linear and the typo search is bounded, so no message can pin the function. (With the figure
readers' start-of-number lookbehind removed this measured 356x.)
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.results import Result, judged

BASELINE_MS = 8.85
"""CPU per query of the responder at commit ae390b6, this machine, 2026-11-30."""
RATIO_TARGET = 1.25
WORST_TARGET = 10.0
"""The slowest adversarial question may cost at most this many times a typical question's CPU."""
ADVERSARIAL = (
    "9" * 4000,  # one long digit run: the figure readers must stay linear
    "".join(chr(97 + (i * 7919) % 26) for i in range(800)),  # one long unknown word: no typo search
    "$1,000," * 570,  # thousands separators without end
    "lot 5000 sq ft FAR 2.5 " * 170,  # many figures to place
    "LR2 " * 1000,  # one zone named many times
)
QUESTIONS = Path(__file__).resolve().parents[1] / "tests" / "eval" / "questions.yaml"


def run(passes: int = 5) -> list[Result]:
    """Measure CPU per query over the evaluation questions; one judged result."""
    os.environ.setdefault("LOCAL_MODEL_TOKEN_DELAY_MS", "0")
    import yaml

    from selador.agents.models import build_model
    from selador.agents.orchestrator import Orchestrator, run_coroutine
    from selador.knowledge.factory import build_knowledge_base
    from selador.protocol import QueryRequest
    from selador.settings import Settings
    from selador.sink import CollectingSink

    settings = Settings(local_model_token_delay_ms=0)
    orchestrator = Orchestrator(
        settings=settings, model=build_model(settings), knowledge_base=build_knowledge_base(settings)
    )
    # The single questions: the baseline was measured on them (a follow-up needs its history).
    questions = [q for q in yaml.safe_load(QUESTIONS.read_text(encoding="utf-8")) if "history" not in q]
    requests = [
        QueryRequest(
            question=q["question"], context=q.get("context"), query_type=q["query_type"], request_id=f"r{i}"
        )
        for i, q in enumerate(questions)
    ]

    async def all_questions() -> None:
        for request in requests:
            await orchestrator.run(request, CollectingSink(request.request_id))

    def per_question_ms(batch: list[QueryRequest]) -> list[float]:
        """CPU milliseconds of each request run alone, in order."""
        timings = []
        for request in batch:
            started = time.process_time()
            run_coroutine(orchestrator.run(request, CollectingSink(request.request_id)))
            timings.append((time.process_time() - started) * 1000)
        return timings

    run_coroutine(all_questions())  # warm-up: the index, the zoning table, imports
    typical = statistics.median(per_question_ms(requests))
    adversarial = [
        QueryRequest(question=q, query_type=t, request_id=f"a{i}-{t}")
        for i, q in enumerate(ADVERSARIAL)
        for t in ("general", "financing", "zoning")
    ]
    worst = max(per_question_ms(adversarial))
    samples = []
    for _ in range(passes):
        started = time.process_time()
        run_coroutine(all_questions())
        samples.append((time.process_time() - started) / len(requests) * 1000)
    measured = statistics.median(samples)
    return [
        judged(
            "responder.cpu_per_query",
            round(measured / BASELINE_MS, 2),
            "x",
            RATIO_TARGET,
            detail={"cpu_ms_per_query": [round(s, 2) for s in samples], "baseline_ms": BASELINE_MS},
            note=f"{measured:.2f} ms vs {BASELINE_MS} ms before issue 12, {len(requests)} questions",
        ),
        judged(
            "responder.adversarial_worst",
            round(worst / typical, 2),
            "x",
            WORST_TARGET,
            detail={"worst_ms": round(worst, 2), "typical_ms": round(typical, 2)},
            note=f"slowest of {len(adversarial)} adversarial: {worst:.1f} ms vs median {typical:.1f} ms",
        ),
    ]
