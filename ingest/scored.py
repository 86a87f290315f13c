"""The scorer's output records: ``news.scored`` (one per item) and the ``sentiment.keyed`` fan-out, built and
serialized with the wire models of :mod:`finsentry.ingest.contract` (:class:`ScoredItem`, :class:`KeyedItem`).

Fan-out: each item goes to ``sentiment.keyed`` once per aggregate key it belongs to
(:func:`~finsentry.ingest.contract.aggregate_keys`: ``all``, ``topic:<slug>``, ``ticker:<SYMBOL>`` per ticker);
Kafka's key partitioner then sends every aggregate to exactly one partition, so one aggregator instance owns it
(``../shared/architecture.md``).

>>> from datetime import UTC, datetime
>>> from finsentry.model.scorer import Prediction
>>> item = NewsItem("1", "Fed holds", datetime(2015, 1, 2, tzinfo=UTC), None, None, ("AAPL",), "en")
>>> pred = Prediction("Fed | Central Banks", 0.9, "neutral", (0.1, 0.8, 0.1), 0.0, "v1")
>>> [key for key, _ in keyed_values(item, pred)]
['all', 'topic:fed_central_banks', 'ticker:AAPL']
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from finsentry.ingest.contract import ScoredItem, to_json_bytes
from finsentry.ingest.validation import NewsItem
from finsentry.model.scorer import Prediction

__all__ = ["keyed_values", "scored_item", "scored_value", "to_json_bytes"]


def scored_item(item: NewsItem, prediction: Prediction, scored_at: datetime) -> ScoredItem:
    """The :class:`~finsentry.ingest.contract.ScoredItem` of a normalized item and its prediction."""
    return ScoredItem(
        **item.to_dict(),
        topic=prediction.topic,
        topic_prob=prediction.topic_prob,
        sentiment=prediction.sentiment,
        sentiment_probs=prediction.sentiment_probs,
        sentiment_score=prediction.sentiment_score,
        model_version=prediction.model_version,
        truncated=prediction.truncated,
        chunks=prediction.chunks,
        tickers_dropped=item.tickers_dropped,
        scored_at=scored_at,
    )


def scored_value(item: NewsItem, prediction: Prediction, scored_at: datetime) -> dict[str, Any]:
    """The ``news.scored`` value (JSON-ready): :meth:`ScoredItem.to_wire` of :func:`scored_item`."""
    return scored_item(item, prediction, scored_at).to_wire()


def keyed_values(
    item: NewsItem, prediction: Prediction, received_at: datetime | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The ``sentiment.keyed`` messages of one item: ``(aggregate key, value)`` per key
    (:meth:`ScoredItem.keyed`); ``received_at``: the Kafka timestamp of the item's ``news.raw`` record, when the
    source sent it (the aggregator never lets a later event time move a watermark)."""
    scored = scored_item(item, prediction, item.published_at)
    return [(k.key, k.to_wire()) for k in scored.keyed(received_at)]
