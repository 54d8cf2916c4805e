"""Knowledge base backed by an Amazon Bedrock Knowledge Base (the ``Retrieve`` API)."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

from botocore.exceptions import BotoCoreError, ClientError

from selador.knowledge.base import KnowledgeBase, KnowledgeBaseError, Passage

logger = logging.getLogger(__name__)

# The Retrieve API accepts 1..100 results (vectorSearchConfiguration.numberOfResults).
MAX_RESULTS = 100

SOURCE_URI_KEY = "x-amz-bedrock-kb-source-uri"

# Every location type Retrieve can return, with the field holding its address, in the order tried.
_LOCATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("s3Location", "uri"),
    ("webLocation", "url"),
    ("confluenceLocation", "url"),
    ("sharePointLocation", "url"),
    ("salesforceLocation", "url"),
    ("googleDriveLocation", "url"),
    ("oneDriveLocation", "url"),
    ("kendraDocumentLocation", "uri"),
    ("customDocumentLocation", "id"),
    ("sqlLocation", "query"),
)


def _source(location: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    for key, field in _LOCATION_FIELDS:
        value = (location.get(key) or {}).get(field)
        if isinstance(value, str) and value:
            return value
    uri = metadata.get(SOURCE_URI_KEY)
    return uri if isinstance(uri, str) else ""


def _title(metadata: Mapping[str, Any], source: str) -> str:
    title = metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    uri = metadata.get(SOURCE_URI_KEY)
    address = uri if isinstance(uri, str) and uri else source
    # The file name is the best title an unlabelled chunk has: "s3://b/docs/lr-zones.md" -> "lr-zones.md".
    name = posixpath.basename(unquote(urlparse(address).path).rstrip("/"))
    return name or address


def _passage(result: Mapping[str, Any]) -> Passage | None:
    content = result.get("content") or {}
    text = content.get("text")
    if not isinstance(text, str) or not text.strip():
        # Image, audio or table-row chunks have no text to quote; skip rather than fail.
        return None
    metadata = result.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        metadata = {}
    source = _source(result.get("location") or {}, metadata)
    section = metadata.get("section")
    document_id = metadata.get("document_id") or result.get("documentId") or source
    score = result.get("score")
    return Passage(
        text=text,
        title=_title(metadata, source),
        source=source,
        score=float(score) if isinstance(score, int | float) else 0.0,
        section=section if isinstance(section, str) and section else None,
        document_id=str(document_id),
    )


class BedrockKnowledgeBase(KnowledgeBase):
    """Search an Amazon Bedrock Knowledge Base through ``bedrock-agent-runtime`` ``retrieve``."""

    name = "bedrock"

    def __init__(self, client: Any, knowledge_base_id: str) -> None:
        """Wrap an existing client.

        Args:
            client: A boto3 ``bedrock-agent-runtime`` client (injected so tests can stub it and
                the container can share one).
            knowledge_base_id: The knowledge base id (10 characters) or its ARN.
        """
        self._client = client
        self._knowledge_base_id = knowledge_base_id

    def search(self, query: str, limit: int = 5) -> list[Passage]:
        """Retrieve up to ``limit`` passages, in the order Bedrock ranks them.

        Args:
            query: Free-text question.
            limit: Maximum number of passages (capped at the API maximum of 100); below 1 or an
                empty query returns nothing without calling the service.

        Returns:
            The passages with text; ``score`` is Bedrock's relevance score.

        Raises:
            KnowledgeBaseError: when the service call fails. The message names only the error
                code; the full error, which can include ARNs and account ids, goes to the log.
        """
        if limit < 1 or not query.strip():
            return []
        try:
            response = self._client.retrieve(
                knowledgeBaseId=self._knowledge_base_id,
                retrievalQuery={"text": query},
                retrievalConfiguration={
                    "vectorSearchConfiguration": {"numberOfResults": min(limit, MAX_RESULTS)}
                },
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "ClientError")
            logger.warning("Bedrock knowledge base retrieve failed: %s", exc, exc_info=True)
            raise KnowledgeBaseError(f"the knowledge base is unavailable ({_safe_code(code)})") from None
        except BotoCoreError as exc:
            logger.warning("Bedrock knowledge base retrieve failed: %s", exc, exc_info=True)
            raise KnowledgeBaseError(f"the knowledge base is unavailable ({type(exc).__name__})") from None
        passages = [p for p in map(_passage, response.get("retrievalResults") or []) if p is not None]
        return passages[:limit]


def _safe_code(code: str) -> str:
    # Error codes are identifiers such as "ThrottlingException"; anything else is not echoed.
    return code if code.isidentifier() and len(code) <= 64 else "ClientError"
