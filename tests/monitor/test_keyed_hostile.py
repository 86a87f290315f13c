"""A bad ``sentiment.keyed`` record is a dead letter with a reason, never an exception that kills the aggregator;
a record dated in the future is rejected before it can move its partition's watermark."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from finsentry.ingest.contract import KeyedItem, KeyedMessageError, parse_keyed
from finsentry.ingest.dlq import DlqReason
from finsentry.ingest.topics import SENTIMENT_KEYED
from finsentry.monitor.aggregator import Aggregator, Outcome
from finsentry.monitor.service import AggregatorService
from finsentry.monitor.settings import MonitorSettings
from finsentry.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, DlqReason.EMPTY_MESSAGE),
        (b"", DlqReason.EMPTY_MESSAGE),
        (b"[" * 100_000, DlqReason.INVALID_JSON),
        (b'{"id": ' + b"9" * 5000 + b"}", DlqReason.INVALID_JSON),
        (b"\xff\xfe", DlqReason.INVALID_UTF8),
    ],
    ids=["tombstone", "empty", "deeply-nested", "5000-digit-int", "not-utf8"],
)
def test_bad_keyed_values_raise_keyed_message_error(value, reason):
    with pytest.raises(KeyedMessageError) as err:
        parse_keyed(value)
    assert err.value.reason == reason


# --- a record dated in the future must not blind its partition (the aggregator's guard) -------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FAR = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def keyed(id_: str, key: str, ts: datetime, sentiment: str = "neutral") -> KeyedItem:
    score = -0.8 if sentiment == "negative" else 0.0
    return KeyedItem(id=id_, key=key, published_at=ts, sentiment=sentiment, sentiment_score=score, text=f"t {id_}")


def minutes_before_now(m: float) -> datetime:
    return NOW - timedelta(minutes=m)


def test_a_9999_record_is_rejected_and_leaves_the_all_key_and_its_watermark_alone():
    agg = Aggregator(MonitorSettings(), clock=NOW.timestamp)
    for i in range(30):  # the half hour before now, one a minute, every fifth negative
        ts = minutes_before_now(30 - i)
        assert agg.process(keyed(f"a{i}", "all", ts, "negative" if i % 5 == 0 else "neutral"), 0) is Outcome.ACCEPTED
        assert agg.process(keyed(f"a{i}", "ticker:AAPL", ts), 0) is Outcome.ACCEPTED
    mark, buckets = agg.watermark.partition_mark(0), agg.buckets("all")
    assert mark == minutes_before_now(1).timestamp()

    assert agg.process(keyed("forged", "all", FAR, "negative"), 0) is Outcome.FUTURE
    assert agg.process(keyed("forged", "ticker:AAPL", FAR, "negative"), 0) is Outcome.FUTURE
    assert agg.watermark.partition_mark(0) == mark  # the high mark never moved
    assert agg.keys == ["all", "ticker:AAPL"] and agg.buckets("all") == buckets
    assert (agg.future, agg.expired_keys, agg.late) == (2, 0, 0)

    # the partition keeps aggregating: the next real minute is counted, not dropped as late
    assert agg.process(keyed("b0", "all", minutes_before_now(0.5)), 0) is Outcome.ACCEPTED
    assert sum(b["items"] for b in agg.buckets("all")) == 31
    assert agg.stats() == {
        "accepted": 61,
        "duplicates": 0,
        "late": 0,
        "future": 2,
        "clamped": 0,
        "expired_keys": 0,
        "evicted_keys": 0,
        "near_duplicates": 0,
        "keys": 2,
    }


def test_the_tolerance_is_max_future_seconds_after_the_wall_clock_inclusive():
    agg = Aggregator(MonitorSettings(max_future_seconds=600), clock=NOW.timestamp)
    assert agg.process(keyed("skew", "all", NOW + timedelta(seconds=600)), 0) is Outcome.ACCEPTED
    assert agg.process(keyed("ahead", "all", NOW + timedelta(seconds=601)), 0) is Outcome.FUTURE
    assert agg.process(keyed("tomorrow", "all", NOW + timedelta(hours=23)), 0) is Outcome.FUTURE
    assert agg.watermark.partition_mark(0) == (NOW + timedelta(seconds=600)).timestamp()
    strict = Aggregator(MonitorSettings(max_future_seconds=0), clock=NOW.timestamp)
    assert strict.process(keyed("now", "all", NOW), 0) is Outcome.ACCEPTED
    assert strict.process(keyed("1s", "all", NOW + timedelta(seconds=1)), 0) is Outcome.FUTURE


def test_a_record_rejected_as_future_is_accepted_once_the_clock_has_caught_up():
    """What a later rebuild sees (docs/monitor.md): the guard depends on the wall clock, nothing else."""
    clock = [NOW.timestamp()]
    agg = Aggregator(MonitorSettings(), clock=lambda: clock[0])
    early = keyed("early", "all", NOW + timedelta(hours=2))
    assert agg.process(early, 0) is Outcome.FUTURE
    clock[0] += 2 * 3600 - 600  # now the record lies exactly the tolerance ahead
    assert agg.process(early, 0) is Outcome.ACCEPTED
    assert (agg.future, agg.accepted) == (1, 1)


def test_max_future_seconds_monitor_setting(monkeypatch):
    assert load_settings().monitor.max_future_seconds == 600
    monkeypatch.setenv("FINSENTRY_MONITOR__MAX_FUTURE_SECONDS", "60")
    assert load_settings().monitor.max_future_seconds == 60
    monkeypatch.setenv("FINSENTRY_MONITOR__MAX_FUTURE_SECONDS", "-1")
    with pytest.raises(SettingsError, match=r"monitor\.max_future_seconds"):
        load_settings()


def _record(offset: int, item: dict, partition: int = 0) -> SimpleNamespace:
    value = json.dumps(item).encode()
    return SimpleNamespace(
        topic=SENTIMENT_KEYED, partition=partition, offset=offset, key=item["key"].encode(), value=value
    )


def _value(id_: str, key: str, ts: datetime) -> dict:
    return {
        "id": id_,
        "key": key,
        "published_at": ts.isoformat().replace("+00:00", "Z"),
        "sentiment": "neutral",
        "sentiment_score": 0.0,
    }


def test_the_service_counts_a_future_record_as_rejected_future_event_time_live_only(caplog):
    settings = load_settings(monitor={"http_port": 0})
    service = AggregatorService(settings.monitor, settings.ingest.kafka, settings.model.path)
    real = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    for i in range(10):
        service._handle(_record(i, _value(f"r{i}", "all", real + timedelta(minutes=i))), 0)
    caplog.set_level(logging.WARNING, logger="finsentry.monitor.service")
    service._handle(_record(10, _value("forged", "all", FAR)), 0)
    service._handle(_record(11, _value("r10", "all", real + timedelta(minutes=10))), 0)

    def sample(name: str, **labels: str) -> float | None:
        return service.metrics.registry.get_sample_value(name, labels)

    assert sample("finsentry_aggregator_rejected_messages_total", reason="future_event_time") == 1
    assert sample("finsentry_aggregated_messages_total") == 11 and sample("finsentry_late_events_total", key="all") == 0
    health = service.state.health()
    assert (health["accepted"], health["future"], health["late"], health["keys"]) == (11, 1, 0, 1)
    assert health["watermark"] == (real + timedelta(minutes=10, seconds=-120)).isoformat().replace("+00:00", "Z")
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "finsentry.monitor.service"]
    assert warning.startswith("sentiment.keyed[0]@10: forged for all published at 9999-12-31T23:59:59+00:00, more")
    assert "monitor.max_future_seconds = 600 s" in warning

    service._replay_until[0] = 1_000  # a rebuild by replay: rejected all the same, but not counted again
    service._handle(_record(12, _value("forged2", "all", FAR)), 0)
    assert service.aggregator.future == 2
    assert sample("finsentry_aggregator_rejected_messages_total", reason="future_event_time") == 1


@pytest.mark.broker
def test_a_9999_record_written_straight_to_sentiment_keyed_no_longer_expires_the_all_key(broker):
    from finsentry.ingest.kafka_clients import make_producer
    from finsentry.monitor.service import start_in_thread

    t0 = datetime(2015, 8, 24, 10, 0, tzinfo=UTC)
    values = [_value(f"k{i}", "all", t0 + timedelta(minutes=i)) for i in range(40)]
    messages = values[:20] + [_value("forged", "all", FAR)] + values[20:]
    settings = load_settings(
        ingest={"kafka": {"bootstrap_servers": broker.bootstrap_servers}},
        monitor={"group_id": "agg-future", "http_port": 0},
    )
    stop = threading.Event()
    service, thread = start_in_thread(settings.monitor, settings.ingest.kafka, settings.model.path, stop)
    try:
        _wait(lambda: len(service.state.partitions) == 6, 60, "the aggregator to own the 6 partitions")
        producer = make_producer(broker.kafka_settings())
        for v in messages:  # one key: one partition, in this order
            producer.send(SENTIMENT_KEYED, key=b"all", value=json.dumps(v).encode())
        producer.flush(30)
        producer.close(5)
        _wait(lambda: service.state.health()["records"] == len(messages), 60, "every record consumed")
        with service.state.lock:
            keys, agg = service.aggregator.keys, service.aggregator.stats()
            buckets = service.aggregator.buckets("all") if "all" in keys else []
        health = service.state.health()
        rejected = service.metrics.registry.get_sample_value(
            "finsentry_aggregator_rejected_messages_total", {"reason": "future_event_time"}
        )
    finally:
        stop.set()
        thread.join(15)
    assert keys == ["all"]  # before the guard: [] (expired by the year-9999 watermark), every later record late
    assert (agg["accepted"], agg["late"], agg["future"], agg["expired_keys"]) == (40, 0, 1, 0)
    assert [b["items"] for b in buckets] == [1] * 40
    assert health["watermark"] == "2015-08-24T10:37:00Z"  # last event 10:39 minus the 120 s grace
    assert rejected == 1


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
