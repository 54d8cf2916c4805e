import subprocess
import sys
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from selador.knowledge.bedrock import BedrockKnowledgeBase
from selador.knowledge.factory import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    RETRY_MAX_ATTEMPTS,
    build_knowledge_base,
    bundled_knowledge_base,
)
from selador.knowledge.local import LocalKnowledgeBase
from selador.settings import Settings

KB_ID = "KBABCDE123"


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _settings(**overrides: Any) -> Settings:
    return Settings(model_provider="local", **overrides)


def test_no_knowledge_base_id_gives_the_shared_bundled_knowledge_base() -> None:
    first = build_knowledge_base(_settings(knowledge_base_id=""))
    second = build_knowledge_base(_settings(knowledge_base_id=""), client=object())
    assert isinstance(first, LocalKnowledgeBase)
    assert first is second is bundled_knowledge_base()
    assert first.name == "bundled"


def test_knowledge_base_id_with_injected_client() -> None:
    client = boto3.client("bedrock-agent-runtime", region_name="us-west-2")
    kb = build_knowledge_base(_settings(knowledge_base_id=KB_ID), client=client)
    assert isinstance(kb, BedrockKnowledgeBase)
    with Stubber(client) as stubber:
        stubber.add_response(
            "retrieve",
            {"retrievalResults": [{"content": {"text": "hit"}, "score": 1.0}]},
            {
                "knowledgeBaseId": KB_ID,
                "retrievalQuery": {"text": "egress"},
                "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 4}},
            },
        )
        assert [p.text for p in kb.search("egress", limit=4)] == ["hit"]
        stubber.assert_no_pending_responses()


def test_knowledge_base_id_without_client_builds_a_configured_client() -> None:
    kb = build_knowledge_base(_settings(knowledge_base_id=KB_ID, aws_region="eu-central-1"))
    assert isinstance(kb, BedrockKnowledgeBase)
    client = kb._client
    assert client.meta.service_model.service_name == "bedrock-agent-runtime"
    assert client.meta.region_name == "eu-central-1"
    config = client.meta.config
    assert config.connect_timeout == CONNECT_TIMEOUT_SECONDS
    assert config.read_timeout == READ_TIMEOUT_SECONDS
    assert config.retries["mode"] == "standard"
    # botocore counts max_attempts as retries: the first call plus RETRY_MAX_ATTEMPTS retries
    assert config.retries["total_max_attempts"] == RETRY_MAX_ATTEMPTS + 1
    # One client per container (selador.clients), not one per knowledge base built.
    again = build_knowledge_base(_settings(knowledge_base_id=KB_ID, aws_region="eu-central-1"))
    assert isinstance(again, BedrockKnowledgeBase)
    assert again._client is client


def test_bundled_path_does_not_import_boto3() -> None:
    code = (
        "import sys\n"
        "from selador.knowledge.factory import build_knowledge_base\n"
        "from selador.settings import Settings\n"
        "kb = build_knowledge_base(Settings(model_provider='local', knowledge_base_id=''))\n"
        "assert kb.search('egress window', 1)\n"
        "from selador.knowledge.zoning import lookup_zone\n"
        "assert lookup_zone('LR2') is not None\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
