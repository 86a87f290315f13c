"""Long texts through the scorer service on a real broker: ``truncated`` and ``chunks`` arrive in news.scored,
``truncated`` in every sentiment.keyed record, and both counters count them (issue 15, finding 6)."""

from __future__ import annotations

import json

import pytest
from ingest_testkit import TopicReader, produce_items, scorer_settings, wait_for

from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.topics import NEWS_SCORED, SENTIMENT_KEYED
from finsentry.model import Scorer

pytestmark = pytest.mark.broker


def test_truncated_and_chunks_arrive_in_the_scored_and_keyed_records_and_are_counted(
    fresh_broker, model_dir, long_article
):
    opening, body = long_article
    two_windows = Scorer.load(model_dir, max_chunks=2)
    texts = {"short": "Fed raises interest rates by 25 basis points", "two": opening, "three": f"{opening} {body}"}
    preds = two_windows.predict(list(texts.values()))
    expected = {i: (p.chunks, p.truncated) for i, p in zip(texts, preds, strict=True)}
    assert expected == {"short": (1, False), "two": (2, False), "three": (2, True)}
    items = [
        {"id": i, "text": t, "published_at": "2026-11-02T10:00:00Z", "lang": "en", "tickers": ["NPK"]}
        for i, t in texts.items()
    ]
    settings = scorer_settings(fresh_broker, "long-texts")
    produce_items(settings.kafka, items)
    service = ScorerService(two_windows, settings, companies=None, serve_metrics=False)
    service.start_thread()
    reader = TopicReader(settings.kafka, NEWS_SCORED, SENTIMENT_KEYED)
    try:
        reader.read_until(
            lambda r: len(r.records[NEWS_SCORED]) >= 3 and len(r.records[SENTIMENT_KEYED]) >= 9, 120, "3 items scored"
        )
        wait_for(lambda: service.stats.scored == 3, 30, "stats to settle")
    finally:
        service.stop_and_join()
        reader.close()
    assert service.error is None
    scored = {v["id"]: v for v in (json.loads(r.value) for r in reader.records[NEWS_SCORED])}
    assert {i: (v["chunks"], v["truncated"]) for i, v in scored.items()} == expected
    keyed = [json.loads(r.value) for r in reader.records[SENTIMENT_KEYED]]
    assert sorted((v["id"], v["truncated"]) for v in keyed if v["key"] == "all") == [
        ("short", False),
        ("three", True),
        ("two", False),
    ]
    assert {(v["id"], v["truncated"]) for v in keyed} == {("short", False), ("three", True), ("two", False)}
    registry = service.metrics.registry
    assert registry.get_sample_value("finsentry_scorer_chunked_total") == 2
    assert registry.get_sample_value("finsentry_scorer_truncated_total") == 1
