"""End to end with the real binaries: replay -> embedded broker -> aggregator -> Prometheus -> Alertmanager ->
relay -> a test sink, which receives the firing notification with the evidence headlines, then the resolved one.

The replay is a *labelled* replay of real headlines (``data/splits/sentiment_valid.csv``): each item's sentiment
is its human label (Bearish -> negative, ...), so where the spike is is known in advance; the model is not
under test here. Items go through the scorer's own validation (:func:`validate_news_raw`) and fan-out
(:func:`keyed_values`) into ``sentiment.keyed``. Event time is compressed (a 60 s bucket per batch, produced as
fast as the producer goes); test-only timing: 1 s scrape and rule evaluation, ``for: 2s`` on every alert,
Alertmanager ``group_wait`` / ``group_interval`` 1 s. Thresholds and expressions are the production ones.

One spike, one set of figures (issue 13): the console line, ``/api/spikes``, the alert's annotations and the relay's
notification quote the same start and peak figures of the same ``spike_id``; the relay takes them from
``sentiment.spikes``, so its notification comes within a second of Alertmanager's webhook even with the aggregator
stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import queue
import re
import threading
import time
import urllib.request
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
    load_yaml,
    prometheus_config,
    rules_with_for,
    write_yaml,
)
from finsentry.alerts.processes import AlertmanagerServer, PrometheusServer
from finsentry.alerts.relay import WEBHOOK_PATH, RelayService
from finsentry.alerts.settings import AlertsSettings
from finsentry.alerts.sinks import WebhookSink
from finsentry.common.paths import SPLITS_DIR

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

    def spike(self, b: int) -> None:
        """Bucket ``b``: normal traffic plus 16 more negative Earnings headlines, then one item of the next bucket
        from each topic, which moves the watermark past the bucket's end so it closes."""
        self.normal(b)
        self.bucket(b, SPIKE_TOPIC, 16, 0, start_s=30)
        self.item("neutral", SPIKE_TOPIC, T0 + timedelta(seconds=(b + 1) * BUCKET_S + 1))
        self.item("neutral", OTHER_TOPIC, T0 + timedelta(seconds=(b + 1) * BUCKET_S + 1))
        self.flush()

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
            spike={
                "window_seconds": 2 * BUCKET_S,
                "baseline_half_life_seconds": 30 * BUCKET_S,
                "baseline_min_items": 20,
            },
        ),
    )
    spikes: queue.Queue[tuple[float, Any]] = queue.Queue()
    stop = threading.Event()
    service, thread = start_in_thread(
        settings.monitor,
        settings.ingest.kafka,
        settings.model.path,
        stop,
        on_spike=lambda e: spikes.put((time.monotonic(), e)),
    )
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
    # test timing for the spike alerts only: the pipeline alerts keep their production `for`, so stopping the
    # aggregator below does not fire FinsentryAggregatorDown (which would inhibit the spike alerts) within the test
    fast = rules_with_for(ALERTING_RULES, 2)
    production = {r["alert"]: r["for"] for g in load_yaml(ALERTING_RULES)["groups"] for r in g["rules"] if "alert" in r}
    for group in fast["groups"]:
        if group["name"] != "finsentry-spikes":
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = production[rule["alert"]]
    fast_rules = write_yaml(fast, tmp_path / "alerting_rules_fast.yml")
    webhooks: list[tuple[float, str]] = []  # (time.monotonic(), status) of every Alertmanager call the relay handled
    handle = relay.handle

    def timed_handle(payload: Any) -> list[str]:
        webhooks.append((time.monotonic(), payload.status))
        return handle(payload)

    relay.handle = timed_handle  # type: ignore[method-assign]
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
            "relay": relay,
            "webhooks": webhooks,
            "stop": stop,
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


FIGURES = re.compile(
    r"z=(?P<z>-?[\d.]+)  negative (?P<neg>\d+)/(?P<items>\d+) \((?P<share>\d+)%(?:, baseline (?P<base>\d+)%)?\)"
)
"""The figures as :func:`finsentry.monitor.spikes.figures_text` writes them (console, relay)."""

DESCRIPTION = re.compile(
    r"Spike (?P<id>\S+): .* turned negative at z (?P<z>[\d.]+) \(standard deviations above its baseline\), with"
    r" (?P<neg>\d+) of (?P<items>\d+) stories negative \((?P<share>\d+)%, baseline (?P<base>\d+)%\)\. Peak z"
    r" (?P<pz>[\d.]+) with (?P<pneg>\d+) of (?P<pitems>\d+) negative \((?P<pshare>\d+)%\)\."
)
"""The spike alerts' description and ``peak_and_now`` annotation, joined by a blank (alerts/alerting_rules.yml)."""


