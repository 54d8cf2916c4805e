"""Model and retry-strategy construction from settings (once per container)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from strands import ModelRetryStrategy
from strands.models import Model

from selador.agents.offline import OFFLINE_MODEL_ID, OfflineResponder
from selador.settings import Settings

if TYPE_CHECKING:
    import httpx
    from botocore.config import Config

BEDROCK_CONNECT_TIMEOUT_S = 5
BEDROCK_READ_TIMEOUT_S = 120
"""Longest silence between streamed chunks; a long answer streams for longer than this in total."""

LOCAL_MODEL_CONNECT_TIMEOUT_S = 5
LOCAL_MODEL_READ_TIMEOUT_S = 300
"""Longest silence from an Ollama or OpenAI-compatible server: its first answer may wait for the
model to load from disk, and a CPU-only machine reads a long prompt slowly."""

OPENAI_NO_API_KEY = "sk-no-key-required"
"""Sent when ``OPENAI_API_KEY`` is empty: the OpenAI client refuses to start without a key, and
servers started without one (llama.cpp, vLLM, LM Studio) ignore it."""


class ModelProviderNotInstalledError(RuntimeError):
    """The configured provider's client library is missing: its extra was not installed.

    Args:
        provider: ``ollama`` or ``openai``, also the name of the extra (pyproject.toml) to install.
        missing: The module that could not be imported.
    """

    def __init__(self, provider: str, missing: str) -> None:
        self.provider = provider
        self.extra = provider
        super().__init__(
            f"MODEL_PROVIDER={provider} needs the Python package {missing!r}, which could not be "
            f'imported: run pip install -e ".[{self.extra}]" (an optional extra, never in the Lambda '
            "bundle)"
        )


def default_bedrock_client_config() -> Config:
    """Bedrock runtime client settings for Lambda.

    botocore retries once at most: Strands' :class:`ModelRetryStrategy` owns throttling retries, and
    two retry layers would multiply the wait inside a bounded invocation.
    """
    from botocore.config import Config

    return Config(
        connect_timeout=BEDROCK_CONNECT_TIMEOUT_S,
        read_timeout=BEDROCK_READ_TIMEOUT_S,
        retries={"max_attempts": 1},
    )


def build_model(settings: Settings, bedrock_client_config: Config | None = None) -> Model:
    """The model the settings select.

    Args:
        settings: ``provider`` picks ``local`` (the offline responder, paced by
            ``local_model_token_delay_ms``), ``bedrock`` (``bedrock_model_id`` in ``aws_region``,
            at most ``model_max_tokens`` per response, streamed with ConverseStream), ``ollama``
            (``ollama_model`` on ``ollama_host``) or ``openai`` (``openai_model`` on the
            OpenAI-compatible server at ``openai_base_url``); every real model streams.
        bedrock_client_config: botocore client config replacing :func:`default_bedrock_client_config`.

    Returns:
        A Strands model; share it across requests (the Bedrock client is created here; the Ollama
        and OpenAI models open a client per request).

    Raises:
        ModelProviderNotInstalledError: ``ollama`` or ``openai`` without its optional extra.
    """
    if settings.provider == "local":
        return OfflineResponder(
            token_delay_ms=settings.local_model_token_delay_ms,
            min_answer_tokens=settings.local_model_min_answer_tokens,
            tokens_per_delta=settings.local_model_tokens_per_delta,
        )
    if settings.provider == "ollama":
        return _ollama_model(settings)
    if settings.provider == "openai":
        return _openai_model(settings)
    from strands.models import BedrockModel

    return BedrockModel(
        model_id=settings.bedrock_model_id,
        region_name=settings.aws_region,
        max_tokens=settings.model_max_tokens,
        streaming=True,
        boto_client_config=bedrock_client_config or default_bedrock_client_config(),
    )


def _local_timeout() -> httpx.Timeout:
    import httpx  # a dependency of both the ollama and the openai client

    return httpx.Timeout(LOCAL_MODEL_READ_TIMEOUT_S, connect=LOCAL_MODEL_CONNECT_TIMEOUT_S)


def _ollama_model(settings: Settings) -> Model:
    # The client library is an optional extra: import it here, never when selador is imported.
    try:
        from strands.models.ollama import OllamaModel
    except ImportError as exc:
        raise ModelProviderNotInstalledError("ollama", exc.name or "ollama") from exc
    import httpx  # installed with ollama

    return OllamaModel(
        settings.ollama_host,
        # Strands opens an ollama.AsyncClient per request and never closes it: without keep-alive
        # each connection closes with its response instead of outliving the request's event loop.
        ollama_client_args={"timeout": _local_timeout(), "limits": httpx.Limits(max_keepalive_connections=0)},
        model_id=settings.ollama_model,
        max_tokens=settings.model_max_tokens,
    )


def _openai_model(settings: Settings) -> Model:
    try:
        from strands.models.openai import OpenAIModel
    except ImportError as exc:
        raise ModelProviderNotInstalledError("openai", exc.name or "openai") from exc

    return OpenAIModel(
        client_args={
            "base_url": settings.openai_base_url,
            "api_key": settings.openai_api_key.get_secret_value() or OPENAI_NO_API_KEY,
            "timeout": _local_timeout(),
            # One retry at most (as for Bedrock): Strands' retry strategy owns throttling.
            "max_retries": 1,
        },
        model_id=settings.openai_model,
        params={"max_tokens": settings.model_max_tokens},
    )


def build_retry_strategy(settings: Settings) -> ModelRetryStrategy:
    """A retry strategy sized for Lambda: ``model_max_attempts`` tries, 1 s doubling to 8 s at most.

    Strands' default backs off for up to four minutes in total; an invocation cannot wait that long.
    Build one per agent: the strategy counts attempts in its own state.
    """
    return ModelRetryStrategy(max_attempts=settings.model_max_attempts, initial_delay=1, max_delay=8)


_PREFIXED_PROVIDERS = (
    ("strands.models.ollama", "OllamaModel", "ollama"),
    ("strands.models.openai", "OpenAIModel", "openai"),
)


def model_name(model: Model) -> str:
    """The model a result reports: Bedrock's model id, ``ollama:<model>``, ``openai:<model>``, ``offline``."""
    if isinstance(model, OfflineResponder):
        return OFFLINE_MODEL_ID
    config = model.get_config()
    model_id = config.get("model_id") if isinstance(config, dict) else getattr(config, "model_id", None)
    name = str(model_id or type(model).__name__)
    for module_name, class_name, prefix in _PREFIXED_PROVIDERS:
        # Only a module already imported can have built this model: never import an extra here.
        module = sys.modules.get(module_name)
        if module is not None and isinstance(model, getattr(module, class_name)):
            return f"{prefix}:{name}"
    return name
