"""boto3 clients shared per container, each built exactly once even under concurrent first use.

Not ``functools.cache``: concurrent first calls would all miss and each build a client (tens of
milliseconds of CPU apiece). In the local gateway hundreds of invocations start together in one
process, and the last ones waited seconds for their first frame; checking again under the lock
builds one client and lets every other caller reuse it. boto3 is imported on first use only, so
routes that never call AWS stay light.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


def shared_client(service: str, *, region: str, endpoint_url: str | None = None, **config: Any) -> Any:
    """The container's client for ``service`` with these settings.

    Args:
        service: boto3 service name.
        region: Region name.
        endpoint_url: Endpoint override (local gateway, custom endpoints).
        **config: ``botocore.config.Config`` keyword arguments (hashable values only).

    Returns:
        The shared client (boto3 clients are thread-safe once built).
    """
    key = (service, region, endpoint_url, tuple(sorted((k, repr(v)) for k, v in config.items())))
    client = _clients.get(key)
    if client is not None:
        return client
    import boto3
    from botocore.config import Config

    with _lock:  # boto3 sessions are not thread-safe while creating clients
        client = _clients.get(key)
        if client is None:
            session: Any = boto3.session.Session()
            client = session.client(
                service, region_name=region, endpoint_url=endpoint_url or None, config=Config(**config)
            )
            _clients[key] = client
    return client
