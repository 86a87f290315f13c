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
