import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from selador.knowledge import KnowledgeBaseError, Passage
from selador.knowledge.bedrock import BedrockKnowledgeBase

KB_ID = "KBABCDE123"
KB_ARN = f"arn:aws:bedrock:us-west-2:123456789012:knowledge-base/{KB_ID}"


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stubber answers before any request is signed or sent; dummy credentials just make sure
    # nothing ever looks for real ones (instance metadata, profiles).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def client() -> Any:
    return boto3.client("bedrock-agent-runtime", region_name="us-west-2")


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _params(query: str, results: int) -> dict[str, Any]:
    return {
        "knowledgeBaseId": KB_ID,
        "retrievalQuery": {"text": query},
        "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": results}},
    }


def test_retrieve_results_map_to_passages(client: Any, stubber: Stubber) -> None:
    response = {
        "retrievalResults": [
            {
                "content": {"type": "TEXT", "text": "Lot coverage is 35 percent."},
                "location": {"type": "S3", "s3Location": {"uri": "s3://kb-bucket/docs/nr%20zones.md"}},
                "score": 0.91,
                "metadata": {
                    "x-amz-bedrock-kb-source-uri": "s3://kb-bucket/docs/nr%20zones.md",
                    "x-amz-bedrock-kb-chunk-id": "chunk-1",
                },
            },
            {
                "content": {"type": "TEXT", "text": "Egress windows need 5.7 square feet."},
                "location": {"type": "WEB", "webLocation": {"url": "https://example.org/codes/r310"}},
                "score": 0.5,
                "metadata": {"title": "Residential code", "section": "R310", "document_id": "src-r310"},
            },
            {
                "content": {"type": "TEXT", "text": "A Confluence page."},
                "location": {
                    "type": "CONFLUENCE",
                    "confluenceLocation": {"url": "https://wiki.example.org/p/1"},
                },
                "score": 0.25,
            },
        ]
    }
    stubber.add_response("retrieve", response, _params("lot coverage", 3))
    passages = BedrockKnowledgeBase(client, KB_ID).search("lot coverage", limit=3)
    assert passages == [
        Passage(
            text="Lot coverage is 35 percent.",
            title="nr zones.md",
            source="s3://kb-bucket/docs/nr%20zones.md",
            score=0.91,
            section=None,
            document_id="s3://kb-bucket/docs/nr%20zones.md",
        ),
        Passage(
            text="Egress windows need 5.7 square feet.",
            title="Residential code",
            source="https://example.org/codes/r310",
            score=0.5,
            section="R310",
            document_id="src-r310",
        ),
        Passage(
            text="A Confluence page.",
            title="1",
            source="https://wiki.example.org/p/1",
            score=0.25,
            section=None,
            document_id="https://wiki.example.org/p/1",
        ),
    ]


def test_results_without_text_are_skipped_and_limit_is_capped(client: Any, stubber: Stubber) -> None:
    response = {
        "retrievalResults": [
            {"content": {"type": "IMAGE", "byteContent": "data:image/png;base64,AAAA"}, "score": 0.9},
            {"content": {"type": "TEXT", "text": "   "}, "score": 0.8},
            {
                "content": {"type": "TEXT", "text": "Kept."},
                "location": {"type": "CUSTOM", "customDocumentLocation": {"id": "doc-7"}},
                "documentId": "doc-7",
            },
        ]
    }
    # the API accepts at most 100 results per call
    stubber.add_response("retrieve", response, _params("anything", 100))
    passages = BedrockKnowledgeBase(client, KB_ID).search("anything", limit=500)
    assert [(p.text, p.source, p.title, p.document_id, p.score) for p in passages] == [
        ("Kept.", "doc-7", "doc-7", "doc-7", 0.0)
    ]


def test_empty_response(client: Any, stubber: Stubber) -> None:
    stubber.add_response("retrieve", {"retrievalResults": []}, _params("nothing", 5))
    assert BedrockKnowledgeBase(client, KB_ID).search("nothing") == []


def test_accepts_a_knowledge_base_arn(client: Any, stubber: Stubber) -> None:
    params = _params("q", 2) | {"knowledgeBaseId": KB_ARN}
    stubber.add_response("retrieve", {"retrievalResults": []}, params)
    assert BedrockKnowledgeBase(client, KB_ARN).search("q", limit=2) == []


def test_no_call_for_empty_query_or_limit_below_one(client: Any, stubber: Stubber) -> None:
    kb = BedrockKnowledgeBase(client, KB_ID)
    assert kb.search("  ") == []
    assert kb.search("egress", limit=0) == []
    # the stubber has no queued responses: any call would have raised


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 429), ("AccessDeniedException", 403), ("ResourceNotFoundException", 404)],
)
def test_client_errors_become_safe_knowledge_base_errors(
    client: Any, stubber: Stubber, caplog: pytest.LogCaptureFixture, code: str, status: int
) -> None:
    detail = f"User: arn:aws:sts::123456789012:assumed-role/fn/x is not authorized on {KB_ARN}"
    stubber.add_client_error(
        "retrieve",
        service_error_code=code,
        service_message=detail,
        http_status_code=status,
        expected_params=_params("egress", 5),
    )
    with (
        caplog.at_level(logging.WARNING, logger="selador.knowledge.bedrock"),
        pytest.raises(KnowledgeBaseError) as info,
    ):
        BedrockKnowledgeBase(client, KB_ID).search("egress")
    message = str(info.value)
    assert message == f"the knowledge base is unavailable ({code})"
    assert "arn:" not in message and "123456789012" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # the detail is logged for operators
    assert any(KB_ARN in record.getMessage() for record in caplog.records)


def test_unusual_error_codes_are_not_echoed(client: Any, stubber: Stubber) -> None:
    stubber.add_client_error("retrieve", service_error_code=f"Bad code {KB_ARN}", service_message="x")
    with pytest.raises(KnowledgeBaseError, match=r"^the knowledge base is unavailable \(ClientError\)$"):
        BedrockKnowledgeBase(client, KB_ID).search("egress")


class _FailingClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def retrieve(self, **_: Any) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (
            EndpointConnectionError(endpoint_url="https://bedrock-agent-runtime.us-west-2.amazonaws.com"),
            "EndpointConnectionError",
        ),
        (
            ReadTimeoutError(endpoint_url="https://bedrock-agent-runtime.us-west-2.amazonaws.com"),
            "ReadTimeoutError",
        ),
    ],
)
def test_botocore_errors_become_knowledge_base_errors(error: Exception, name: str) -> None:
    with pytest.raises(KnowledgeBaseError) as info:
        BedrockKnowledgeBase(_FailingClient(error), KB_ID).search("egress")
    assert str(info.value) == f"the knowledge base is unavailable ({name})"
    assert "amazonaws.com" not in str(info.value)


def test_name() -> None:
    assert BedrockKnowledgeBase(object(), KB_ID).name == "bedrock"
