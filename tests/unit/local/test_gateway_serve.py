"""``selador serve`` configuration: environment layering, template-driven settings, URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from selador.local import serve
from selador.local.gateway import GatewayOptions
from selador.local.serve import Endpoints, build_environment, key_values, local_overrides
from selador.local.template import load_template

REPO = Path(__file__).resolve().parents[3]


def test_endpoints_point_at_the_stage_and_the_root() -> None:
    endpoints = Endpoints("127.0.0.1", 3001, "production")
    assert endpoints.ws_url == "ws://127.0.0.1:3001/production"
    assert endpoints.http_url == "http://127.0.0.1:3001"
    assert endpoints.management_endpoint == "http://127.0.0.1:3001/production"
    assert endpoints.lambda_endpoint == "http://127.0.0.1:3001"
    assert Endpoints("::1", 80, "dev").ws_url == "ws://[::1]:80/dev"


def test_environment_layers_template_then_local_overrides_then_cli() -> None:
    overrides = local_overrides(
        Endpoints("127.0.0.1", 4000, "production"), function_name="MainLambda", sqlite_path="/tmp/x.sqlite3"
    )
    template_env = {"MODEL_ARN": "us.anthropic.model", "RUN_MODE": "async", "KNOWLEDGE_BASE_ID": "ABCDEFGHIJ"}
    env = build_environment(
        template_env,
        overrides,
        {"RUN_MODE": "inline", "MODEL_PROVIDER": "bedrock"},
        memory_size=1024,
        inherited={},
    )
    assert env["MODEL_ARN"] == "us.anthropic.model"  # template value kept
    assert env["KNOWLEDGE_BASE_ID"] == ""  # local override beats the template
    assert env["RUN_MODE"] == "inline"  # --env beats the template
    assert env["MODEL_PROVIDER"] == "bedrock"  # --env beats the local override
    assert env["WEBSOCKET_MANAGEMENT_ENDPOINT"] == "http://127.0.0.1:4000/production"
    assert env["LAMBDA_ENDPOINT"] == "http://127.0.0.1:4000"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "MainLambda"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/MainLambda"
    assert env["SQLITE_PATH"] == "/tmp/x.sqlite3"
    assert env["CONNECTIONS_TABLE"] == ""
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_existing_credentials_are_left_alone() -> None:
    env = build_environment({}, {}, {}, memory_size=128, inherited={"AWS_ACCESS_KEY_ID": "AKIAREAL"})
    assert "AWS_ACCESS_KEY_ID" not in env
    env = build_environment({}, {}, {}, memory_size=128, inherited={"AWS_PROFILE": "dev"})
    assert "AWS_ACCESS_KEY_ID" not in env


def test_async_retries_come_from_the_template(tmp_path: Path) -> None:
    assert serve._async_retries(str(REPO / "template.yaml"), "MainLambda") == 0  # MaximumRetryAttempts: 0
    bare = tmp_path / "template.yaml"
    bare.write_text(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {Handler: a.b}\n"
    )
    assert serve._async_retries(str(bare), "Fn") == 2  # Lambda's default


def test_the_sqs_on_failure_destination_comes_from_the_template(tmp_path: Path) -> None:
    assert serve._sqs_on_failure(str(REPO / "template.yaml"), "MainLambda") is True
    bare = tmp_path / "t.yaml"
    bare.write_text("Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {}\n")
    assert serve._sqs_on_failure(str(bare), "Fn") is False


def test_integration_timeout_comes_from_the_template_and_0_turns_it_off(tmp_path: Path) -> None:
    template = load_template(REPO / "template.yaml")  # TimeoutInMillis: 29000
    assert serve._integration_timeout(None, template) == 29.0
    assert serve._integration_timeout(0, template) is None
    assert serve._integration_timeout(2.5, template) == 2.5
    with pytest.raises(SystemExit, match="--integration-timeout"):
        serve._integration_timeout(-1, template)
    bare = tmp_path / "template.yaml"
    bare.write_text(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {Handler: a.b, Runtime: python3.13}\n"
    )
    assert serve._integration_timeout(None, load_template(bare)) == 29.0  # API Gateway's default
    assert GatewayOptions().integration_timeout == 29.0


def test_key_value_flags_are_checked() -> None:
    assert key_values(["A=1", "B=", "C=x=y"], "--env") == {"A": "1", "B": "", "C": "x=y"}
    with pytest.raises(SystemExit, match="--env expects KEY=VALUE"):
        key_values(["novalue"], "--env")


@pytest.fixture
def isolated_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo what ``serve.main`` does to the process: its environment and logging set-up."""
    import logging
    import os

    monkeypatch.setattr(serve.os, "environ", dict(os.environ))
    for logger in (serve.log, logging.getLogger("uvicorn.error")):
        for attribute in ("handlers", "filters"):
            monkeypatch.setattr(logger, attribute, list(getattr(logger, attribute)))
        monkeypatch.setattr(logger, "propagate", logger.propagate)
        monkeypatch.setattr(logger, "level", logger.level)


@pytest.mark.usefixtures("isolated_main")
def test_rates_must_be_fractions() -> None:
    with pytest.raises(SystemExit, match="between 0 and 1"):
        serve.main(["--template", str(REPO / "template.yaml"), "--inject-429", "1.5", "--port", "0"])


@pytest.mark.usefixtures("isolated_main")
def test_unknown_template_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.main(["--template", str(tmp_path / "missing.yaml"), "--port", "0"]) == 2
    assert "missing.yaml" in capsys.readouterr().err


@pytest.mark.usefixtures("isolated_main")
def test_unloadable_handler_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = serve.main(
        [
            "--template",
            str(REPO / "template.yaml"),
            "--port",
            "0",
            "--handler",
            "selador_absent_module.handler",
        ]
    )
    assert code == 1
    assert "No module named 'selador_absent_module'" in capsys.readouterr().err
    assert serve.os.environ["MODEL_PROVIDER"] == "local"  # the environment was set before the import
