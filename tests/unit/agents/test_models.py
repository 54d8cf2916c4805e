"""Model construction, and the Bedrock path end to end with a stubbed bedrock-runtime client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from strands import ModelRetryStrategy
from strands.models import BedrockModel

from selador.agents.models import (
    LOCAL_MODEL_CONNECT_TIMEOUT_S,
    LOCAL_MODEL_READ_TIMEOUT_S,
    OPENAI_NO_API_KEY,
    build_model,
    build_retry_strategy,
    model_name,
)
from selador.agents.offline import OfflineResponder
from selador.agents.orchestrator import Orchestrator
from selador.protocol import DeltaFrame, ErrorFrame, MessageFrame, QueryRequest, ResultFrame, StatusFrame
from selador.settings import Settings, SettingsError, load_settings
from selador.sink import CollectingSink

from .conftest import FakeKnowledgeBase

MODEL_ID = "us.anthropic.claude-sonnet-4-20250514-v1:0"
ACCOUNT = "123456789012"


@pytest.fixture
def bedrock_settings() -> Settings:
    return Settings(model_id=MODEL_ID, aws_region="eu-west-1", model_max_tokens=2048, model_max_attempts=1)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stubbed calls never sign requests; make sure nothing could reach AWS with real credentials.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def test_local_provider_builds_the_offline_responder() -> None:
    model = build_model(Settings(model_provider="local", local_model_token_delay_ms=7))

    assert isinstance(model, OfflineResponder)
    assert model.get_config()["token_delay_ms"] == 7
    assert model_name(model) == "offline"


def test_bedrock_provider_builds_a_streaming_bedrock_model(bedrock_settings: Settings) -> None:
    model = build_model(bedrock_settings)

    assert isinstance(model, BedrockModel)
    config = model.get_config()
    assert (config["model_id"], config["max_tokens"], config["streaming"]) == (MODEL_ID, 2048, True)
    client_config = model.client.meta.config
    assert model.client.meta.region_name == "eu-west-1"
    assert (client_config.connect_timeout, client_config.read_timeout) == (5, 120)
    assert client_config.retries["total_max_attempts"] == 2  # botocore's max_attempts=1 is one retry
    assert model_name(model) == MODEL_ID


def test_model_arn_wins_over_model_id() -> None:
    arn = f"arn:aws:bedrock:us-west-2:{ACCOUNT}:inference-profile/{MODEL_ID}"

    model = build_model(Settings(model_id=MODEL_ID, model_arn=arn))

    assert model.get_config()["model_id"] == arn


def test_ollama_provider_builds_an_ollama_model() -> None:
    from strands.models.ollama import OllamaModel

    model = build_model(
        Settings(model_provider="ollama", ollama_model="qwen2.5:7b-instruct", model_max_tokens=1024)
    )

    assert isinstance(model, OllamaModel)
    assert model.host == "http://127.0.0.1:11434"  # OLLAMA_HOST's default
    assert model.get_config() == {"model_id": "qwen2.5:7b-instruct", "max_tokens": 1024}
    timeout = model.client_args["timeout"]
    assert (timeout.connect, timeout.read) == (LOCAL_MODEL_CONNECT_TIMEOUT_S, LOCAL_MODEL_READ_TIMEOUT_S)
    assert model.client_args["limits"].max_keepalive_connections == 0
    assert model_name(model) == "ollama:qwen2.5:7b-instruct"


def test_openai_provider_builds_an_openai_model() -> None:
    from strands.models.openai import OpenAIModel

    settings = Settings(
        model_provider="openai",
        openai_base_url="http://127.0.0.1:8080/v1",
        openai_model="qwen2.5-7b-instruct",
        openai_api_key="sk-local-key",
    )

    model = build_model(settings)

    assert isinstance(model, OpenAIModel)
    assert model.get_config()["model_id"] == "qwen2.5-7b-instruct"
    assert model.get_config()["params"] == {"max_tokens": 4096}
    args = model.client_args
    assert (args["base_url"], args["api_key"], args["max_retries"]) == (
        "http://127.0.0.1:8080/v1",
        "sk-local-key",
        1,
    )
    assert (args["timeout"].connect, args["timeout"].read) == (
        LOCAL_MODEL_CONNECT_TIMEOUT_S,
        LOCAL_MODEL_READ_TIMEOUT_S,
    )
    assert model_name(model) == "openai:qwen2.5-7b-instruct"
    assert "sk-local-key" not in repr(settings)


def test_openai_without_a_key_uses_a_placeholder() -> None:
    model = build_model(
        Settings(model_provider="openai", openai_base_url="https://llm.example.test/v1", openai_model="m")
    )

    assert model.client_args["api_key"] == OPENAI_NO_API_KEY


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODEL_PROVIDER": "ollama"}, "MODEL_PROVIDER=ollama needs OLLAMA_MODEL"),
        (
            {"MODEL_PROVIDER": "ollama", "OLLAMA_MODEL": "qwen2.5:7b", "OLLAMA_HOST": " "},
            "MODEL_PROVIDER=ollama needs OLLAMA_HOST",
        ),
        ({"MODEL_PROVIDER": "openai", "OPENAI_MODEL": "m"}, "MODEL_PROVIDER=openai needs OPENAI_BASE_URL"),
        (
            {"MODEL_PROVIDER": "openai", "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"},
            "MODEL_PROVIDER=openai needs OPENAI_MODEL",
        ),
        (
            {"MODEL_PROVIDER": "openai", "OPENAI_BASE_URL": "127.0.0.1:8080/v1", "OPENAI_MODEL": "m"},
            "OPENAI_BASE_URL must start with http:// or https://",
        ),
        ({"MODEL_PROVIDER": "llamafile"}, "MODEL_PROVIDER: Input should be"),
    ],
)
def test_local_provider_settings_fail_at_start_naming_the_variable(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OLLAMA_HOST", "OLLAMA_MODEL", "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    secret = "sk-never-in-a-message-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert message in str(caught.value)
    assert secret not in str(caught.value)


def test_local_provider_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", " http://127.0.0.1:1234/v1 ")
    monkeypatch.setenv("OPENAI_MODEL", "lmstudio-community/qwen2.5-7b-instruct")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-lm-studio")

    settings = load_settings()

    assert (settings.provider, settings.openai_base_url, settings.openai_model) == (
        "openai",
        "http://127.0.0.1:1234/v1",
        "lmstudio-community/qwen2.5-7b-instruct",
    )
    assert settings.openai_api_key.get_secret_value() == "sk-lm-studio"
    assert "sk-lm-studio" not in repr(settings) and "sk-lm-studio" not in str(settings)


def test_the_provider_is_never_guessed_from_local_model_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_MODEL", "qwen2.5:7b")
    monkeypatch.setenv("OPENAI_MODEL", "m")

    assert load_settings().provider == "local"


def test_retry_strategy_is_tight(bedrock_settings: Settings) -> None:
    strategy = build_retry_strategy(bedrock_settings.model_copy(update={"model_max_attempts": 4}))

    assert isinstance(strategy, ModelRetryStrategy)
    assert strategy._max_attempts == 4
    # Backoff 1, 2, 4, 8, 8…: never Strands' default minutes.
    assert [strategy._calculate_delay(n) for n in range(5)] == [1, 2, 4, 8, 8]


def stubbed(settings: Settings, *, streaming: bool = True) -> tuple[Orchestrator, Stubber, FakeKnowledgeBase]:
    model = build_model(settings)
    assert isinstance(model, BedrockModel)
    if not streaming:
        # Converse (not ConverseStream) answers with a plain dict, which Stubber can return.
        model.update_config(streaming=False)
    stubber = Stubber(model.client)
    kb = FakeKnowledgeBase()
    return Orchestrator(settings=settings, model=model, knowledge_base=kb), stubber, kb


def query() -> QueryRequest:
    return QueryRequest(
        question="How big can a backyard cottage be?", query_type="zoning", request_id="req-b"
    )


@pytest.mark.parametrize(
    ("code", "status", "frame_code", "text"),
    [
        (
            "ThrottlingException",
            429,
            "throttled",
            "The model service is busy right now; please try again in a moment",
        ),
        (
            "AccessDeniedException",
            403,
            "model_error",
            "This service is not allowed to use the configured model",
        ),
        ("ValidationException", 400, "model_error", "The model rejected the request"),
    ],
)
async def test_bedrock_client_errors_become_one_safe_error_frame(
    bedrock_settings: Settings, code: str, status: int, frame_code: str, text: str
) -> None:
    orchestrator, stubber, _ = stubbed(bedrock_settings)
    stubber.add_client_error(
        "converse_stream",
        service_error_code=code,
        service_message=f"User arn:aws:iam::{ACCOUNT}:role/selador is not authorized for {MODEL_ID}",
        http_status_code=status,
    )
    sink = CollectingSink("req-b")

    with stubber:
        data = await orchestrator.run(query(), sink)
        stubber.assert_no_pending_responses()

    assert data is None
    assert [f.type for f in sink.frames] == ["status", "error"]
    error = sink.frames[-1]
    assert isinstance(error, ErrorFrame)
    assert (error.code, error.error) == (frame_code, text)
    assert ACCOUNT not in "".join(f.to_json() for f in sink.frames)


def converse_response(
    content: list[dict[str, Any]], stop_reason: str, tokens: tuple[int, int]
) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)},
        "metrics": {"latencyMs": 42},
    }


async def test_bedrock_happy_path_with_a_tool_call(bedrock_settings: Settings) -> None:
    orchestrator, stubber, kb = stubbed(bedrock_settings, streaming=False)
    stubber.add_response(
        "converse",
        converse_response(
            [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "search_knowledge_base",
                        "input": {"query": "ADU size"},
                    }
                }
            ],
            "tool_use",
            (120, 20),
        ),
        {
            "modelId": MODEL_ID,
            "messages": ANY,
            "system": ANY,
            "toolConfig": ANY,
            "inferenceConfig": {"maxTokens": 2048},
        },
    )
    answer = (
        "A detached ADU may be up to 1,000 square feet [1].\n\nSources:\n[1] Neighborhood Residential zones"
    )
    stubber.add_response("converse", converse_response([{"text": answer}], "end_turn", (400, 30)))
    sink = CollectingSink("req-b")

    with stubber:
        data = await orchestrator.run(query(), sink)
        stubber.assert_no_pending_responses()

    assert [type(f) for f in sink.frames] == [
        StatusFrame,
        StatusFrame,
        StatusFrame,
        DeltaFrame,
        MessageFrame,
        ResultFrame,
    ]
    assert [getattr(f, "stage", None) for f in sink.frames[:3]] == ["routed", "tool", "composing"]
    assert sink.frames[1].tool == "search_knowledge_base"  # type: ignore[attr-defined]
    assert kb.queries == [("ADU size", 5)]
    assert data is not None
    assert data.content == answer
    assert data.model == MODEL_ID
    assert (data.tools_used, data.tool_calls) == (1, {"search_knowledge_base": 1})
    assert (data.usage.input_tokens, data.usage.output_tokens, data.usage.total_tokens) == (520, 50, 570)
    assert [s.title for s in data.sources] == [
        "Neighborhood Residential zones",
        "Permits overview",
        "Lowrise multifamily",
    ]
