"""The API Gateway management API (PostToConnection) behind a small, failure-aware adapter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from selador.clients import shared_client
from selador.settings import Settings


class ConnectionGone(Exception):
    """The connection no longer exists (HTTP 410 ``GoneException``)."""


class PostFailed(Exception):
    """A frame could not be delivered and retrying will not help (429 past the bound, 403, network)."""


def resolve_endpoint(event: Mapping[str, Any], settings: Settings) -> str:
    """The management endpoint for the connection that sent ``event``.

    ``WEBSOCKET_MANAGEMENT_ENDPOINT`` wins. Otherwise it is built from ``apiId`` + region + stage,
    which works with custom domains too; ``domainName`` + stage is only right for the execute-api
    host, because a custom domain's base-path mapping replaces the stage.

    Args:
        event: A WebSocket proxy event.
        settings: Container settings.

    Returns:
        ``https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`` or the configured endpoint.
    """
    if settings.websocket_management_endpoint:
        return settings.websocket_management_endpoint.rstrip("/")
    ctx = event.get("requestContext") or {}
    stage = ctx.get("stage", "")
    api_id = ctx.get("apiId")
    if api_id:
        return f"https://{api_id}.execute-api.{settings.aws_region}.amazonaws.com/{stage}"
    return f"https://{ctx.get('domainName', '')}/{stage}"


class ManagementApi:
    """PostToConnection / DeleteConnection with our own bounded retry (429, connection errors).

    botocore's own retries are switched off on the client (``total_max_attempts=1``) so that one
    policy, with jitter and a hard bound, decides; 410 is never retried.

    Args:
        client: A boto3 ``apigatewaymanagementapi`` client.
        max_attempts: Attempts per frame on 429 or a connection error before giving up.
        base_delay: First backoff in seconds (doubles per attempt, full jitter).
        max_delay: Cap of one backoff in seconds.
        sleep: Injected for tests.
    """

    def __init__(
        self,
        client: Any,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.throttled = 0
        self.connection_retries = 0

    def post(self, connection_id: str, data: bytes) -> None:
        """Deliver one message.

        Raises:
            ConnectionGone: on 410.
            PostFailed: on 429 or a connection error after ``max_attempts``, or any other failure.
        """
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        for attempt in range(1, self.max_attempts + 1):
            try:
                self.client.post_to_connection(ConnectionId=connection_id, Data=data)
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "GoneException" or status == 410:
                    raise ConnectionGone(connection_id) from None
                if (code == "LimitExceededException" or status == 429) and attempt < self.max_attempts:
                    self.throttled += 1
                    self._backoff(attempt)
                    continue
                raise PostFailed(f"{code or status} after {attempt} attempt(s)") from exc
            except (
                ConnectionClosedError,
                EndpointConnectionError,
                ConnectTimeoutError,
                ReadTimeoutError,
            ) as exc:
                # A pooled keep-alive connection the server had closed, no connection at all, or an
                # answer that came too late: botocore would retry these itself, but its retries are
                # off, and one such error must not end a stream whose client is there. After a read
                # timeout the frame may already have arrived, so delivery is at-least-once: clients
                # drop a repeated ``seq`` (docs/protocol.md); losing a frame would be worse.
                if attempt < self.max_attempts:
                    self.connection_retries += 1
                    self._backoff(attempt)
                    continue
                raise PostFailed(f"{type(exc).__name__} after {attempt} attempt(s)") from exc
            except BotoCoreError as exc:
                raise PostFailed(type(exc).__name__) from exc
        raise PostFailed("unreachable")  # pragma: no cover - the loop returns or raises

    def _backoff(self, attempt: int) -> None:
        """Sleep before attempt ``attempt + 1``: full jitter, doubling, capped."""
        self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))

    def delete(self, connection_id: str) -> bool:
        """Close a connection; ``False`` when it was already gone."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_connection(ConnectionId=connection_id)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "GoneException":
                return False
            raise


def _client(endpoint: str, region: str, connect_timeout: float, read_timeout: float) -> Any:
    return shared_client(
        "apigatewaymanagementapi",
        region=region,
        endpoint_url=endpoint,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1},
        # Streams of small frames to one host: keep connections open and allow concurrency.
        max_pool_connections=50,
        tcp_keepalive=True,
    )


def management_api_for(endpoint: str, settings: Settings) -> ManagementApi:
    """A management API adapter whose client is cached per endpoint per container.

    Args:
        endpoint: The management endpoint.
        settings: Container settings (region, timeouts, attempts).

    Returns:
        The adapter (cheap; the client inside is shared).
    """
    client = _client(
        endpoint, settings.aws_region, settings.management_connect_timeout, settings.management_read_timeout
    )
    return ManagementApi(client, max_attempts=settings.post_max_attempts)