def _figures(text: str, nth: int = 0) -> tuple[str, ...]:
    """``(z, negative, items, share %[, baseline %])`` of the ``nth`` figure set in ``text``."""
    found = list(FIGURES.finditer(text))
    assert len(found) > nth, f"no figures #{nth} in {text!r}"
    m = found[nth]
    return tuple(v for v in (m["z"], m["neg"], m["items"], m["share"], m["base"]) if v is not None)


def _record_figures(spike: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Start and peak figures of a spike record (an event's dict), in the console's form."""
    from finsentry.monitor.spikes import figures_text

    return {
        "start": _figures(figures_text(spike["start"])),
        "peak": _figures(figures_text(spike["peak"], baseline=False)),
    }


def _api_spike(port: int, spike_id: str) -> dict[str, Any]:
    """The newest event of ``spike_id`` from the aggregator's ``GET /api/spikes``."""
    url = f"http://127.0.0.1:{port}/api/spikes?key=topic:earnings&state=all&limit=50"
    with urllib.request.urlopen(url, timeout=10) as resp:
        events = json.loads(resp.read())["spikes"]
    mine = [e for e in events if e["spike_id"] == spike_id]
    assert mine, f"no event of {spike_id} in /api/spikes: {[(e['event'], e['spike_id']) for e in events]}"
    return mine[0]


def _webhook_to_sink_s(stack: dict[str, Any], body: dict[str, Any]) -> float:
    """Seconds from Alertmanager's webhook call (as the relay received it) to ``body`` arriving at the sink."""
    arrived = stack["sink"].arrived(body)
    calls = [t for t, status in stack["webhooks"] if status == body["status"] and t <= arrived]
    assert calls, f"no {body['status']} webhook before the notification: {stack['webhooks']}"
    return arrived - max(calls)


def _next_spike(spikes: queue.Queue, event: str, timeout_s: float = 30) -> tuple[float, Any]:
    """The aggregator's next ``event`` on topic:earnings (other keys and events skipped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        t, e = spikes.get(timeout=max(0.1, deadline - time.monotonic()))
        if e.key == "topic:earnings" and e.event == event:
            return t, e


def test_spike_to_notification_with_headlines_then_resolved(stack: dict[str, Any], broker: Any) -> None:
    service, sink, spikes = stack["service"], stack["sink"], stack["spikes"]
    deadline = time.monotonic() + 60
    while len(service.state.partitions) < 6 and time.monotonic() < deadline:  # all sentiment.keyed partitions
        assert stack["thread"].is_alive(), "the aggregator service died (see the log above)"
        time.sleep(0.1)
    assert len(service.state.partitions) == 6, "the aggregator was not assigned the partitions"

    assert stack["relay"].consumer.ready.wait(60), "the relay never read sentiment.spikes"

    replay = LabelledReplay(broker.kafka_settings())
    try:
        for b in range(BASELINE_BUCKETS):
            replay.normal(b)
        replay.flush()
        # the spike: 16 more negative Earnings headlines in one bucket, which then closes
        t_first_spike = time.monotonic()
        replay.spike(SPIKE_BUCKET)

        t_started, started = _next_spike(spikes, "started")
        t_firing, firing = _next_notification(sink, "firing", timeout_s=60)
        api_spike = _api_spike(service.http_port, started.spike_id)

        # back to normal: two more buckets push the spike out of the 2-bucket window, the spike ends
        t_back = time.monotonic()
        for b in range(SPIKE_BUCKET + 1, SPIKE_BUCKET + 5):
            replay.normal(b)
        replay.flush()
        t_resolved, resolved = _next_notification(sink, "resolved", timeout_s=60)
        _t, ended = _next_spike(spikes, "ended")

        # a second spike; once it fires, the aggregator (the monitor) stops: the resolved notification that follows
        # still carries the spike's record and headlines, within a second of Alertmanager's webhook
        spike2 = SPIKE_BUCKET + 6
        replay.normal(spike2 - 1)
        replay.spike(spike2)
        _t, started2 = _next_spike(spikes, "started")
        _t, firing2 = _next_notification(sink, "firing", timeout_s=60)
        stack["stop"].set()
        stack["thread"].join(15)
        assert not stack["thread"].is_alive(), "the aggregator did not stop"
        _t, resolved2 = _next_notification(sink, "resolved", timeout_s=60)
    finally:
        replay.close()

    log.info("firing notification:\n%s", firing["text"])
    # the firing notification: the alert with its numbers and the spike's most negative headlines
    assert firing["title"] == "[FIRING:1] NegativeSentimentSpike topic:earnings"
    assert f"Alertmanager: {stack['am'].url}" in firing["text"]  # a link that works, not the machine's hostname
    alert = firing["alerts"][0]
    assert alert["labels"]["topic"] == "earnings" and alert["labels"]["severity"] == "warning"
    description = alert["annotations"]["description"] + " " + alert["annotations"]["peak_and_now"]
    m = DESCRIPTION.search(description)
    assert m, f"the description does not quote the spike: {description!r}"
    assert float(m["z"]) >= 3.0, description
    assert (m["neg"], m["items"]) == ("18", "32"), description  # 8 + 24 items in the 2-bucket window
    figures_now = alert["annotations"]["peak_and_now"]  # the current window, labelled as current
    assert "over 32 stories in the window behind that z." in figures_now, figures_now
    evidence = firing["evidence"]["topic:earnings"]
    assert evidence["error"] is None
    assert evidence["spike"]["event"] == "started" and evidence["spike"]["negative"] == 18

    # one spike, one set of figures: console, API, alert annotations, relay notification
    from finsentry.run_console import spike_lines

    sid = started.spike_id
    console_started = spike_lines(started.to_dict())[0]
    console_ended = spike_lines(ended.to_dict())[0]
    start_line = next((x for x in firing["text"].splitlines() if x.startswith("  start ")), "")
    peak_line = next((x for x in firing["text"].splitlines() if x.startswith("  peak ")), "")
    surfaces = {
        "console": {"start": _figures(console_started), "peak": _figures(console_ended, 1)},
        "api": _record_figures(api_spike),
        "alert": {
            "start": (m["z"], m["neg"], m["items"], m["share"], m["base"]),
            "peak": (m["pz"], m["pneg"], m["pitems"], m["pshare"]),
        },
        "relay": {"start": _figures(start_line), "peak": _figures(peak_line)},
        "relay_json": _record_figures(evidence["spike"]),
    }
    ids = {
        "console": ended.spike_id,
        "api": api_spike["spike_id"],
        "alert_label": alert["labels"]["spike_id"],
        "alert_text": m["id"],
        "relay": evidence["spike"]["spike_id"],
    }
    assert set(ids.values()) == {sid}, ids
    assert f"Spike {sid} " in firing["text"], firing["text"]
    assert all(v == surfaces["api"] for v in surfaces.values()), json.dumps(surfaces, indent=1)
    assert surfaces["api"]["start"][1:3] == ("18", "32"), surfaces["api"]
    assert console_ended.split("  at ")[0].strip().endswith("topic:earnings") and "; now z=" in console_ended
    headlines = evidence["headlines"]
    assert len(headlines) == 5
    assert all(replay.negative_ids.get(h["id"]) == h["text"] for h in headlines), "evidence = our negative items"
    scores = [h["sentiment_score"] for h in headlines]
    assert scores == sorted(scores) and scores[-1] < 0
    assert any(h["url"] and h["url"].startswith("https://") for h in headlines)
    assert headlines[0]["text"] in firing["text"]

    assert resolved["title"] == "[RESOLVED] NegativeSentimentSpike topic:earnings"
    assert resolved["alerts"][0]["status"] == "resolved" and resolved["alerts"][0]["ends_at"]

    # the monitor stopped: the relay still answers at once with the second spike's record and headlines
    assert started2.spike_id != sid and firing2["alerts"][0]["labels"]["spike_id"] == started2.spike_id, firing2
    ev2 = resolved2["evidence"]["topic:earnings"]
    assert ev2["error"] is None and ev2["spike"]["spike_id"] == started2.spike_id, ev2
    assert len(ev2["headlines"]) == 5 and all(replay.negative_ids.get(h["id"]) == h["text"] for h in ev2["headlines"])
    latency = {
        "firing (monitor up)": round(_webhook_to_sink_s(stack, firing), 3),
        "resolved (monitor up)": round(_webhook_to_sink_s(stack, resolved), 3),
        "firing 2 (monitor up)": round(_webhook_to_sink_s(stack, firing2), 3),
        "resolved 2 (monitor stopped)": round(_webhook_to_sink_s(stack, resolved2), 3),
    }
    assert all(v < 1.0 for v in latency.values()), f"webhook -> notification at the sink, s: {latency}"

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
    print("e2e alert latency:", json.dumps(figures), "webhook -> sink:", json.dumps(latency))  # noqa: T201
    log.info("e2e alert latency: %s; webhook -> sink: %s", figures, latency)
