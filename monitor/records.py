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
from typing import Any

from finsentry.ingest.contract import ALL_KEY, KeyedItem, aggregate_keys, parse_keyed
from finsentry.ingest.replay_source import tickers_from_cell


def keyed_from_scored(record: dict[str, Any]) -> list[KeyedItem]:
    """Fan one ``news.scored`` record out to its :class:`KeyedItem` per aggregate key (as the scorer does).

    ``tickers`` given as text (a CSV column that ``finsentry score`` passed through) is split as a replay of
    that CSV splits it (:func:`~finsentry.ingest.replay_source.tickers_from_cell`).

    Raises:
        KeyedMessageError: the record lacks a field the aggregation needs or has a wrong type.
    """
    if isinstance(record.get("tickers"), str):
        record = record | {"tickers": tickers_from_cell(record["tickers"])}
    first = parse_keyed(json.dumps({**record, "key": ALL_KEY}))  # checks topic and tickers before the fan-out
    items = [first]
    for key in aggregate_keys(first.topic, first.tickers)[1:]:
        items.append(parse_keyed(json.dumps({**record, "key": key})))
    return items
