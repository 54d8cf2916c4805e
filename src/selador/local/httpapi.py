"""The HTTP API routes of the template on the local gateway, as payload-format 2.0 events.

Each ``(METHOD, path)`` the template declares becomes a Starlette route whose request is turned
into the event API Gateway would send (:func:`selador.local.events.http_v2_event`) and whose
function result is turned back into the answer API Gateway would give (:func:`http_answer`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from selador.local.events import http_v2_event, is_hop_by_hop
from selador.local.runtime import Invocation
from selador.local.wire import is_text

if TYPE_CHECKING:
    from selador.local.gateway import Gateway


_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_GREEDY = re.compile(r"\{(\w+)\+\}")


def _precedence(route: tuple[str, str]) -> tuple[bool, bool, bool]:
    # API Gateway prefers a full match over a greedy path variable, a method over ANY, and uses
    # $default last; Starlette takes the first route that matches, so order them that way.
    method, path = route
    return path == "$default", bool(_GREEDY.search(path)), method == "ANY"


class HttpApi:
    """The template's HTTP API routes.

    Args:
        gateway: The gateway whose runtime and options it uses.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        """One Starlette route per ``(METHOD, path)`` of the template, in API Gateway's precedence."""
        routes = []
        for method, path in sorted(self.gateway.options.http_routes, key=_precedence):
            pattern = "/{proxy:path}" if path == "$default" else _GREEDY.sub(r"{\1:path}", path)
            methods = _ANY if method == "ANY" else [method]
            route = Route(pattern, self._endpoint(method, path), methods=methods)
            if "HEAD" not in methods and route.methods is not None:
                # Starlette answers HEAD on every GET route; an HTTP API only where a route says so.
                route.methods.discard("HEAD")
            routes.append(route)
        return routes

    def _endpoint(self, method: str, path: str) -> Callable[[Request], Awaitable[Response]]:
        route_key = "$default" if path == "$default" else f"{method} {path}"
        gateway = self.gateway

        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            body: str | bytes | None = None
            if raw:
                body = raw.decode("utf-8") if is_text(raw) else raw
            source_ip = request.client.host if request.client else "127.0.0.1"
            headers = _forwarded_headers(request, source_ip)
            cookies = headers.pop("cookie", None)
            query: dict[str, str] = {}
            for name, value in request.query_params.multi_items():
                query[name] = f"{query[name]},{value}" if name in query else value
            event = http_v2_event(
                request.method,
                request.url.path,
                body=body,
                headers=headers,
                query=query or None,
                route_key=route_key,
                api_id=gateway.options.http_api_id,
                region=gateway.options.region,
                source_ip=source_ip,
                user_agent=headers.get("user-agent", ""),
            )
            event["rawQueryString"] = request.url.query
            if cookies:
                event["cookies"] = [c.strip() for c in cookies.split(";") if c.strip()]
            if request.path_params and path != "$default":
                event["pathParameters"] = dict(request.path_params)
            outcome = await gateway.runtime.invoke(event, label=f"http {route_key}")
            return http_answer(outcome)

        return endpoint


def _forwarded_headers(request: Request, source_ip: str) -> dict[str, str]:
    """The request's headers as API Gateway passes them on, with its ``x-forwarded-*`` added.

    Names are lower-case, repeated headers comma-joined, hop-by-hop ones dropped. The forwarded
    port and scheme are the ones the client reached this gateway on (API Gateway's are 443 and
    https), like ``host``, so a handler building URLs from them builds working local ones.
    """
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if is_hop_by_hop(name):
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    server = request.scope.get("server")
    headers.setdefault("x-forwarded-for", source_ip)
    if server:
        headers.setdefault("x-forwarded-port", str(server[1]))
    headers.setdefault("x-forwarded-proto", request.url.scheme)
    return headers


def http_answer(outcome: Invocation) -> Response:
    """An HTTP API (payload 2.0) response from the function's return value.

    Args:
        outcome: The invocation.

    Returns:
        What API Gateway answers: the proxy response, a 200 JSON body inferred from any other
        value, or 500 ``{"message": "Internal Server Error"}`` for an error or a malformed result.
    """
    if outcome.error is not None:
        return JSONResponse({"message": "Internal Server Error"}, status_code=500)
    payload = outcome.payload
    if not (isinstance(payload, dict) and "statusCode" in payload):
        # v2 infers a 200 JSON response from anything that is not a proxy response.
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return Response(body, status_code=200, media_type="application/json")
    status = payload["statusCode"]
    body = payload.get("body") or ""
    if not isinstance(status, int) or not 100 <= status <= 599 or not isinstance(body, str):
        return JSONResponse({"message": "Internal Server Error"}, status_code=500)
    content = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
    headers = payload.get("headers") if isinstance(payload.get("headers"), dict) else {}
    response = Response(
        content, status_code=status, headers={str(k): str(v) for k, v in (headers or {}).items()}
    )
    for cookie in payload.get("cookies") or []:
        response.headers.append("set-cookie", str(cookie))
    return response
