"""One declaration per Prometheus metric, shared by the code that exports it and by ``docs/metrics.md``.

Each room declares its metrics as :class:`MetricSpec` values next to the code that updates them (a
``METRICS`` tuple per module) and builds its ``prometheus_client`` objects, or the families of its custom
collectors, from them; ``python -m finsentry.metrics_docs`` instantiates every service's registry and
writes the table from the registry and the same specs, so the page cannot drift from the code.

>>> from prometheus_client import CollectorRegistry
>>> spec = MetricSpec("demo_events_total", "counter", ("reason",), "events seen, by reason", "events")
>>> registry = CollectorRegistry()
>>> spec.counter(registry).labels(reason="x").inc()
>>> registry.get_sample_value("demo_events_total", {"reason": "x"})
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

TYPES: tuple[str, ...] = ("counter", "gauge", "histogram")
"""Metric types a spec may declare."""


class MetricSpec(NamedTuple):
    """Name, type, labels, help and unit of one metric.

    Attributes:
        name: the name as exposed (counters end in ``_total``; histograms without ``_bucket`` etc.).
        type: ``counter``, ``gauge`` or ``histogram``.
        labels: label names, in order. help: the ``# HELP`` text.
        unit: what one unit of the value is, for the docs only (the Prometheus text format has no unit line;
            the name's suffix carries base units such as ``_seconds``).
    """

    name: str
    type: str
    labels: tuple[str, ...]
    help: str
    unit: str = ""

    def counter(self, registry: CollectorRegistry) -> Counter:
        """The ``prometheus_client`` counter of this spec, registered on ``registry``.

        Raises:
            ValueError: the spec is not a counter, or its name is taken on ``registry``.
        """
        self._expect("counter")
        return Counter(self.name, self.help, self.labels, registry=registry)

    def gauge(self, registry: CollectorRegistry) -> Gauge:
        """The ``prometheus_client`` gauge of this spec, registered on ``registry``.

        Raises:
            ValueError: the spec is not a gauge, or its name is taken on ``registry``.
        """
        self._expect("gauge")
        return Gauge(self.name, self.help, self.labels, registry=registry)

    def histogram(self, registry: CollectorRegistry, buckets: Sequence[float]) -> Histogram:
        """The ``prometheus_client`` histogram of this spec with ``buckets`` (upper bounds), on ``registry``.

        Raises:
            ValueError: the spec is not a histogram, or its name is taken on ``registry``.
        """
        self._expect("histogram")
        return Histogram(self.name, self.help, self.labels, registry=registry, buckets=buckets)

    def family(self) -> CounterMetricFamily | GaugeMetricFamily:
        """An empty metric family of this spec, for a custom collector's ``collect()`` (counter or gauge).

        Raises:
            ValueError: ``type`` is neither counter nor gauge.
        """
        if self.type == "gauge":
            return GaugeMetricFamily(self.name, self.help, labels=list(self.labels))
        if self.type == "counter":
            return CounterMetricFamily(self.name, self.help, labels=list(self.labels))
        raise ValueError(f"{self.name}: a custom collector family must be a counter or a gauge, not {self.type}")

    def _expect(self, kind: str) -> None:
        if self.type != kind:
            raise ValueError(f"{self.name} is declared a {self.type}, not a {kind}")


__all__ = ["TYPES", "MetricSpec"]
