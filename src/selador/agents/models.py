"""Model and retry-strategy construction from settings (once per container)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strands import ModelRetryStrategy
from strands.models import Model

from selador.agents.offline import OFFLINE_MODEL_ID, OfflineResponder
from selador.settings import Settings

if TYPE_CHECKING:
    from botocore.config import Config

BEDROCK_CONNECT_TIMEOUT_S = 5
BEDROCK_READ_TIMEOUT_S = 120
"""Longest silence between streamed chunks; a long answer streams for longer than this in total."""


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
            ``local_model_token_delay_ms``) or ``bedrock`` (``bedrock_model_id`` in ``aws_region``,
            at most ``model_max_tokens`` per response, streamed with ConverseStream).
        bedrock_client_config: botocore client config replacing :func:`default_bedrock_client_config`.

    Returns:
        A Strands model; share it across requests (the Bedrock client is created here).
    """
    if settings.provider == "local":
        return OfflineResponder(
            token_delay_ms=settings.local_model_token_delay_ms,
            min_answer_tokens=settings.local_model_min_answer_tokens,
            tokens_per_delta=settings.local_model_tokens_per_delta,
        )
    from strands.models import BedrockModel

    return BedrockModel(
        model_id=settings.bedrock_model_id,
        region_name=settings.aws_region,
        max_tokens=settings.model_max_tokens,
        streaming=True,
        boto_client_config=bedrock_client_config or default_bedrock_client_config(),
    )


def build_retry_strategy(settings: Settings) -> ModelRetryStrategy:
    """A retry strategy sized for Lambda: ``model_max_attempts`` tries, 1 s doubling to 8 s at most.

    Strands' default backs off for up to four minutes in total; an invocation cannot wait that long.
    Build one per agent: the strategy counts attempts in its own state.
    """
    return ModelRetryStrategy(max_attempts=settings.model_max_attempts, initial_delay=1, max_delay=8)


def model_name(model: Model) -> str:
    """The model id a result reports: the Bedrock model id, or ``offline``."""
    if isinstance(model, OfflineResponder):
        return OFFLINE_MODEL_ID
    config = model.get_config()
    model_id = config.get("model_id") if isinstance(config, dict) else getattr(config, "model_id", None)
    return str(model_id or type(model).__name__)
