"""What keeps the local gateway to its own machine: the pages a developer browses cannot use it.

A developer runs ``selador serve`` with AWS credentials in the shell while browsing the web. Any
page the browser opens can send requests to ``localhost``, and a DNS-rebinding page can do it under
its own hostname, so :class:`LocalGuard`, an ASGI middleware in front of every route, refuses:

* any request (HTTP or WebSocket handshake) whose ``Host`` is not an address the gateway serves:
  the loopback names, the bound address, ``--allow-host`` names, and any IP literal when bound to
  every interface (a rebinding page always comes through a DNS *name*);
* on the endpoints that stand in for AWS's signed APIs (Lambda Invoke, ``@connections``) and on the
  stats page: any browser request but the gateway's own pages' (an ``Origin`` other than the
  gateway's, which browsers send on every cross-origin POST and DELETE; a ``Sec-Fetch-Site`` other
  than ``none``/``same-origin``, which they send to loopback on every request), and a body typed as
  one of the three content types a cross-origin "simple request" may carry without a preflight
  (``text/plain``, ``multipart/form-data``, ``application/x-www-form-urlencoded``). boto3 sends no
  ``Content-Type`` and no ``Origin`` on these calls, so their absence is accepted;
* a WebSocket handshake from a page that is not this machine's (``Origin`` with a loopback name,
  the bound address or an ``--allow-host`` name, any port) unless ``--allow-origin`` names it or
  it is the gateway's own page (the playground: ``Origin`` equal to the accepted ``Host``). API
  Gateway takes any origin, but there the handler runs with its own role; here it runs with the
  developer's credentials, so any site could spend them (a Bedrock model, a knowledge base).

The HTTP API takes any ``Origin``: a cross-origin page can only send it a "simple request", and
the handler refuses every content type but ``application/json`` (415) before doing anything.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from selador.redaction import REDACTED, redact_text

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 - recognising a wildcard bind, not binding
SIMPLE_CONTENT_TYPES = ("text/plain", "multipart/form-data", "application/x-www-form-urlencoded")
"""The content types a cross-origin request may carry without a CORS preflight."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def host_name(value: str) -> str:
    """The host of a ``Host`` header or URL authority, without port or IPv6 brackets, lower-cased.

    Args:
        value: ``localhost:3001``, ``[::1]:3001``, ``example.com``.

    Returns:
        The bare host name or address.
    """
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` and ``Origin`` values belong to this gateway.

    Args:
        bound: The address the gateway listens on.
        extra: More host names to accept (``--allow-host``), e.g. a name in ``/etc/hosts``.
    """

    def __init__(
        self, bound: str = "127.0.0.1", extra: Iterable[str] = (), origins: Iterable[str] = ()
    ) -> None:
        self.bound = host_name(bound)
        self.any_ip = self.bound in WILDCARD_HOSTS
        self.names = frozenset({*LOOPBACK_HOSTS, *(host_name(h) for h in extra)} | ({self.bound} - {""}))
        # Pages allowed to open the WebSocket API besides this machine's: an exact origin, or "*".
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in origins)

    def allows_host(self, host: str) -> bool:
        """Whether a ``Host`` header (port allowed) names this gateway."""
        name = host_name(host)
        return name in self.names or (self.any_ip and _is_ip(name))

    def allows_origin(self, origin: str) -> bool:
        """Whether a browser ``Origin`` is a page served from this machine (any port) or allowed.

        A page from a bare IP address is not "this machine" even when the gateway listens on every
        interface: any site on the internet can be served from an IP literal.
        """
        if "*" in self.origins or origin.strip().rstrip("/").lower() in self.origins:
            return True
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (sandboxed frames, file: pages) and anything malformed
        return host_name(parts.netloc) in self.names and not (self.any_ip and parts.hostname == self.bound)

    def same_origin(self, origin: str, host: str) -> bool:
        """Whether ``Origin`` is the gateway itself (the scheme ignored: it serves plain HTTP only)."""
        parts = urlsplit(origin.strip())
        return bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()


class LocalGuard:
    """ASGI middleware applying :class:`HostPolicy` (see the module docstring).

    Args:
        app: The gateway's application.
        policy: Hosts and origins to accept.
        protected: Path prefixes of the Lambda API and the stats page (``@connections`` paths are
            recognised under any stage).
    """

    def __init__(self, app: ASGIApp, policy: HostPolicy, protected: Iterable[str]) -> None:
        self.app = app
        self.policy = policy
        self.protected = tuple(protected)
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or pass on one connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        self.refused += 1
        body = json.dumps({"message": f"Forbidden: {problem}"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def problem(self, scope: Scope) -> str | None:
        """Why a request is refused, or ``None`` when it may pass."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not self.policy.allows_host(host):
            return (
                f"Host {host!r} is not an address this gateway serves "
                "(loopback, the --host address, or an --allow-host name)"
            )
        path = scope.get("path", "")
        origin = headers.get("origin")
        if not (path.startswith(self.protected) or "/@connections/" in path):
            if (
                scope["type"] == "websocket"
                and origin is not None
                and not self.policy.allows_origin(origin)
                # The gateway's own page (the playground), whatever address it was loaded from:
                # the Host was accepted above, so a page with that very origin came from here.
                and not self.policy.same_origin(origin, host)
            ):
                return (
                    f"the web page at {origin!r} may not open this local WebSocket API (it would run "
                    "the handler with this machine's credentials); allow it with --allow-origin"
                )
            return None
        # The stand-ins for AWS's signed APIs: no web page but the gateway's own may call them.
        if origin is not None and not self.policy.same_origin(origin, host):
            return f"requests from the web page at {origin!r} cannot use this local AWS endpoint"
        if headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):
            return "a browser request from another page cannot use this local AWS endpoint"
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type in SIMPLE_CONTENT_TYPES:
            return (
                f"Content-Type {content_type!r} is not accepted here; send application/json "
                "(or no Content-Type, as boto3 does)"
            )
        return None


_CREDENTIAL_KEY = re.compile(
    r"token|key|auth|jwt|sig|secret|pass|session|credential|security|cookie|code|bearer", re.IGNORECASE
)


def redact_query(query: Mapping[str, str]) -> dict[str, str]:
    """A query string's parameters with every credential-like value masked, for stats.

    Broader than log redaction: any key that might hold a credential (``token``, ``api_key``,
    ``X-Amz-Security-Token``, ``X-Amz-Signature``, ``auth``, ``jwt``, ``code``…) and any value shaped
    like one is masked; plain tags (``?tag=soak-1``) stay readable.
    """
    return {
        name: REDACTED if _CREDENTIAL_KEY.search(name) else redact_text(value)
        for name, value in query.items()
    }


__all__ = ["LOOPBACK_HOSTS", "SIMPLE_CONTENT_TYPES", "HostPolicy", "LocalGuard", "host_name", "redact_query"]
