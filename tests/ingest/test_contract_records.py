"""The wire contracts of ``finsentry.ingest.contract``: one home for ``aggregate_keys``, and a round trip per record
(the producer's serialization parses back, with the consumer's validation, to the same record)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from finsentry.ingest.contract import aggregate_keys, key_problem, parse_keyed, to_json_bytes


def _old_scorer_copy(topic: str, tickers: list[str]) -> list[str]:
    """The copy ``ingest/scored.py`` held before the contracts module (kept here to show where the two differed)."""
    from finsentry.model.labels import slugify

    keys = ["all", f"topic:{slugify(topic)}", *(f"ticker:{t.upper().lstrip('$')}" for t in tickers)]
    return list(dict.fromkeys(keys))


def test_aggregate_keys_are_the_keys_the_aggregator_accepts_where_the_two_copies_differed():
    """The scorer's copy kept blanks (``ticker: AAPL``), made ``ticker:`` of an empty symbol and failed on an
    item without a topic; the first two are keys the aggregator dead-letters as ``invalid_key`` (``KEY_PATTERN``,
    docs/contracts.md). The monitor's copy (kept) strips blanks and ``$``, drops empty tickers and makes no topic
    key without a topic (a ``news.scored`` record without one, in ``finsentry report``)."""
    topic, tickers = "Stock Movement", [" aapl", "$msft", "", "AAPL"]
    old = _old_scorer_copy(topic, tickers)
    assert [k for k in old if key_problem(k) is not None] == ["ticker: AAPL", "ticker:"]
    keys = aggregate_keys(topic, tickers)
    assert keys == ["all", "topic:stock_movement", "ticker:AAPL", "ticker:MSFT"]
    assert all(key_problem(k) is None for k in keys)
    with pytest.raises(ValueError):
        _old_scorer_copy("", ["AAPL"])
    assert aggregate_keys("", ["AAPL"]) == aggregate_keys(None, ["AAPL"]) == ["all", "ticker:AAPL"]
    # where the inputs are clean (every ticker the scorer emits matches TICKER_RE) both copies agree
    clean = ("Stock Movement", ["AAPL", "RDS-B", "$GOOG", "AAPL"])
    assert aggregate_keys(*clean) == _old_scorer_copy(*clean)


def test_keyed_item_round_trip():
    value = {
        "id": "1",
        "key": "ticker:AAPL",
        "published_at": "2015-08-24T13:30:00.250000Z",
        "sentiment": "negative",
        "sentiment_probs": [0.7, 0.2, 0.1],
        "sentiment_score": -0.6,
        "topic": "Stock Movement",
        "tickers": ["AAPL"],
        "text": "Apple falls",
        "url": None,
        "model_version": "v1",
        "truncated": False,
        "received_at": "2015-08-24T13:30:01Z",
    }
    item = parse_keyed(to_json_bytes(value), b"ticker:AAPL")
    assert item.published_at == datetime(2015, 8, 24, 13, 30, 0, 250000, tzinfo=UTC)
    assert item.to_wire() == value
    assert parse_keyed(to_json_bytes(item.to_wire())) == item
    without = {k: v for k, v in value.items() if k != "received_at"}
    assert parse_keyed(json.dumps(without)).to_wire() == without
