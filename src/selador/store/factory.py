"""Pick the connection store the settings ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from selador.store.base import Store
from selador.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from selador.settings import Settings


def build_store(settings: Settings, dynamodb_client: Any | None = None) -> Store:
    """Build the connection store: DynamoDB when ``connections_table`` is set, else SQLite.

    boto3 is imported only on the DynamoDB path, so local runs and the SQLite fallback never pay for it.

    Args:
        settings: The runtime settings.
        dynamodb_client: A boto3 DynamoDB client to use instead of a new one (tests, shared clients);
            ignored for SQLite.

    Returns:
        A :class:`~selador.store.dynamodb.DynamoDbStore` on ``settings.connections_table``, or a
        :class:`~selador.store.sqlite.SqliteStore` on ``settings.sqlite_path``.
    """
    if settings.store_backend == "dynamodb":
        from selador.store.dynamodb import DynamoDbStore

        client = dynamodb_client if dynamodb_client is not None else _dynamodb_client(settings.aws_region)
        return DynamoDbStore(client, settings.connections_table)
    return SqliteStore(settings.sqlite_path)


def _dynamodb_client(region: str) -> Any:
    from selador.clients import shared_client

    # Short timeouts: the store sits on the path of every WebSocket route, whose whole budget is
    # API Gateway's 29 s; a hung socket must fail fast and be retried, not eat the invocation.
    # shared_client, not boto3.client: the default session is not thread-safe while it creates
    # clients, and a container's first invocations may run at once (the local gateway's threads).
    return shared_client(
        "dynamodb",
        region=region,
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": 3},
    )
