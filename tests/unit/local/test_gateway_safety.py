"""The local gateway on a developer's machine: what a web page, a stray client or a bad flag can do.

Real sockets throughout (``serve_in_thread``): httpx and raw sockets for what a browser or an
attacker sends, a real boto3 client for what the handler sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from test_gateway import WAIT, closed_code, gateway, management, ws_connect
from websockets.exceptions import InvalidStatus

from selador.local.banner import MASK, exposure_warning, shown
from selador.local.environment import EnvFileError, read_env_file
from selador.local.guard import HostPolicy
from selador.local.serve import main as serve_main


def echo(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({"route": event.get("routeKey")})}


def raw_request(port: int, data: bytes) -> bytes:
    """Send bytes, return what the server answers before closing (or the first 4 KiB)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) >= 4096:
                break
        return b"".join(chunks)


def handshake(extra_headers: bytes = b"", path: bytes = b"/production") -> bytes:
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + extra_headers
        + b"\r\n"
    )


# ---------------------------------------------------------------------------------- Host and Origin


def test_host_policy_accepts_loopback_and_the_bound_address_only() -> None:
    policy = HostPolicy("127.0.0.1")
    for host in ("localhost:3001", "127.0.0.1:3001", "[::1]:3001", "LOCALHOST", "127.0.0.1"):
        assert policy.allows_host(host), host
    for host in ("evil.example", "evil.example:3001", "localhost.evil.example", "10.0.0.5:3001", ""):
        assert not policy.allows_host(host), host


def test_a_wildcard_bind_accepts_ip_literals_but_no_other_names() -> None:
    policy = HostPolicy("0.0.0.0", extra=["devbox.lan"])
    assert policy.allows_host("192.168.1.20:3001")
    assert policy.allows_host("[fe80::1]:3001")
    assert policy.allows_host("devbox.lan:3001")
    assert not policy.allows_host("rebind.evil.example:3001")
    # Any site can be served from a bare IP: an IP literal is a Host, never a trusted page.
    assert not policy.allows_origin("http://203.0.113.5")
    assert not policy.allows_origin("http://0.0.0.0:3001")
    assert policy.allows_origin("http://devbox.lan:8080")


def test_origins_from_this_machine_are_accepted_others_and_null_are_not() -> None:
    policy = HostPolicy("127.0.0.1")
    assert policy.allows_origin("http://localhost:5173")
    assert policy.allows_origin("https://127.0.0.1")
    for origin in ("https://evil.example", "null", "file://", "chrome-extension://abc", "http://"):
        assert not policy.allows_origin(origin), origin
    allowed = HostPolicy("127.0.0.1", origins=["https://app.example"])
    assert allowed.allows_origin("https://app.example")
    assert not allowed.allows_origin("https://app.example.evil")
    assert HostPolicy(origins=["*"]).allows_origin("https://anything.example")


def test_a_foreign_host_is_refused_on_every_endpoint() -> None:
    with gateway(echo) as running:
        base = running.endpoints.base
        evil = {"Host": "rebind.evil.example:3001"}
        for method, path in (
            ("GET", "/health"),
            ("GET", "/_selador/stats"),
            ("POST", "/2015-03-31/functions/main-fn/invocations"),
            ("GET", "/production/@connections/abc="),
        ):
            response = httpx.request(method, base + path, headers=evil, timeout=WAIT)
            assert response.status_code == 403, path
            assert "rebind.evil.example" in response.json()["message"]
        answer = raw_request(running.endpoints.port, handshake().replace(b"localhost", b"evil.example"))
        assert answer.startswith(b"HTTP/1.1 403"), answer[:80]
        assert running.gateway.stats()["requests_refused_403"] == 5
        assert running.gateway.stats()["connections_total"] == 0, "the handler never saw the handshake"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:5173"},  # another local app is another page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # what Chromium sends from localhost:5173 to localhost:3001
        {"Content-Type": "text/plain;charset=UTF-8"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
    ],
)
def test_the_lambda_api_refuses_what_a_web_page_can_send(headers: dict[str, str]) -> None:
    seen: list[dict[str, Any]] = []

    def record(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"ok": True}

    with gateway(record) as running:
        url = running.endpoints.lambda_endpoint + "/2015-03-31/functions/main-fn/invocations"
        forged = {"requestContext": {"eventType": "MESSAGE", "authorizer": {"principalId": "victim"}}}
        response = httpx.post(url, content=json.dumps(forged), headers=headers, timeout=WAIT)
        assert response.status_code == 403
        assert "Forbidden" in response.json()["message"]
        mgmt = running.endpoints.management_endpoint + "/@connections/abc%3D"
        assert httpx.post(mgmt, content=b"{}", headers=headers, timeout=WAIT).status_code == 403
        assert httpx.delete(mgmt, headers=headers, timeout=WAIT).status_code == 403
    assert seen == [], "the handler must not run"


