"""The HTTP API routes of the template on the local gateway, as payload-format 2.0 events.

Each ``(METHOD, path)`` the template declares becomes a Starlette route whose request is turned
into the event API Gateway would send (:func:`selador.local.events.http_v2_event`) and whose
function result is turned back into the answer API Gateway would give (:func:`http_answer`).
Routes the template puts behind a JWT authorizer get API Gateway's check first when the
handler's ``AUTH_MODE`` is ``jwt``: ``401 {"message":"Unauthorized"}`` without a valid token,
``requestContext.authorizer.jwt`` with one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from selador.auth import AuthError, verify_token
from selador.local.events import http_v2_event, is_hop_by_hop
from selador.local.runtime import Invocation
from selador.local.wire import is_text

if TYPE_CHECKING:
    from selador.local.gateway import Gateway
    from selador.local.template import JwtRouteAuth
    from selador.settings import Settings

log = logging.getLogger("selador.gateway")


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

        jwt = gateway.options.http_jwt_routes.get((method, path))

        async def endpoint(request: Request) -> Response:
            authorizer = None
            if jwt is not None and gateway.options.auth_settings is not None:
                # Before the function runs, as API Gateway's authorizer does.
                verdict = await _authorize(request, jwt, gateway.options.auth_settings)
                if isinstance(verdict, Response):
                    return verdict
                authorizer = verdict
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
            if authorizer is not None:
                event["requestContext"]["authorizer"] = authorizer
            outcome = await gateway.runtime.invoke(event, label=f"http {route_key}")
            return http_answer(outcome)

        return endpoint


async def _authorize(request: Request, route: JwtRouteAuth, settings: Settings) -> Response | dict[str, Any]:
    """API Gateway's JWT authorizer: the refusal it answers, or ``requestContext.authorizer``.

    The token is checked by :func:`selador.auth.verify_token` with the handler's settings
    (``AUTH_ISSUER``, ``AUTH_AUDIENCE``, the JWKS URL or the local HS256 secret), so the gateway
    and the function accept the same tokens.
    """
    token = _identity(request, route.identity_source)
    if not token:
        # No credential: 401 with the bare challenge of RFC 6750 §3.1.
        return _refusal(401, "Unauthorized", "Bearer")
    try:
        # PyJWT may fetch the issuer's key set: not on the event loop.
        principal = await asyncio.to_thread(verify_token, token, settings)
    except AuthError as exc:
        description = _AWS_DESCRIPTIONS.get(exc.reason, exc.reason.removeprefix("invalid token: "))
        challenge = f'Bearer scope="" error="invalid_token" error_description="{_quoted(description)}"'
        return _refusal(401, "Unauthorized", challenge)
    except Exception as exc:  # noqa: BLE001 - an authorizer that fails refuses; it never 500s
        log.warning("http authorizer: token check failed (%s); answering 401", type(exc).__name__)
        return _refusal(401, "Unauthorized", 'Bearer error="invalid_token"')
    claims = dict(principal.claims or {})
    scopes = _token_scopes(claims)
    if route.scopes and not set(route.scopes) & set(scopes):
        return _refusal(403, "Forbidden", None)
    return {"jwt": {"claims": {k: _claim_text(v) for k, v in claims.items()}, "scopes": scopes or None}}


# How API Gateway words the refusals it documents; the others keep selador.auth's reason.
_AWS_DESCRIPTIONS = {"invalid token: wrong audience": "the token does not have a valid audience"}


def _refusal(status: int, message: str, challenge: str | None) -> Response:
    headers = {"www-authenticate": challenge} if challenge else None
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _quoted(text: str) -> str:
    # A quoted-string of the challenge cannot hold a bare double quote or a line break.
    return text.replace("\\", "/").replace('"', "'").replace("\r", " ").replace("\n", " ")


def _identity(request: Request, source: str) -> str | None:
    """The token named by an identity source, without its optional ``Bearer`` prefix."""
    kind, _, name = source.removeprefix("$request.").partition(".")
    if kind == "header":
        value = request.headers.get(name)
    elif kind == "querystring":
        value = request.query_params.get(name)
    else:
        value = None
    if value is None:
        return None
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


def _token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The token's scopes: ``scope`` (space-separated, OAuth 2.0) or ``scp`` (a list or a string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [str(item) for item in raw]
    return []


def _claim_text(value: Any) -> str:
    """A claim as the HTTP API hands it over: every value a string, lists as ``[a b]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


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
