"""The scorer's overlapped turn (``overlap_acks``): batch N's acknowledgements are awaited, and N committed, while
batch N+1 has been collected and scored and before N+1 produces. At least once must hold exactly as before: a
produce failure of N rewinds to N's first offsets and drops N+1 unproduced, nothing is committed past N's start
before N is acknowledged, and ids are remembered only once acknowledged."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest
from ingest_testkit import TopicReader, good_items, produce_items, scorer_settings, wait_for
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from finsentry.ingest.consume_loop import first_offsets
from finsentry.ingest.kafka_clients import make_consumer
from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.settings import IngestSettings
from finsentry.ingest.topics import DEFAULT_PARTITIONS, NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED

PARTITIONS = [TopicPartition(NEWS_RAW, p) for p in range(DEFAULT_PARTITIONS[NEWS_RAW])]


class _FailingSends:
    """A producer stand-in whose sends are never acknowledged (each future fails at once); nothing reaches the
    broker. ``config`` is the real producer's (the stuck-producer watchdog reads it)."""

    def __init__(self, real) -> None:
        self.config = real.config
        self.sent = 0

    def send(self, topic, key=None, value=None, headers=None):
        self.sent += 1
        return Future().failure(KafkaTimeoutError("injected: no acknowledgement"))


class _FailsItsFirstBatch(ScorerService):
    """Every produce of the first batch fails; notes, whenever a batch is prepared while another waits for its
    acknowledgements, the waiting batch's first offsets and the group's committed offsets at that moment (read
    from the broker by the loop's own consumer)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failed_batch: list = []
        self.overlaps: list[tuple[dict, dict]] = []  # (first offsets of the waiting batch, committed offsets)

    def prepare(self, batch) -> None:
        waiting = self.loop._unacked
        if waiting is not None:
            consumer = self.loop.consumer
            committed = {tp.partition: consumer.committed(tp) for tp in PARTITIONS}
            first = {tp.partition: o for tp, o in first_offsets(waiting).items()}
            self.overlaps.append((first, committed))
        super().prepare(batch)

    def process(self, batch, producer) -> None:
        if self.failed_batch:
            super().process(batch, producer)
            return
        self.failed_batch = list(batch)
        real = producer.producer
        producer.producer = _FailingSends(real)
        try:
            super().process(batch, producer)
        finally:
            producer.producer = real


@pytest.mark.broker
def test_a_produce_failure_of_a_batch_while_the_next_is_scored_commits_nothing_and_redoes_both(fresh_broker, scorer):
    settings = scorer_settings(fresh_broker, "overlap-fail", max_batch_items=4)
    items = good_items(24, prefix="o")
    produce_items(settings.kafka, items)
    service = _FailsItsFirstBatch(scorer, settings, serve_metrics=False, overlap_acks=True)
    service.start_thread()
    try:
        wait_for(lambda: service.stats.scored >= len(items), 180, "every item scored")
    finally:
        service.stop_and_join()
    assert service.error is None

    # the failed batch waited while the next one was scored, and nothing was committed past its start then
    failed_first = {tp.partition: o for tp, o in first_offsets(service.failed_batch).items()}
    first_overlap_first, first_overlap_committed = service.overlaps[0]
    assert first_overlap_first == failed_first
    for partition, first in failed_first.items():
        committed = first_overlap_committed[partition]
        assert committed is None or committed <= first
    # every later overlap: nothing committed past the start of the batch still waiting
    for first, committed in service.overlaps:
        assert all(committed[p] is None or committed[p] <= o for p, o in first.items())

    assert service.stats.redone_batches == 1

    reader = TopicReader(settings.kafka, NEWS_SCORED)
    reader.read_until(lambda r: len(set(r.ids())) >= len(items), 60, "every item on news.scored")
    while reader.poll(300):
        pass
    reader.close()
    # at least once; here exactly once: the failed sends never reached the broker and the batch scored next to
    # the failed one was dropped unproduced (had it been sent, its redo would have sent its ids a second time)
    assert Counter(reader.ids()) == Counter(i["id"] for i in items)
    assert service.stats.scored == len(items) and service.stats.duplicates == 0  # the failed ids were not remembered

    consumer = make_consumer(settings.kafka, "overlap-fail")
    committed = {tp.partition: consumer.committed(tp) or 0 for tp in PARTITIONS}
    consumer.close(autocommit=False)
    raw = TopicReader(settings.kafka, NEWS_RAW)  # records per partition (Tansu's end offsets are not reliable)
    raw.read_until(lambda r: len(r.records[NEWS_RAW]) >= len(items), 60, "news.raw read back")
    raw.close()
    per_partition = Counter(r.partition for r in raw.records[NEWS_RAW])
    # the last batch, waiting for its acknowledgements at the stop, was acknowledged and committed
    assert committed == {tp.partition: per_partition.get(tp.partition, 0) for tp in PARTITIONS}


class _Acks:
    """An acknowledged produce (the hostile-input tests' fake), with a callback hook like kafka-python's."""

    def succeeded(self) -> bool:
        return True

    def add_callback(self, f, *args):
        f(*args, None)
        return self


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value))
        return _Acks()

    def flush(self, timeout=None) -> None:
        pass


def _records(values: list[bytes], first_offset: int) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(topic=NEWS_RAW, partition=0, offset=first_offset + i, key=None, value=v, timestamp=None)
        for i, v in enumerate(values)
    ]


def test_an_id_of_the_waiting_batch_in_the_next_one_is_a_duplicate_once_acknowledged(scorer):
    """Batch N+1 is scored before N's ids are remembered; an id of N that comes again in N+1 is found when N+1
    produces (after N's acknowledgement), counted as a duplicate and not sent again."""
    service = ScorerService(scorer, IngestSettings(company_table=None), serve_metrics=False)
    producer = _Producer()
    a, b, c = good_items(3, prefix="x")
    first = _records([json.dumps(a).encode(), json.dumps(b).encode()], 0)
    second = _records([json.dumps(b).encode(), json.dumps(c).encode()], 2)
    service.prepare(first)
    service.process(first, producer)
    service.prepare(second)  # b is not remembered yet: scored again here
    service.acknowledged()
    service.process(second, producer)
    service.acknowledged()
    scored = [json.loads(v)["id"] for t, _, v in producer.sent if t == NEWS_SCORED]
    assert scored == ["x0", "x1", "x2"]
    keyed = Counter(json.loads(v)["id"] for t, _, v in producer.sent if t == SENTIMENT_KEYED)
    assert set(keyed) == {"x0", "x1", "x2"}
    assert (service.stats.scored, service.stats.duplicates, service.stats.consumed) == (3, 1, 4)
    assert service.metrics.registry.get_sample_value("finsentry_scorer_duplicates_total") == 1


def test_nothing_is_counted_or_remembered_before_the_acknowledgement(scorer):
    """A produced batch is counted (scored, latency) and its ids remembered only in ``acknowledged``; a batch
    whose acknowledgement failed (never acknowledged) is produced again in full on its redo."""
    service = ScorerService(scorer, IngestSettings(company_table=None), serve_metrics=False)
    producer = _Producer()
    batch = _records([json.dumps(i).encode() for i in good_items(2, prefix="y")], 0)
    service.prepare(batch)
    service.process(batch, producer)
    assert service.stats.scored == 0 and "y0" not in service._seen
    service.prepare(batch)  # the redo after a failed acknowledgement (the loop never called acknowledged)
    service.process(batch, producer)
    service.acknowledged()
    scored = [json.loads(v)["id"] for t, _, v in producer.sent if t == NEWS_SCORED]
    assert scored == ["y0", "y1", "y0", "y1"]
    assert (service.stats.scored, service.stats.duplicates) == (2, 0)
