"""Kafka topic names (one spelling everywhere; see ``../shared/architecture.md``) and default partition counts."""

from __future__ import annotations

NEWS_RAW = "news.raw"
"""Incoming news items (JSON, see ``ingest/news_raw.schema.json``)."""
NEWS_SCORED = "news.scored"
"""One scored message per item, key = item id: the record of truth."""
SENTIMENT_KEYED = "sentiment.keyed"
"""One message per (item, aggregate key), key = aggregate key (``all``, ``topic:<slug>``, ``ticker:<SYMBOL>``)."""
NEWS_DLQ = "news.dlq"
"""Dead-letter topic of every stage: original bytes, reason headers."""
NEWS_LABELS = "news.labels"
"""Analyst labels for retraining."""
SENTIMENT_SPIKES = "sentiment.spikes"
"""Spike events (started / updated / ended) from the aggregators."""
SENTIMENT_ALERTS = "sentiment.alerts"
"""Notifications delivered by the alert relay."""
MODELS_EVENTS = "models.events"
"""Model registry events (promote / rollback) that scorers hot-swap on."""

DEFAULT_PARTITIONS: dict[str, int] = {
    NEWS_RAW: 6,
    NEWS_SCORED: 6,
    SENTIMENT_KEYED: 6,
    NEWS_DLQ: 1,
    NEWS_LABELS: 1,
    SENTIMENT_SPIKES: 1,
    SENTIMENT_ALERTS: 1,
    MODELS_EVENTS: 1,
}
"""Partitions each topic is created with by ``finsentry broker`` / ``ensure_topics``."""

TOPIC_RETENTION_MS: dict[str, int] = {
    SENTIMENT_KEYED: 15 * 24 * 3600 * 1000,
    SENTIMENT_SPIKES: 15 * 24 * 3600 * 1000,
}
"""``retention.ms`` each topic is created with where Kafka's default (7 days) is too short: the aggregator rebuilds
its state by re-reading ``sentiment.keyed`` for ``monitor.lookback_seconds`` (14 days by default), and the relay
its spike cache from ``sentiment.spikes`` likewise; a topic that keeps less rebuilds baselines from part of their
history, so a restarted aggregator would no longer agree with one that never stopped. 15 days: the default
lookback and a day's margin (raise both together)."""
