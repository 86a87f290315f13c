"""The aggregator service on a real broker at replay speed: an injected spike on a real StockNet day, and a
``kill -9`` mid-stream whose restarted instance must end in the state of one that never stopped.

One scenario (module fixture) feeds two aggregators in different consumer groups from the same topic:
``A`` runs uninterrupted in this process; ``B`` is a ``finsentry aggregator`` process killed with SIGKILL
while the stream is in flight and started again. The tests then read both over their HTTP APIs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from finsentry.ingest.broker import free_port
from finsentry.ingest.contract import aggregate_keys
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.topics import NEWS_DLQ, SENTIMENT_KEYED, SENTIMENT_SPIKES
from finsentry.monitor.service import start_in_thread
from finsentry.monitor.stocknet import fpb_negatives, load_tweets, score
from finsentry.settings import load_settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DAY = date(2015, 8, 24)
TICKER = "AAPL"
INJECT_START = datetime(2015, 8, 24, 15, 0, tzinfo=UTC)
INJECT_ITEMS, INJECT_MINUTES = 40, 5
FINSENTRY = Path(sys.executable).parent / "finsentry"


def keyed_messages(scored: list[dict]) -> list[tuple[str, bytes]]:
    """``sentiment.keyed`` messages (key, value) of scored items, in event-time order, as the scorer fans out."""
    out = []
    for r in sorted(scored, key=lambda r: (r["published_at"], r["id"])):
        for key in aggregate_keys(r["topic"], r["tickers"]):
            value = {
                f: r.get(f)
                for f in (
                    "id",
                    "published_at",
                    "sentiment",
                    "sentiment_probs",
                    "sentiment_score",
                    "topic",
                    "tickers",
                    "text",
                    "url",
                    "model_version",
                )
            }
            out.append((key, json.dumps(value | {"key": key}).encode()))
    return out


def http_json(port: int, path: str, timeout: float = 5.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the aggregator process exited with {proc.returncode} while waiting for {what}")
        try:
            last = predicate()
            if last:
                return last
        except OSError as exc:  # the HTTP service is not up yet
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def start_b(kafka: str, port: int, log_path: Path) -> subprocess.Popen:
    env = os.environ | {"FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS": kafka}
    return subprocess.Popen(
        [str(FINSENTRY), "aggregator", "--group-id", "agg-b", "--http-port", str(port)],
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def scenario(broker, model_dir, tmp_path_factory):
    from finsentry.model import Scorer

    scorer = Scorer.load(model_dir)
    day = score(load_tweets(DAY, DAY), scorer)
    step = INJECT_MINUTES * 60 / INJECT_ITEMS  # 7.5 s apart: 8 items per event-minute
    injected = [
        {
            "id": f"fpb:{i}",
            "text": text,
            "published_at": (INJECT_START + timedelta(seconds=i * step)).isoformat(),
            "tickers": [TICKER],
            "url": None,
            "source": "fpb",
        }
        for i, text in enumerate(fpb_negatives(INJECT_ITEMS))
    ]
    injected = score(injected, scorer)
    messages = keyed_messages(day + injected)
    good = len(messages)
    messages.insert(100, ("all", b"{not json"))  # bad records mid-stream: to news.dlq, the consumer goes on
    messages.insert(200, ("all", json.dumps({"id": "x", "key": "all"}).encode()))
    kafka = broker.bootstrap_servers
    logs = tmp_path_factory.mktemp("agg")

    stop = threading.Event()
    published: list[dict] = []
    settings_a = load_settings(
        ingest={"kafka": {"bootstrap_servers": kafka}}, monitor={"group_id": "agg-a", "http_port": 0}
    )
    service_a, thread_a = start_in_thread(
        settings_a.monitor,
        settings_a.ingest.kafka,
        settings_a.model.path,
        stop,
        on_spike=lambda e: published.append(e.to_dict()),
    )
    port_b1, port_b2 = free_port(), free_port()
    b1 = start_b(kafka, port_b1, logs / "b.log")
    b2 = None
    try:
        wait_for(
            lambda: len(http_json(port_b1, "/api/health")["partitions"]) == 6, 60, "B1 to own 6 partitions", proc=b1
        )
        wait_for(lambda: len(service_a.state.partitions) == 6, 60, "A to own 6 partitions")
        producer = make_producer(broker.kafka_settings())

        def produce() -> None:  # replay speed: the day's 24 event-hours in about 4 s of wall clock
            for i, (key, value) in enumerate(messages):
                producer.send(SENTIMENT_KEYED, key=key.encode(), value=value)
                if i % 25 == 24:
                    producer.flush()
                    time.sleep(0.15)
            producer.flush()

        sender = threading.Thread(target=produce)
        sender.start()
        wait_for(
            lambda: http_json(port_b1, "/api/health")["records"] >= len(messages) // 3, 60, "B1 to consume", proc=b1
        )
        os.killpg(b1.pid, signal.SIGKILL)  # kill -9 mid-stream
        b1.wait(10)
        killed_after = sender.is_alive()
        b2 = start_b(kafka, port_b2, logs / "b.log")
        sender.join(60)
        n = good
        wait_for(lambda: service_a.aggregator.accepted == n, 60, "A to aggregate everything")
        wait_for(lambda: http_json(port_b2, "/api/health")["accepted"] == n, 90, "B2 to rebuild and catch up", proc=b2)
        time.sleep(1.0)  # let both flush and commit their last batch
        yield {
            "a": service_a,
            "port_a": service_a.http_port,
            "port_b": port_b2,
            "messages": n,
            "published_a": published,
            "killed_mid_stream": killed_after,
            "broker": broker,
            "injected": injected,
        }
    finally:
        stop.set()
        thread_a.join(15)
        for proc in (b1, b2):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        producer_close = locals().get("producer")
        if producer_close is not None:
            producer_close.close(5)


def test_injected_negatives_start_a_spike_within_two_closed_buckets_and_it_ends_after(scenario):
    injected = scenario["injected"]
    negative = sum(r["sentiment"] == "negative" for r in injected)
    assert negative >= 30, f"the model labels only {negative} of 40 negative FPB sentences negative"
    key = f"ticker:{TICKER}"
    events = [e for e in reversed(http_json(scenario["port_a"], f"/api/spikes?key={key}&limit=1000")["spikes"])]
    inject_end = INJECT_START + timedelta(minutes=INJECT_MINUTES)
    started = [e for e in events if e["event"] == "started" and e["bucket_end"] >= INJECT_START.isoformat()[:19]]
    assert started, f"no spike started for {key}: {events}"
    first = started[0]
    # closed buckets of the injection: 15:00 (8 items, below min_items), 15:01 (16 items): the second one
    assert first["bucket_end"] <= (INJECT_START + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first["z"] >= 3 and first["items"] >= 10
    assert len(first["evidence"]) == 5 and all(x["id"].startswith("fpb:") for x in first["evidence"])
    ended = [e for e in events if e["event"] == "ended" and e["bucket_end"] > first["bucket_end"]]
    assert ended, "the spike never ended"
    assert ended[0]["bucket_end"] > inject_end.strftime("%Y-%m-%dT%H:%M:%SZ")
    # the spike events reached sentiment.spikes too (A published each one once; B1 + B2 once more)
    consumer = make_consumer(scenario["broker"].kafka_settings(), None, SENTIMENT_SPIKES, consumer_timeout_ms=3000)
    on_topic = [json.loads(r.value) for r in consumer]
    consumer.close()
    assert any(e["key"] == key and e["event"] == "started" for e in on_topic)


def _close(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6), path
    else:
        assert a == b, path


def test_kill_9_and_restart_ends_in_the_uninterrupted_state(scenario):
    assert scenario["killed_mid_stream"], "B1 was killed only after the stream ended"
    pa, pb = scenario["port_a"], scenario["port_b"]
    trends_a, trends_b = http_json(pa, "/api/trends"), http_json(pb, "/api/trends")
    assert trends_a == trends_b  # rolling views: exactly equal
    keys = sorted(trends_a["keys"])
    assert len(keys) > 30  # all, the day's tickers, the predicted topics
    for key in keys:  # bucket counts and score sums: exactly equal
        path = f"/api/keys/{key}/buckets?limit=100000"
        assert http_json(pa, path) == http_json(pb, path), key
    det_a, det_b = http_json(pa, "/api/detectors"), http_json(pb, "/api/detectors")
    _close(det_a, det_b)  # baselines, z-scores, spike state: within 1e-6
    spikes_a = http_json(pa, "/api/spikes?limit=1000")["spikes"]
    spikes_b = http_json(pb, "/api/spikes?limit=1000")["spikes"]
    _close(
        sorted(spikes_a, key=lambda e: (e["key"], e["bucket_end"])),
        sorted(spikes_b, key=lambda e: (e["key"], e["bucket_end"])),
    )
    health_b = http_json(pb, "/api/health")
    assert health_b["late"] == 0 and health_b["duplicates"] == 0
    # published to sentiment.spikes: every event of A twice at least (A, and B1 or B2), never lost by the restart
    consumer = make_consumer(scenario["broker"].kafka_settings(), None, SENTIMENT_SPIKES, consumer_timeout_ms=3000)
    seen = Counter((e["key"], e["event"], e["bucket_end"]) for e in (json.loads(r.value) for r in consumer))
    consumer.close()
    assert scenario["published_a"], "the on_spike hook saw no event"
    for e in scenario["published_a"]:
        assert 2 <= seen[(e["key"], e["event"], e["bucket_end"])] <= 3, e


def test_bad_records_go_to_the_dead_letter_topic_and_the_consumer_goes_on(scenario):
    text = urllib.request.urlopen(f"http://127.0.0.1:{scenario['port_a']}/metrics", timeout=5).read().decode()
    assert 'finsentry_aggregator_rejected_messages_total{reason="invalid_json"} 1.0' in text
    assert 'finsentry_aggregator_rejected_messages_total{reason="missing_field"} 1.0' in text
    consumer = make_consumer(scenario["broker"].kafka_settings(), None, NEWS_DLQ, consumer_timeout_ms=3000)
    dead = [r for r in consumer if dict(r.headers).get("source_topic") == SENTIMENT_KEYED.encode()]
    consumer.close()
    reasons = Counter(dict(r.headers)["reason"].decode() for r in dead)
    assert reasons["invalid_json"] >= 2 and reasons["missing_field"] >= 2  # A, and B before or after the kill
    bad = next(r for r in dead if dict(r.headers)["reason"] == b"invalid_json")
    assert bad.value == b"{not json" and bad.key == b"all" and int(dict(bad.headers)["source_offset"]) >= 0
