"""The real handler behind the local gateway, in this process, with an instrumented offline model.

The gateway (:mod:`selador.local.gateway`) runs the handler on its worker threads; its uvicorn
server runs on a thread of its own (``serve_in_thread``); the WebSocket client runs on the caller's
event loop. All of them share one process, so the model's first text and the client's first
``delta`` are timed with the same ``time.perf_counter()`` clock.

The handler's store is a real SQLite file in a temporary directory, as ``selador serve`` uses:
every run's record and every frame it sends are written there (the frame log of protocol 1.1),
so their cost is inside every measurement. Runs execute in the ``invoke`` route's own invocation
(``RUN_MODE=inline``): the asynchronous hand-off would add a Lambda ``Invoke`` before the agent
starts but nothing between the model's first text and the client, which is what is timed here.

The model is an :class:`~selador.agents.offline.OfflineResponder` subclass that records when it
yields its first text in each turn; it replaces ``build_model`` in the orchestrator module of this
process only (nothing in ``src/`` changes).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.common import STAGE, child_environment, temp_dir

WS_ROUTES = ("$connect", "$disconnect", "$default", "invoke", "resume", "cancel", "ping")
"""The template's WebSocket route keys (tests/unit/benchharness checks they still match)."""
HTTP_ROUTES = (
    ("POST", "/invoke"),
    ("POST", "/runs"),
    ("GET", "/runs/{request_id}"),
    ("DELETE", "/runs/{request_id}"),
    ("GET", "/sessions"),
    ("GET", "/sessions/{session_id}"),
    ("DELETE", "/sessions/{session_id}"),
    ("GET", "/health"),
)
"""The template's HTTP API routes (``GET /runs/{request_id}`` reads a run's status and log size)."""
QUESTION = "What are the zoning requirements for residential development in LR2?"
CONTEXT = "Looking at a property in Capitol Hill area"


def _timed_responder_class() -> type:
    from selador.agents.offline import OfflineResponder

    class TimedResponder(OfflineResponder):
        """Records ``perf_counter()`` at the first text each ``stream()`` yields.

        ``turn_latency_s`` pauses before each model turn, as a real model's time to first token
        does (Bedrock: hundreds of milliseconds). The offline responder has none, so its tool turn
        and its answer follow the request within ~10 ms, and its first text would queue behind the
        ``routed`` / ``tool`` status frames still being posted: a wait no real model produces.
        """

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.first_text: list[float] = []
            self.turn_latency_s = 0.0
            self._lock = threading.Lock()

        async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
            if self.turn_latency_s:
                await asyncio.sleep(self.turn_latency_s)
            seen = False
            async for event in super().stream(*args, **kwargs):
                if not seen and "text" in event.get("contentBlockDelta", {}).get("delta", {}):
                    seen = True
                    with self._lock:
                        self.first_text.append(time.perf_counter())
                yield event

    return TimedResponder


@dataclass
class Run:
    """One query as the client saw it."""

    sent: float
    frames: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def first_delta(self) -> float | None:
        """``perf_counter()`` when the first ``delta`` arrived."""
        return next(
            (t for t, f in zip(self.times, self.frames, strict=True) if f.get("type") == "delta"), None
        )

    @property
    def finished(self) -> float:
        """``perf_counter()`` when the terminal frame arrived."""
        return self.times[-1]

    @property
    def lost(self) -> int:
        """Missing ``seq`` numbers (and a missing terminal frame counts as one)."""
        seqs = [f["seq"] for f in self.frames if isinstance(f.get("seq"), int)]
        missing = (max(seqs) - len(set(seqs))) if seqs else 1
        terminal = bool(self.frames) and self.frames[-1].get("type") in ("result", "error")
        return missing + (0 if terminal else 1)

    @property
    def run_token(self) -> str | None:
        """The ``run_token`` of the ``accepted`` frame."""
        return next((f["run_token"] for f in self.frames if f.get("run_token")), None)


