"""The store interface shared by the DynamoDB and SQLite implementations."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConnectionRecord:
    """One open WebSocket connection.

    Attributes:
        connection_id: API Gateway's connection id.
        connected_at: Epoch seconds of the handshake.
        expires_at: Epoch seconds after which the record is stale (DynamoDB TTL attribute).
        domain_name: ``requestContext.domainName`` of the connect event.
        stage: ``requestContext.stage``.
        api_id: ``requestContext.apiId``.
        source_ip: The client's address.
        user_agent: The client's User-Agent header.
        principal: The authenticated subject, when authentication is on.
        attributes: Free-form extra string attributes.
    """

    connection_id: str
    connected_at: float
    expires_at: int
    domain_name: str = ""
    stage: str = ""
    api_id: str = ""
    source_ip: str = ""
    user_agent: str = ""
    principal: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


class ConnectionStore(abc.ABC):
    """Connections plus the small atomic primitives the reliability and security work needs."""

    @abc.abstractmethod
    def put_connection(self, record: ConnectionRecord) -> None:
        """Create or replace a connection record."""

    @abc.abstractmethod
    def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        """The record, or ``None`` when absent or expired."""

    @abc.abstractmethod
    def delete_connection(self, connection_id: str) -> bool:
        """Delete a record; ``True`` when one existed."""

    @abc.abstractmethod
    def claim(self, key: str, ttl_seconds: int) -> bool:
        """Atomically create ``key`` if absent or expired (idempotency, duplicate detection).

        Returns:
            ``True`` for the first caller, ``False`` while an unexpired claim exists.
        """

    @abc.abstractmethod
    def release(self, key: str) -> None:
        """Remove a claim (no error when absent)."""

    @abc.abstractmethod
    def increment(self, key: str, ttl_seconds: int, amount: int = 1) -> int:
        """Atomically add to a counter that expires ``ttl_seconds`` after its creation.

        Returns:
            The counter's value after the increment (an expired counter restarts at ``amount``).
        """
