"""What the routes need, built once per container and swappable in tests.

Routes receive a :class:`Dependencies`; nothing below the handler builds a client or reads the
environment. Every member is created lazily, so a ``$connect`` never pays for the agent stack.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selador.settings import Settings, get_settings

if TYPE_CHECKING:
    from selador.store.base import ConnectionStore
    from selador.websocket.management import ManagementApi


def _default_store(settings: Settings) -> ConnectionStore:
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
    store_factory: Callable[[Settings], ConnectionStore] = _default_store
    management_factory: Callable[[str], ManagementApi] | None = None
    lambda_client: Any = None
    _store: ConnectionStore | None = field(default=None, init=False, repr=False)

    @property
    def store(self) -> ConnectionStore:
        """The connection store (created on first use)."""
        if self._store is None:
            self._store = self.store_factory(self.settings)
        return self._store

    def management(self, endpoint: str) -> ManagementApi:
        """The management API adapter for ``endpoint``."""
        if self.management_factory is None:
            self.management_factory = _default_management(self.settings)
        return self.management_factory(endpoint)


_override: Dependencies | None = None


@functools.cache
def _container_dependencies() -> Dependencies:
    return Dependencies(settings=get_settings())


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
    get_settings.cache_clear()
    _container_dependencies.cache_clear()