@dataclass
class Harness:
    """A running in-process gateway and its instrumented model."""

    ws_url: str
    model: Any
    http_url: str = ""

    async def run_status(self, request_id: str, token: str) -> dict[str, Any]:
        """``GET /runs/{request_id}`` with the run's token: its status and how many frames it logged."""
        import httpx

        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            response = await client.get(
                f"{self.http_url}/runs/{quote(request_id, safe='')}", headers={"X-Run-Token": token}
            )
        return {"http_status": response.status_code, **response.json()}

    async def ask(self, ws: Any, request_id: str, question: str = QUESTION) -> Run:
        """Send one ``invoke`` and read its frames until the terminal one."""
        message = json.dumps(
            {
                "action": "invoke",
                "question": question,
                "context": CONTEXT,
                "query_type": "zoning",
                "request_id": request_id,
            }
        )
        run = Run(sent=time.perf_counter())
        await ws.send(message)
        async with asyncio.timeout(300):
            while True:
                frame = json.loads(await ws.recv())
                now = time.perf_counter()
                if frame.get("request_id") != request_id:
                    continue
                run.frames.append(frame)
                run.times.append(now)
                if frame.get("type") in ("result", "error"):
                    return run


@contextmanager
def local_gateway(env: dict[str, str] | None = None) -> Iterator[Harness]:
    """Serve the real handler in this process; restore the environment afterwards.

    Args:
        env: Extra handler variables (``STREAM_FLUSH_MS``…); the defaults are the settings' own.

    Yields:
        The harness.
    """
    from selador.agents import orchestrator
    from selador.deps import reset_container
    from selador.handler import lambda_handler
    from selador.local.gateway import Gateway, GatewayOptions
    from selador.local.runtime import LambdaRuntime
    from selador.local.serve import serve_in_thread
    from selador.settings import get_settings

    saved = dict(os.environ)
    original_build = orchestrator.build_model
    responder_class = _timed_responder_class()
    holder: dict[str, Any] = {}

    def build_model(settings: Any, *args: Any, **kwargs: Any) -> Any:
        holder["model"] = responder_class(token_delay_ms=settings.local_model_token_delay_ms)
        return holder["model"]

    runtime = LambdaRuntime(
        lambda_handler, function_name="MainLambda", timeout=900, memory_size=1024, concurrency=64
    )
    gateway = Gateway(
        runtime,
        GatewayOptions(
            stage=STAGE,
            websocket_route_keys=WS_ROUTES,
            http_routes=HTTP_ROUTES,
            function_name="MainLambda",
            region="us-west-2",
            idle_timeout=3600,
            # Runs stream inside the route's invocation here (RUN_MODE=inline), which API Gateway
            # would stop waiting for after 29 s; what is timed is the stream, not that limit.
            integration_timeout=None,
        ),
    )
    try:
        with temp_dir() as tmp, serve_in_thread(gateway) as running:
            os.environ.clear()
            os.environ.update(
                child_environment(
                    {
                        "SQLITE_PATH": str(tmp / "selador.sqlite3"),
                        "WEBSOCKET_MANAGEMENT_ENDPOINT": running.endpoints.management_endpoint,
                        "LAMBDA_ENDPOINT": running.endpoints.lambda_endpoint,
                        # Hundreds of queries on one connection: the per-connection rate limit
                        # (a security control, not a cost) would refuse them after 20 a minute.
                        "LIMIT_QUERIES_PER_MINUTE": "0",
                        **(env or {}),
                    }
                )
            )
            reset_container()
            orchestrator.get_orchestrator.cache_clear()
            orchestrator.build_model = build_model
            # Build the model (and the knowledge-base index) now, as a warm container has them.
            orchestrator.get_orchestrator(get_settings())
            try:
                yield Harness(running.endpoints.ws_url, holder["model"], running.endpoints.http_url)
            finally:
                runtime.shutdown()
    finally:
        orchestrator.build_model = original_build
        orchestrator.get_orchestrator.cache_clear()
        os.environ.clear()
        os.environ.update(saved)
        reset_container()


def connect(url: str) -> Any:
    """A ``websockets`` client without proxy, size limit or protocol pings."""
    from websockets.asyncio.client import connect as ws_connect

    return ws_connect(url, proxy=None, open_timeout=60, max_size=None, ping_interval=None)
