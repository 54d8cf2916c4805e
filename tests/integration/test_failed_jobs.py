"""Jobs Lambda gave up on: the on-failure record comes back through SQS and ends the run once.

The real handler, the SQLite store and a ManagementListener standing in for API Gateway: a
WebSocket ``invoke`` is handed off (the Lambda client keeps the job event), then the SQS event
Lambda's on-failure destination would deliver is handed to the same handler.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selador.deps import Dependencies, use_dependencies
from selador.handler import classify, lambda_handler, route_of
from selador.local.events import failed_job_event, message_event, new_connection_id
from selador.local.invoke import ManagementListener
from selador.observability import logger
from selador.settings import get_settings

from .conftest import FakeContext

STAGE = "production"
ROOT = Path(__file__).resolve().parents[2]


class QueuedJobs:
    """A Lambda client that accepts every hand-off and keeps the job events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.events.append(json.loads(kwargs["Payload"]))
        return {"StatusCode": 202}


@pytest.fixture(scope="module")
def listener() -> Iterator[ManagementListener]:
    running = ManagementListener().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def world(listener: ManagementListener, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    listener.frames.clear()
    listener.open_connections.clear()
    monkeypatch.setenv("RUN_MODE", "async")
    monkeypatch.setenv("MODEL_PROVIDER", "local")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "main-lambda")
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_ENDPOINT", listener.endpoint(STAGE))
    jobs = QueuedJobs()
    deps = Dependencies(settings=get_settings(), lambda_client=jobs)
    stream = io.StringIO()
    # The logger's stream was fixed when it was made: read the lines where they go.
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        with use_dependencies(deps):
            yield World(listener, jobs, deps, stream)
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]


class World:
    """One connected client, its runs' jobs and what the handler logged."""

    def __init__(
        self, listener: ManagementListener, jobs: QueuedJobs, deps: Dependencies, log: io.StringIO
    ) -> None:
        self.listener, self.jobs, self.deps, self.log = listener, jobs, deps, log
        self.connection = new_connection_id()
        listener.open_connections.add(self.connection)

    def ask(self, request_id: str) -> dict[str, Any]:
        """Send an ``invoke``; the job event it handed off."""
        body = json.dumps(
            {"action": "invoke", "question": "What is the FAR in LR2?", "request_id": request_id}
        )
        answer = lambda_handler(message_event(body, connection_id=self.connection), FakeContext())
        assert answer["statusCode"] == 200
        return self.jobs.events[-1]

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(f.data) for f in self.listener.frames if f.connection_id == self.connection]

    def status(self, job: dict[str, Any]) -> str:
        run = self.deps.store.get_run(job["selador_job"]["run_id"])
        assert run is not None
        return run.status

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.startswith("{")]


KILLED = {"errorMessage": "RequestId: 5b1c Error: Runtime exited with error: signal: killed"}


def test_the_sqs_batch_is_its_own_event_kind() -> None:
    event = failed_job_event({"selador_job": {"run_id": "r"}})
    assert classify(event) == "sqs"
    assert route_of("sqs", event) == "failed_job"
    assert classify({"Records": [{"eventSource": "aws:s3"}]}) == "unknown"
    assert classify({"Records": []}) == "unknown"


def test_a_job_that_expired_in_lambdas_queue_ends_its_run_with_one_error_frame(world: World) -> None:
    job = world.ask("q-expired")
    event = failed_job_event(job, condition="EventAgeExceeded", invoke_count=0)

    assert lambda_handler(event, FakeContext()) == {"batchItemFailures": []}

    frames = world.frames()
    assert [(f["type"], f["seq"]) for f in frames] == [("status", 1), ("error", 2)]
    assert frames[1]["code"] == "internal_error"
    assert frames[1]["error"] == "The query could not be started; please try again"
    assert frames[1]["request_id"] == "q-expired"
    assert world.status(job) == "failed"


def test_a_job_whose_executor_was_killed_ends_and_frees_its_request_id(world: World) -> None:
    job = world.ask("q-killed")
    run_id = job["selador_job"]["run_id"]
    # What the executor's take leaves behind when Lambda kills the invocation mid-run.
    assert world.deps.store.update_run(run_id, {"status": "running"}, expect_status={"pending"})

    assert lambda_handler(failed_job_event(job, error=KILLED), FakeContext()) == {"batchItemFailures": []}

    frames = world.frames()
    assert [f["type"] for f in frames] == ["status", "error"]
    assert frames[1]["error"] == "The query stopped unexpectedly; please try again"
    assert world.status(job) == "failed"
    # Its request_id claim was released with the end: the same id is a new query, not a duplicate.
    again = world.ask("q-killed")
    assert again["selador_job"]["run_id"] != run_id
    assert world.frames()[-1]["type"] == "status"


def test_a_run_that_already_ended_gets_no_second_terminal_frame(world: World) -> None:
    job = world.ask("q-done")
    assert lambda_handler(job, FakeContext()) == {"statusCode": 200}  # the job ran to its result
    before = world.frames()
    assert before[-1]["type"] == "result"

    # A duplicate delivery of the job that failed afterwards, and SQS delivering that record twice.
    event = failed_job_event(job, error=KILLED)
    for _ in range(2):
        assert lambda_handler(event, FakeContext()) == {"batchItemFailures": []}

    assert world.frames() == before
    assert sum(f["type"] in ("result", "error") for f in before) == 1
    assert world.status(job) == "succeeded"
    assert any(line["message"] == "failed job's run had already ended" for line in world.log_lines())


