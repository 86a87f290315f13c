"""The scorer service against a real embedded broker: DLQ catalogue, duplicates, commits, metrics, hot swap."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter

import pytest
from ingest_testkit import MALFORMED, TopicReader, good_items, headers, produce_items, scorer_settings, wait_for
from kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.topics import NEWS_DLQ, NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED
from finsentry.model import Scorer

pytestmark = pytest.mark.broker

CONTRACT_METRICS = {
    "finsentry_scorer_consumed",
    "finsentry_scorer_scored",
    "finsentry_dead_letters",
    "finsentry_scorer_duplicates",
    "finsentry_scorer_batch_items",
    "finsentry_inference_latency_seconds",
    "finsentry_scored_latency_seconds",
    "finsentry_consumer_lag_messages",
    "finsentry_model_info",
}


def scrape(url: str) -> dict[str, float]:
    """Samples of a /metrics page: ``name{label=value,...}`` -> value."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = 1.0
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_malformed_catalogue_goes_to_the_dlq_while_good_items_between_are_scored(fresh_broker, scorer):
    settings = scorer_settings(fresh_broker, "catalogue", max_batch_items=16, lag_refresh_s=0.2)
    goods = good_items(len(MALFORMED) + 1)
    producer = make_producer(settings.kafka)
    bad_at: dict[tuple[int, int], tuple[str, bytes | None, str]] = {}
    futures = []
    for i, good in enumerate(goods):
        producer.send(NEWS_RAW, key=good["id"].encode(), value=json.dumps(good).encode())
        if i < len(MALFORMED):
            kind, value, reason = MALFORMED[i]
            futures.append((producer.send(NEWS_RAW, key=f"bad-{i}".encode(), value=value), (kind, value, reason)))
    producer.flush(30)
    for future, case in futures:
        meta = future.get(timeout=30)
        bad_at[(meta.partition, meta.offset)] = case
    producer.close()

    service = ScorerService(scorer, settings)
    service.start_thread()
    reader = TopicReader(settings.kafka, NEWS_SCORED, NEWS_DLQ, SENTIMENT_KEYED)
    try:
        reader.read_until(
            lambda r: len(r.records[NEWS_SCORED]) >= len(goods) and len(r.records[NEWS_DLQ]) >= len(MALFORMED),
            timeout_s=300,
            what="all good items scored and all bad ones dead-lettered",
        )
        wait_for(lambda: service.stats.scored == len(goods), 30, "stats to settle")
        metrics = scrape(service.metrics_url)
    finally:
        service.stop_and_join()
        reader.close()
    assert service.error is None

    assert sorted(reader.ids()) == sorted(g["id"] for g in goods)
    assert len(reader.records[SENTIMENT_KEYED]) >= 2 * len(goods)  # at least all + topic per item
    seen_cases = set()
    for record in reader.records[NEWS_DLQ]:
        h = headers(record)
        kind, value, reason = bad_at[(int(h["source_partition"]), int(h["source_offset"]))]
        assert h["reason"] == reason.value, kind
        assert h["source_topic"] == NEWS_RAW
        assert h["message"]
        assert record.value == (value if value is not None else b""), kind
        seen_cases.add(kind)
    assert seen_cases == {kind for kind, _, _ in MALFORMED}

    assert set(metrics) >= CONTRACT_METRICS
    assert metrics["finsentry_scorer_consumed_total"] == len(goods) + len(MALFORMED)
    assert metrics["finsentry_scorer_scored_total"] == len(goods)
    expected = Counter(reason.value for _, _, reason in MALFORMED)
    for reason, count in expected.items():
        assert metrics[f"finsentry_dead_letters_total{{reason={reason}}}"] == count, reason
    assert metrics[f"finsentry_model_info{{model_version={scorer.model_version}}}"] == 1
    assert metrics["finsentry_scored_latency_seconds_count"] == len(goods)
    assert metrics["finsentry_scorer_batch_items_sum"] == len(goods) + len(MALFORMED)


