"""The scorer's output messages: ``news.scored`` (one per item) and the ``sentiment.keyed`` fan-out.

Fan-out: each item goes to ``sentiment.keyed`` once per aggregate key it belongs to, ``all``,
``topic:<slug>`` (slug of the predicted topic, :func:`finsentry.model.labels.slugify`) and ``ticker:<SYMBOL>``
for each ticker; Kafka's key partitioner then sends every aggregate to exactly one partition, so one
aggregator instance owns it (``../shared/architecture.md``).

>>> aggregate_keys("Fed | Central Banks", ("AAPL", "RDS-B"))
['all', 'topic:fed_central_banks', 'ticker:AAPL', 'ticker:RDS-B']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from finsentry.ingest.validation import NewsItem, iso_utc
from finsentry.model.labels import slugify
from finsentry.model.scorer import Prediction

ALL_KEY = "all"
"""The aggregate key of the whole stream."""


def aggregate_keys(topic: str, tickers: Sequence[str]) -> list[str]:
    """Aggregate keys of an item: ``all``, ``topic:<slug>``, then ``ticker:<SYMBOL>`` per ticker (no repeats)."""
    keys = [ALL_KEY, f"topic:{slugify(topic)}", *(f"ticker:{t.upper().lstrip('$')}" for t in tickers)]
    return list(dict.fromkeys(keys))


def scored_value(item: NewsItem, prediction: Prediction, scored_at: datetime) -> dict[str, Any]:
    """The ``news.scored`` value: the item's input fields plus the prediction and ``scored_at`` (ISO UTC).

    Fields: ``id, text, published_at, source, url, tickers, lang, topic, topic_prob, sentiment,
    sentiment_probs [neg, neu, pos], sentiment_score, model_version, truncated, chunks, tickers_dropped,
    scored_at``. ``tickers_dropped`` (int >= 0): distinct tickers found in the item beyond
    ``ingest.scorer.max_tickers_per_item`` and left out of ``tickers`` and of the fan-out.
    ``truncated`` (bool): part of the text was not scored (beyond ``model.max_chunks`` windows or 20,000
    characters); ``chunks`` (int >= 1): windows of ``model.max_length`` tokens scored and combined
    (:mod:`finsentry.model.scorer`).
    """
    return item.to_dict() | {
        "topic": prediction.topic,
        "topic_prob": prediction.topic_prob,
        "sentiment": prediction.sentiment,
        "sentiment_probs": list(prediction.sentiment_probs),
        "sentiment_score": prediction.sentiment_score,
        "model_version": prediction.model_version,
        "truncated": prediction.truncated,
        "chunks": prediction.chunks,
        "tickers_dropped": item.tickers_dropped,
        "scored_at": iso_utc(scored_at),
    }


def keyed_values(
    item: NewsItem, prediction: Prediction, received_at: datetime | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The ``sentiment.keyed`` messages of one item: ``(aggregate key, value)`` per key of :func:`aggregate_keys`.

    Value fields: ``id, key, published_at, sentiment, sentiment_probs, sentiment_score, topic, tickers, text,
    url, model_version, truncated`` (``truncated``: part of the text was not scored, see :func:`scored_value`),
    and ``received_at`` (ISO UTC) when given: the Kafka timestamp of the item's ``news.raw`` record, when the
    source sent it. The aggregator never lets an event time later than that move a watermark (a source clock
    running fast), :mod:`finsentry.monitor.aggregator`.
    """
    base = {
        "id": item.id,
        "published_at": iso_utc(item.published_at),
        "sentiment": prediction.sentiment,
        "sentiment_probs": list(prediction.sentiment_probs),
        "sentiment_score": prediction.sentiment_score,
        "topic": prediction.topic,
        "tickers": list(item.tickers),
        "text": item.text,
        "url": item.url,
        "model_version": prediction.model_version,
        "truncated": prediction.truncated,
    }
    if received_at is not None:
        base["received_at"] = iso_utc(received_at)
    return [(key, {"id": item.id, "key": key} | base) for key in aggregate_keys(prediction.topic, item.tickers)]


def to_json_bytes(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
