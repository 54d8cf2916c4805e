"""Per-invocation metrics in CloudWatch Embedded Metric Format (Powertools' EMF provider).

The handler opens one :func:`invocation_scope` per invocation; anything below it adds to the
scope's metrics with :func:`count` or :func:`add` (a no-op outside a scope), and the scope is
flushed exactly once, when the invocation ends. Nothing is written per frame: a run's frame, byte
and post counts come from its sender's totals, read once when the run ends.

Metrics with different dimensions cannot share one EMF document (a metric's value is a top-level
key), so a flush writes one document per dimension set, each built and validated by a Powertools
``AmazonCloudWatchEMFProvider`` of namespace ``Selador``. Every document carries the same
``invocation`` (the Lambda request id) so it can be matched with the invocation's log lines.

Not Powertools' ``Metrics`` class: its metric and dimension sets are class attributes shared by
every instance, which cannot hold several dimension sets at once, and the local gateway runs
invocations on threads of one process, each needing its own. The provider is already imported
with the logger (``aws_lambda_powertools`` loads it), so metrics cost the light routes nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from selador.observability import logger

if TYPE_CHECKING:
    from selador.settings import Settings

NAMESPACE = "Selador"
"""The CloudWatch namespace of every metric."""

Unit = MetricUnit
"""Re-exported so callers need not know where Powertools keeps it."""

MAX_VALUES = 99
"""Values of one metric per document: EMF allows 100, but Powertools' provider prints a document by
itself when a metric reaches 100, so a document is built with one fewer."""

_file_lock = threading.Lock()


class InvocationMetrics:
    """The metrics of one invocation, grouped by dimension set until the one flush.

    Args:
        route: The ``route`` dimension: a WebSocket route key, ``POST /invoke``…, or ``job``.
        invocation: The Lambda request id, written into every document as metadata.
        service: The ``service`` dimension of every document.
    """

    def __init__(self, route: str, *, invocation: str = "", service: str = "selador") -> None:
        self.route = route or "unknown"
        self.invocation = invocation
        self.service = service
        self.flushes = 0
        # Added to from the route's thread and, for inline runs, the run's: one lock for both.
        self._lock = threading.Lock()
        # dimension set -> metric name -> (unit, values). Providers are built only when the
        # documents are: Powertools' provider prints a document by itself once a metric holds 100
        # values, which would be a second, early write (and ignore METRICS_OUTPUT).
        self._sets: dict[tuple[tuple[str, str], ...], dict[str, tuple[MetricUnit, list[float]]]] = {}

    def add(self, name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
        """Add one value of ``name`` under ``dimensions`` (counts are summed, others listed)."""
        # An empty dimension value is rejected by CloudWatch: name the gap instead.
        dims = {key: (str(val) if val else "unknown")[:250] for key, val in dimensions.items()}
        key = tuple(dims.items())
        with self._lock:
            metrics = self._sets.setdefault(key, {})
            _, values = metrics.setdefault(name, (unit, []))
            if unit == MetricUnit.Count and values:
                values[0] += value
            else:
                values.append(value)

    def documents(self) -> list[dict[str, Any]]:
        """The EMF documents this invocation would write: per dimension set, 99 values at most each."""
        with self._lock:
            sets = {
                key: {name: (unit, list(values)) for name, (unit, values) in m.items()}
                for key, m in self._sets.items()
            }
        documents = []
        for key, metrics in sets.items():
            chunks = max(-(-len(values) // MAX_VALUES) for _, values in metrics.values())
            for chunk in range(chunks):
                provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=self.service)
                for dim, val in key:
                    provider.add_dimension(name=dim, value=val)
                if self.invocation:
                    provider.add_metadata(key="invocation", value=self.invocation)
                for name, (unit, values) in metrics.items():
                    for value in values[chunk * MAX_VALUES : (chunk + 1) * MAX_VALUES]:
                        provider.add_metric(name=name, unit=unit, value=value)
                if provider.metric_set:
                    documents.append(dict(provider.serialize_metric_set()))
        return documents

    def flush(self, settings: Settings) -> list[dict[str, Any]]:
        """Write every document once, where ``settings`` say; never raises.

        Returns:
            The documents written (empty when there were none or metrics are off).
        """
        self.flushes += 1
        try:
            documents = self.documents()
            if documents and settings.metrics_output != "off":
                _emit(documents, settings)
                return documents
        except Exception:  # noqa: BLE001 - metrics must never fail an answer
            logger.exception("could not write the invocation's metrics")
        return []


def _emit(documents: list[dict[str, Any]], settings: Settings) -> None:
    lines = [json.dumps(doc, separators=(",", ":"), default=str) for doc in documents]
    if settings.metrics_file:
        # One write per flush under a lock: threads of the local gateway share the file.
        with _file_lock, open(settings.metrics_file, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
        return
    output = settings.metrics_output
    if output == "auto":
        output = "stdout" if settings.lambda_runtime_api else "log"
    if output == "stdout":
        # EMF must be a line of its own on stdout: CloudWatch Logs extracts it from there.
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
        return
    for doc in documents:
        logger.debug("metrics", extra={"emf": doc})


_current: contextvars.ContextVar[InvocationMetrics | None] = contextvars.ContextVar(
    "selador_metrics", default=None
)


def current() -> InvocationMetrics | None:
    """The metrics of the invocation running in this context, if any."""
    return _current.get()


@contextlib.contextmanager
def invocation_scope(route: str, *, invocation: str = "") -> Iterator[InvocationMetrics]:
    """Collect metrics for the ``with`` block and flush them once at its end.

    Args:
        route: The ``route`` dimension.
        invocation: The Lambda request id.

    Yields:
        The invocation's metrics.
    """
    settings = _settings()
    metrics = InvocationMetrics(
        route, invocation=invocation, service=settings.service_name if settings else "selador"
    )
    token = _current.set(metrics)
    try:
        yield metrics
    finally:
        _current.reset(token)
        if settings is not None:
            metrics.flush(settings)


def _settings() -> Settings | None:
    try:
        from selador.deps import get_dependencies

        return get_dependencies().settings
    except Exception:  # noqa: BLE001 - invalid settings fail the route, which says so; metrics stay quiet
        return None


def add(name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
    """Add a value to the current invocation's metrics (nothing outside an invocation)."""
    metrics = _current.get()
    if metrics is not None:
        metrics.add(name, unit, value, **dimensions)


def count(name: str, value: int = 1, **dimensions: str) -> None:
    """Count ``name`` under the invocation's ``route`` and ``dimensions``."""
    metrics = _current.get()
    if metrics is not None and value:
        metrics.add(name, MetricUnit.Count, value, route=metrics.route, **dimensions)


def error(code: str) -> None:
    """Count an error the client is told about, by its ``code`` (and the invocation's route)."""
    count("Errors", code=code)
