"""What an invocation tells operators: EMF metrics (one flush), log context keys, tracing off."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_lambda_powertools.logging.logger as powertools_logger
import pytest

import selador.metrics
from selador.handler import lambda_handler
from selador.local.events import connect_event, http_v2_event, message_event, new_connection_id

from .conftest import JSON, FakeContext, invoke_body

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[dict[str, Any]]]:
    """Every flush that wrote something, as its list of EMF documents (and METRICS_FILE set)."""
    monkeypatch.setenv("METRICS_FILE", str(tmp_path / "metrics.jsonl"))
    flushes: list[list[dict[str, Any]]] = []
    real = selador.metrics._emit

    def recording(documents: list[dict[str, Any]], settings: Any) -> None:
        flushes.append(documents)
        real(documents, settings)

    monkeypatch.setattr(selador.metrics, "_emit", recording)
    return flushes


def _metrics(documents: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, str], Any]]:
    """``{metric name (and tool): (unit, dimensions, value)}`` across a flush's documents."""
    found: dict[str, tuple[str, dict[str, str], Any]] = {}
    for doc in documents:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Selador"
        (dimension_names,) = directive["Dimensions"]
        dims = {name: doc[name] for name in dimension_names}
        for metric in directive["Metrics"]:
            key = metric["Name"] + (f"[{dims['tool']}]" if "tool" in dims else "")
            assert key not in found, f"{key} written twice"
            found[key] = (metric["Unit"], dims, doc[metric["Name"]])
    return found


def test_one_query_writes_its_metrics_once_with_units_and_dimensions(
    aws, context, emitted, tmp_path: Path
) -> None:
    conn = new_connection_id()
    lambda_handler(connect_event(connection_id=conn), context)
    assert emitted == []  # a plain handshake has nothing to count: no document at all
    lambda_handler(message_event(invoke_body("m-1"), connection_id=conn), context)

    assert len(emitted) == 1, "one flush per invocation, never per frame"
    (documents,) = emitted
    assert {doc["invocation"] for doc in documents} == {context.aws_request_id}
    frames = aws.frames(conn)
    result = frames[-1]["data"]
    metrics = _metrics(documents)
    service = {"service": "selador"}
    by_agent = {"agent": result["agent"], **service}
    assert metrics["QueriesStarted"] == ("Count", {"route": "invoke", **service}, [1.0])
    assert metrics["QueriesFinished"] == (
        "Count",
        {"agent": result["agent"], "stop_reason": "end_turn", **service},
        [1.0],
    )
    # The route posted the accepted frame; the run's sender posted every other one.
    assert metrics["FramesPosted"] == ("Count", by_agent, [float(len(frames) - 1)])
    unit, dims, posted_bytes = metrics["BytesPosted"]
    assert (unit, dims) == ("Bytes", by_agent)
    assert posted_bytes[0] >= sum(len(json.dumps(f)) for f in frames[1:]) * 0.9
    assert metrics["InputTokens"] == ("Count", by_agent, [float(result["usage"]["input_tokens"])])
    assert metrics["OutputTokens"] == ("Count", by_agent, [float(result["usage"]["output_tokens"])])
    for name in ("TimeToFirstFrame", "TimeToFirstDelta"):
        unit, dims, value = metrics[name]
        assert (unit, dims) == ("Milliseconds", by_agent) and value[0] >= 0
    assert metrics["TimeToFirstFrame"][2][0] <= metrics["TimeToFirstDelta"][2][0]
    tools = {key: value for key, value in metrics.items() if key.startswith("ToolCalls[")}
    assert result["tool_calls"] and tools == {
        f"ToolCalls[{tool}]": ("Count", {"agent": result["agent"], "tool": tool, **service}, [float(calls)])
        for tool, calls in result["tool_calls"].items()
    }
    # Nothing that did not happen is written as a zero.
    assert not {"ClientGone", "ThrottledPosts", "Errors", "Resumes", "Cancels"} & set(metrics)
    # METRICS_FILE holds the same documents, one a line.
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == documents


