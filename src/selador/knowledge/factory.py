"""Choose the knowledge base the settings ask for."""

from __future__ import annotations

import functools
from typing import Any

from selador.knowledge.base import KnowledgeBase
from selador.knowledge.local import LocalKnowledgeBase
from selador.settings import Settings

# Retrieve is interactive (the agent waits on it mid-answer), so fail fast rather than hang the
# stream: a short connect timeout, a read timeout that still covers a slow vector search, and the
# SDK's standard retry mode, which backs off with jitter on throttling. botocore reads
# ``retries["max_attempts"]`` as retries after the first call, so 3 means at most 4 calls.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 10.0
RETRY_MAX_ATTEMPTS = 3


@functools.cache
def bundled_knowledge_base() -> LocalKnowledgeBase:
    """The container's shared bundled knowledge base, so its index is built once per container."""
    return LocalKnowledgeBase()


def build_knowledge_base(settings: Settings, client: Any | None = None) -> KnowledgeBase:
    """Build the knowledge base selected by ``settings``.

    Args:
        settings: ``knowledge_base_id`` set selects Bedrock; empty selects the bundled documents.
        client: A ``bedrock-agent-runtime`` client to use instead of creating one (tests, or a
            client shared by the container). Ignored for the bundled knowledge base.

    Returns:
        A :class:`~selador.knowledge.bedrock.BedrockKnowledgeBase` or the shared
        :class:`~selador.knowledge.local.LocalKnowledgeBase`.
    """
    if not settings.knowledge_base_id:
        return bundled_knowledge_base()

    # Imported here so the offline path never pays for importing boto3/botocore.
    from selador.knowledge.bedrock import BedrockKnowledgeBase

    if client is None:
        from selador.clients import shared_client

        # Built once per container under a lock (boto3's default session is not thread-safe
        # while creating clients).
        client = shared_client(
            "bedrock-agent-runtime",
            region=settings.aws_region,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"max_attempts": RETRY_MAX_ATTEMPTS, "mode": "standard"},
        )
    return BedrockKnowledgeBase(client, settings.knowledge_base_id)
