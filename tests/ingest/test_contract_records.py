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


def test_scored_item_round_trip():
    from finsentry.ingest.contract import ScoredItem

    value = {
        "id": "1",
        "text": "Apple falls",
        "published_at": "2015-08-24T13:30:00Z",
        "source": "stocknet",
        "url": None,
        "tickers": ["AAPL"],
        "lang": "en",
        "topic": "Stock Movement",
        "topic_prob": 0.9,
        "sentiment": "negative",
        "sentiment_probs": [0.7, 0.2, 0.1],
        "sentiment_score": -0.6,
        "model_version": "v1",
        "truncated": False,
        "chunks": 1,
        "tickers_dropped": 0,
        "scored_at": "2015-08-24T13:30:02.500000Z",
    }
    item = ScoredItem.model_validate_json(to_json_bytes(value))
    assert item.to_wire() == value
    assert [k.key for k in item.keyed()] == ["all", "topic:stock_movement", "ticker:AAPL"]
    keyed = item.keyed()[2]
    assert parse_keyed(to_json_bytes(keyed.to_wire()), b"ticker:AAPL") == keyed


def test_dead_letter_round_trip():
    from finsentry.ingest.contract import DLQ_HEADERS, DeadLetter, dlq_headers

    headers = dlq_headers("invalid_key", "key \ud800 bad", "sentiment.keyed", 2, 41, value_truncated="9")
    assert [k for k, _ in headers] == [*DLQ_HEADERS, "value_truncated"]
    letter = DeadLetter.from_headers(headers)
    assert (letter.reason, letter.source_topic, letter.source_partition, letter.source_offset) == (
        "invalid_key",
        "sentiment.keyed",
        2,
        41,
    )
    assert DeadLetter.from_headers(letter.headers()) == letter


def test_model_event_round_trip():
    from finsentry.ingest.contract import ModelEvent
    from finsentry.ingest.model_events import BadModelEvent, parse_event

    value = {
        "action": "promote",
        "version": "v0002",
        "model_version": "minilm-mt-v0002",
        "previous": "v0001",
        "path": "/r/v0002",
        "at": "2015-01-01T00:00:00Z",
    }
    event = parse_event(to_json_bytes(value))
    assert isinstance(event, ModelEvent) and event.to_wire() == value
    with pytest.raises(BadModelEvent, match="not one of"):
        parse_event(to_json_bytes(value | {"action": "delete"}))


def test_spike_record_round_trip():
    from finsentry.ingest.contract import SpikeRecord
    from finsentry.monitor.spikes import SpikeEvent, SpikeFigures

    figures = SpikeFigures(1440432000.0, 3600, "share", 4.2, 4.2, 0.62, 0.18, 0.05, 40, 25, 3.0, 2.5)
    event = SpikeEvent(
        "started", "ticker:AAPL", 1440428400.0, 1440432000.0, 3600, 0.62, 0.18, 0.05, 4.2, 25, 3.0, 2.5, 40, 25,
        evidence=[{"id": "1", "text": "Apple falls", "url": None, "sentiment_score": -0.6,
                   "published_at": "2015-08-24T15:10:00Z", "truncated": False}],
        trigger="share", share_z=4.2, spike_id="ticker:AAPL@2015-08-24T16:00:00Z", start=figures, peak=figures,
    )  # fmt: skip
    wire = event.to_dict()
    record = SpikeRecord.model_validate_json(json.dumps(wire))
    assert record.model_dump(mode="json") == wire
    assert SpikeEvent.from_dict(record.model_dump(mode="json")) == event


def test_contracts_md_schemas_are_generated_from_the_models():
    from finsentry.common.paths import REPO_ROOT
    from finsentry.ingest.contract import render_contracts_doc

    doc = (REPO_ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    assert doc == render_contracts_doc(doc), "docs/contracts.md is out of date: run python -m finsentry.ingest.contract"
