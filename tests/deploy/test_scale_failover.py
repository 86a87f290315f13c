"""Failover with several workers: kill -9 one scorer and one aggregator mid-replay, restart them as an
orchestrator would, and check that nothing is lost and the aggregates equal an undisturbed aggregation.

Real parts: the embedded broker with 12-partition topics, ``finsentry scorer`` / ``finsentry aggregator``
processes (2 of each, helpers from ``benchmarks/scale.py``), the real model, StockNet tweets sent by the
replay producer at a fixed rate.

The reference ("an undisturbed run") is a third aggregator process in its own consumer group, started after
everything was scored, that reads the whole of ``sentiment.keyed`` without interruption. It is compared with
the disturbed group on the same scored stream, not with a second scoring of the items: a scorer killed before
its offset commit leaves items that another scorer scores again, in a different micro-batch, and dynamic INT8
quantization takes its activation scales from the whole batch, so a re-scored copy may differ in the last
digits. Both aggregations keep the first copy of each (id, key) in partition order, so they must agree exactly.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time

import pytest
from deploy_testkit import REPO_ROOT

from finsentry.ingest.broker import EmbeddedBroker
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.replay import send_items
from finsentry.ingest.topics import NEWS_DLQ, NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.timeout(300)]

ITEMS = 600
RATE = 30.0
"""Items per second the replay sends: 600 items take 20 s, so the kills land mid-replay."""
KILL_AFTER = 60
"""Items scored (and so committed by some scorer) before the kills: early in the replay even on a loaded machine."""

MONITOR_ENV = {
    # Hourly buckets and a 30-day window hold the whole replay (9 days of event time) in every key's views.
    "FINSENTRY_MONITOR__BUCKET_SECONDS": "3600",
    "FINSENTRY_MONITOR__WINDOWS_SECONDS": "[86400, 2592000]",
    "FINSENTRY_MONITOR__SPIKE__WINDOW_SECONDS": "3600",
    "FINSENTRY_MONITOR__LOOKBACK_SECONDS": "2678400",
    "FINSENTRY_MONITOR__DEDUP_HORIZON_SECONDS": "2678400",
    # The replay compresses 9 days of event time into 20 s, so a few seconds of scorer lag on one partition (and
    # the redelivery after the kill) put items days behind the watermark; a 30-day grace period keeps every
    # item in the aggregates (with the default 120 s about a third would be dropped as late, in both runs).
    "FINSENTRY_MONITOR__GRACE_SECONDS": "2592000",
    # A killed member is noticed after the session timeout (3 s) instead of 6 s.
    "FINSENTRY_INGEST__KAFKA__SESSION_TIMEOUT_MS": "3000",
    "FINSENTRY_INGEST__KAFKA__HEARTBEAT_INTERVAL_MS": "500",
}


def _load_scale():
    spec = importlib.util.spec_from_file_location("finsentry_scale_bench", REPO_ROOT / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


scale = _load_scale()


def topic_keys(broker: EmbeddedBroker, topic: str, timeout_s: float = 30.0) -> list[str]:
    """Record keys of ``topic``, read from the start until it has been idle for 2 s."""
    consumer = make_consumer(broker.kafka_settings(), None, topic)
    keys: list[str] = []
    last_new, deadline = time.monotonic(), time.monotonic() + timeout_s
    try:
        while time.monotonic() - last_new < 2.0 and time.monotonic() < deadline:
            for records in consumer.poll(200).values():
                keys.extend(r.key.decode() if r.key else "" for r in records)
                last_new = time.monotonic()
    finally:
        consumer.close(autocommit=False)
    return keys


def trends(workers) -> dict[str, dict] | None:
    """Union of ``/api/trends`` keys over ``workers`` (each key lives on the one aggregator that owns it);
    None while a key shows up on two of them (only possible in the middle of a rebalance)."""
    out: dict[str, dict] = {}
    for w in workers:
        for key, views in json.loads(w.get("/api/trends"))["keys"].items():
            if key in out:
                return None
            out[key] = views
    return out


def comparable(views: dict[str, dict]) -> dict[str, dict]:
    """Per topic key (and ``all``) and window: item and sentiment counts, mean score rounded to 9 places."""
    return {
        key: {
            w: (v["items"], v["negative"], v["neutral"], v["positive"], round(v["mean_score"] or 0.0, 9))
            for w, v in per_window.items()
        }
        for key, per_window in views.items()
        if key == "all" or key.startswith("topic:")
    }


def test_kill9_scorer_and_aggregator_mid_replay_loses_nothing_and_aggregates_match(model_dir, tmp_path):
    items = scale.english_items(ITEMS)
    with EmbeddedBroker(port=0, partitions=scale.PARTITIONS) as broker:
        cluster = scale.Cluster(broker, model_dir, tmp_path, dict(MONITOR_ENV))
        try:
            for _ in range(2):
                cluster.start("aggregator")
                cluster.start("scorer")
            scale.wait_for(lambda: cluster.balanced("scorer", 12), 120, "2 scorers to share news.raw", 0.5)
            scale.wait_for(
                lambda: cluster.balanced("aggregator", 12), 120, "2 aggregators to share sentiment.keyed", 0.5
            )

            producer = make_producer(broker.kafka_settings())
            reports = []
            replay = threading.Thread(
                target=lambda: reports.append(send_items(items, producer, rate=RATE, progress=False))
            )
            replay.start()
            scale.wait_for(
                lambda: cluster.total("scorer", "finsentry_scorer_scored_total") >= KILL_AFTER,
                60,
                "the first items scored",
            )
            victims = [cluster.live("scorer")[0], cluster.live("aggregator")[0]]
            for victim in victims:
                cluster.kill9(victim)
            assert replay.is_alive(), "the kills must land while the replay is still sending"
            cluster.start("scorer")  # the replacements an orchestrator would start
            cluster.start("aggregator")
            replay.join(timeout=120)
            producer.close()
            assert reports and reports[0].sent == ITEMS, reports

            raw_ids = set(topic_keys(broker, NEWS_RAW))
            assert len(raw_ids) == ITEMS
            scale.wait_for(
                lambda: raw_ids <= set(topic_keys(broker, NEWS_SCORED, timeout_s=10)),
                120,
                "every item on news.scored",
                1,
            )
            assert topic_keys(broker, NEWS_DLQ) == []
            keyed = len(topic_keys(broker, SENTIMENT_KEYED))
            assert keyed >= 2 * ITEMS  # at least `all` and the topic key per item, duplicates included

            main_group = cluster.live("aggregator")
            assert len(main_group) == 2 and victims[1] not in main_group
            (tmp_path / "ref").mkdir()
            reference_env = {**MONITOR_ENV, "FINSENTRY_MONITOR__GROUP_ID": "reference"}
            reference = scale.Cluster(broker, model_dir, tmp_path / "ref", reference_env)
            undisturbed = reference.start("aggregator")
            cluster.workers.append(undisturbed)
            want: dict = {}

            def settled() -> bool:
                cluster.check_alive()
                try:
                    reference_views = trends([undisturbed]) or {}
                    got = trends(main_group)
                except OSError:
                    return False  # the reference aggregator's HTTP service is not up yet
                want.clear()
                want.update(comparable(reference_views))
                if want.get("all", {}).get("30d", (0,))[0] != ITEMS:
                    return False  # the undisturbed aggregator is still reading
                return got is not None and comparable(got) == want

            try:
                scale.wait_for(settled, 120, "the recovered aggregators to match the undisturbed one", 1.0)
            except TimeoutError:
                got = comparable(trends(main_group) or {})
                diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
                pytest.fail(f"aggregates differ after recovery (recovered, undisturbed): {diff}")
            topics = [k for k in want if k.startswith("topic:")]
            assert len(topics) >= 5 and want["all"]["30d"][0] == ITEMS
            assert json.loads(undisturbed.get("/api/health"))["late"] == 0
        finally:
            cluster.stop_all()
