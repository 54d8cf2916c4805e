"""Authentication and limits through the real local gateway (``selador serve`` with AUTH_MODE=jwt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from .conftest import (
    WAIT,
    GatewayProcess,
    collect_frames,
    invoke_message,
    recv_json,
    start_gateway,
    ws_connect,
)

pytestmark = pytest.mark.e2e

SECRET = "e2e-secret-0123456789abcdef-0123456789abcdef"
QUESTION = "What is the maximum height in the LR2 zone?"


def selador_token(*args: str) -> str:
    """A token from the ``selador token`` command, as a developer would get one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")} | {"AUTH_HS256_SECRET": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "selador.local.cli", "token", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env_file = tmp_path_factory.mktemp("env") / "auth.env"
    env_file.write_text("# read by --env-file\nAUTH_MODE=jwt\nLIMIT_QUERIES_PER_MINUTE=2\n", encoding="utf-8")
    with start_gateway(
        "--env-file",
        str(env_file),
        "--env",
        f"AUTH_HS256_SECRET={SECRET}",
        "--env",
        "LOCAL_MODEL_TOKEN_DELAY_MS=0",
        "--env",
        "RUN_MODE=inline",
    ) as gateway:
        yield gateway


def test_the_banner_shows_settings_but_never_the_secret(secured: GatewayProcess) -> None:
    assert "AUTH_MODE=jwt" in secured.output and "LIMIT_QUERIES_PER_MINUTE=2" in secured.output
    assert "AUTH_HS256_SECRET=****" in secured.output
    assert SECRET not in secured.output


async def handshake_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(url):
            pass
    return refused.value.response.status_code


async def test_handshake_without_or_with_a_bad_token_is_refused(secured: GatewayProcess) -> None:
    url = secured.endpoints.ws_url
    rejected_before = secured.stats()["connections_rejected"]
    assert await handshake_status(url) == 401
    assert await handshake_status(url + "?token=not.a.jwt") == 403
    forged = selador_token("--sub", "mallory")[:-6] + "AAAAAA"  # signature broken
    assert await handshake_status(url + "?token=" + forged) == 403
    assert secured.stats()["connections_rejected"] - rejected_before == 3


async def test_valid_token_works_end_to_end_and_limits_apply(secured: GatewayProcess) -> None:
    token = selador_token("--sub", "e2e-user", "--ttl", "600")
    async with ws_connect(secured.endpoints.ws_url + "?token=" + token) as ws:
        for rid in ("a-1", "a-2"):
            await ws.send(invoke_message(QUESTION, rid, query_type="zoning"))
            frames = (await collect_frames(ws, {rid}))[rid]
            assert frames[0]["stage"] == "accepted" and frames[-1]["type"] == "result"
        await ws.send(invoke_message(QUESTION, "a-3", query_type="zoning"))
        refusal = await recv_json(ws)
    assert refusal["type"] == "error" and refusal["code"] == "rate_limited"
    assert refusal["request_id"] == "a-3" and "per_minute limit" in refusal["error"]
    # A header works as well as the query string (non-browser clients).
    async with ws_connect(
        secured.endpoints.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await ws.send(json.dumps({"action": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"
    assert token not in secured.output and token.split(".")[2] not in secured.output


def test_http_routes_behind_the_templates_jwt_authorizer(secured: GatewayProcess) -> None:
    """The template's OidcJwt authorizer answers as API Gateway does, before the function runs."""
    base = secured.endpoints.http_url.rstrip("/")
    body = {"question": "Monthly payment on a $500,000 house?", "query_type": "financing"}
    missing = httpx.post(base + "/invoke", json=body, timeout=WAIT)
    bad = httpx.post(base + "/invoke", json=body, headers={"Authorization": "Bearer not.a.jwt"}, timeout=WAIT)
    run_status = httpx.get(base + "/runs/someone-elses", timeout=WAIT)
    for refused in (missing, bad, run_status):
        assert refused.status_code == 401
        assert refused.json() == {"message": "Unauthorized"}
    assert missing.headers["www-authenticate"] == "Bearer"
    assert bad.headers["www-authenticate"].startswith('Bearer scope="" error="invalid_token"')
    # The function never ran: the gateway logs every invocation with its route.
    assert "http POST /invoke" not in secured.output and "http GET /runs" not in secured.output
    token = selador_token("--sub", "http-user")
    ok = httpx.post(base + "/invoke", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT)
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"]["success"] is True
    secured.wait_for(lambda: "http POST /invoke ->" in secured.output, "the logged invocation")
    assert httpx.get(base + "/health", timeout=WAIT).status_code == 200  # the template leaves it open
