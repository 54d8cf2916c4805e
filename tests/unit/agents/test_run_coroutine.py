"""run_coroutine returns without joining worker threads that are still stuck."""

from __future__ import annotations

import asyncio
import threading

from selador.agents.orchestrator import run_coroutine


def test_returns_while_an_abandoned_worker_thread_is_still_blocked() -> None:
    release = threading.Event()
    finished: list[int] = []

    def stuck() -> None:
        release.wait(5)
        finished.append(1)

    async def main() -> str:
        task = asyncio.ensure_future(asyncio.to_thread(stuck))
        await asyncio.sleep(0.05)
        task.cancel()  # what the deadline's hard stop does to a run stuck in a tool
        return "answered"

    try:
        assert run_coroutine(main()) == "answered"
        assert finished == []  # asyncio.run would have joined the thread first
    finally:
        release.set()


def test_pending_tasks_are_cancelled_and_results_returned() -> None:
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    background: list[asyncio.Future[None]] = []

    async def main() -> int:
        background.append(asyncio.ensure_future(forever()))
        await asyncio.sleep(0)
        return 42

    assert run_coroutine(main()) == 42
    assert cancelled == [True]
