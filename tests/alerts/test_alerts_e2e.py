"""End to end with the real binaries: replay -> embedded broker -> aggregator -> Prometheus -> Alertmanager ->
relay -> a test sink, which receives the firing notification with the evidence headlines, then the resolved one.

The replay is a *labelled* replay of real headlines (``data/splits/sentiment_valid.csv``): each item's sentiment
is its human label (Bearish -> negative, ...), so where the spike is is known in advance; the model is not
under test here. Items go through the scorer's own validation (:func:`validate_news_raw`) and fan-out
(:func:`keyed_values`) into ``sentiment.keyed``. Event time is compressed (a 60 s bucket per batch, produced as
fast as the producer goes); test-only timing: 1 s scrape and rule evaluation, ``for: 2s`` on every alert,
Alertmanager ``group_wait`` / ``group_interval`` 1 s. Thresholds and expressions are the production ones.
"""

from __future__ import annotations

import csv
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alerts_testkit import TOKEN, Receiver

from finsentry.alerts.configs import (
    ALERTING_RULES,
    RECORDING_RULES,
    alertmanager_config,
    prometheus_config,
    rules_with_for,
    write_yaml,
)
from finsentry.alerts.processes import AlertmanagerServer, PrometheusServer
from finsentry.alerts.relay import WEBHOOK_PATH, RelayService
from finsentry.alerts.settings import AlertsSettings
from finsentry.alerts.sinks import WebhookSink
from finsentry.paths import SPLITS_DIR

pytestmark = [pytest.mark.slow, pytest.mark.broker]

log = logging.getLogger(__name__)

BUCKET_S = 60
T0 = datetime(2024, 5, 1, tzinfo=UTC)
SPIKE_TOPIC = "Earnings"
OTHER_TOPIC = "Markets"
BASELINE_BUCKETS = 20
SPIKE_BUCKET = BASELINE_BUCKETS  # index of the one spiking bucket
LABEL_TO_SENTIMENT = {0: "negative", 1: "positive", 2: "neutral"}  # twitter-financial-news-sentiment ids


@dataclass
class Pools:
    """Validated real headlines by sentiment label, handed out in file order."""

    by_sentiment: dict[str, list[Any]] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)

    def take(self, sentiment: str) -> Any:
        i = self.used.get(sentiment, 0)
        self.used[sentiment] = i + 1
        return self.by_sentiment[sentiment][i]


def load_pools() -> Pools:
    """Headlines without tickers (so only ``all`` and ``topic:*`` keys exist and every partition in use keeps
    receiving data, which the event-time watermark needs), normalized as the scorer does."""
    from finsentry.ingest.normalize import cashtags, normalize_text

    pools = Pools({"negative": [], "neutral": [], "positive": []})
    with open(SPLITS_DIR / "sentiment_valid.csv", newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f)):
            text = row["text"]
            if cashtags(normalize_text(text).text):
                continue
            pools.by_sentiment[LABEL_TO_SENTIMENT[int(row["label"])]].append((f"sv{n}", text))
    return pools