def test_boto3_and_the_gateways_own_pages_still_reach_the_lambda_and_management_apis() -> None:
    with gateway(lambda event, _context: {"got": event}) as running:
        client = boto3.client(
            "lambda",
            endpoint_url=running.endpoints.lambda_endpoint,
            region_name="us-west-2",
            config=Config(retries={"total_max_attempts": 1}),
        )
        answer = client.invoke(FunctionName="main-fn", Payload=b'{"a": 1}')
        assert json.loads(answer["Payload"].read()) == {"got": {"a": 1}}
        url = running.endpoints.lambda_endpoint + "/2015-03-31/functions/main-fn/invocations"
        own_page = {
            "Origin": running.endpoints.base,
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/json",
        }
        assert httpx.post(url, content=b'{"b": 2}', headers=own_page, timeout=WAIT).json() == {
            "got": {"b": 2}
        }
        typed_url = {"Sec-Fetch-Site": "none"}  # the stats URL typed into the address bar
        stats = httpx.get(running.endpoints.base + "/_selador/stats", headers=typed_url, timeout=WAIT)
        assert stats.status_code == 200
        with pytest.raises(management(running).exceptions.GoneException):
            management(running).post_to_connection(ConnectionId="nobody=", Data=b"{}")


async def handshake_status(url: str, origin: str | None) -> int:
    try:
        async with ws_connect(url, origin=origin) as ws:
            await ws.send(json.dumps({"action": "ping"}))
    except InvalidStatus as refused:
        return refused.response.status_code
    return 101


def test_the_websocket_api_takes_this_machines_pages_and_allowed_origins_only() -> None:
    with gateway(echo) as running:
        url = running.endpoints.ws_url
        assert asyncio.run(handshake_status(url, None)) == 101  # not a browser
        assert asyncio.run(handshake_status(url, "http://localhost:5173")) == 101
        assert asyncio.run(handshake_status(url, "https://evil.example")) == 403
        assert asyncio.run(handshake_status(url, "null")) == 403
        assert running.gateway.stats()["connections_total"] == 2, "$connect never ran for the refused"
        # The HTTP API takes any Origin, as API Gateway does (the handler wants application/json).
        response = httpx.get(
            running.endpoints.base + "/health", headers={"Origin": "https://app.example"}, timeout=WAIT
        )
        assert response.status_code == 200
    with gateway(echo, allowed_origins=("https://app.example",)) as running:
        assert asyncio.run(handshake_status(running.endpoints.ws_url, "https://app.example")) == 101
        assert asyncio.run(handshake_status(running.endpoints.ws_url, "https://other.example")) == 403


def test_stats_never_show_a_token_from_the_query_string() -> None:
    def refuse(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        if event["requestContext"]["eventType"] == "CONNECT":
            return {"statusCode": 401}
        return {"statusCode": 200}

    secret = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"

    async def scenario(url: str) -> None:
        with pytest.raises(InvalidStatus, match="401"):
            async with ws_connect(f"{url}?token={secret}&room=7&api_key=k1&X-Amz-Security-Token=t1&tag=a"):
                pass

    with gateway(refuse) as running:
        asyncio.run(scenario(running.endpoints.ws_url))
        stats = httpx.get(running.endpoints.base + "/_selador/stats", timeout=WAIT).text
        assert secret not in stats
        connection = running.gateway.stats()["connections"][0]
        assert connection["query"] == {
            "token": "[REDACTED]",
            "room": "7",
            "api_key": "[REDACTED]",
            "X-Amz-Security-Token": "[REDACTED]",
            "tag": "a",
        }


# ---------------------------------------------------------------------------------- robustness


def test_an_oversized_handshake_is_answered_431_and_closed() -> None:
    with gateway(echo) as running:
        port = running.endpoints.port
        for oversized in (
            handshake(b"X-Big: " + b"a" * 20_000 + b"\r\n"),  # one head past the quota
            handshake(b"X-Big: " + b"a" * 9_000 + b"\r\n"),  # one line past the WebSocket library's
            b"GET /health?" + b"q" * 12_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ):
            answer = raw_request(port, oversized)
            assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 431 Request Header Fields Too Large", answer[
                :120
            ]
        # Sent in pieces, without ever finishing the head: refused as soon as it passes the limit.
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(b"GET /production HTTP/1.1\r\nHost: localhost\r\n")
            for _ in range(12):
                sock.sendall(b"X-Pad: " + b"p" * 1000 + b"\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 431")
        assert httpx.get(running.endpoints.base + "/health", timeout=WAIT).status_code == 200
        # A head with bare LF line ends is measured to its own end, not with its body.
        answer = raw_request(
            port,
            b"POST /invoke HTTP/1.1\nHost: localhost\nContent-Length: 12000\nConnection: close\n\n"
            + b"x" * 12_000,
        )
        assert not answer.startswith(b"HTTP/1.1 431"), answer[:80]


