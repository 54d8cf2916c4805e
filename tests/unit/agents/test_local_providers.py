"""MODEL_PROVIDER=ollama / openai end to end, against small servers speaking each real wire protocol.

Each fake is a plain HTTP server on 127.0.0.1 (port 0) that answers the way the real server does,
checked against the official API documentation and against what the installed client libraries
send and parse:

- Ollama, ``POST /api/chat`` (docs/api.md, "Chat request (Streaming with tools)"): a stream of
  newline-delimited JSON objects (``application/x-ndjson``, chunked). A tool call arrives whole in
  one ``message.tool_calls`` chunk with ``done: false``; the last object has ``done: true``,
  ``done_reason`` and the counters (``prompt_eval_count``, ``eval_count``, durations in ns). Tool
  results come back as ``{"role": "tool", "content": …}`` messages. Errors: a status with
  ``{"error": "…"}`` (404 for a model that is not pulled).
- OpenAI-compatible, ``POST /v1/chat/completions`` with ``stream: true`` and
  ``stream_options.include_usage``: Server-Sent Events, one ``data: {chat.completion.chunk}`` each,
  ``choices[0].delta.tool_calls`` fragments keyed by ``index`` (the first carries ``id``, ``type``
  and ``function.name`` with empty ``arguments``, the next ones pieces of the arguments JSON), a
  chunk with ``finish_reason: "tool_calls"``, a usage chunk with ``choices: []`` (every other chunk
  has ``usage: null``), then ``data: [DONE]``. Tool results come back as ``{"role": "tool",
  "tool_call_id": …, "content": …}``. Errors: a status with ``{"error": {"message", "type", …}}``.

On the first turn each fake asks for ``zoning_standards`` with ``{"zone": "LR2"}``; on the turn that
carries the tool result it answers with the maximum height read from that result, so the answer
can only contain the figure if the tool really ran. The real orchestrator runs the query
(``run_query`` with the real model factory and the bundled knowledge base).

``tests/e2e/test_local_providers_e2e.py`` reuses these fakes through the local gateway.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx
import ollama
import openai
import pytest

from selador.agents import orchestrator as orchestrator_module
from selador.agents.models import OPENAI_NO_API_KEY, ModelProviderNotInstalledError, build_model
from selador.agents.orchestrator import classify_error, run_query
from selador.agents.specs import RAG_SPEC
from selador.protocol import ErrorFrame, MessageFrame, QueryRequest, ResultFrame, StatusFrame
from selador.settings import Settings
from selador.sink import CollectingSink

OLLAMA_MODEL = "qwen2.5:7b-instruct"
OPENAI_MODEL = "qwen2.5-7b-instruct-q4_k_m.gguf"
SECRET_DETAIL = "CUDA error at /home/builder/ggml-cuda.cu:70 (device 0, 23.6 GiB in use)"
"""What a failing server says; it belongs in the logs, never in a frame."""

QUESTION = "How tall can a building be in an LR2 zone?"
TOOL_ARGUMENTS = {"zone": "LR2"}
FIGURE = re.compile(r"Maximum height: (\d+ ft)")
# Token counts the fakes report per turn: (prompt, completion).
OLLAMA_USAGE = ((211, 23), (402, 31))
OPENAI_USAGE = ((198, 21), (377, 29))


@pytest.fixture(autouse=True)
def _fresh_orchestrator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The providers' own variables would leak into Settings() and into the client libraries.
    for name in ("OLLAMA_HOST", "OLLAMA_MODEL", "OLLAMA_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    orchestrator_module.get_orchestrator.cache_clear()
    yield
    orchestrator_module.get_orchestrator.cache_clear()


# ----------------------------------------------------------------------------------- fake servers


@dataclass
class Seen:
    """One request a fake received."""

    path: str
    headers: dict[str, str]
    body: Any


def answer_from(tool_result: str) -> list[str]:
    """The answer a model would give after reading the tool result, in streamed pieces."""
    match = FIGURE.search(tool_result)
    figure = match.group(1) if match else "(no figure in the tool result)"
    text = f"In an LR2 zone a building may be up to {figure} tall [1].\n\nSources:\n[1] Seattle zoning table"
    return re.findall(r"\S+\s*", text)


@dataclass
class FakeServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and lets a subclass answer them.

    Attributes:
        fail_with: Answer every request with this HTTP status and the provider's error body.
        models: Model names the server knows; others get the provider's "not found" answer.
        requests: Every request received, in order.
        violations: What broke the protocol in a request (answered with a 400, as a server would).
    """

    fail_with: int | None = None
    models: tuple[str, ...] = ()
    requests: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @contextmanager
    def running(self) -> Iterator[Self]:
        """Serve in a thread until the block ends."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and chunked responses, as the real servers

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw) if raw else None
                owner.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                owner.handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(10)

    def handle(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        raise NotImplementedError

    def check_tools(self, body: dict[str, Any]) -> None:
        """Both APIs take ``tools`` as ``[{"type": "function", "function": {name, …, parameters}}]``."""
        for tool in body.get("tools") or []:
            function = tool.get("function") or {}
            if tool.get("type") != "function" or not function.get("name"):
                self.violations.append(f"malformed tool: {tool}")
            elif function.get("parameters", {}).get("type") != "object":
                self.violations.append(f"tool parameters are not a JSON schema object: {tool}")

    @staticmethod
    def send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def send_stream(handler: BaseHTTPRequestHandler, content_type: str, parts: Iterable[bytes]) -> None:
        """A 200 with a chunked body, each part flushed on its own as a server generates it."""
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for part in parts:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


@dataclass
class FakeOllama(FakeServer):
    """Ollama's ``POST /api/chat``, streaming NDJSON."""

    models: tuple[str, ...] = (OLLAMA_MODEL,)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        if handler.path != "/api/chat":
            self.send_json(handler, 404, {"error": "404 page not found"})
            return
        if self.fail_with is not None:
            self.send_json(
                handler, self.fail_with, {"error": f"llama runner process has terminated: {SECRET_DETAIL}"}
            )
            return
        if body.get("model") not in self.models:
            model = body.get("model")
            self.send_json(handler, 404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        problems = len(self.violations)
        self.check_chat(body)
        if len(self.violations) > problems:
            self.send_json(handler, 400, {"error": self.violations[-1]})
            return
        tool_results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        turn = 1 if tool_results else 0
        if not tool_results:
            messages = [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "zoning_standards", "arguments": TOOL_ARGUMENTS}}],
                }
            ]
        else:
            messages = [{"role": "assistant", "content": piece} for piece in answer_from(tool_results[-1])]
        prompt_tokens, completion_tokens = OLLAMA_USAGE[turn]
        objects = [self._chunk(body["model"], message, done=False) for message in messages]
        objects.append(
            self._chunk(body["model"], {"role": "assistant", "content": ""}, done=True)
            | {
                "done_reason": "stop",
                "total_duration": 182_242_375,
                "load_duration": 41_295_167,
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": 24_573_166,
                "eval_count": completion_tokens,
                "eval_duration": 115_959_084,
            }
        )
        self.send_stream(handler, "application/x-ndjson", (json.dumps(o).encode() + b"\n" for o in objects))

    def check_chat(self, body: dict[str, Any]) -> None:
        if body.get("stream") is not True:
            self.violations.append(f"stream is {body.get('stream')!r}, not true")
        self.check_tools(body)
        for message in body.get("messages") or []:
            role = message.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                self.violations.append(f"unknown role {role!r}")
            for call in message.get("tool_calls") or []:
                if not isinstance(call.get("function", {}).get("arguments"), dict):
                    self.violations.append(f"tool call arguments must be an object: {call}")
            if role == "tool" and not isinstance(message.get("content"), str):
                self.violations.append(f"tool message without text content: {message}")
        if not body.get("messages"):
            self.violations.append("no messages")

    @staticmethod
    def _chunk(model: str, message: dict[str, Any], *, done: bool) -> dict[str, Any]:
        return {"model": model, "created_at": "2025-07-07T20:22:19.184789Z", "message": message, "done": done}


