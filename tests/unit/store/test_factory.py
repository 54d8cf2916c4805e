"""build_store picks the backend from the settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from selador.settings import Settings
from selador.store.dynamodb import DynamoDbStore
from selador.store.factory import build_store
from selador.store.sqlite import SqliteStore

from .conftest import LinearizedClient


def test_sqlite_when_no_table(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    settings = Settings(connections_table="", sqlite_path=path)
    assert settings.store_backend == "sqlite"
    store = build_store(settings)
    assert isinstance(store, SqliteStore)
    assert store.path == path
    assert store.claim("k", 10) is not None
    assert store.claim("k", 10) is None
    assert Path(path).exists()


def test_sqlite_ignores_an_injected_client(tmp_path: Path) -> None:
    settings = Settings(connections_table="", sqlite_path=str(tmp_path / "s.sqlite3"))
    assert isinstance(build_store(settings, dynamodb_client=object()), SqliteStore)


def test_dynamodb_with_injected_client(dynamodb_client: LinearizedClient) -> None:
    store = build_store(Settings(connections_table="t"), dynamodb_client=dynamodb_client)
    assert isinstance(store, DynamoDbStore)
    assert store.table_name == "t"
    store.create_table_if_missing()
    assert store.claim("k", 10) is not None
    assert store.claim("k", 10) is None
    assert dynamodb_client.describe_table(TableName="t")["Table"]["ItemCount"] >= 0


def test_dynamodb_default_client(aws: None) -> None:
    store = build_store(Settings(connections_table="t", aws_region="eu-central-1"))
    assert isinstance(store, DynamoDbStore)
    client = store._client
    assert client.meta.service_model.service_name == "dynamodb"
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.config.connect_timeout == 2
    assert client.meta.config.read_timeout == 5
    assert client.meta.config.retries["mode"] == "standard"
    store.create_table_if_missing()  # moto intercepts: proves the client is usable
    assert store.increment("n", 10) == 1
    # One client per container (selador.clients), not one per store built.
    assert build_store(Settings(connections_table="t", aws_region="eu-central-1"))._client is client


def test_importing_the_package_does_not_import_boto3() -> None:
    code = (
        "import sys, selador.store\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore'})\n"
        "assert not loaded, loaded\n"
        "assert selador.store.build_store and selador.store.SqliteStore\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
