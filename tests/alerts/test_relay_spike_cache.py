"""The relay's spike cache and its ``sentiment.spikes`` consumer: bounded, newest event per spike, newest spike per
key, bad records counted and skipped without stopping the consumer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alerts_testkit import SPIKE_EVENT, wait_for

from finsentry.alerts.metrics import REGISTRY
from finsentry.alerts.spike_cache import SpikeCache, SpikeConsumer, parse_record
from finsentry.monitor.spikes import SpikeEvent, SpikeRecordError


def _spike(minute: int, event: str = "started", z: float = 6.4, key: str = "topic:earnings") -> SpikeEvent:
    start = f"2024-05-01T12:{minute:02d}:00Z"
    body = dict(SPIKE_EVENT, key=key, event=event, z=z, bucket_end=start, spike_id=f"{key}@{start}")
    body["start"] = body["peak"] = dict(SPIKE_EVENT["start"], bucket_end=start)
    return SpikeEvent.from_dict(body)


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("finsentry_relay_spike_records_rejected_total", {"reason": reason}) or 0.0


def test_the_cache_is_bounded_and_keeps_the_newest_spike_per_key():
    cache = SpikeCache(capacity=3)
    for minute in range(5):
        assert cache.add(_spike(minute, key=f"ticker:T{minute}"))
    assert len(cache) == 3 and cache.dropped == 2
    assert cache.latest("ticker:T0") is None and cache.get("ticker:T0@2024-05-01T12:00:00Z") is None
    assert cache.latest("ticker:T4").latest.spike_id == "ticker:T4@2024-05-01T12:04:00Z"
    old, new = _spike(10), _spike(20)
    cache.add(new)
    cache.add(old)  # an older spike read later (a replay) does not become the key's newest
    assert cache.latest("topic:earnings").latest.spike_id == new.spike_id
    assert cache.get(old.spike_id).latest == old


def test_a_repeated_or_older_event_never_replaces_a_newer_one_and_the_start_evidence_stays():
    cache = SpikeCache()
    started = _spike(1)
    later = SpikeEvent.from_dict(
        started.to_dict() | {"event": "updated", "bucket_end": "2024-05-01T12:02:00Z", "z": 2.0, "evidence": []}
    )
    assert cache.add(started) and cache.add(later)
    assert not cache.add(started), "an at-least-once repeat of the start is older than what is held"
    held = cache.get(started.spike_id)
    assert held.latest.event == "updated" and held.latest.z == 2.0
    assert [e["id"] for e in held.evidence] == [e["id"] for e in started.evidence]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\xff", "invalid_json"),
        (b"[1]", "a spike event must be a JSON object"),
        (json.dumps({k: v for k, v in SPIKE_EVENT.items() if k != "spike_id"}).encode(), "spike_id and start"),
        (json.dumps(SPIKE_EVENT | {"z": "high"}).encode(), "z must be a finite number"),
        (b"[" * 100_000, "invalid_json: nested too deeply"),  # was a RecursionError out of json.loads
        (json.dumps(SPIKE_EVENT).replace('"z": 6.4', '"z": NaN', 1).encode(), "invalid_json: NaN"),
    ],
)
def test_bad_records_say_what_is_wrong(value: bytes, message: str):
    with pytest.raises(SpikeRecordError, match=message):
        parse_record(value)


@pytest.mark.broker
def test_the_consumer_fills_the_cache_and_survives_bad_records(broker: Any):
    from finsentry.ingest.kafka_clients import make_producer
    from finsentry.ingest.topics import SENTIMENT_SPIKES

    kafka = broker.kafka_settings()
    cache = SpikeCache()
    bad_json, bad_record = _rejected("invalid_json"), _rejected("invalid_record")
    consumer = SpikeConsumer(kafka, cache, "relay-cache-test", lookback_seconds=3600).start()
    producer = make_producer(kafka)
    try:
        assert consumer.ready.wait(60), "the consumer was never assigned sentiment.spikes"
        good = _spike(30, key="ticker:ACME")
        for value in (b"not json", json.dumps({"event": "started"}).encode(), json.dumps(good.to_dict()).encode()):
            producer.send(SENTIMENT_SPIKES, key=b"ticker:ACME", value=value)
        producer.flush(30)
        assert wait_for(lambda: cache.latest("ticker:ACME") is not None, timeout_s=30), (consumer.read, len(cache))
        assert cache.latest("ticker:ACME").latest == good
        assert (consumer.read, consumer.rejected) == (1, 2)
        assert _rejected("invalid_json") == bad_json + 1 and _rejected("invalid_record") == bad_record + 1
    finally:
        producer.close(10)
        consumer.stop()
