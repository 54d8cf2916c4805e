"""The per-container dependencies are built once, even when many first invocations arrive together."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

import selador.deps
from selador.deps import Dependencies, get_dependencies, reset_container
from selador.settings import Settings
from selador.store.sqlite import SqliteStore

T = TypeVar("T")
WORKERS = 32


def run_concurrently(fn: Callable[[], T]) -> list[T]:
    """Call ``fn`` from ``WORKERS`` threads released together by a barrier, like a cold burst."""
    barrier = threading.Barrier(WORKERS)

    def task(_: int) -> T:
        barrier.wait(timeout=10)
        return fn()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(task, range(WORKERS)))


def test_concurrent_first_calls_share_one_container(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    count_lock = threading.Lock()

    @functools.cache  # reset_container calls cache_clear on whatever get_settings is
    def slow_settings() -> Settings:
        nonlocal calls
        with count_lock:
            calls += 1
        time.sleep(0.05)  # keeps every worker inside the first call, as a cold burst does
        return Settings()

    monkeypatch.setattr(selador.deps, "get_settings", slow_settings)
    containers = run_concurrently(get_dependencies)
    assert len({id(deps) for deps in containers}) == 1
    assert calls == 1


def test_concurrent_first_store_use_builds_one_store() -> None:
    built: list[SqliteStore] = []
    count_lock = threading.Lock()

    def slow_store(settings: Settings) -> SqliteStore:
        time.sleep(0.05)  # as long as opening a new file can take under load
        store = SqliteStore(":memory:")
        with count_lock:
            built.append(store)
        return store

    deps = Dependencies(settings=Settings(), store_factory=slow_store)
    stores = run_concurrently(lambda: deps.store)
    assert len(built) == 1
    assert all(store is built[0] for store in stores)


def test_a_failed_store_build_is_retried_by_the_next_caller() -> None:
    attempts = 0

    def flaky_store(settings: Settings) -> SqliteStore:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("disk full")
        return SqliteStore(":memory:")

    deps = Dependencies(settings=Settings(), store_factory=flaky_store)
    with pytest.raises(OSError, match="disk full"):
        _ = deps.store
    assert deps.store is deps.store
    assert attempts == 2


def test_reset_container_starts_a_new_container(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_dependencies()
    assert get_dependencies() is first
    monkeypatch.setenv("LIMIT_QUERIES_PER_MINUTE", "7")
    reset_container()
    second = get_dependencies()
    assert second is not first
    assert second.settings.limit_queries_per_minute == 7
