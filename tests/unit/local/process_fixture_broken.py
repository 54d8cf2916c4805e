"""A handler module that fails to load in worker processes only (not a test module).

The gateway process imports it fine, as happens when a handler depends on something only a fresh
process lacks; ``SELADOR_TEST_BROKEN`` says how the worker's import fails.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

if multiprocessing.parent_process() is not None:
    if os.environ.get("SELADOR_TEST_BROKEN") == "exit":
        os._exit(5)
    raise RuntimeError("cannot load in a worker")


def handler(_event: Any, _context: Any) -> str:
    """Never reached in a worker."""
    return "ok"