class LabelledReplay:
    """Produces keyed messages for items (text, sentiment label, topic, event time) through the scorer's code."""

    def __init__(self, kafka: Any) -> None:
        from finsentry.ingest.kafka_clients import make_producer

        self.producer = make_producer(kafka)
        self.pools = load_pools()
        self.negative_ids: dict[str, str] = {}  # id -> text of every negative item sent
        self.sent = 0

    def item(self, sentiment: str, topic: str, t: datetime) -> None:
        from finsentry.ingest.scored import keyed_values, to_json_bytes
        from finsentry.ingest.topics import SENTIMENT_KEYED
        from finsentry.ingest.validation import iso_utc, validate_news_raw
        from finsentry.model.scorer import Prediction

        item_id, text = self.pools.take(sentiment)
        raw = {"id": item_id, "text": text, "published_at": iso_utc(t), "source": "twitter-financial-news"}
        news = validate_news_raw(json.dumps(raw).encode())
        # a confident "prediction" equal to the label, varied by item so "most negative" is well defined
        p = 0.70 + 0.29 * ((self.sent * 37) % 100) / 100
        rest = (1 - p) / 2
        probs = {"negative": (p, rest, rest), "neutral": (rest, p, rest), "positive": (rest, rest, p)}[sentiment]
        pred = Prediction(topic, 0.9, sentiment, probs, probs[2] - probs[0], "labels")
        for key, value in keyed_values(news, pred):
            self.producer.send(SENTIMENT_KEYED, key=key.encode(), value=to_json_bytes(value))
        if sentiment == "negative":
            self.negative_ids[item_id] = news.text
        self.sent += 1

    def bucket(self, b: int, topic: str, negative: int, other: int, start_s: int = 0) -> None:
        """``negative`` + ``other`` (neutral/positive alternating) items of ``topic`` spread over bucket ``b``."""
        kinds = ["negative"] * negative + [("neutral", "positive")[i % 2] for i in range(other)]
        kinds = kinds[::2] + kinds[1::2]  # interleave
        for i, kind in enumerate(kinds):
            t = T0 + timedelta(seconds=b * BUCKET_S + start_s + i * (BUCKET_S - 1 - start_s) // max(len(kinds), 1))
            self.item(kind, topic, t)

    def normal(self, b: int) -> None:
        self.bucket(b, SPIKE_TOPIC, 1, 7)
        self.bucket(b, OTHER_TOPIC, 1, 7)

    def flush(self) -> None:
        self.producer.flush(30)

    def close(self) -> None:
        self.producer.close(10)


@pytest.fixture
def stack(broker: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Aggregator, relay (-> test sink), Alertmanager (-> relay), Prometheus (scrapes aggregator and relay)."""
    from finsentry.ingest.settings import IngestSettings
    from finsentry.monitor.service import start_in_thread
    from finsentry.monitor.settings import MonitorSettings
    from finsentry.settings import Settings

    settings = Settings(
        ingest=IngestSettings(kafka=broker.kafka_settings()),
        monitor=MonitorSettings(
            http_port=0,
            group_id="finsentry-aggregator-e2e",
            bucket_seconds=BUCKET_S,
            windows_seconds=[300, 3600],
            grace_seconds=0,
            spike_window_seconds=2 * BUCKET_S,
            baseline_half_life_seconds=30 * BUCKET_S,
            baseline_min_items=20,
        ),
    )
    spikes: queue.Queue[tuple[float, Any]] = queue.Queue()
    stop = threading.Event()
    service, thread = start_in_thread(settings, stop, on_spike=lambda e: spikes.put((time.monotonic(), e)))
    aggregator = f"127.0.0.1:{service.http_port}"
    sink = Receiver().__enter__()
    relay = RelayService(
        AlertsSettings(relay_port=0, relay_token=TOKEN, monitor_api_url=f"http://{aggregator}"),
        kafka=broker.kafka_settings(),  # the relay reads sentiment.spikes
        sinks=[WebhookSink("e2e-sink", sink.url, 5.0)],
    ).start()
    token_file = tmp_path / "relay-token"
    token_file.write_text(TOKEN + "\n")
    am = AlertmanagerServer(
        alertmanager_config(
            relay_url=relay.url + WEBHOOK_PATH,
            credentials_file=token_file,
            group_wait_s=1,
            group_interval_s=1,
            repeat_interval_s=3600,
        ),
        tmp_path / "alertmanager",
    ).start()
    fast_rules = write_yaml(rules_with_for(ALERTING_RULES, 2), tmp_path / "alerting_rules_fast.yml")
    prom = PrometheusServer(
        prometheus_config(
            targets={
                "finsentry-scorer": [],  # no scorer in this test: no ScorerDown to inhibit the spike alerts
                "finsentry-aggregator": [aggregator],
                "finsentry-relay": [f"127.0.0.1:{relay.port}"],
            },
            alertmanagers=[f"127.0.0.1:{am.port}"],
            scrape_interval_s=1,
            evaluation_interval_s=1,
            rule_files=[RECORDING_RULES, fast_rules],
        ),
        tmp_path / "prometheus",
    ).start()
    try:
        yield {
            "settings": settings,
            "service": service,
            "thread": thread,
            "sink": sink,
            "spikes": spikes,
            "prom": prom,
            "am": am,
        }
    finally:
        prom.stop()
        am.stop()
        relay.stop()
        sink.__exit__()
        stop.set()
        thread.join(15)


def _next_notification(sink: Receiver, status: str, timeout_s: float) -> tuple[float, dict[str, Any]]:
    """The next NegativeSentimentSpike notification for the spike topic with ``status`` (others are skipped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = sink.get(timeout_s=max(0.1, deadline - time.monotonic()))
        labels = body["group_labels"]
        if labels.get("alertname") == "NegativeSentimentSpike" and body["status"] == status:
            return time.monotonic(), body
        log.info("skipping notification %s", body["title"])


def _eventually(query: Any, timeout_s: float = 15.0) -> Any:
    """Poll ``query()`` (a Prometheus result list) until it is non-empty or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not (result := query()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return result


def test_spike_to_notification_with_headlines_then_resolved(stack: dict[str, Any], broker: Any) -> None:
    service, sink, spikes = stack["service"], stack["sink"], stack["spikes"]
    deadline = time.monotonic() + 60
    while len(service.state.partitions) < 6 and time.monotonic() < deadline:  # all sentiment.keyed partitions
        assert stack["thread"].is_alive(), "the aggregator service died (see the log above)"
        time.sleep(0.1)
    assert len(service.state.partitions) == 6, "the aggregator was not assigned the partitions"

    replay = LabelledReplay(broker.kafka_settings())
    try:
        for b in range(BASELINE_BUCKETS):
            replay.normal(b)
        replay.flush()
        # the spike: 16 more negative Earnings headlines in one bucket, then one item of the next bucket
        # from each topic, which moves the watermark past the bucket's end so it closes
        t_first_spike = time.monotonic()
        replay.normal(SPIKE_BUCKET)
        replay.bucket(SPIKE_BUCKET, SPIKE_TOPIC, 16, 0, start_s=30)
        replay.item("neutral", SPIKE_TOPIC, T0 + timedelta(seconds=(SPIKE_BUCKET + 1) * BUCKET_S + 1))
        replay.item("neutral", OTHER_TOPIC, T0 + timedelta(seconds=(SPIKE_BUCKET + 1) * BUCKET_S + 1))
        replay.flush()

        t_started, started = spikes.get(timeout=30)
        while started.key != "topic:earnings":
            t_started, started = spikes.get(timeout=30)
        assert started.event == "started"
        t_firing, firing = _next_notification(sink, "firing", timeout_s=60)

        # back to normal: two more buckets push the spike out of the 2-bucket window, the spike ends
        t_back = time.monotonic()
        for b in range(SPIKE_BUCKET + 1, SPIKE_BUCKET + 5):
            replay.normal(b)
        replay.flush()
        t_resolved, resolved = _next_notification(sink, "resolved", timeout_s=60)
    finally:
        replay.close()

    log.info("firing notification:\n%s", firing["text"])
    # the firing notification: the alert with its numbers and the spike's most negative headlines
    assert firing["title"] == "[FIRING:1] NegativeSentimentSpike topic:earnings"
    assert f"Alertmanager: {stack['am'].url}" in firing["text"]  # a link that works, not the machine's hostname
    alert = firing["alerts"][0]
    assert alert["labels"]["topic"] == "earnings" and alert["labels"]["severity"] == "warning"
    z = float(alert["annotations"]["description"].split(" is ")[1].split(" standard")[0])
    assert z >= 3.0, alert["annotations"]["description"]
    assert "over 32 items" in alert["annotations"]["description"]  # 8 + 24 items in the 2-bucket window
    evidence = firing["evidence"]["topic:earnings"]
    assert evidence["error"] is None
    assert evidence["spike"]["event"] == "started" and evidence["spike"]["negative"] == 18
    headlines = evidence["headlines"]
    assert len(headlines) == 5
    assert all(replay.negative_ids.get(h["id"]) == h["text"] for h in headlines), "evidence = our negative items"
    scores = [h["sentiment_score"] for h in headlines]
    assert scores == sorted(scores) and scores[-1] < 0
    assert any(h["url"] and h["url"].startswith("https://") for h in headlines)
    assert headlines[0]["text"] in firing["text"]

    assert resolved["title"] == "[RESOLVED] NegativeSentimentSpike topic:earnings"
    assert resolved["alerts"][0]["status"] == "resolved" and resolved["alerts"][0]["ends_at"]

    # Prometheus scraped the relay's own metrics and computed the recording rules from the real aggregator
    prom = stack["prom"]
    assert _eventually(lambda: prom.query('finsentry_relay_notifications_total{sink="e2e-sink"} >= 2'))
    rates = _eventually(lambda: prom.query("topic:finsentry_items:rate5m"))
    assert {r["metric"]["topic"] for r in rates} == {"earnings", "markets"}
    assert all(float(r["value"][1]) > 0 for r in rates)

    figures = {
        "spike_bucket_sent_to_firing_notification_s": round(t_firing - t_first_spike, 2),
        "spike_started_to_firing_notification_s": round(t_firing - t_started, 2),
        "normal_traffic_sent_to_resolved_notification_s": round(t_resolved - t_back, 2),
    }
    print("e2e alert latency:", json.dumps(figures))  # noqa: T201 - the figure the issue asks to report
    log.info("e2e alert latency: %s", figures)
