"""The playground's routes on the local gateway: what is served, from where, and what wins over it.

The page itself is tested in a browser (``tests/e2e/browser/``); these tests cover the server side
with real sockets (``serve_in_thread``) or Starlette's test client.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from test_gateway import WAIT, gateway

from selador.local.guard import HostPolicy, LocalGuard
from selador.local.playground import PAGE_DIR, Playground, banner_line, hiding_route

ROOT = Path(__file__).resolve().parents[3]


def echo(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({"route": event.get("routeKey")})}


def client_for(playground: Playground) -> TestClient:
    return TestClient(Starlette(routes=playground.routes()))


def test_the_page_is_served_at_the_root_of_the_gateway_with_a_strict_policy() -> None:
    with gateway(echo) as running:
        page = httpx.get(running.endpoints.base + "/", timeout=WAIT)
        script = httpx.get(running.endpoints.base + "/playground/app.js", timeout=WAIT)
        health = httpx.get(running.endpoints.base + "/health", timeout=WAIT)  # the HTTP API is unchanged
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<meta name="selador-stage" content="production">' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self' ws: wss:" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert 'import("/selador.js")' in script.text
    assert health.json() == {"route": "GET /health"}


def test_the_stage_is_escaped_into_the_page() -> None:
    answer = client_for(Playground('dev"><script>x</script>')).get("/")
    assert '<meta name="selador-stage" content="dev&quot;&gt;&lt;script&gt;x&lt;/script&gt;">' in answer.text
    assert "<script>x</script>" not in answer.text


def test_the_client_library_comes_from_the_checkout_or_a_404_that_says_where(tmp_path: Path) -> None:
    library = tmp_path / "selador.js"
    library.write_text("export async function connect() {}\n", encoding="utf-8")
    served = client_for(Playground("production", client_path=library)).get("/selador.js")
    assert served.status_code == 200
    assert served.headers["content-type"] == "text/javascript; charset=utf-8"
    assert served.text == library.read_text(encoding="utf-8")

    missing = client_for(Playground("production", client_path=tmp_path / "nowhere.js")).get("/selador.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")
    assert str(tmp_path / "nowhere.js") in missing.text
    assert "clients/js/selador.js" in missing.text


@pytest.mark.parametrize(
    "path",
    ["/playground/nope.js", "/playground/index.html", "/playground/..%2fplayground.py", "/playground/"],
)
def test_only_the_pages_own_assets_are_served(path: str) -> None:
    answer = client_for(Playground("production")).get(path)
    assert answer.status_code == 404
    assert "class Playground" not in answer.text  # never the module's source, whatever the name


def test_every_page_file_ships_as_package_data() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "selador"
    ]
    files = [p.relative_to(PAGE_DIR.parents[1]).as_posix() for p in PAGE_DIR.iterdir()]
    assert {"local/playground/index.html", "local/playground/app.js"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


def test_a_template_route_for_the_root_wins_over_the_playground() -> None:
    routes = (("GET", "/health"), ("ANY", "/{proxy+}"))
    with gateway(echo, http_routes=routes) as running:
        root = httpx.get(running.endpoints.base + "/", timeout=WAIT)
        client = httpx.get(running.endpoints.base + "/selador.js", timeout=WAIT)
    assert root.json() == {"route": "ANY /{proxy+}"}
    assert client.json() == {"route": "ANY /{proxy+}"}
    assert hiding_route(routes) == "ANY /{proxy+}"
    assert hiding_route((("POST", "/{proxy+}"), ("GET", "/items/{id}"))) is None
    assert hiding_route((("ANY", "$default"),)) == "$default"
    assert "none: the template's route ANY /{proxy+} answers /" in banner_line("http://h:1", routes)


def test_the_banner_line_gives_the_pages_url_and_says_when_the_client_is_missing(tmp_path: Path) -> None:
    present = tmp_path / "selador.js"
    present.write_text("", encoding="utf-8")
    assert banner_line("http://127.0.0.1:3001", (), present) == "  Playground  http://127.0.0.1:3001/"
    missing = banner_line("http://127.0.0.1:3001", (), tmp_path / "gone.js")
    assert missing.startswith("  Playground  http://127.0.0.1:3001/   (cannot connect:")


def _handshake(host: str, origin: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/production",
        "headers": [(b"host", host.encode()), (b"origin", origin.encode())],
    }


def test_the_gateways_own_page_may_open_the_websocket_api_from_any_address_it_serves() -> None:
    # Bound to every interface and opened from another machine as http://192.168.1.20:3001/: the
    # page's origin is not "this machine", but it is the gateway's own page.
    guard = LocalGuard(lambda *_: None, HostPolicy("0.0.0.0"), protected=())
    assert guard.problem(_handshake("192.168.1.20:3001", "http://192.168.1.20:3001")) is None
    for origin in ("http://203.0.113.5:3001", "http://192.168.1.20:8080", "http://evil.example"):
        problem = guard.problem(_handshake("192.168.1.20:3001", origin))
        assert problem is not None and "may not open this local WebSocket API" in problem, origin
