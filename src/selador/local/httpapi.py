"""The HTTP API routes of the template on the local gateway, as payload-format 2.0 events.

Each ``(METHOD, path)`` the template declares becomes a Starlette route whose request is turned
into the event API Gateway would send (:func:`selador.local.events.http_v2_event`) and whose
function result is turned back into the answer API Gateway would give (:func:`http_answer`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from selador.local.events import http_v2_event
from selador.local.runtime import Invocation
from selador.local.wire import is_text

if TYPE_CHECKING:
    from selador.local.gateway import Gateway


class HttpApi:
    """The template's HTTP API routes.

    Args:
        gateway: The gateway whose runtime and options it uses.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        """One Starlette route per ``(METHOD, path)`` of the template."""
        return [
            Route(path, self._endpoint(method, path), methods=[method])
            for method, path in self.gateway.options.http_routes
        ]

    def _endpoint(self, method: str, path: str) -> Callable[[Request], Awaitable[Response]]:
        route_key = f"{method} {path}"
        gateway = self.gateway

        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            body: str | bytes | None = None
            if raw:
                body = raw.decode("utf-8") if is_text(raw) else raw
            headers: dict[str, str] = {}
            for name, value in request.headers.items():
                headers[name] = f"{headers[name]},{value}" if name in headers else value
            cookies = headers.pop("cookie", None)
            query: dict[str, str] = {}
            for name, value in request.query_params.multi_items():
                query[name] = f"{query[name]},{value}" if name in query else value
            event = http_v2_event(
                method,
                request.url.path,
                body=body,
                headers=headers,
                query=query or None,
                route_key=route_key,
                api_id=gateway.options.http_api_id,
                source_ip=request.client.host if request.client else "127.0.0.1",
                user_agent=headers.get("user-agent", ""),
            )
            event["rawQueryString"] = request.url.query
            if cookies:
                event["cookies"] = [c.strip() for c in cookies.split(";") if c.strip()]
            if request.path_params:
                event["pathParameters"] = dict(request.path_params)
            outcome = await gateway.runtime.invoke(event, label=f"http {route_key}")
            return http_answer(outcome)

        return endpoint


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
