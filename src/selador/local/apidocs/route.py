"""The local gateway's ``GET /openapi.json``: the HTTP API's OpenAPI document, this gateway first.

A development server feature, not a route of the deployed API (the template has none). The
document is generated on the first request, in a thread (it imports the handler's HTTP modules and
pydantic's schema generator, which the gateway does not need to start), and kept.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

OPENAPI_PATH = "/openapi.json"


@functools.cache
def _document() -> dict[str, Any]:
    from selador.local.apidocs.openapi import openapi_document

    return openapi_document()


async def serve_openapi(request: Request) -> Response:
    """The document; its first server is the address the request reached this gateway on.

    Any page may read it (``Access-Control-Allow-Origin: *``, so online editors can load it): it is
    the repository's ``docs/openapi.json`` and holds no secret.
    """
    from selador.local.apidocs.openapi import DEPLOYED

    document = await asyncio.to_thread(_document)
    here = {"url": str(request.base_url).rstrip("/"), "description": "This local gateway."}
    return JSONResponse(
        document | {"servers": [here, DEPLOYED]},
        headers={"access-control-allow-origin": "*", "cache-control": "no-cache"},
    )


def openapi_routes() -> list[Route]:
    """The gateway's route for the document."""
    return [Route(OPENAPI_PATH, serve_openapi, methods=["GET"])]
