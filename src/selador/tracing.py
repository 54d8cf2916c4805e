"""OpenTelemetry tracing through Strands' own instrumentation, set up only when ``TRACING`` asks.

Strands creates spans for every agent invocation, event-loop cycle, model call and tool call
against OpenTelemetry's global tracer provider. Left alone that provider is the API's no-op one,
so with ``TRACING=off`` (the default) this module does nothing and imports nothing: spans cost a
no-op call each. Only the executor calls :func:`ensure_tracing`, so ``$connect``, ``$disconnect``,
``ping`` and health never import OpenTelemetry whatever the setting.

``TRACING=otlp`` needs ``opentelemetry-exporter-otlp-proto-http`` (the optional ``tracing`` extra),
which the Lambda bundle does not ship; without it a warning is logged once and runs go untraced.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING, Any

from selador.observability import logger

if TYPE_CHECKING:
    from selador.settings import Settings

OTLP_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http"
FLUSH_TIMEOUT_MS = 2000
"""How long the end of a run may wait for its spans to leave (Lambda freezes the sandbox after)."""

_lock = threading.Lock()
_provider: Any = None
_configured = False


def ensure_tracing(settings: Settings) -> bool:
    """Set Strands' telemetry up once per container when ``settings.tracing`` is not ``off``.

    Args:
        settings: Container settings.

    Returns:
        Whether spans are exported.
    """
    global _provider, _configured
    if settings.tracing == "off":
        return False
    with _lock:
        if _configured:
            return _provider is not None
        _configured = True
        if settings.tracing == "otlp" and _find(OTLP_EXPORTER_MODULE) is None:
            logger.warning(
                "TRACING=otlp needs the 'tracing' extra (opentelemetry-exporter-otlp-proto-http); "
                "runs are not traced"
            )
            return False
        from strands.telemetry import StrandsTelemetry

        telemetry = StrandsTelemetry()
        if settings.tracing == "console":
            telemetry.setup_console_exporter()
        else:
            telemetry.setup_otlp_exporter()
        _provider = telemetry.tracer_provider
        logger.info("tracing on", extra={"exporter": settings.tracing})
        return True


def _find(module: str) -> object | None:
    try:
        return importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None


def flush_tracing() -> None:
    """Export the spans of the run that just ended before Lambda freezes the sandbox."""
    provider = _provider
    if provider is None:
        return
    try:
        provider.force_flush(FLUSH_TIMEOUT_MS)
    except Exception:  # noqa: BLE001 - a tracing backend that is down must not fail the run
        logger.exception("could not export the run's spans")
