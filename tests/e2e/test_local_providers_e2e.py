"""``selador serve`` with MODEL_PROVIDER=ollama / openai, against the fake servers of the unit tests.

The whole path a developer with a local model uses: the gateway's environment (``--env``), its
banner, the route handing the run to a background worker process, the model's HTTP calls from that
worker, and the frames on a real WebSocket. The fakes speak each provider's real wire protocol (see
``tests/unit/agents/test_local_providers.py``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from selador.protocol import parse_frame

from .conftest import REPO, _child_environment, collect_frames, invoke_message, start_gateway, ws_connect

pytestmark = pytest.mark.e2e

_PROVIDER_VARIABLES = ("OLLAMA_HOST", "OLLAMA_MODEL", "OLLAMA_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL")


def _load_fakes() -> ModuleType:
    # By path: tests/unit is not a package, and whether it is importable depends on what pytest
    # collected first.
    path = REPO / "tests" / "unit" / "agents" / "test_local_providers.py"
    name = "_selador_local_provider_fakes"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


fakes = _load_fakes()


@pytest.fixture(autouse=True)
def _no_provider_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The gateway's child inherits this environment: only what a test passes may configure it.
    for name in (*_PROVIDER_VARIABLES, "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    yield


def check_frames(frames: list[dict[str, Any]], request_id: str, model: str) -> dict[str, Any]:
    for frame in frames:
        parse_frame(json.dumps(frame))  # every frame is a valid protocol frame
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert [f["request_id"] for f in frames] == [request_id] * len(frames)
    statuses = [(f.get("stage"), f.get("tool")) for f in frames if f["type"] == "status"]
    assert statuses == [
        ("accepted", None),
        ("routed", None),
        ("tool", "zoning_standards"),
        ("composing", None),
    ]
    assert [f["type"] for f in frames if f["type"] in ("result", "error")] == ["result"]
    assert frames[-1]["type"] == "result"
    data: dict[str, Any] = frames[-1]["data"]
    text = "".join(f["content"] for f in frames if f["type"] == "delta")
    assert "40 ft" in text  # the figure the fake read from the zoning tool's output
    assert data["content"] == text
    assert [f["content"] for f in frames if f["type"] == "message"] == [text]
    assert data["success"] is True
    assert (data["tools_used"], data["tool_calls"]) == (1, {"zoning_standards": 1})
    assert data["model"] == model
    return data


async def test_ollama_through_the_local_gateway() -> None:
    rid = "e2e-ollama"
    with (
        fakes.FakeOllama().running() as server,
        start_gateway(
            "--env",
            "MODEL_PROVIDER=ollama",
            "--env",
            f"OLLAMA_HOST={server.url}",
            "--env",
            f"OLLAMA_MODEL={fakes.OLLAMA_MODEL}",
        ) as gateway,
    ):
        assert f"Model       Ollama {fakes.OLLAMA_MODEL} at {server.url}\n" in gateway.output
        async with ws_connect(gateway.endpoints.ws_url) as ws:
            await ws.send(invoke_message(fakes.QUESTION, rid, query_type="zoning"))
            frames = (await collect_frames(ws, {rid}))[rid]

    data = check_frames(frames, rid, f"ollama:{fakes.OLLAMA_MODEL}")
    prompt = sum(p for p, _ in fakes.OLLAMA_USAGE)
    completion = sum(c for _, c in fakes.OLLAMA_USAGE)
    assert (data["usage"]["input_tokens"], data["usage"]["output_tokens"]) == (prompt, completion)
    assert [r.path for r in server.requests] == ["/api/chat", "/api/chat"]
    assert any(m["role"] == "tool" for m in server.requests[1].body["messages"])


async def test_openai_compatible_server_through_the_local_gateway() -> None:
    rid = "e2e-openai"
    key = "sk-e2e-5c1d9b7a3e"
    with (
        fakes.FakeOpenAI().running() as server,
        start_gateway(
            "--env",
            "MODEL_PROVIDER=openai",
            "--env",
            f"OPENAI_BASE_URL={server.base_url}",
            "--env",
            f"OPENAI_MODEL={fakes.OPENAI_MODEL}",
            # The key comes from the shell, not --env: the banner echoes every --env value.
            env={"OPENAI_API_KEY": key},
        ) as gateway,
    ):
        expected = f"Model       OpenAI-compatible {fakes.OPENAI_MODEL} at {server.base_url}\n"
        assert expected in gateway.output
        async with ws_connect(gateway.endpoints.ws_url) as ws:
            await ws.send(invoke_message(fakes.QUESTION, rid, query_type="zoning"))
            frames = (await collect_frames(ws, {rid}))[rid]
        output = gateway.output

    data = check_frames(frames, rid, f"openai:{fakes.OPENAI_MODEL}")
    prompt = sum(p for p, _ in fakes.OPENAI_USAGE)
    completion = sum(c for _, c in fakes.OPENAI_USAGE)
    assert (data["usage"]["input_tokens"], data["usage"]["output_tokens"]) == (prompt, completion)
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {key}"] * 2
    assert key not in output


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        (["MODEL_PROVIDER=ollama"], "OLLAMA_MODEL"),
        (["MODEL_PROVIDER=openai", "OPENAI_MODEL=m"], "OPENAI_BASE_URL"),
        (["MODEL_PROVIDER=openai", "OPENAI_BASE_URL=http://127.0.0.1:8080/v1"], "OPENAI_MODEL"),
    ],
)
def test_a_missing_provider_setting_stops_the_gateway_at_start(env: list[str], variable: str) -> None:
    args = [arg for pair in env for arg in ("--env", pair)]
    command = [
        sys.executable,
        "-m",
        "selador.local.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *args,
    ]
    done = subprocess.run(
        command,
        cwd=Path(REPO),
        env=_child_environment(None),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"needs {variable}" in done.stderr
    assert "Traceback" not in done.stderr