TOOL_CALL_ID = "call_9Xk2zoningLR2"


@dataclass
class FakeOpenAI(FakeServer):
    """An OpenAI-compatible ``POST /v1/chat/completions``, streaming Server-Sent Events."""

    models: tuple[str, ...] = (OPENAI_MODEL,)
    retry_after_ms: str = "10"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def handle(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        if handler.path != "/v1/chat/completions":
            self.send_json(handler, 404, {"error": {"message": "Not found", "type": "not_found_error"}})
            return
        if self.fail_with is not None:
            error = {"message": SECRET_DETAIL, "type": "server_error", "param": None, "code": None}
            data = json.dumps({"error": error}).encode()
            handler.send_response(self.fail_with)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("retry-after-ms", self.retry_after_ms)  # the SDK's one retry, soon
            handler.end_headers()
            handler.wfile.write(data)
            return
        if body.get("model") not in self.models:
            message = f"The model `{body.get('model')}` does not exist"
            error = {
                "message": message,
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
            self.send_json(handler, 404, {"error": error})
            return
        problems = len(self.violations)
        self.check_chat(body)
        if len(self.violations) > problems:
            error = {
                "message": self.violations[-1],
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            self.send_json(handler, 400, {"error": error})
            return
        tool_results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        turn = 1 if tool_results else 0
        if not tool_results:
            arguments = json.dumps(TOOL_ARGUMENTS)
            split = arguments.index(":") + 1  # the arguments JSON arrives in pieces
            deltas: list[dict[str, Any]] = [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": TOOL_CALL_ID,
                            "type": "function",
                            "function": {"name": "zoning_standards", "arguments": ""},
                        }
                    ],
                    "refusal": None,
                },
                {"tool_calls": [{"index": 0, "function": {"arguments": arguments[:split]}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": arguments[split:]}}]},
            ]
            finish = "tool_calls"
        else:
            pieces = answer_from(tool_results[-1])
            deltas = [{"role": "assistant", "content": "", "refusal": None}]
            deltas += [{"content": piece} for piece in pieces]
            finish = "stop"
        prompt_tokens, completion_tokens = OPENAI_USAGE[turn]
        chunks = [
            self._chunk(body["model"], [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}])
            for d in deltas
        ]
        chunks.append(
            self._chunk(body["model"], [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        chunks.append(self._chunk(body["model"], [], usage=usage))
        events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
        self.send_stream(handler, "text/event-stream; charset=utf-8", [*events, b"data: [DONE]\n\n"])

    def check_chat(self, body: dict[str, Any]) -> None:
        if body.get("stream") is not True:
            self.violations.append(f"stream is {body.get('stream')!r}, not true")
        if body.get("stream_options") != {"include_usage": True}:
            self.violations.append(f"stream_options is {body.get('stream_options')!r}: no usage chunk")
        self.check_tools(body)
        call_ids: set[str] = set()
        for message in body.get("messages") or []:
            role = message.get("role")
            if role not in ("system", "developer", "user", "assistant", "tool"):
                self.violations.append(f"unknown role {role!r}")
            for call in message.get("tool_calls") or []:
                call_ids.add(call.get("id"))
                if call.get("type") != "function" or not isinstance(call["function"].get("arguments"), str):
                    self.violations.append(f"tool call arguments must be a JSON string: {call}")
            if role == "tool" and message.get("tool_call_id") not in call_ids:
                self.violations.append(f"tool message answers no earlier tool call: {message}")
        if not body.get("messages"):
            self.violations.append("no messages")

    @staticmethod
    def _chunk(
        model: str, choices: list[dict[str, Any]], usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        return {
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion.chunk",
            "created": 1741569952,
            "model": model,
            "system_fingerprint": "fp_b8bc95a0ac",
            "choices": choices,
            "usage": usage,
        }


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ollama_settings(host: str, **extra: Any) -> Settings:
    return Settings(
        model_provider="ollama", ollama_host=host, ollama_model=OLLAMA_MODEL, model_max_attempts=1, **extra
    )


def openai_settings(base_url: str, **extra: Any) -> Settings:
    return Settings(
        model_provider="openai",
        openai_base_url=base_url,
        openai_model=OPENAI_MODEL,
        model_max_attempts=1,
        **extra,
    )


def ask(settings: Settings, request_id: str) -> tuple[CollectingSink, Any]:
    sink = CollectingSink(request_id)
    data = run_query(
        QueryRequest(question=QUESTION, query_type="zoning", request_id=request_id), sink, settings=settings
    )
    return sink, data


def assert_answered_with_the_tool(
    sink: CollectingSink, data: Any, *, model: str, usage: tuple[tuple[int, int], ...]
) -> str:
    """The frames of a run that called ``zoning_standards`` once and quoted its figure."""
    frames = sink.frames
    types = [f.type for f in frames]
    assert types[:3] == ["status", "status", "status"], types
    assert types[-2:] == ["message", "result"], types
    assert set(types[3:-2]) == {"delta"}, types
    routed, tool, composing = frames[:3]
    assert isinstance(routed, StatusFrame) and (routed.stage, routed.agent) == ("routed", "rag")
    assert isinstance(tool, StatusFrame) and (tool.stage, tool.tool, tool.step) == (
        "tool",
        "zoning_standards",
        1,
    )
    assert isinstance(composing, StatusFrame) and composing.stage == "composing"
    assert sum(isinstance(f, ResultFrame | ErrorFrame) for f in frames) == 1
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))

    text = "".join(f.content for f in frames if f.type == "delta")  # type: ignore[attr-defined]
    assert "40 ft" in text  # read from the tool result: the tool really ran
    message = frames[-2]
    assert isinstance(message, MessageFrame) and message.content == text
    result = frames[-1]
    assert isinstance(result, ResultFrame) and result.data == data
    assert data.success is True
    assert data.content == text
    assert (data.agent, data.query_type, data.stop_reason) == ("rag", "zoning", "end_turn")
    assert (data.tools_used, data.tool_calls) == (1, {"zoning_standards": 1})
    assert data.tools_available == len(RAG_SPEC.tool_names)
    prompt = sum(p for p, _ in usage)
    completion = sum(c for _, c in usage)
    assert (data.usage.input_tokens, data.usage.output_tokens, data.usage.total_tokens) == (
        prompt,
        completion,
        prompt + completion,
    )
    assert data.model == model
    assert [s.title for s in data.sources] == ["Seattle zoning standards (bundled summary table)"]
    return text


def assert_one_safe_error(sink: CollectingSink, code: str, text: str) -> None:
    assert [f.type for f in sink.frames] == ["status", "error"]
    error = sink.frames[-1]
    assert isinstance(error, ErrorFrame)
    assert (error.code, error.error) == (code, text)
    wire = "".join(f.to_json() for f in sink.frames)
    assert SECRET_DETAIL not in wire
    assert "Traceback" not in wire


def tool_names(request: Seen) -> set[str]:
    return {tool["function"]["name"] for tool in request.body["tools"]}


def zoning_tool(request: Seen) -> dict[str, Any]:
    [spec] = [t for t in request.body["tools"] if t["function"]["name"] == "zoning_standards"]
    return dict(spec)


# ------------------------------------------------------------------------------------------ Ollama


def test_ollama_answers_with_a_tool_call_end_to_end() -> None:
    with FakeOllama().running() as server:
        sink, data = ask(ollama_settings(server.url), "req-ollama")

    assert_answered_with_the_tool(sink, data, model=f"ollama:{OLLAMA_MODEL}", usage=OLLAMA_USAGE)
    assert server.violations == []
    assert [r.path for r in server.requests] == ["/api/chat", "/api/chat"]
    first, second = (r.body for r in server.requests)
    # The tool specs went out with every turn, in Ollama's function format.
    for request in server.requests:
        assert tool_names(request) == set(RAG_SPEC.tool_names)
        zoning = zoning_tool(request)
        assert zoning["type"] == "function"
        assert zoning["function"]["parameters"]["required"] == ["zone"]
        assert zoning["function"]["parameters"]["properties"]["zone"]["type"] == "string"
    assert (first["model"], first["stream"], first["options"]["num_predict"]) == (OLLAMA_MODEL, True, 4096)
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][1] == {"role": "user", "content": QUESTION}
    # The second turn carries the call and the tool's real output.
    call = [m for m in second["messages"] if m.get("tool_calls")]
    assert call == [
        {
            "role": "assistant",
            "tool_calls": [{"function": {"name": "zoning_standards", "arguments": TOOL_ARGUMENTS}}],
        }
    ]
    [tool_message] = [m for m in second["messages"] if m["role"] == "tool"]
    assert "Zone LR2 — Lowrise 2" in tool_message["content"]
    assert "Maximum height: 40 ft" in tool_message["content"]


def test_ollama_runs_leave_no_connection_open() -> None:
    # Strands opens an ollama client per request and never closes it; each run has its own event
    # loop, so a pooled keep-alive connection would outlive its loop (ResourceWarning at best).
    with FakeOllama().running() as server, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for n in range(3):
            orchestrator_module.get_orchestrator.cache_clear()
            _, data = ask(ollama_settings(server.url), f"req-ollama-{n}")
            assert data is not None and data.success
        gc.collect()

    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [leak for leak in leaks if str(server.port) in leak or "transport" in leak], leaks


def test_ollama_server_error_is_one_safe_error_frame() -> None:
    with FakeOllama(fail_with=500).running() as server:
        sink, data = ask(ollama_settings(server.url), "req-ollama-500")

    assert data is None
    assert_one_safe_error(sink, "model_error", "The model service returned an error")
    assert len(server.requests) == 1  # the ollama client does not retry


def test_ollama_model_not_pulled_is_model_not_found() -> None:
    with FakeOllama(models=("llama3.2:latest",)).running() as server:
        sink, _ = ask(ollama_settings(server.url), "req-ollama-404")

    assert_one_safe_error(sink, "model_error", "The configured model was not found")


def test_ollama_unreachable_is_one_safe_error_frame() -> None:
    sink, data = ask(ollama_settings(f"http://127.0.0.1:{closed_port()}"), "req-ollama-down")

    assert data is None
    assert_one_safe_error(sink, "model_error", "The model service could not be reached; please try again")


# ---------------------------------------------------------------------------- OpenAI-compatible


def test_openai_answers_with_a_tool_call_split_across_chunks_end_to_end() -> None:
    with FakeOpenAI().running() as server:
        sink, data = ask(openai_settings(server.base_url), "req-openai")

    assert_answered_with_the_tool(sink, data, model=f"openai:{OPENAI_MODEL}", usage=OPENAI_USAGE)
    assert server.violations == []
    assert [r.path for r in server.requests] == ["/v1/chat/completions", "/v1/chat/completions"]
    first, second = (r.body for r in server.requests)
    for request in server.requests:
        assert tool_names(request) == set(RAG_SPEC.tool_names)
        zoning = zoning_tool(request)
        assert zoning["type"] == "function"
        assert zoning["function"]["parameters"]["required"] == ["zone"]
        # No key configured: the client still needs one, and servers without --api-key ignore it.
        assert request.headers["authorization"] == f"Bearer {OPENAI_NO_API_KEY}"
        assert request.headers["content-type"] == "application/json"
    assert (first["model"], first["max_tokens"]) == (OPENAI_MODEL, 4096)
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][1] == {"role": "user", "content": [{"type": "text", "text": QUESTION}]}
    # The second request carries the reassembled call and the tool result under its call id.
    [call] = [m for m in second["messages"] if m.get("tool_calls")]
    assert call["role"] == "assistant"
    assert call["tool_calls"] == [
        {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": "zoning_standards", "arguments": json.dumps(TOOL_ARGUMENTS)},
        }
    ]
    [tool_message] = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_message["tool_call_id"] == TOOL_CALL_ID
    assert "Maximum height: 40 ft" in tool_message["content"]


def test_openai_api_key_is_sent_as_a_bearer_token_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-local-3f9a1c7e5b2d4a6f8e0c"
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI().running() as server:
        settings = openai_settings(server.base_url, openai_api_key=key)
        sink, data = ask(settings, "req-openai-key")

    assert data is not None and data.success
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {key}"] * 2
    assert key not in repr(settings)
    assert key not in "".join(f.to_json() for f in sink.frames)
    assert key not in caplog.text
    assert all(key not in str(record.args) for record in caplog.records)


def test_openai_server_error_is_one_safe_error_frame_after_one_retry() -> None:
    with FakeOpenAI(fail_with=500).running() as server:
        sink, data = ask(openai_settings(server.base_url), "req-openai-500")

    assert data is None
    assert_one_safe_error(sink, "model_error", "The model service returned an error")
    assert len(server.requests) == 2  # the client's single retry, no more


def test_openai_rate_limit_is_throttled() -> None:
    with FakeOpenAI(fail_with=429).running() as server:
        sink, _ = ask(openai_settings(server.base_url), "req-openai-429")

    assert_one_safe_error(
        sink, "throttled", "The model service is busy right now; please try again in a moment"
    )
    assert len(server.requests) == 2  # MODEL_MAX_ATTEMPTS=1: only the client's own retry


def test_openai_unknown_model_is_model_not_found() -> None:
    with FakeOpenAI(models=("another-model",)).running() as server:
        sink, _ = ask(openai_settings(server.base_url), "req-openai-404")

    assert_one_safe_error(sink, "model_error", "The configured model was not found")


def test_openai_unreachable_is_one_safe_error_frame() -> None:
    sink, data = ask(openai_settings(f"http://127.0.0.1:{closed_port()}/v1"), "req-openai-down")

    assert data is None
    assert_one_safe_error(sink, "model_error", "The model service could not be reached; please try again")


# ------------------------------------------------------------------------------ error mapping


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1:8080/v1/chat/completions")


def _openai_status(status: int) -> openai.APIStatusError:
    response = httpx.Response(status, request=_request(), json={"error": {"message": SECRET_DETAIL}})
    return openai.APIStatusError(SECRET_DETAIL, response=response, body=None)


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (ollama.ResponseError(SECRET_DETAIL, 404), "model_error", "The configured model was not found"),
        (ollama.ResponseError(SECRET_DETAIL, 400), "model_error", "The model rejected the request"),
        (
            ollama.ResponseError(SECRET_DETAIL, 503),
            "model_error",
            "The model service is temporarily unavailable; please try again",
        ),
        (ollama.ResponseError(SECRET_DETAIL), "model_error", "The model service returned an error"),
        (_openai_status(401), "model_error", "This service is not allowed to use the configured model"),
        (_openai_status(403), "model_error", "This service is not allowed to use the configured model"),
        (_openai_status(422), "model_error", "The model rejected the request"),
        (_openai_status(500), "model_error", "The model service returned an error"),
        (
            _openai_status(429),
            "throttled",
            "The model service is busy right now; please try again in a moment",
        ),
        (
            openai.APITimeoutError(request=_request()),
            "model_error",
            "The model service could not be reached; please try again",
        ),
        (
            openai.APIError(SECRET_DETAIL, _request(), body=None),
            "model_error",
            "The model service returned an error",
        ),
        (
            httpx.ReadTimeout(SECRET_DETAIL),
            "model_error",
            "The model service could not be reached; please try again",
        ),
        (httpx.RemoteProtocolError(SECRET_DETAIL), "model_error", "The model service returned an error"),
        (
            ModelProviderNotInstalledError("ollama", "ollama"),
            "model_error",
            "The configured model provider is not installed on this server",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_classify_error_maps_local_provider_errors(exc: BaseException, code: str, text: str) -> None:
    wrapped = RuntimeError("event loop failed")
    wrapped.__cause__ = exc

    assert classify_error(exc) == (code, text)
    assert classify_error(wrapped) == (code, text)


# ------------------------------------------------------------------------- missing optional extra


@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_a_missing_extra_is_a_clear_error_and_one_error_frame(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the extra were not installed: importing the client library fails.
    monkeypatch.setitem(sys.modules, provider, None)
    monkeypatch.delitem(sys.modules, f"strands.models.{provider}", raising=False)
    settings = (
        ollama_settings("http://127.0.0.1:1")
        if provider == "ollama"
        else openai_settings("http://127.0.0.1:1/v1")
    )

    with pytest.raises(ModelProviderNotInstalledError) as caught:
        build_model(settings)
    assert f'pip install -e ".[{provider}]"' in str(caught.value)
    assert f"MODEL_PROVIDER={provider}" in str(caught.value)

    sink, data = ask(settings, f"req-{provider}-missing")
    assert data is None
    assert [f.type for f in sink.frames] == ["error"]
    error = sink.frames[0]
    assert isinstance(error, ErrorFrame)
    assert (error.code, error.error) == (
        "model_error",
        "The configured model provider is not installed on this server",
    )


def test_selador_imports_without_the_extras() -> None:
    """Nothing imports ollama or openai until a model of theirs is built (they are never deployed)."""
    script = """
import sys
sys.modules["ollama"] = None  # importing either now raises ImportError, as without the extras
sys.modules["openai"] = None
import selador.handler, selador.agents.orchestrator, selador.local.serve
from selador.agents.models import ModelProviderNotInstalledError, build_model
from selador.settings import Settings
try:
    build_model(Settings(model_provider="openai", openai_base_url="http://127.0.0.1:1/v1", openai_model="m"))
except ModelProviderNotInstalledError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install -e ".[openai]"' in done.stdout
    assert "Traceback" not in done.stderr
