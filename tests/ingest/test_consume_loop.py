"""The consume-process-produce runner (ingest/consume_loop.py) on a real embedded broker: commit only after the
produced records are acknowledged, rewind on failure, dead letters, rebalance setup, group-less reading."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from ingest_testkit import TopicReader, headers, produce, wait_for
from kafka import TopicPartition
from pydantic import ValidationError

from finsentry.ingest.consume_loop import (
    MAX_DLQ_KEY_BYTES,
    ConsumeLoop,
    LoopConfig,
    LoopHandler,
    ProduceFailed,
    first_offsets,
    next_offsets,
    send_dead_letter,
)
from finsentry.ingest.kafka_clients import make_consumer
from finsentry.ingest.topics import MODELS_EVENTS, NEWS_DLQ, NEWS_RAW, NEWS_SCORED

PARTITIONS = [TopicPartition(NEWS_RAW, p) for p in range(6)]


class _Copy(LoopHandler):
    """Copies each record to news.scored; a value starting with ``bad`` becomes an ``invalid_json`` dead letter.

    ``fail_first`` batches raise ProduceFailed after producing (as a missing acknowledgement does).
    """

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.seen: list[tuple[int, int]] = []
        self.passed: set[tuple[int, int]] = set()  # records of the batches that did not raise
        self.batches = 0

    def process(self, batch, producer) -> None:
        for rec in batch:
            self.seen.append((rec.partition, rec.offset))
            if producer is None:  # a reader only
                continue
            if rec.value.startswith(b"bad"):
                send_dead_letter(producer, rec, "invalid_json", "not JSON")
            else:
                producer.send(NEWS_SCORED, key=rec.key, value=rec.value)
        self.batches += 1
        if self.batches <= self.fail_first:
            raise ProduceFailed("simulated missing acknowledgement")
        self.passed |= {(rec.partition, rec.offset) for rec in batch}


def _kafka(broker):
    return broker.kafka_settings(session_timeout_ms=2000, heartbeat_interval_ms=300)


def _config(group: str | None, **kw) -> LoopConfig:
    return LoopConfig(name="test", topics=(NEWS_RAW,), group_id=group, **({"error_backoff_s": 0.2} | kw))


def _committed(kafka, group: str) -> dict[int, int]:
    consumer = make_consumer(kafka, group)
    try:
        return {tp.partition: consumer.committed(tp) or 0 for tp in PARTITIONS}
    finally:
        consumer.close(autocommit=False)


def _run(loop: ConsumeLoop, until, what: str) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(until, 60, what)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def _per_partition(kafka, n: int) -> dict[int, int]:
    reader = TopicReader(kafka, NEWS_RAW)
    reader.read_until(lambda r: len(r.records[NEWS_RAW]) >= n, 30, "news.raw read back")
    reader.close()
    out = dict.fromkeys(range(6), 0)
    for r in reader.records[NEWS_RAW]:
        out[r.partition] += 1
    return out


def test_records_are_produced_dead_lettered_and_committed_after_acknowledgement(fresh_broker):
    kafka = _kafka(fresh_broker)
    values = [f"v{i}".encode() if i % 5 else f"bad{i}".encode() for i in range(30)]
    produce(kafka, [(f"k{i}".encode(), v) for i, v in enumerate(values)])
    handler = _Copy()
    loop = ConsumeLoop(_config("copy", max_batch_items=7, max_batch_wait_ms=50), kafka, handler)
    _run(loop, lambda: len(handler.seen) >= 30, "30 records processed")
    assert sorted(handler.seen) == sorted(set(handler.seen)) and len(handler.seen) == 30
    assert loop.stats.redone_batches == 0
    reader = TopicReader(kafka, NEWS_SCORED, NEWS_DLQ)
    reader.read_until(lambda r: len(r.records[NEWS_SCORED]) >= 24 and len(r.records[NEWS_DLQ]) >= 6, 30, "outputs")
    reader.close()
    assert sorted(r.value for r in reader.records[NEWS_SCORED]) == sorted(v for v in values if not v.startswith(b"bad"))
    dead = reader.records[NEWS_DLQ]
    assert sorted(r.value for r in dead) == sorted(v for v in values if v.startswith(b"bad"))
    first = headers(dead[0])
    assert first["reason"] == "invalid_json" and first["message"] == "not JSON" and first["source_topic"] == NEWS_RAW
    assert _committed(kafka, "copy") == _per_partition(kafka, 30)


def test_a_failed_acknowledgement_rewinds_and_redoes_the_batch_without_skipping(fresh_broker):
    kafka = _kafka(fresh_broker)
    produce(kafka, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)])
    handler = _Copy(fail_first=2)
    loop = ConsumeLoop(_config("rewind", max_batch_items=5, max_batch_wait_ms=50), kafka, handler)
    # the records of the failed batches count once they are redone (seen alone, a stop could come before)
    _run(loop, lambda: len(handler.passed) >= 20, "20 distinct records processed in batches that did not fail")
    assert loop.stats.redone_batches == 2
    assert len(handler.seen) > len(set(handler.seen)) == 20  # the failed batches were read again, nothing skipped
    assert _committed(kafka, "rewind") == _per_partition(kafka, 20)


def test_nothing_is_committed_while_acknowledgements_fail(fresh_broker):
    kafka = _kafka(fresh_broker)
    produce(kafka, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(6)])
    handler = _Copy(fail_first=10**6)
    loop = ConsumeLoop(_config("never"), kafka, handler)
    _run(loop, lambda: handler.batches >= 3, "three failed batches")
    assert loop.stats.redone_batches >= 3
    assert _committed(kafka, "never") == dict.fromkeys(range(6), 0)


class _Rebuild(_Copy):
    """Rebuilds from the start of every assigned partition, whatever the committed offset."""

    rebuilds_on_assign = True

    def __init__(self) -> None:
        super().__init__()
        self.setups: list[set[int]] = []

    def setup(self, consumer, partitions) -> None:
        self.setups.append({tp.partition for tp in partitions})
        consumer.seek_to_beginning(*partitions)


def test_a_rebuilding_handler_seeks_its_new_partitions_before_any_record_is_processed(fresh_broker):
    kafka = _kafka(fresh_broker)
    produce(kafka, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(12)])
    first = _Copy()
    _run(ConsumeLoop(_config("rebuild"), kafka, first), lambda: len(first.seen) >= 12, "12 records processed")
    again = _Rebuild()
    _run(ConsumeLoop(_config("rebuild"), kafka, again), lambda: len(again.seen) >= 12, "12 records re-read")
    assert again.setups and set().union(*again.setups) == set(range(6))
    assert sorted(again.seen) == sorted(first.seen)  # every record again, from the start, once


def test_without_a_group_the_loop_reads_every_partition_from_its_end(fresh_broker):
    kafka = _kafka(fresh_broker)
    produce(kafka, [(b"current", b"before")], topic=MODELS_EVENTS)
    handler = _Copy()
    config = LoopConfig(name="events", topics=(MODELS_EVENTS,), group_id=None, produce=False, poll_ms=100)
    loop = ConsumeLoop(config, kafka, handler).open()
    stop = threading.Event()
    thread = threading.Thread(target=loop.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        assert loop.assigned() == {TopicPartition(MODELS_EVENTS, 0)}
        produce(kafka, [(b"current", b"after")], topic=MODELS_EVENTS)
        wait_for(lambda: handler.seen, 30, "the new event")
    finally:
        stop.set()
        thread.join(30)
        loop.close()
    assert handler.seen == [(0, 1)]


class _Futures:
    """A producer whose sends succeed or not."""

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value, dict(headers or [])))
        return SimpleNamespace(succeeded=lambda: True)


def test_a_dead_letter_keeps_the_original_bytes_cut_to_the_limits():
    producer = _Futures()
    rec = SimpleNamespace(topic=NEWS_RAW, partition=3, offset=41, key=b"k" * 5000, value=b"x" * 100)
    send_dead_letter(producer, rec, "message_too_large", "too long", max_value_bytes=10)
    topic, key, value, hdrs = producer.sent[0]
    assert (topic, key, value) == (NEWS_DLQ, b"k" * MAX_DLQ_KEY_BYTES, b"x" * 10)
    assert hdrs["value_truncated"] == b"100" and hdrs["source_partition"] == b"3" and hdrs["source_offset"] == b"41"
    send_dead_letter(
        producer, SimpleNamespace(topic=NEWS_RAW, partition=0, offset=0, key=None, value=None), "empty_message", ""
    )
    assert producer.sent[1][1:3] == (None, b"")


def test_offsets_of_a_batch():
    recs = [SimpleNamespace(topic=NEWS_RAW, partition=p, offset=o) for p, o in [(0, 5), (1, 2), (0, 3), (1, 9)]]
    assert next_offsets(recs) == {PARTITIONS[0]: 6, PARTITIONS[1]: 10}
    assert first_offsets(recs) == {PARTITIONS[0]: 3, PARTITIONS[1]: 2}


@pytest.mark.parametrize(
    ("field", "value"),
    [("poll_ms", 0), ("max_batch_items", 0), ("max_batch_wait_ms", -1), ("error_backoff_s", 0), ("acks", "maybe")],
)
def test_the_config_refuses_values_out_of_range(field, value):
    with pytest.raises(ValidationError) as err:
        LoopConfig(name="x", topics=(NEWS_RAW,), group_id="g", **{field: value})
    assert err.value.errors()[0]["loc"] == (field,)


class _FlakyConsumer:
    """A consumer whose first poll fails with an OSError (not a KafkaError), then returns ``records`` once."""

    def __init__(self, records) -> None:
        self.records = records
        self.polls = 0
        self.commits: list[dict[int, int]] = []

    def poll(self, timeout_ms, max_records):
        self.polls += 1
        if self.polls == 1:
            raise OSError("connection reset by peer")
        return {PARTITIONS[0]: self.records} if self.polls == 2 else {}

    def assignment(self):
        return {PARTITIONS[0]}

    def seek(self, tp, offset) -> None:
        raise AssertionError("nothing was polled, nothing to rewind")

    def commit(self, offsets, timeout_ms=None) -> None:
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})


def test_a_poll_that_raises_anything_is_retried_and_the_loop_goes_on():
    records = [SimpleNamespace(topic=NEWS_RAW, partition=0, offset=o, key=None, value=b"v") for o in (7, 8)]
    stop = threading.Event()

    class _Stop(_Copy):
        def process(self, batch, producer) -> None:
            super().process(batch, producer)
            stop.set()

    handler = _Stop()
    loop = ConsumeLoop(_config("flaky", produce=False, error_backoff_s=0.01), None, handler)  # type: ignore[arg-type]
    loop.consumer = consumer = _FlakyConsumer(records)
    loop.serve(stop)
    assert handler.seen == [(0, 7), (0, 8)]
    assert consumer.polls == 2 and consumer.commits == [{0: 9}]
