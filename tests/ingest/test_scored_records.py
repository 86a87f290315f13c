"""news.scored and sentiment.keyed message shapes, the fan-out keys, the seen-id LRU."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from finsentry.ingest.contract import aggregate_keys
from finsentry.ingest.scored import keyed_values, scored_value
from finsentry.ingest.seen_ids import SeenIds
from finsentry.ingest.validation import NewsItem
from finsentry.model.scorer import Prediction

ITEM = NewsItem(
    "42", "Shell and $AAPL", datetime(2014, 1, 2, 17, 10, 19, tzinfo=UTC), "feed", None, ("RDS-B", "AAPL"), "en"
)
PRED = Prediction("M&A | Investments", 0.7, "negative", (0.6, 0.3, 0.1), -0.5, "v7")


def test_aggregate_keys():
    assert aggregate_keys("M&A | Investments", ["RDS-B", "$aapl", "RDS-B"]) == [
        "all",
        "topic:m_a_investments",
        "ticker:RDS-B",
        "ticker:AAPL",
    ]
    assert aggregate_keys("Fed | Central Banks", []) == ["all", "topic:fed_central_banks"]


def test_scored_value_has_the_contract_fields():
    value = scored_value(ITEM, PRED, datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert list(value) == [
        "id", "text", "published_at", "source", "url", "tickers", "lang",
        "topic", "topic_prob", "sentiment", "sentiment_probs", "sentiment_score", "model_version", "truncated",
        "chunks", "tickers_dropped", "scored_at",
    ]  # fmt: skip
    assert value["published_at"] == "2014-01-02T17:10:19Z"
    assert value["scored_at"] == "2026-01-01T00:00:01Z"
    assert value["sentiment_probs"] == [0.6, 0.3, 0.1]
    assert value["tickers"] == ["RDS-B", "AAPL"]


def test_keyed_values_fan_out_once_per_key():
    out = keyed_values(ITEM, PRED)
    assert [k for k, _ in out] == ["all", "topic:m_a_investments", "ticker:RDS-B", "ticker:AAPL"]
    for key, value in out:
        assert value["key"] == key
        assert set(value) == {
            "id", "key", "published_at", "sentiment", "sentiment_probs", "sentiment_score",
            "topic", "tickers", "text", "url", "model_version", "truncated",
        }  # fmt: skip
        assert (value["id"], value["sentiment_score"], value["model_version"]) == ("42", -0.5, "v7")


def test_truncated_and_chunks_travel_in_both_messages():
    long = replace(PRED, truncated=True, chunks=16)
    value = scored_value(ITEM, long, datetime(2026, 1, 1, tzinfo=UTC))
    assert (value["truncated"], value["chunks"]) == (True, 16)
    assert (scored_value(ITEM, PRED, datetime(2026, 1, 1, tzinfo=UTC))["truncated"], PRED.chunks) == (False, 1)
    assert [v["truncated"] for _, v in keyed_values(ITEM, long)] == [True] * 4
    assert [v["truncated"] for _, v in keyed_values(ITEM, PRED)] == [False] * 4


def test_seen_ids_is_a_bounded_lru():
    seen = SeenIds(3)
    assert [seen.add(i) for i in "abca"] == [True, True, True, False]
    seen.add("d")  # evicts b (a was refreshed)
    assert "b" not in seen and "a" in seen and len(seen) == 3
    nothing = SeenIds(0)
    assert nothing.add("a") and nothing.add("a") and len(nothing) == 0
