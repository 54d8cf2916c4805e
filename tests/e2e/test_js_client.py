"""The JavaScript client (``clients/js/selador.js``) in Node against real ``selador serve`` gateways.

The tests themselves are Node's (``clients/js/test/*.test.js``, ``node --test``); this wrapper
starts the gateways they talk to, an anonymous one and an ``AUTH_MODE=jwt`` one, both streaming
slowly so that a connection can be dropped in the middle of an answer, and passes their URLs in
the environment. Node fails, this fails, with Node's report.

Needs Node >= 20 and ``npm ci`` in ``clients/js`` (for the ``ws`` package): ``make install`` does
both checks and the install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, SLOW_STREAM, GatewayProcess, start_gateway
from .test_runs_e2e import SECRET, user_token

pytestmark = pytest.mark.e2e

JS = REPO / "clients" / "js"
NODE_TESTS = sorted((JS / "test").glob("*.test.js"))
RUN_TIMEOUT_S = 400


def _defined_tests() -> int:
    """How many top-level ``test(...)`` calls the files hold: all of them must run and pass."""
    return sum(len(re.findall(r"^test\(", path.read_text(), re.MULTILINE)) for path in NODE_TESTS)


def _node() -> str:
    """The ``node`` to run, checked for version 20 or later and the installed ``ws`` package."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node >= 20 is needed for the JavaScript client's tests: install Node.js 20, then make install"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < 20:
        pytest.fail(f"node >= 20 is needed for the JavaScript client's tests, found {version}")
    if not (JS / "node_modules" / "ws" / "package.json").is_file():
        pytest.fail("clients/js/node_modules has no ws package: run make install (npm ci in clients/js)")
    return node


@pytest.fixture(scope="module")
def gateways() -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """The anonymous gateway and the ``AUTH_MODE=jwt`` one, both with slow, finely streamed answers."""
    with (
        start_gateway(*SLOW_STREAM) as anonymous,
        start_gateway(
            *SLOW_STREAM, "--env", "AUTH_MODE=jwt", "--env", f"AUTH_HS256_SECRET={SECRET}"
        ) as secured,
    ):
        yield anonymous, secured


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_the_javascript_client_in_node(gateways: tuple[GatewayProcess, GatewayProcess]) -> None:
    """``node --test`` over every ``clients/js/test/*.test.js`` passes, and all of them ran."""
    node = _node()
    anonymous, secured = gateways
    endpoints = anonymous.endpoints
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {
        "SELADOR_WS_URL": endpoints.ws_url,
        "SELADOR_HTTP_URL": endpoints.http_url,
        "SELADOR_MANAGEMENT_URL": endpoints.management_endpoint,
        "SELADOR_STATS_URL": endpoints.base + "/_selador/stats",
        "SELADOR_JWT_WS_URL": secured.endpoints.ws_url,
        "SELADOR_JWT": user_token("js-client-tests"),
    }
    command = [
        node,
        "--test",
        f"--test-concurrency={len(NODE_TESTS)}",
        "--test-force-exit",
        "--test-reporter=spec",
    ]
    command += map(str, NODE_TESTS)
    try:
        done = subprocess.run(command, cwd=JS, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"node --test did not finish in {RUN_TIMEOUT_S} s:\n{_text(exc.stdout)}{_text(exc.stderr)}"
        )
    report = done.stdout + done.stderr
    assert done.returncode == 0, f"node --test failed ({done.returncode}):\n{report}"
    # The spec reporter's summary lines start with U+2139 ("i", information source).
    passed = re.search(r"^\u2139 pass (\d+)$", report, re.MULTILINE)
    assert passed is not None, f"no summary in node's report:\n{report}"
    expected = _defined_tests()
    assert int(passed.group(1)) == expected, f"expected all {expected} Node tests to pass:\n{report}"
    assert re.search(r"^\u2139 (fail|cancelled|skipped|todo) [1-9]", report, re.MULTILINE) is None, report


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def test_the_node_tests_are_found() -> None:
    """The wrapper finds the test files (a moved directory must not pass as "no tests")."""
    names = {Path(p).name for p in NODE_TESTS}
    assert {"stream.test.js", "resume.test.js", "cancel.test.js", "sessions.test.js"} <= names, names
    assert _defined_tests() >= 20
