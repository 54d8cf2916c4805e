"""Shared fixtures: a clean environment and a fresh "container" for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from selador.deps import reset_container

_ENV_PREFIXES = (
    "MODEL_",
    "KNOWLEDGE_BASE",
    "CONNECTIONS_TABLE",
    "LIMIT_",
    "WEBSOCKET_MANAGEMENT_ENDPOINT",
    "STREAM_",
    "LOCAL_MODEL_",
    "RUN_MODE",
    "LAMBDA_ENDPOINT",
    "AUTH_",
    "SQLITE_PATH",
    "AGENT_",
    "POST_MAX_ATTEMPTS",
    "RUN_",
    "OLLAMA_",
    "OPENAI_",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Every test starts like a new container: no leftover settings, clients or caches."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "selador.sqlite3"))
    monkeypatch.setenv("LOCAL_MODEL_TOKEN_DELAY_MS", "0")
    reset_container()
    yield
    reset_container()
