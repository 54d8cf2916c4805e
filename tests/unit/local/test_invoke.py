"""selador invoke: in-process runs with the management-API listener, env layering and errors.

Handlers come from ``invoke_fixture_handler`` (beside this file) and, at the end, the real
``selador.handler``. Every test runs ``main([...])`` in-process and reads what it printed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from selador.local import cli
from selador.local.invoke import (
    OFFLINE_DEFAULTS,
    UsageError,
    main,
    parse_env_pairs,
    read_env_vars_file,
)

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = str(ROOT / "template.yaml")
EVENTS = ROOT / "events"
# Importable under pytest's default (prepend) import mode with or without a package __init__.
_PACKAGE = __name__.rpartition(".")[0]
FIXTURE = f"{_PACKAGE}.invoke_fixture_handler" if _PACKAGE else "invoke_fixture_handler"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    """Run ``selador invoke`` in-process; return (status, stdout lines, stderr)."""
    status = main(["--template", TEMPLATE, *args])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def prefixed(lines: list[str], prefix: str) -> list[Any]:
    return [json.loads(line[len(prefix) :]) for line in lines if line.startswith(prefix)]


def event_path(name: str) -> str:
    return str(EVENTS / f"{name}.json")


# ------------------------------------------------------------------------- the listener via boto3


def test_frame_posted_through_boto3_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-e", event_path("ws_invoke"), "--handler", f"{FIXTURE}.post_one")
    assert status == 0
    assert prefixed(lines, "frame> ") == [{"type": "pong", "request_id": "fixture-1", "text": "héllo"}]
    assert prefixed(lines, "response> ") == [{"statusCode": 200, "posted": True}]
    # The frame is printed before the response, on one line each.
    assert [line.split(">")[0] for line in lines if ">" in line[:9]] == ["frame", "response"]


def test_posting_from_connect_is_gone_as_in_aws(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-e", event_path("ws_connect"), "--handler", f"{FIXTURE}.post_one")
    assert status == 0
    assert prefixed(lines, "frame> ") == []
    assert prefixed(lines, "response> ") == [{"statusCode": 200, "posted": False, "error": "GoneException"}]


def test_payload_over_128_kib_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-e", event_path("ws_ping"), "--handler", f"{FIXTURE}.post_too_large")
    assert status == 0
    assert prefixed(lines, "response> ") == [{"statusCode": 200, "error": "PayloadTooLargeException"}]


def test_get_and_delete_connection(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-e", event_path("ws_invoke"), "--handler", f"{FIXTURE}.get_delete_post")
    assert status == 0
    assert prefixed(lines, "close> ") == [{"connectionId": "Sel4d0rC0nnId1="}]
    assert prefixed(lines, "response> ") == [
        {
            "statusCode": 200,
            "source_ip": "203.0.113.17",
            # connectedAt of the event (1763928000000 ms), parsed by botocore as a timestamp.
            "connected_at": "2025-11-23T20:00:00+00:00",
            "gone_after_delete": True,
        }
    ]


# ----------------------------------------------------------------------------------- environment


def _env_run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status, lines, _ = run(
        capsys, "-e", event_path("ws_invoke"), "--handler", f"{FIXTURE}.environment", *args
    )
    assert status == 0
    (response,) = prefixed(lines, "response> ")
    return dict(response)


def test_environment_layers(capsys: pytest.CaptureFixture[str]) -> None:
    env = _env_run(capsys)["env"]
    # Template environment, resolved from parameter defaults.
    assert env["LOG_LEVEL"] == "INFO"
    assert env["POWERTOOLS_SERVICE_NAME"] == "selador"
    assert env["MODEL_ARN"] == "us.anthropic.claude-sonnet-4-20250514-v1:0"
    # Offline defaults win over the template (RUN_MODE=async there).
    for name, value in OFFLINE_DEFAULTS.items():
        assert env[name] == value
    # Lambda's own variables.
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "MainLambda"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024"
    # The listener, with the event's stage in the path.
    assert env["WEBSOCKET_MANAGEMENT_ENDPOINT"].startswith("http://127.0.0.1:")
    assert env["WEBSOCKET_MANAGEMENT_ENDPOINT"].endswith("/production")


def test_env_vars_file_then_env_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(
        json.dumps(
            {
                "Parameters": {"RUN_MODE": "async", "SHARED": "parameters", "STREAM_FLUSH_MS": 50},
                "MainLambda": {"SHARED": "function", "LOG_LEVEL": "DEBUG", "FLAG": True},
                "OtherFunction": {"IGNORED": "x"},
            }
        )
    )
    env = _env_run(capsys, "--env-vars", str(env_file), "--env", "LOG_LEVEL=WARNING", "--env", "EMPTY=")[
        "env"
    ]
    assert env["RUN_MODE"] == "async"  # the file beats the offline defaults
    assert env["SHARED"] == "function"  # the function's section beats Parameters
    assert env["STREAM_FLUSH_MS"] == "50"
    assert env["FLAG"] == "true"
    assert env["LOG_LEVEL"] == "WARNING"  # --env beats the file
    assert env["EMPTY"] == ""
    assert "IGNORED" not in env


def test_user_management_endpoint_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    env = _env_run(capsys, "--env", "WEBSOCKET_MANAGEMENT_ENDPOINT=http://127.0.0.1:9/x")["env"]
    assert env["WEBSOCKET_MANAGEMENT_ENDPOINT"] == "http://127.0.0.1:9/x"


def test_parameter_override_reaches_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    env = _env_run(capsys, "--parameter", "LogLevel=ERROR")["env"]
    assert env["LOG_LEVEL"] == "ERROR"


def test_process_environment_is_restored(capsys: pytest.CaptureFixture[str]) -> None:
    before = dict(os.environ)
    _env_run(capsys, "--env", "SELADOR_INVOKE_TEST=1")
    assert dict(os.environ) == before


def test_dummy_credentials_only_when_none_exist(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The suite's conftest sets test keys; they must be left alone.
    assert _env_run(capsys)["env"]["AWS_ACCESS_KEY_ID"] == "testing"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    assert _env_run(capsys)["env"]["AWS_ACCESS_KEY_ID"] == "selador-local"


def test_context(capsys: pytest.CaptureFixture[str]) -> None:
    context = _env_run(capsys, "--timeout", "30")["context"]
    assert context["function_name"] == "MainLambda"
    assert context["memory_limit_in_mb"] == "1024"
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-west-2:123456789012:function:MainLambda"
    assert len(context["aws_request_id"]) == 36
    assert 25_000 < context["remaining_ms"] <= 30_000


def test_read_env_vars_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        read_env_vars_file(tmp_path / "missing.json", "MainLambda")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UsageError, match="MainLambda"):
        read_env_vars_file(bad, "MainLambda")
    nested = tmp_path / "nested.json"
    nested.write_text('{"MainLambda": {"A": {"b": 1}}}')
    with pytest.raises(UsageError, match="strings, numbers or booleans"):
        read_env_vars_file(nested, "MainLambda")


def test_parse_env_pairs() -> None:
    assert parse_env_pairs(["A=1", "B=x=y", "A=2"]) == {"A": "2", "B": "x=y"}
    with pytest.raises(UsageError):
        parse_env_pairs(["NOEQUALS"])
    with pytest.raises(UsageError):
        parse_env_pairs(["=value"])


# ----------------------------------------------------------------------------------- failures


def test_handler_error_exit_1_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(capsys, "-e", event_path("ws_ping"), "--handler", f"{FIXTURE}.explode")
    assert status == 1
    assert prefixed(lines, "error> ") == [
        {"errorType": "ValueError", "errorMessage": "boom from the fixture"}
    ]
    assert "ValueError: boom from the fixture" in err
    assert "Traceback" not in err


def test_handler_error_with_debug_prints_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "-e", event_path("ws_ping"), "--handler", f"{FIXTURE}.explode", "--debug")
    assert status == 1
    assert "Traceback" in err
    assert "invoke_fixture_handler" in err


def test_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(
        capsys, "-e", event_path("ws_ping"), "--handler", f"{FIXTURE}.sleepy", "--timeout", "0.2"
    )
    assert status == 1
    (error,) = prefixed(lines, "error> ")
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.20 seconds" in error["errorMessage"]


def test_result_json_cannot_carry(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-e", event_path("ws_ping"), "--handler", f"{FIXTURE}.not_json")
    assert status == 1
    assert prefixed(lines, "error> ")[0]["errorType"] == "Runtime.MarshalError"


def test_unknown_handler(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-e", event_path("ws_ping"), "--handler", "no_such_module_x.handler")
    assert status == 1
    assert prefixed(lines, "error> ")[0]["errorType"] == "Runtime.ImportModuleError"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "/nonexistent/event.json"], "event file not found"),
        (["-e", event_path("ws_ping"), "--env", "BROKEN"], "KEY=VALUE"),
        (["-e", event_path("ws_ping"), "--parameter", "NotAParameter=1"], "NotAParameter"),
        (["-e", event_path("ws_ping"), "--env-vars", "/nonexistent/env.json"], "--env-vars file not found"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    status, _, err = run(capsys, *args)
    assert status == 2
    assert message in err


def test_missing_template_without_handler(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status = main(["-e", event_path("ws_ping"), "--template", str(tmp_path / "none.yaml")])
    assert status == 2
    assert "template not found" in capsys.readouterr().err


def test_missing_template_with_handler_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status = main(
        [
            "-e",
            event_path("ws_invoke"),
            "--template",
            str(tmp_path / "none.yaml"),
            "--handler",
            f"{FIXTURE}.post_one",
        ]
    )
    assert status == 0
    assert prefixed(capsys.readouterr().out.splitlines(), "response> ") == [
        {"statusCode": 200, "posted": True}
    ]


def test_event_from_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO((EVENTS / "ws_invoke.json").read_text()))
    status, lines, _ = run(capsys, "-e", "-", "--handler", f"{FIXTURE}.post_one")
    assert status == 0
    assert len(prefixed(lines, "frame> ")) == 1


# ------------------------------------------------------------------------------ the real handler


def test_real_handler_connect_and_health_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["invoke", "--template", TEMPLATE, "-e", event_path("ws_connect")]) == 0
    assert prefixed(capsys.readouterr().out.splitlines(), "response> ")[0]["statusCode"] == 200
    assert cli.main(["invoke", "--template", TEMPLATE, "-e", event_path("http_health")]) == 0
    assert prefixed(capsys.readouterr().out.splitlines(), "response> ")[0]["statusCode"] == 200


def test_real_handler_ping_posts_a_pong(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-e", event_path("ws_ping"))
    assert status == 0
    frames = prefixed(lines, "frame> ")
    assert [frame["type"] for frame in frames] == ["pong"]


def test_a_saved_sample_is_replayed_as_a_request_arriving_now() -> None:
    from selador.local.invoke import restamp_arrival

    sample = json.loads((Path(__file__).resolve().parents[3] / "events" / "http_invoke.json").read_text())
    captured = sample["requestContext"]["timeEpoch"]
    before = int(time.time() * 1000)
    replayed = restamp_arrival(sample)["requestContext"]["timeEpoch"]
    assert replayed >= before > captured, "an old arrival would leave POST /invoke no time at all"
    assert restamp_arrival({"requestContext": {"timeEpoch": "x"}}) == {"requestContext": {"timeEpoch": "x"}}
    assert restamp_arrival([1, 2]) == [1, 2]