def test_errors_are_counted_by_code_and_route(context, emitted) -> None:
    lambda_handler(
        http_v2_event("POST", "/invoke", body="{}", headers={"content-type": "text/plain"}), context
    )
    lambda_handler(http_v2_event("GET", "/runs/q-1", headers=JSON), context)
    lambda_handler(http_v2_event("GET", "/sessions/my-plans", headers=JSON), context)
    assert len(emitted) == 3
    assert _metrics(emitted[0])["Errors"] == (
        "Count",
        {"route": "POST /invoke", "code": "bad_request", "service": "selador"},
        [1.0],
    )
    # A concrete path is never a dimension value: it is mapped to its route.
    assert _metrics(emitted[1])["Errors"][1]["route"] == "GET /runs/{request_id}"
    assert _metrics(emitted[2])["Errors"][1] == {
        "route": "GET /sessions/{session_id}",
        "code": "unauthorized",
        "service": "selador",
    }


def test_session_routes_are_metric_routes_too(context, emitted) -> None:
    lambda_handler(http_v2_event("GET", "/sessions", headers=JSON), context)
    lambda_handler(http_v2_event("DELETE", "/sessions/s-1", headers=JSON), context)
    routes = [_metrics(flush)["Errors"][1]["route"] for flush in emitted]
    assert routes == ["GET /sessions", "DELETE /sessions/{session_id}"]


def test_metrics_off_writes_nothing(monkeypatch: pytest.MonkeyPatch, context, emitted) -> None:
    monkeypatch.setenv("METRICS_OUTPUT", "off")
    response = lambda_handler(
        http_v2_event("POST", "/invoke", body="{}", headers={"content-type": "text/plain"}), context
    )
    assert response["statusCode"] == 415
    assert emitted == []


def _log_lines(text: str, message: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


def test_log_lines_carry_cold_start_request_id_and_correlation_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from selador.observability import logger

    monkeypatch.setattr(powertools_logger, "is_cold_start", True)
    first, second = FakeContext(), FakeContext()
    first.aws_request_id, second.aws_request_id = "lambda-req-1", "lambda-req-2"  # type: ignore[misc]
    events = [connect_event(), connect_event()]
    # The handler's stream was fixed when the logger was made: read the lines where they go.
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        for event, context in zip(events, (first, second), strict=True):
            assert lambda_handler(event, context)["statusCode"] == 200
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    lines = _log_lines(stream.getvalue(), "connected")
    assert [line["cold_start"] for line in lines] == [True, False]
    assert [line["function_request_id"] for line in lines] == ["lambda-req-1", "lambda-req-2"]
    assert [line["correlation_id"] for line in lines] == [e["requestContext"]["requestId"] for e in events]
    assert lines[0]["function_name"] == FakeContext.function_name
    # Nothing of one invocation is left on the thread for the next one.
    assert not {"function_request_id", "correlation_id", "route"} & set(logger.thread_safe_get_current_keys())


def test_a_run_on_another_thread_keeps_its_invocations_log_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # The local gateway runs invocations on threads of one process, and an inline HTTP run outlives
    # its route: the route's cleanup must not take the run's keys away (it would then log the
    # shared keys of whichever invocation ran last).
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from selador.observability import logger

    monkeypatch.setenv("RUN_MODE", "inline")
    monkeypatch.setenv("LOCAL_MODEL_TOKEN_DELAY_MS", "20")

    def invocation(method: str, path: str, correlation: str, request: str, body: str | None = None) -> Any:
        event = http_v2_event(method, path, body=body, headers=JSON)
        event["requestContext"]["requestId"] = correlation
        context = FakeContext()
        context.aws_request_id = request  # type: ignore[misc]
        return lambda_handler(event, context)

    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        with ThreadPoolExecutor(2) as pool:
            started = pool.submit(invocation, "POST", "/runs", "corr-a", "req-a", invoke_body("qa")).result()
            assert started["statusCode"] == 202
            assert pool.submit(invocation, "GET", "/health", "corr-b", "req-b").result()["statusCode"] == 200
        for thread in threading.enumerate():
            if thread.name.startswith("run-"):
                thread.join(30)
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    finished = _log_lines(stream.getvalue(), "query finished")
    assert finished, stream.getvalue()[-2000:]
    assert {(f["function_request_id"], f["correlation_id"], f["request_id"]) for f in finished} == {
        ("req-a", "corr-a", "qa")
    }


_LIGHT_ROUTES = """
import json, sys
from selador.handler import lambda_handler
from selador.local.events import connect_event, disconnect_event, message_event, http_v2_event
from selador.local.runtime import LambdaContext
from selador.deps import Dependencies, use_dependencies
from selador.settings import get_settings

class Quiet:
    throttled = 0
    def __call__(self, endpoint): return self
    def post(self, connection_id, data): pass

context = LambdaContext("f", "$LATEST", "arn:aws:lambda:us-west-2:1:function:f", "1024", "r-1", "g", "s", 9e9)
with use_dependencies(Dependencies(settings=get_settings(), management_factory=Quiet())):
    answers = [lambda_handler(event, context)["statusCode"] for event in (
        connect_event(connection_id="c1="),
        message_event('{"action": "ping"}', connection_id="c1=", route_key="ping"),
        message_event('{"action": "nope"}', connection_id="c1="),
        disconnect_event(connection_id="c1="),
        http_v2_event("GET", "/health"),
    )]
    light = sorted(m for m in sys.modules if m.split(".")[0] in ("strands", "opentelemetry"))
    lambda_handler(message_event('{"action": "invoke", "question": "What is the FAR in LR2?"}',
                                 connection_id="c1=", route_key="invoke"), context)
from opentelemetry import trace
print(json.dumps({"answers": answers, "light": light, "selador.tracing": "selador.tracing" in sys.modules,
                  "exporter": any(m.startswith("opentelemetry.exporter") for m in sys.modules),
                  "provider": type(trace.get_tracer_provider()).__name__}))
"""


def _run(script: str, tmp_path: Path, **env: str) -> dict[str, Any]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "SQLITE_PATH": str(tmp_path / "s.sqlite3"),
        "METRICS_FILE": str(tmp_path / "metrics.jsonl"),
        "LOG_LEVEL": "ERROR",
        "LOCAL_MODEL_TOKEN_DELAY_MS": "0",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment
    )
    assert out.returncode == 0, out.stderr
    return {"stdout": out.stdout, **json.loads(out.stdout.strip().splitlines()[-1])}


