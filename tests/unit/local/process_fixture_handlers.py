"""Handlers that tests/unit/local/test_processes.py runs in worker processes (not a test module).

Worker processes are spawned, so the handlers must be importable by name: this module is on
``sys.path`` through pytest, and spawned children inherit the parent's ``sys.path``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_barriers: dict[int, threading.Barrier] = {}
_barriers_lock = threading.Lock()


def describe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Everything a test wants to know about where and how the invocation ran."""
    if event.get("write_to"):
        # Event invocations return nothing anyone sees: leave the answer in a file, renamed into
        # place so a reader never sees it half written.
        target = Path(event["write_to"])
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps({"pid": os.getpid()}))
        partial.replace(target)
    return {
        "event": event,
        "pid": os.getpid(),
        "nice": os.nice(0),
        "env": os.environ.get("SELADOR_TEST_MARKER"),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def fail(_event: Any, _context: Any) -> None:
    """Raise, as a handler bug would."""
    raise ValueError("bad input")


def unserialisable(_event: Any, _context: Any) -> Any:
    """Return what JSON cannot carry."""
    return {"a": {1, 2}}


def die(event: dict[str, Any], _context: Any) -> None:
    """End the whole worker process, as a crash would."""
    os._exit(int(event.get("status", 3)))


def sleep(event: dict[str, Any], _context: Any) -> str:
    """Take ``event["seconds"]``."""
    time.sleep(float(event["seconds"]))
    return "slept"


def meet(event: dict[str, Any], _context: Any) -> int:
    """Wait until ``event["n"]`` invocations are in this worker at once (else BrokenBarrierError)."""
    n = int(event["n"])
    with _barriers_lock:
        barrier = _barriers.setdefault(n, threading.Barrier(n, timeout=20))
    return barrier.wait()


def dispatch(event: dict[str, Any], context: Any) -> Any:
    """Run the handler named by ``event["do"]``, so one set of workers serves every test."""
    handlers = {
        "describe": describe,
        "fail": fail,
        "unserialisable": unserialisable,
        "die": die,
        "sleep": sleep,
    }
    handlers["meet"] = meet
    handlers["cancelled"] = cancelled
    return handlers[event.get("do", "describe")](event, context)


def cancelled(_event: Any, _context: Any) -> None:
    """Raise a BaseException, as a handler whose own event loop was cancelled does."""
    import asyncio

    raise asyncio.CancelledError
