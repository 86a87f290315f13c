"""Prometheus metrics of the scorer service, declared once here (names per ``docs/contracts.md``).

Each :class:`ScorerService` registers them on its own :class:`prometheus_client.CollectorRegistry`, so two
scorers can run in one process (tests, the ``finsentry run`` supervisor) without clashing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from finsentry.common.metric_spec import MetricSpec
from finsentry.ingest.dlq import DlqReason

if TYPE_CHECKING:
    from finsentry.model.scorer import Prediction

LATENCY_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Histogram buckets, seconds, for inference and produce->scored latency."""

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
"""Histogram buckets, items per batch."""


CONSUMED = MetricSpec(
    "finsentry_scorer_consumed_total",
    "counter",
    (),
    "news.raw records consumed by the scorer (bad ones included)",
    "records",
)
SCORED = MetricSpec(
    "finsentry_scorer_scored_total", "counter", (), "items scored and acknowledged on news.scored", "items"
)
CHUNKED = MetricSpec(
    "finsentry_scorer_chunked_total",
    "counter",
    (),
    "items scored and acknowledged whose text is longer than one model window (model.max_length tokens), scored in"
    " overlapping windows and combined",
    "items",
)
TRUNCATED = MetricSpec(
    "finsentry_scorer_truncated_total",
    "counter",
    (),
    "items scored and acknowledged whose text was not scored whole (beyond model.max_chunks windows or 20,000"
    " characters; truncated: true in news.scored and sentiment.keyed)",
    "items",
)
TICKERS_DROPPED = MetricSpec(
    "finsentry_scorer_tickers_dropped_total",
    "counter",
    (),
    "distinct tickers found in scored and acknowledged items (given, cashtags, company names) beyond"
    " ingest.scorer.max_tickers_per_item, left out of the item's tickers and of its sentiment.keyed fan-out (the"
    " item's tickers_dropped in news.scored)",
    "tickers",
)
DEAD_LETTERS = MetricSpec(
    "finsentry_dead_letters_total", "counter", ("reason",), "records sent to news.dlq, by reason code", "records"
)
DUPLICATES = MetricSpec(
    "finsentry_scorer_duplicates_total",
    "counter",
    (),
    "records whose id was scored already (within the seen-id LRU); skipped, not scored twice",
    "records",
)
PARTITION_REVOCATIONS = MetricSpec(
    "finsentry_scorer_partition_revocations_total",
    "counter",
    ("reason",),
    "news.raw partitions taken from this scorer, by reason: rebalance (handed over in a group rebalance or at"
    " shutdown, pending offsets committed first) or evicted (the group dropped this scorer: a gap between polls"
    " longer than ingest.scorer.max_poll_interval_ms or no heartbeat for the session timeout; the partitions' open"
    " batch is read again, so their records are scored twice)",
    "partitions",
)
BATCH_ITEMS = MetricSpec("finsentry_scorer_batch_items", "histogram", (), "records per micro-batch", "records")
INFERENCE_LATENCY = MetricSpec(
    "finsentry_inference_latency_seconds",
    "histogram",
    (),
    "seconds of one Scorer.predict call (one micro-batch)",
    "seconds",
)
SCORED_LATENCY = MetricSpec(
    "finsentry_scored_latency_seconds",
    "histogram",
    (),
    "seconds from the news.raw record timestamp (produce time) to the acknowledged news.scored produce",
    "seconds",
)
CONSUMER_LAG = MetricSpec(
    "finsentry_consumer_lag_messages",
    "gauge",
    ("partition",),
    "news.raw messages behind the fetch high watermark, per assigned partition; NOT trustworthy on the"
    " embedded Tansu broker, whose high watermark is wrong",
    "messages",
)
PAUSED_PARTITIONS = MetricSpec(
    "finsentry_scorer_paused_partitions",
    "gauge",
    (),
    "news.raw partitions paused because they are more than ingest.scorer.max_partition_skew_seconds of event time"
    " ahead of the slowest partition with records left (reading in event-time order after an outage)",
    "partitions",
)
MODEL_INFO = MetricSpec(
    "finsentry_model_info", "gauge", ("model_version",), "1 for the model version this scorer uses", "1 (info)"
)

METRICS: tuple[MetricSpec, ...] = (
    CONSUMED,
    SCORED,
    CHUNKED,
    TRUNCATED,
    TICKERS_DROPPED,
    DEAD_LETTERS,
    DUPLICATES,
    PARTITION_REVOCATIONS,
    BATCH_ITEMS,
    INFERENCE_LATENCY,
    SCORED_LATENCY,
    CONSUMER_LAG,
    PAUSED_PARTITIONS,
    MODEL_INFO,
)
"""Every metric of :class:`ScorerMetrics`, for ``docs/metrics.md``."""


class ScorerMetrics:
    """The scorer's metrics on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = CONSUMED.counter(r)
        self.scored = SCORED.counter(r)
        self.chunked = CHUNKED.counter(r)
        self.truncated = TRUNCATED.counter(r)
        self.tickers_dropped = TICKERS_DROPPED.counter(r)
        self.dead_letters = DEAD_LETTERS.counter(r)
        self.duplicates = DUPLICATES.counter(r)
        self.partition_revocations = PARTITION_REVOCATIONS.counter(r)
        for reason in ("rebalance", "evicted"):
            self.partition_revocations.labels(reason=reason)
        self.batch_items = BATCH_ITEMS.histogram(r, BATCH_BUCKETS)
        self.inference_latency = INFERENCE_LATENCY.histogram(r, LATENCY_BUCKETS_S)
        self.scored_latency = SCORED_LATENCY.histogram(r, LATENCY_BUCKETS_S)
        self.consumer_lag = CONSUMER_LAG.gauge(r)
        self.paused_partitions = PAUSED_PARTITIONS.gauge(r)
        self.model_info = MODEL_INFO.gauge(r)
        for reason in DlqReason:
            if reason is not DlqReason.INVALID_LABEL:
                self.dead_letters.labels(reason=reason.value)

    def count_revoked(self, partitions: int, evicted: bool) -> None:
        """Count ``partitions`` taken from this scorer: ``evicted`` (the group dropped it: max_poll_interval_ms or
        the session timeout ran out) or handed over in a rebalance or at shutdown."""
        self.partition_revocations.labels(reason="evicted" if evicted else "rebalance").inc(partitions)

    def count_long_texts(self, predictions: Iterable[Prediction]) -> None:
        """Count acknowledged predictions scored in more than one window (``chunked``) and those not scored
        whole (``truncated``)."""
        chunked = truncated = 0
        for p in predictions:
            chunked += p.chunks > 1
            truncated += p.truncated
        self.chunked.inc(chunked)
        self.truncated.inc(truncated)

    def set_model_version(self, version: str) -> None:
        """Make ``version`` the only ``finsentry_model_info`` series (value 1)."""
        self.model_info.clear()
        self.model_info.labels(model_version=version).set(1)

    def set_lag(self, lag_by_partition: dict[int, int]) -> None:
        """Replace the lag series with ``lag_by_partition`` (partition -> messages); others are removed."""
        self.consumer_lag.clear()
        for partition, lag in lag_by_partition.items():
            self.consumer_lag.labels(partition=str(partition)).set(lag)
