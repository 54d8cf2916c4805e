"""What the routes need, built once per container and swappable in tests.

Routes receive a :class:`Dependencies`; nothing below the handler builds a client or reads the
environment. Every member is created lazily, so a ``$connect`` never pays for the agent stack.

The container and its store are each built exactly once, under a lock, even when many first
invocations arrive together: the local gateway runs invocations on threads of one process, and a
cold burst of ``$connect`` would otherwise build one SQLite store per thread, each opening the new
file at once (SQLite refuses some of those with "database is locked", failing the handshake).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selador.settings import Settings, get_settings

if TYPE_CHECKING:
    from selador.store.base import Store
    from selador.websocket.management import ManagementApi


def _default_store(settings: Settings) -> Store:
    from selador.store.factory import build_store

    return build_store(settings)


def _default_management(settings: Settings) -> Callable[[str], ManagementApi]:
    from selador.websocket.management import management_api_for

    return functools.partial(management_api_for, settings=settings)


@dataclass
class Dependencies:
    """Per-container collaborators of the routes.

    Attributes:
        settings: Container settings.
        store_factory: Builds the connection store on first use.
        management_factory: Maps a management endpoint to a :class:`ManagementApi`.
        lambda_client: Optional boto3 Lambda client for asynchronous hand-off (built lazily).
    """

    settings: Settings
    store_factory: Callable[[Settings], Store] = _default_store
    management_factory: Callable[[str], ManagementApi] | None = None
    lambda_client: Any = None
    _store: Store | None = field(default=None, init=False, repr=False)
    _store_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def store(self) -> Store:
        """The connection store (created on first use, once, whichever thread gets there first)."""
        store = self._store
        if store is not None:
            return store
        # Checked again under the lock: concurrent first callers must share one store, not each
        # open their own connection (and, for SQLite, race to create the same new file).
        with self._store_lock:
            if self._store is None:
                self._store = self.store_factory(self.settings)
            return self._store

    def management(self, endpoint: str) -> ManagementApi:
        """The management API adapter for ``endpoint``."""
        if self.management_factory is None:
            self.management_factory = _default_management(self.settings)
        return self.management_factory(endpoint)


_override: Dependencies | None = None
_container: Dependencies | None = None
_container_lock = threading.Lock()


def _container_dependencies() -> Dependencies:
    # Not functools.cache: concurrent first callers would all miss and each get their own
    # Dependencies, hence their own store, so the store's lock could not make them share one.
    global _container
    deps = _container
    if deps is not None:
        return deps
    with _container_lock:
        if _container is None:
            _container = Dependencies(settings=get_settings())
        return _container


def get_dependencies() -> Dependencies:
    """The container's dependencies (or the ones a test installed)."""
    return _override if _override is not None else _container_dependencies()


@contextlib.contextmanager
def use_dependencies(deps: Dependencies) -> Iterator[Dependencies]:
    """Install ``deps`` for the duration of a ``with`` block (tests, the local gateway)."""
    global _override
    previous, _override = _override, deps
    try:
        yield deps
    finally:
        _override = previous


def reset_container() -> None:
    """Forget everything cached per container, as a fresh Lambda container would."""
    global _container
    with _container_lock:
        get_settings.cache_clear()
        _container = None