def test_light_routes_import_neither_strands_nor_opentelemetry_and_tracing_off_sets_nothing(
    tmp_path: Path,
) -> None:
    result = _run(_LIGHT_ROUTES, tmp_path)
    assert result["answers"] == [200] * 5
    assert result["light"] == []
    # The query imported strands (and with it the OpenTelemetry API), but tracing off set nothing up.
    assert result["selador.tracing"] is False and result["exporter"] is False
    assert result["provider"] == "ProxyTracerProvider"
    # The light routes wrote metrics too ($default's error), through the same one-flush path.
    assert (tmp_path / "metrics.jsonl").read_text().count('"unknown_action"') == 1


def test_tracing_console_prints_strands_spans_for_a_query(tmp_path: Path) -> None:
    result = _run(_LIGHT_ROUTES, tmp_path, TRACING="console")
    assert result["light"] == []  # still nothing on the light routes
    assert result["provider"] == "TracerProvider"
    assert '"name": "invoke_agent' in result["stdout"]


def test_tracing_otlp_without_the_extra_warns_and_sets_nothing_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import selador.tracing
    from selador.settings import Settings

    monkeypatch.setattr(selador.tracing, "_configured", False)
    monkeypatch.setattr(selador.tracing, "_provider", None)
    if selador.tracing._find(selador.tracing.OTLP_EXPORTER_MODULE) is not None:
        pytest.skip("the tracing extra is installed here")
    assert selador.tracing.ensure_tracing(Settings(tracing="otlp")) is False
    assert selador.tracing._provider is None
    assert not any(m.startswith("opentelemetry.exporter") for m in sys.modules)


@pytest.mark.parametrize("context", [None, object()], ids=["none", "bare-object"])
def test_a_partial_context_is_completed_not_a_crash(context: Any) -> None:
    # Lambda passes every attribute; test doubles and some tools pass less, and the logger's
    # decorator reads them all before the handler's own error handling.
    response = lambda_handler(http_v2_event("GET", "/health"), context)
    assert response["statusCode"] == 200