def test_duplicate_ids_are_counted_and_not_scored_twice(fresh_broker, scorer):
    settings = scorer_settings(fresh_broker, "dups")
    items = good_items(20, prefix="d")
    produce_items(settings.kafka, items + items[:15] + good_items(5, prefix="n"))
    service = ScorerService(scorer, settings, serve_metrics=False)
    service.start_thread()
    try:
        wait_for(lambda: service.stats.consumed >= 40, 180, "40 records consumed")
    finally:
        service.stop_and_join()
    reader = TopicReader(settings.kafka, NEWS_SCORED)
    reader.read_until(lambda r: len(r.records[NEWS_SCORED]) >= 25, 60, "25 scored")
    while reader.poll(500):  # drain: nothing beyond the 25 distinct ids may show up
        pass
    reader.close()
    assert len(reader.ids()) == len(set(reader.ids())) == 25
    assert service.stats.duplicates == 15
    assert service.metrics.registry.get_sample_value("finsentry_scorer_duplicates_total") == 15


def test_graceful_stop_commits_so_a_restart_scores_the_rest_exactly_once(fresh_broker, scorer):
    n = 300
    settings = scorer_settings(fresh_broker, "restart", max_batch_items=16)
    produce_items(settings.kafka, good_items(n, prefix="r"))
    first = ScorerService(scorer, settings, serve_metrics=False)
    first.start_thread()
    try:
        wait_for(lambda: first.stats.scored >= 60, 180, "the first scorer to score 60 items")
    finally:
        first.stop_and_join()
    assert 60 <= first.stats.scored < n

    second = ScorerService(scorer, settings, serve_metrics=False)
    second.start_thread()
    reader = TopicReader(settings.kafka, NEWS_SCORED)
    try:
        reader.read_until(lambda r: len(set(r.ids())) >= n, 300, f"{n} distinct ids scored")
    finally:
        second.stop_and_join()
    while reader.poll(300):
        pass
    reader.close()
    assert len(reader.ids()) == n, "a restart after a graceful stop must not score anything twice"
    assert first.stats.scored + second.stats.scored == n
    assert second.stats.duplicates == 0


class _CommitsOnlyOnRevocation(ScorerService):
    """Per-batch commits refused (as during a rebalance), so only the revocation listener can commit."""

    def _commit_pending(self) -> None:
        self.stats.commit_failures += 1


def test_offsets_pending_at_revocation_are_committed(fresh_broker, scorer):
    settings = scorer_settings(fresh_broker, "revoke")
    items = good_items(40, prefix="v")
    produce_items(settings.kafka, items)
    service = _CommitsOnlyOnRevocation(scorer, settings, serve_metrics=False)
    service.start_thread()
    try:
        wait_for(lambda: service.stats.scored >= len(items), 180, "all items scored")
    finally:
        service.stop_and_join()
    assert service.stats.commit_failures > 0
    consumer = make_consumer(settings.kafka, "revoke")
    partitions = [TopicPartition(NEWS_RAW, p) for p in range(6)]
    committed = {tp.partition: consumer.committed(tp) or 0 for tp in partitions}
    consumer.close(autocommit=False)
    reader = TopicReader(settings.kafka, NEWS_RAW)
    reader.read_until(lambda r: len(r.records[NEWS_RAW]) >= len(items), 60, "news.raw read back")
    reader.close()
    per_partition = Counter(r.partition for r in reader.records[NEWS_RAW])
    assert committed == {p: per_partition.get(p, 0) for p in range(6)}


def test_swap_scorer_takes_effect_from_the_next_batch(fresh_broker, scorer, model_dir):
    settings = scorer_settings(fresh_broker, "swap")
    service = ScorerService(scorer, settings)
    service.start_thread()
    reader = TopicReader(settings.kafka, NEWS_SCORED)
    try:
        produce_items(settings.kafka, good_items(10, prefix="before"))
        reader.read_until(lambda r: len(r.records[NEWS_SCORED]) >= 10, 180, "10 scored before the swap")
        replacement = Scorer.load(model_dir)
        replacement.model_version = "swapped-in"
        service.swap_model(replacement)
        assert service.model is replacement
        produce_items(settings.kafka, good_items(10, prefix="after"))
        reader.read_until(lambda r: len(r.records[NEWS_SCORED]) >= 20, 180, "10 scored after the swap")
        metrics = scrape(service.metrics_url)
    finally:
        service.stop_and_join()
        reader.close()
    versions = {
        json.loads(r.value)["id"][:5]: json.loads(r.value)["model_version"] for r in reader.records[NEWS_SCORED]
    }
    assert versions == {"befor": scorer.model_version, "after": "swapped-in"}
    assert metrics["finsentry_model_info{model_version=swapped-in}"] == 1
    assert f"finsentry_model_info{{model_version={scorer.model_version}}}" not in metrics
