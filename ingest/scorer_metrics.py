"""Prometheus metrics of the scorer service, declared once here (names per ``docs/contracts.md``).

Each :class:`ScorerService` registers them on its own :class:`prometheus_client.CollectorRegistry`, so two
scorers can run in one process (tests, the ``finsentry run`` supervisor) without clashing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from finsentry.ingest.dlq import DlqReason

LATENCY_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Histogram buckets, seconds, for inference and produce->scored latency."""

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
"""Histogram buckets, items per batch."""


class ScorerMetrics:
    """The scorer's metrics on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "finsentry_scorer_consumed_total", "news.raw records consumed by the scorer (bad ones included)", registry=r
        )
        self.scored = Counter(
            "finsentry_scorer_scored_total", "items scored and acknowledged on news.scored", registry=r
        )
        self.dead_letters = Counter(
            "finsentry_dead_letters_total", "records sent to news.dlq, by reason code", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "finsentry_scorer_duplicates_total",
            "records whose id was scored already (within the seen-id LRU); skipped, not scored twice",
            registry=r,
        )
        self.batch_items = Histogram(
            "finsentry_scorer_batch_items", "records per micro-batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_latency = Histogram(
            "finsentry_inference_latency_seconds",
            "seconds of one Scorer.predict call (one micro-batch)",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.scored_latency = Histogram(
            "finsentry_scored_latency_seconds",
            "seconds from the news.raw record timestamp (produce time) to the acknowledged news.scored produce",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "finsentry_consumer_lag_messages",
            "news.raw messages behind the fetch high watermark, per assigned partition; NOT trustworthy on the"
            " embedded Tansu broker, whose high watermark is wrong",
            ["partition"],
            registry=r,
        )
        self.model_info = Gauge(
            "finsentry_model_info", "1 for the model version this scorer uses", ["model_version"], registry=r
        )
        for reason in DlqReason:
            if reason is not DlqReason.INVALID_LABEL:
                self.dead_letters.labels(reason=reason.value)

    def set_model_version(self, version: str) -> None:
        """Make ``version`` the only ``finsentry_model_info`` series (value 1)."""
        self.model_info.clear()
        self.model_info.labels(model_version=version).set(1)

    def set_lag(self, lag_by_partition: dict[int, int]) -> None:
        """Replace the lag series with ``lag_by_partition`` (partition -> messages); others are removed."""
        self.consumer_lag.clear()
        for partition, lag in lag_by_partition.items():
            self.consumer_lag.labels(partition=str(partition)).set(lag)
