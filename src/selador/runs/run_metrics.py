"""A run's numbers, added once to its invocation's metrics when the run ends.

Everything here is known only at the end: the sender's totals (frames, bytes, 429s, whether the
client left, when the first frame and the first answer text went out) and the agent's result
(tokens, tool calls). Adding them then, not per frame, is what keeps metrics at one flush per
invocation and off the streaming path.
"""

from __future__ import annotations

from selador import metrics
from selador.metrics import Unit
from selador.protocol import QueryRequest, ResultData
from selador.runs.sender import SenderStats
from selador.store.base import RunRecord


def agent_of(request: QueryRequest, data: ResultData | None) -> str:
    """The ``agent`` dimension: the result's agent, else the one the query type routes to."""
    if data is not None and data.agent:
        return data.agent
    try:
        from selador.agents.specs import spec_for_query_type

        return spec_for_query_type(request.query_type).name
    except Exception:  # noqa: BLE001 - an unroutable query still counts, under "unknown"
        return "unknown"


def record_run(run: RunRecord, request: QueryRequest, data: ResultData | None, stats: SenderStats) -> None:
    """Add one ended run to the current invocation's metrics (see the README's metric table).

    Args:
        run: The run (its ``created_at`` is when it was accepted).
        request: Its query.
        data: The ``result`` frame's data, or ``None`` when an ``error`` frame ended it.
        stats: Its sender's totals.
    """
    agent = agent_of(request, data)
    if stats.finished and stats.outcome:
        metrics.add("QueriesFinished", Unit.Count, 1, agent=agent, stop_reason=stats.outcome)
    if stats.error_code:
        metrics.error(stats.error_code)
    if stats.first_frame_at is not None:
        ms = max(0.0, (stats.first_frame_at - run.created_at) * 1000)
        metrics.add("TimeToFirstFrame", Unit.Milliseconds, round(ms, 1), agent=agent)
    if stats.first_delta_at is not None:
        ms = max(0.0, (stats.first_delta_at - run.created_at) * 1000)
        metrics.add("TimeToFirstDelta", Unit.Milliseconds, round(ms, 1), agent=agent)
    metrics.add("FramesPosted", Unit.Count, stats.frames_posted, agent=agent)
    metrics.add("BytesPosted", Unit.Bytes, stats.bytes_posted, agent=agent)
    if data is not None:
        metrics.add("InputTokens", Unit.Count, data.usage.input_tokens, agent=agent)
        metrics.add("OutputTokens", Unit.Count, data.usage.output_tokens, agent=agent)
        for tool, calls in sorted(data.tool_calls.items()):
            metrics.add("ToolCalls", Unit.Count, calls, agent=agent, tool=tool)
    metrics.count("ClientGone", int(stats.gone))
    metrics.count("ThrottledPosts", stats.throttled)
