"""The playground: a page at ``/`` of the local gateway to try the WebSocket API in a browser.

Plain ES modules, no build step: ``playground/index.html`` loads ``/playground/app.js``, which
imports the JavaScript client library from ``/selador.js``. That file is served from the
repository's ``clients/js/selador.js`` (the library front-end developers build on, so the page
runs exactly what they would), which is why it is looked up relative to the checkout and answers
a plain-text 404 saying where it was expected when the checkout has none (an installed wheel).

The page derives its default WebSocket URL from the address it was loaded from plus the stage,
which the server writes into the page; any other URL (a deployed stack) can be typed in. Routes of
the template's HTTP API come first: a template route answering ``GET /`` (or ``$default``) hides
the playground, and the banner says so.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

PAGE_DIR = Path(__file__).resolve().parent / "playground"
"""The page's files (package data of ``selador``)."""
CLIENT_PATH = Path(__file__).resolve().parents[3] / "clients" / "js" / "selador.js"
"""The JavaScript client in a checkout: ``src/selador/local/`` is three levels below the root."""
PAGE_PATH = "/"
CLIENT_URL_PATH = "/selador.js"
ASSET_PREFIX = "/playground/"
STAGE_PLACEHOLDER = "__SELADOR_STAGE__"

_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The page only ever talks to WebSocket URLs (its own gateway or a typed-in stack) and loads its
# own files: anything else (an injected script, a form posting elsewhere) is refused by the browser.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # A development page: an edited file shows on the next reload.
    "cache-control": "no-store",
}


class Playground:
    """The playground's routes.

    Args:
        stage: The WebSocket stage, for the page's default URL.
        page_dir: Where ``index.html`` and its assets are.
        client_path: The JavaScript client library to serve at ``/selador.js``.
    """

    def __init__(self, stage: str, page_dir: Path = PAGE_DIR, client_path: Path = CLIENT_PATH) -> None:
        self.stage = stage
        self.page_dir = page_dir
        self.client_path = client_path

    def routes(self) -> list[Route]:
        """``GET /`` (the page), ``GET /selador.js`` (the client) and ``GET /playground/{name}``."""
        return [
            Route(PAGE_PATH, self._page, methods=["GET"]),
            Route(CLIENT_URL_PATH, self._client, methods=["GET"]),
            Route(ASSET_PREFIX + "{name}", self._asset, methods=["GET"]),
        ]

    async def _page(self, _request: Request) -> Response:
        page = (self.page_dir / "index.html").read_text(encoding="utf-8")
        page = page.replace(STAGE_PLACEHOLDER, html.escape(self.stage, quote=True))
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    async def _client(self, _request: Request) -> Response:
        if not self.client_path.is_file():
            return PlainTextResponse(
                f"The JavaScript client library is not in this checkout: expected {self.client_path} "
                "(clients/js/selador.js at the repository root). The playground needs it; run "
                "`selador serve` from a clone of the repository.\n",
                status_code=404,
                headers=_PAGE_HEADERS,
            )
        return self._file(self.client_path)

    async def _asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        # Only files that are in the folder, by name: no path ever leaves it.
        if name not in {p.name for p in self.page_dir.iterdir() if p.suffix in _MEDIA_TYPES}:
            return PlainTextResponse(
                f"No playground file {name!r}.\n", status_code=404, headers=_PAGE_HEADERS
            )
        return self._file(self.page_dir / name)

    def _file(self, path: Path) -> Response:
        media_type = _MEDIA_TYPES[path.suffix] + "; charset=utf-8"
        return Response(path.read_bytes(), media_type=media_type, headers=_PAGE_HEADERS)


def _route_pattern(path: str) -> re.Pattern[str]:
    """A template route path as a regular expression (``{name}`` one segment, ``{name+}`` any)."""
    parts = re.split(r"(\{\w+\+?\})", path)
    return re.compile(
        "".join(".+" if p.endswith("+}") else "[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    )


def hiding_route(http_routes: Iterable[tuple[str, str]]) -> str | None:
    """The template's HTTP route that answers the playground's paths instead of it, if any.

    Args:
        http_routes: ``(METHOD, path)`` pairs of the template's HTTP API.

    Returns:
        ``"GET /"``-style route key, or ``None`` when the playground is reachable.
    """
    probes = (PAGE_PATH, CLIENT_URL_PATH, ASSET_PREFIX + "app.js")
    for method, path in http_routes:
        if path == "$default":
            return path
        if method in ("GET", "ANY") and any(_route_pattern(path).fullmatch(p) for p in probes):
            return f"{method} {path}"
    return None


def banner_line(
    base_url: str, http_routes: Iterable[tuple[str, str]], client_path: Path = CLIENT_PATH
) -> str:
    """The banner's ``Playground`` line: the page's URL, or why it cannot be used.

    Args:
        base_url: ``http://host:port`` of the gateway.
        http_routes: The template's HTTP routes.
        client_path: The JavaScript client the page loads.

    Returns:
        The line, without a trailing newline.
    """
    hidden = hiding_route(http_routes)
    if hidden is not None:
        return f"  Playground  none: the template's route {hidden} answers {PAGE_PATH}"
    line = f"  Playground  {base_url}{PAGE_PATH}"
    if not client_path.is_file():
        line += f"   (cannot connect: {client_path} is missing)"
    return line


__all__ = ["CLIENT_PATH", "PAGE_DIR", "Playground", "banner_line", "hiding_route"]