def test_a_text_frame_that_is_not_utf8_closes_1007_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(url: str) -> int:
        async with ws_connect(url) as ws:
            # websockets validates what it sends; the protocol object sends the bytes as they are.
            ws.protocol.send_text(b"\xff\xfe not utf-8")
            ws.send_data()
            return await closed_code(ws)

    caplog.set_level(logging.INFO)
    with gateway(echo) as running:
        assert asyncio.run(scenario(running.endpoints.ws_url)) == 1007
    lines = [r for r in caplog.records if "UTF-8" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's bad frame"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (masked, as RFC 6455 requires of clients), payload under 126 bytes."""
    mask = os.urandom(4)
    return (
        bytes([0x80 | opcode, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


def test_a_bad_text_frame_with_the_clients_close_in_the_same_read(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with gateway(echo) as running:
        with socket.create_connection(("127.0.0.1", running.endpoints.port), timeout=WAIT) as sock:
            sock.sendall(handshake())
            assert sock.recv(4096).startswith(b"HTTP/1.1 101")
            # One send of both frames: the server reads the close with the bad message.
            sock.sendall(masked_frame(0x1, b"\xff") + masked_frame(0x8, (1000).to_bytes(2, "big")))
            answer = sock.recv(4096)
        assert answer[:1] == b"\x88", answer  # the server's close frame came back
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in caplog.records if "UTF-8" in r.getMessage()] != []


# ---------------------------------------------------------------------------------- serve flags


def test_env_files_read_dotenv_lines(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# secrets for local runs\n"
        "export AUTH_HS256_SECRET='s3cr3t value'\n"
        'GREETING="two\\nlines"\n'
        "EMPTY=\n"
        "PLAIN=abc # a comment\n"
        'QUOTED="abc" # a comment after quotes\n'
        "TABBED=abc\t# a comment after a tab\n"
        'WINDOWS="C:\\\\new"\n'
        'HASH="a # b"\n'
        "\n",
        encoding="utf-8-sig",  # with a byte-order mark, as Windows editors write
    )
    assert read_env_file(path) == {
        "AUTH_HS256_SECRET": "s3cr3t value",
        "GREETING": "two\nlines",
        "EMPTY": "",
        "PLAIN": "abc",
        "QUOTED": "abc",
        "TABBED": "abc",
        "WINDOWS": "C:\\new",
        "HASH": "a # b",
    }
    path.write_text("GOOD=1\nthis is not a pair\n", encoding="utf-8")
    with pytest.raises(EnvFileError, match="line 2: expected KEY=VALUE"):
        read_env_file(path)
    with pytest.raises(EnvFileError, match="cannot read it"):
        read_env_file(tmp_path / "missing.env")


def test_the_banner_masks_credential_values() -> None:
    assert shown("AUTH_HS256_SECRET", "hunter2") == f"AUTH_HS256_SECRET={MASK}"
    assert shown("OPENAI_API_KEY", "sk-123") == f"OPENAI_API_KEY={MASK}"
    assert shown("AWS_SESSION_TOKEN", "tok") == f"AWS_SESSION_TOKEN={MASK}"
    assert shown("MODEL_PROVIDER", "ollama") == "MODEL_PROVIDER=ollama"
    assert shown("KNOWLEDGE_BASE_ID", "") == "KNOWLEDGE_BASE_ID=''"
    assert shown("DB_PASS", "x") == f"DB_PASS={MASK}"
    assert shown("AUTH_HS256_KEY", "x") == f"AUTH_HS256_KEY={MASK}"
    assert shown("DATABASE_URL", "postgres://app:hunter2@db/x") == f"DATABASE_URL=postgres://app:{MASK}@db/x"
    assert shown("MANAGEMENT", "http://127.0.0.1:3001/x") == "MANAGEMENT=http://127.0.0.1:3001/x"


def test_a_non_loopback_host_is_warned_about() -> None:
    assert exposure_warning("127.0.0.1") is None
    assert exposure_warning("localhost") is None
    warning = exposure_warning("0.0.0.0")
    assert warning is not None
    assert "every network" in warning and "@connections" in warning and "Lambda API" in warning
    assert "192.168.1.20" in (exposure_warning("192.168.1.20") or "")


def test_serve_refuses_an_unreadable_env_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.env").write_text("not a pair\n", encoding="utf-8")
    assert serve_main(["--env-file", str(tmp_path / "bad.env"), "--port", "0"]) == 2
    assert "bad.env, line 1: expected KEY=VALUE" in capsys.readouterr().err
    assert "AUTH_HS256_SECRET" not in os.environ


# ---------------------------------------------------------------------------------- closing


def test_a_deleted_connection_whose_client_stopped_reading_is_gone_and_ends() -> None:
    disconnects: list[dict[str, Any]] = []

    def record(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        if event["requestContext"]["eventType"] == "DISCONNECT":
            disconnects.append(event)
        return {"statusCode": 200}

    with gateway(record, client_buffer_bytes=64 * 1024 * 1024) as running:
        with socket.create_connection(("127.0.0.1", running.endpoints.port), timeout=WAIT) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(handshake())
            assert sock.recv(4096).startswith(b"HTTP/1.1 101")
            connection_id = running.gateway.stats()["connections"][-1]["connectionId"]
            mgmt = management(running)
            for _ in range(120):  # ~14 MB the client never reads: the close frame cannot be written
                mgmt.post_to_connection(ConnectionId=connection_id, Data=b"x" * 120_000)
            mgmt.delete_connection(ConnectionId=connection_id)
            # Once deleted it is gone to @connections at once, even before the close is written.
            with pytest.raises(mgmt.exceptions.GoneException):
                mgmt.post_to_connection(ConnectionId=connection_id, Data=b"late")
            with pytest.raises(mgmt.exceptions.GoneException):
                mgmt.get_connection(ConnectionId=connection_id)
            # The close frame cannot be written: after its wait the gateway drops the connection.
            deadline = time.monotonic() + 3 * WAIT
            while not disconnects and time.monotonic() < deadline:
                time.sleep(0.1)
        assert [e["requestContext"]["disconnectStatusCode"] for e in disconnects] == [1000]
        connection = next(
            c for c in running.gateway.stats()["connections"] if c["connectionId"] == connection_id
        )
        assert connection["state"] == "closed"
        assert connection["postsAfterClose"] == 1


def test_a_client_that_leaves_during_a_successful_connect_gets_a_disconnect() -> None:
    events: list[tuple[str, int | None]] = []
    connect_started = threading.Event()

    def slow_connect(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        context = event["requestContext"]
        if context["eventType"] == "CONNECT":
            connect_started.set()
            time.sleep(1.0)  # the client gives up meanwhile
        events.append((context["eventType"], context.get("disconnectStatusCode")))
        return {"statusCode": 200}

    with gateway(slow_connect) as running:
        with socket.create_connection(("127.0.0.1", running.endpoints.port), timeout=WAIT) as sock:
            sock.sendall(handshake())
            assert connect_started.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while len(events) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert events == [("CONNECT", None), ("DISCONNECT", 1006)]
        assert running.gateway.stats()["connections"][-1]["state"] == "closed"


def test_a_connect_past_the_integration_timeout_is_refused_504() -> None:
    def slow_connect(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        if event["requestContext"]["eventType"] == "CONNECT":
            time.sleep(1.0)
        return {"statusCode": 200}

    with gateway(slow_connect, connect_timeout=0.2) as running:
        answer = raw_request(running.endpoints.port, handshake())
        assert answer.startswith(b"HTTP/1.1 504"), answer[:80]
        assert b"Endpoint request timed out" in answer
        stats = running.gateway.stats()
        assert stats["integration_timeouts"] == 1 and stats["connections_open"] == 0
