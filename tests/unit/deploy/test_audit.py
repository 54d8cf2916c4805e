"""`make audit` (scripts/audit.py) never reports an audit that could not run as clean.

pip-audit alone, with no vulnerability database reachable, marks every package "not found",
prints "No known vulnerabilities found" and exits 0. The wrapper runs it with --strict and must
say NOT RUN (exit 2) then; with a database that answers (a fake OSV service on loopback) it says
clean (exit 0) or VULNERABLE (exit 1). pip-audit comes from the pinned tools venv (`make tools`,
a prerequisite of `make test` and `make unit`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TOOLS_PYTHON = ROOT / ".tools-venv" / "bin" / "python"
AUDIT = ROOT / "scripts" / "audit.py"
# Three hashed pins (hashes are not checked: --no-deps --disable-pip installs nothing).
LOCK = """\
pyjwt==2.10.0 \\
    --hash=sha256:{h}
boto3==1.44.8 \\
    --hash=sha256:{h}
pydantic==2.14.4 \\
    --hash=sha256:{h}
""".format(h="0" * 64)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    if not TOOLS_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail("no .tools-venv in CI: `make test` must install it (make tools)")
        pytest.skip("no .tools-venv: run `make tools`")


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(LOCK)
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeOSV(BaseHTTPRequestHandler):
    """Answers OSV's /v1/query: PyJWT 2.10.0 has CVE-2024-53861, nothing else has anything."""

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer: dict = {}
        if query["package"]["name"].lower() == "pyjwt" and query["version"] == "2.10.0":
            answer = {
                "vulns": [
                    {
                        "id": "GHSA-75c5-xw7c-p5pm",
                        "aliases": ["CVE-2024-53861"],
                        "summary": "Issuer field partial matches allowed",
                        "affected": [
                            {
                                "package": {"name": "pyjwt", "ecosystem": "PyPI"},
                                "ranges": [
                                    {
                                        "type": "ECOSYSTEM",
                                        "events": [{"introduced": "2.10.0"}, {"fixed": "2.10.1"}],
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def osv_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOSV)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()


def run_audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    environment.update(env or {})
    return subprocess.run(
        [str(TOOLS_PYTHON), str(AUDIT), "--timeout", "5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def assert_not_run(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "audit result: NOT RUN" in result.stdout
    assert "clean" not in result.stdout.lower().replace("not run", "")
    assert "No known vulnerabilities" not in result.stdout


def test_unreachable_osv_service_is_not_run(lock: Path) -> None:
    result = run_audit(
        "--service", "osv", "--osv-url", f"http://127.0.0.1:{closed_port()}/v1/query", str(lock)
    )
    assert_not_run(result)


def test_unreachable_pypi_is_not_run(lock: Path) -> None:
    # PyPI's JSON API behind a proxy that refuses every connection: the network is unreachable.
    proxy = f"http://127.0.0.1:{closed_port()}"
    result = run_audit(str(lock), env={"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": ""})
    assert_not_run(result)


def test_missing_lock_is_not_run(tmp_path: Path) -> None:
    assert_not_run(run_audit(str(tmp_path / "absent.txt")))


def test_a_database_that_answers_finds_the_vulnerability(lock: Path, osv_url: str) -> None:
    result = run_audit("--service", "osv", "--osv-url", osv_url, str(lock))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "audit result: VULNERABLE" in result.stdout
    assert "pyjwt 2.10.0 (" in result.stdout and "CVE-2024-53861" in result.stdout
    assert "fixed in 2.10.1" in result.stdout


def test_a_database_that_answers_can_say_clean(tmp_path: Path, osv_url: str) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(LOCK.replace("pyjwt==2.10.0", "pyjwt==2.10.1"))
    result = run_audit("--service", "osv", "--osv-url", osv_url, str(lock))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit clean" in result.stdout and "3 packages looked up" in result.stdout


def test_one_unreachable_lock_makes_the_whole_audit_not_run(lock: Path, osv_url: str, tmp_path: Path) -> None:
    result = run_audit("--service", "osv", "--osv-url", osv_url, str(lock), str(tmp_path / "absent.txt"))
    assert result.returncode == 2 and "audit result: NOT RUN" in result.stdout
