"""The machine-readable API documents: ``docs/asyncapi.yaml`` and ``docs/openapi.json``.

Both are generated, never edited: the AsyncAPI 3.0 document of the WebSocket API from the
protocol's pydantic models (:mod:`selador.protocol`), the OpenAPI 3.1 document of the HTTP API by
Powertools' resolver from the routes' definitions (:mod:`selador.http`). ``make docs`` (``python
-m selador.local.apidocs``) writes them; a test regenerates both and fails when the committed files
differ. Development only, like the rest of :mod:`selador.local`: the Lambda artifact leaves it out,
and no route of the function generates a document.
"""

from __future__ import annotations

from pathlib import Path

ASYNCAPI_FILE = "asyncapi.yaml"
OPENAPI_FILE = "openapi.json"


def render_documents() -> dict[str, str]:
    """Generate both documents.

    Returns:
        Each file name (in ``docs/``) and its text.
    """
    # Imported when called: the generators import the handler's HTTP modules, pydantic's schema
    # generator and PyYAML, which importing this package should not.
    from selador.local.apidocs.asyncapi import asyncapi_yaml
    from selador.local.apidocs.openapi import openapi_json

    return {ASYNCAPI_FILE: asyncapi_yaml(), OPENAPI_FILE: openapi_json()}


def write_documents(directory: Path) -> list[Path]:
    """Write both documents into ``directory``, leaving files whose text is unchanged alone.

    Args:
        directory: Where to write (the repository's ``docs/``).

    Returns:
        The files that changed.
    """
    changed = []
    for name, text in render_documents().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
