"""A fresh container answering a burst of first ``$connect`` invocations on many threads at once.

The local gateway runs invocations on threads of one process, so unlike real Lambda many of them
can be the container's first together; each must succeed against one shared, new SQLite file.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import selador.store.factory
from selador.handler import lambda_handler
from selador.local.events import connect_event
from selador.store.sqlite import SqliteStore

from .conftest import FakeContext

WORKERS = 48


def test_cold_burst_of_connects_shares_one_new_sqlite_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened: list[SqliteStore] = []
    count_lock = threading.Lock()

    class SlowToOpen(SqliteStore):
        def __init__(self, path: str) -> None:
            # Opening a new file under load takes a while; every worker arrives meanwhile.
            time.sleep(0.05)
            super().__init__(path)
            with count_lock:
                opened.append(self)

    monkeypatch.setattr(selador.store.factory, "SqliteStore", SlowToOpen)
    path = tmp_path / "cold.sqlite3"
    monkeypatch.setenv("SQLITE_PATH", str(path))
    assert not path.exists()
    events = [connect_event() for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS)
    responses: list[dict | None] = [None] * WORKERS

    def first_invocation(index: int) -> None:
        barrier.wait(timeout=10)
        responses[index] = lambda_handler(events[index], FakeContext())

    threads = [threading.Thread(target=first_invocation, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [r["statusCode"] if r else None for r in responses] == [200] * WORKERS
    assert len(opened) == 1
    check = SqliteStore(str(path))
    try:
        for event in events:
            assert check.get_connection(event["requestContext"]["connectionId"]) is not None
    finally:
        check.close()
