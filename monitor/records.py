"""The monitor's side of the ``sentiment.keyed`` contract: the fan-out of a ``news.scored`` record (as the
scorer does) for offline reports.

The record models, :func:`~finsentry.ingest.contract.parse_keyed`, :func:`~finsentry.ingest.contract.aggregate_keys`
and the time helpers live in :mod:`finsentry.ingest.contract` (one home for every record on the wire); import them
from there. Parsing is strict on what the aggregation needs (``id``, ``key``, ``published_at`` with
a time zone, ``sentiment``, ``sentiment_score``) and lenient on the rest, so a producer may add fields without
breaking the aggregators.

>>> [k.key for k in keyed_from_scored({"id": "1", "published_at": "2015-01-02T00:00:00Z", "sentiment": "neutral",
...     "sentiment_score": 0.0, "topic": "Stock Movement", "tickers": ["$aapl"]})]
['all', 'topic:stock_movement', 'ticker:AAPL']
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from finsentry.ingest.contract import (
    ALL_KEY,
    EARLIEST,
    KeyedItem,
    KeyedMessageError,
    aggregate_keys,
    parse_keyed,
)
from finsentry.ingest.dlq import DlqReason
from finsentry.ingest.replay_source import tickers_from_cell


def keyed_from_scored(record: dict[str, Any]) -> list[KeyedItem]:
    """Fan one ``news.scored`` record out to its :class:`KeyedItem` per aggregate key (as the scorer does).

    ``tickers`` given as text (a CSV column that ``finsentry score`` passed through) is split as a replay of
    that CSV splits it (:func:`~finsentry.ingest.replay_source.tickers_from_cell`). A ``published_at`` before
    1970 or beyond year 9999 in UTC is refused, as ``news.raw`` refuses it, and so is one that is not a string (a
    number would be read as seconds since 1970; ``news.raw`` wants ISO-8601 text).

    Raises:
        KeyedMessageError: the record lacks a field the aggregation needs or has a wrong type (a ``published_at``
            that is not a string included), or is dated before 1970 or after 9999 in UTC (``bad_timestamp``).
    """
    if isinstance(record.get("tickers"), str):
        record = record | {"tickers": tickers_from_cell(record["tickers"])}
    if "published_at" in record and not isinstance(record["published_at"], str):  # pydantic reads 12345 as epoch s
        kind = type(record["published_at"]).__name__
        raise KeyedMessageError(DlqReason.WRONG_TYPE, f"published_at: an ISO-8601 string is needed, got {kind}")
    first = parse_keyed(json.dumps({**record, "key": ALL_KEY}))  # checks topic and tickers before the fan-out
    # news.raw refuses it, and a backfill would close every bucket since then (a difference, not '<': comparing
    # 0001-01-01T00:00+14:00 overflows)
    shown = str(record["published_at"])[:60]
    if (first.published_at - EARLIEST).total_seconds() < 0:
        raise KeyedMessageError(DlqReason.BAD_TIMESTAMP, f"published_at: {shown!r} lies before 1970")
    try:
        first.published_at.astimezone(UTC)  # the report prints every time in UTC
    except OverflowError:
        raise KeyedMessageError(DlqReason.BAD_TIMESTAMP, f"published_at: {shown!r} is out of range") from None
    items = [first]
    for key in aggregate_keys(first.topic, first.tickers)[1:]:
        items.append(parse_keyed(json.dumps({**record, "key": key})))
    return items