def test_malformed_records_are_dropped_with_a_log_line_and_no_traceback(world: World) -> None:
    good = failed_job_event(world.ask("q-mixed"), condition="EventAgeExceeded", invoke_count=0)
    not_json = failed_job_event({})
    not_json["Records"][0]["body"] = "{not json"
    no_payload = failed_job_event({"selador_job": {"run_id": "x"}})
    record = json.loads(no_payload["Records"][0]["body"])
    del record["requestPayload"]  # what Lambda sends when the record would be too large
    no_payload["Records"][0]["body"] = json.dumps(record)
    success = failed_job_event({"selador_job": {"run_id": "x"}}, condition="Success")
    batch = {"Records": not_json["Records"] + no_payload["Records"] + success["Records"] + good["Records"]}

    assert lambda_handler(batch, FakeContext()) == {"batchItemFailures": []}

    dropped = [
        line for line in world.log_lines() if line["message"] == "dropped a malformed on-failure record"
    ]
    assert [line["reason"] for line in dropped] == [
        "the body is not JSON",
        "no job run_id in requestPayload",
        "not an on-failure record (condition 'Success')",
    ]
    assert "Traceback" not in world.log.getvalue()
    assert world.frames()[-1]["type"] == "error"  # the good record in the same batch was handled


def test_a_store_failure_reports_only_that_record_for_redelivery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = failed_job_event(world.ask("q-a"), condition="EventAgeExceeded", invoke_count=0)
    second = failed_job_event(world.ask("q-b"), condition="EventAgeExceeded", invoke_count=0)
    second_id = second["Records"][0]["messageId"]
    second_run = json.loads(second["Records"][0]["body"])["requestPayload"]["selador_job"]["run_id"]
    store = world.deps.store
    real_get_run = store.get_run

    def get_run(run_id: str) -> Any:
        if run_id == second_run:
            raise ConnectionError("the store is unreachable")
        return real_get_run(run_id)

    monkeypatch.setattr(store, "get_run", get_run)
    answer = lambda_handler({"Records": first["Records"] + second["Records"]}, FakeContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": second_id}]}
    monkeypatch.setattr(store, "get_run", real_get_run)
    assert world.deps.store.get_run(second_run).status == "pending"  # type: ignore[union-attr]
    # Redelivered once the store is back, it ends the run.
    assert lambda_handler(second, FakeContext()) == {"batchItemFailures": []}
    assert world.deps.store.get_run(second_run).status == "failed"  # type: ignore[union-attr]


def test_a_batch_that_fails_as_a_whole_is_returned_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import selador.deps

    def broken() -> Dependencies:
        raise RuntimeError("settings could not be loaded")

    monkeypatch.setattr(selador.deps, "get_dependencies", broken)
    event = failed_job_event({"selador_job": {"run_id": "r"}})
    message_id = event["Records"][0]["messageId"]
    # An answer without batchItemFailures would tell SQS the whole batch succeeded.
    assert lambda_handler(event, FakeContext()) == {"batchItemFailures": [{"itemIdentifier": message_id}]}


_FAILED_JOB_PATH = """
import json, sys
from selador.deps import Dependencies, use_dependencies
from selador.handler import lambda_handler
from selador.local.events import failed_job_event
from selador.local.runtime import LambdaContext
from selador.protocol import QueryRequest
from selador.runs.service import Runs
from selador.settings import get_settings

class Quiet:
    throttled = 0
    def __call__(self, endpoint): return self
    def post(self, connection_id, data): pass

context = LambdaContext("f", "$LATEST", "arn:aws:lambda:us-west-2:1:function:f", "1024", "r-1", "g", "s", 9e9)
deps = Dependencies(settings=get_settings(), management_factory=Quiet())
with use_dependencies(deps):
    request = QueryRequest(question="What is the FAR in LR2?", request_id="q-1")
    started = Runs(deps).start(request, principal=None, scope=None, limit_subject=None,
                               connection_id="c1=", endpoint="http://127.0.0.1:9/production")
    job = {"selador_job": {"run_id": started.run.run_id, "request": request.model_dump(mode="json")}}
    answer = lambda_handler(failed_job_event(job, condition="EventAgeExceeded", invoke_count=0), context)
    status = deps.store.get_run(started.run.run_id).status
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("strands", "opentelemetry"))
print(json.dumps({"answer": answer, "status": status, "heavy": heavy,
                  "agents": any(m.startswith("selador.agents") for m in sys.modules)}))
"""


def test_the_failed_job_path_imports_neither_strands_nor_the_agents(tmp_path: Path) -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "SQLITE_PATH": str(tmp_path / "s.sqlite3"),
        "METRICS_OUTPUT": "off",
        "LOG_LEVEL": "ERROR",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    out = subprocess.run(
        [sys.executable, "-c", _FAILED_JOB_PATH], capture_output=True, text=True, timeout=120, env=environment
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["answer"] == {"batchItemFailures": []}
    assert result["status"] == "failed"
    assert result["heavy"] == []
    assert result["agents"] is False
