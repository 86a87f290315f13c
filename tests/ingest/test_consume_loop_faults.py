"""The consume-process-produce runner (ingest/consume_loop.py) under faults, on a real embedded broker: a broker
that goes away and comes back, a produce that fails, a commit the group refuses, a handler that raises."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from ingest_testkit import TopicReader, headers, produce, wait_for
from kafka.errors import KafkaTimeoutError
from test_consume_loop import PARTITIONS, _config, _Copy, _kafka

from finsentry.ingest.consume_loop import (
    MAX_DLQ_VALUE_BYTES,
    ConsumeLoop,
    LoopHandler,
    TrackedProducer,
    check_acks,
)
from finsentry.ingest.kafka_clients import make_producer
from finsentry.ingest.topics import NEWS_DLQ, NEWS_RAW, NEWS_SCORED


def _start(loop: ConsumeLoop) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def _stop(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


def test_records_sent_after_the_broker_restarts_are_produced(fresh_broker):
    """The embedded broker forgets its producer ids on a restart; kafka-python's idempotent producer then fails
    for good (a fatal InitProducerId error) and every redo of the batch failed again: the loop stalled forever,
    producing nothing, with the records of the new broker never delivered."""
    kafka = _kafka(fresh_broker)
    produce(kafka, [(f"k{i}".encode(), f"a{i}".encode()) for i in range(6)])
    handler = _Copy()
    loop = ConsumeLoop(_config("restart", produce_timeout_s=5), kafka, handler)
    stop, thread = _start(loop)
    try:
        wait_for(lambda: len(handler.seen) >= 6, 60, "the first 6 records processed")
        tracked = loop.producer
        fresh_broker.stop()
        time.sleep(3)
        fresh_broker.start()
        after = [f"b{i}".encode() for i in range(6)]
        produce(kafka, [(f"k{i}".encode(), v) for i, v in enumerate(after)])
        reader = TopicReader(kafka, NEWS_SCORED)
        try:
            reader.read_until(
                lambda r: set(after) <= {x.value for x in r.records[NEWS_SCORED]}, 90, "the 6 new records produced"
            )
        finally:
            reader.close()
    finally:
        _stop(stop, thread)
    assert loop.stats.redone_batches >= 1  # the batch whose produces failed was redone...
    assert tracked is not None and tracked.renewed >= 1  # ...with a new producer


class _Replaying:
    """A consumer that returns ``records`` on the first poll and again after each seek (a rewind), else nothing."""

    def __init__(self, records) -> None:
        self.records = records
        self.due = True
        self.commits: list[dict[int, int]] = []

    def poll(self, timeout_ms, max_records):
        due, self.due = self.due, False
        return {PARTITIONS[0]: self.records} if due else {}

    def assignment(self):
        return {PARTITIONS[0]}

    def seek(self, tp, offset) -> None:
        assert (tp, offset) == (PARTITIONS[0], self.records[0].offset)
        self.due = True

    def commit(self, offsets, timeout_ms=None) -> None:
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})


class _Sends:
    """A producer whose first ``fail`` sends are never acknowledged."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.sent = 0

    def send(self, topic, key=None, value=None, headers=None):
        self.sent += 1
        ok = self.sent > self.fail
        return SimpleNamespace(succeeded=lambda: ok, exception=None if ok else KafkaTimeoutError("no ack"))

    def flush(self, timeout=None) -> None:
        pass


class _ChecksItsOwnAcks(LoopHandler):
    """Checks the acknowledgements of its own sends, as the scorer does, and counts what it delivered."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.attempts = 0
        self.delivered = 0

    def process(self, batch, producer) -> None:
        self.attempts += 1
        futures = [producer.send(NEWS_SCORED, key=r.key, value=r.value) for r in batch]
        check_acks(futures)  # ProduceFailed on the first attempt
        self.delivered += len(batch)  # acknowledged: the scorer counts them as scored and remembers their ids
        self.stop.set()


def test_a_redone_batch_is_not_failed_by_the_sends_of_the_attempt_before():
    """The scorer checks its own acknowledgements and raises ProduceFailed; the sends of that failed attempt
    stayed in the loop's TrackedProducer, so the loop's own check failed the redo as well, after the scorer had
    counted it as scored: a third attempt then called every item a duplicate and sent its dead letters again."""
    records = [SimpleNamespace(topic=NEWS_RAW, partition=0, offset=o, key=b"k", value=b"v") for o in (7, 8)]
    stop = threading.Event()
    handler = _ChecksItsOwnAcks(stop)
    loop = ConsumeLoop(_config("stale", error_backoff_s=0.01), None, handler)  # type: ignore[arg-type]
    loop.consumer = consumer = _Replaying(records)
    loop.producer = TrackedProducer(_Sends(fail=2), timeout_s=1.0)
    loop.serve(stop, deadline=time.monotonic() + 10)
    assert (handler.attempts, handler.delivered, loop.stats.redone_batches) == (2, 2, 1)
    assert consumer.commits == [{0: 9}]


def test_a_record_too_large_to_copy_whole_is_dead_lettered_cut_and_the_loop_goes_on(fresh_broker):
    """A 5 MB news.labels value (or sentiment.keyed: the aggregator's dead letters) was copied whole to news.dlq;
    the producer refused it at send (MessageSizeTooLargeError, over its 4 MiB request limit), the loop took that
    for a broker error and redid the batch every second for ever: the labels consumer stored nothing after it."""
    kafka = _kafka(fresh_broker)
    big = b"bad" + b"x" * 5_000_000
    producer = make_producer(kafka, max_request_size=16 * 1024 * 1024)
    for value in (big, b"after"):
        producer.send(NEWS_RAW, key=b"k", value=value, partition=0)
    producer.flush()
    producer.close()
    handler = _Copy()
    loop = ConsumeLoop(_config("huge"), kafka, handler)
    stop, thread = _start(loop)
    try:
        wait_for(lambda: (0, 1) in handler.seen, 60, "the record after the large one processed")
    finally:
        _stop(stop, thread)
    reader = TopicReader(kafka, NEWS_SCORED, NEWS_DLQ)
    reader.read_until(lambda r: r.records[NEWS_SCORED] and r.records[NEWS_DLQ], 30, "the copy and the dead letter")
    reader.close()
    assert [r.value for r in reader.records[NEWS_SCORED]] == [b"after"]
    (dead,) = reader.records[NEWS_DLQ]
    assert dead.value == big[:MAX_DLQ_VALUE_BYTES]
    assert headers(dead)["value_truncated"] == str(len(big)) and headers(dead)["reason"] == "invalid_json"
    assert loop.stats.redone_batches == 0


def test_a_handler_with_a_ready_event_runs_in_the_loop():
    """The aggregator and the relay's spike consumer have a ``ready`` attribute, a threading.Event (set once they
    serve); 910d705 gave the loop a handler hook of the same name and called it before every poll, so both loops
    died on their first turn (TypeError: 'Event' object is not callable) and finsentry run stopped at once."""
    records = [SimpleNamespace(topic=NEWS_RAW, partition=0, offset=o, key=b"k", value=b"v") for o in (3, 4)]
    stop = threading.Event()

    class _WithReadyEvent(LoopHandler):
        def __init__(self) -> None:
            self.ready = threading.Event()
            self.seen: list[int] = []

        def process(self, batch, producer) -> None:
            self.seen += [r.offset for r in batch]
            stop.set()

    handler = _WithReadyEvent()
    loop = ConsumeLoop(_config("ready", produce=False), None, handler)  # type: ignore[arg-type]
    loop.consumer = consumer = _Replaying(records)
    loop.serve(stop, deadline=time.monotonic() + 10)
    assert handler.seen == [3, 4] and consumer.commits == [{0: 5}]


def test_the_loop_stops_in_bounded_time_when_the_broker_is_gone_with_offsets_to_commit(fresh_broker):
    """With the broker gone after a batch, its offset commit blocked in kafka-python (no timeout) about 30 s, and
    the one on close again: finsentry run's supervisor gave up on the scorer thread after 15 s ('threads left
    ['scorer']') and the process ended with a KafkaTimeoutError traceback from an atexit hook."""
    kafka = _kafka(fresh_broker)
    produce(kafka, [(b"k", b"v")])

    class _BrokerGoesAway(LoopHandler):
        done = False

        def process(self, batch, producer) -> None:
            fresh_broker.stop()
            self.done = True

    handler = _BrokerGoesAway()
    loop = ConsumeLoop(_config("gone", produce=False, commit_timeout_s=2.0), kafka, handler)
    stop, thread = _start(loop)
    wait_for(lambda: handler.done, 60, "the batch that stops the broker")
    started = time.monotonic()
    _stop(stop, thread)
    assert time.monotonic() - started < 10
    assert loop.stats.commit_failures >= 1


def test_a_stop_during_a_flush_to_a_broker_that_is_gone_ends_the_loop_in_bounded_time(fresh_broker):
    """finsentry run with its embedded broker killed: the scorer sat in its batch's flush for its whole
    produce_timeout_s (30 s) and then in the producer's close for as long again, past the supervisor's 15 s
    ('threads left ['scorer']', then a KafkaTimeoutError traceback at exit). A flush now gives up once the loop is
    stopped (the batch is not committed: it is read again), and the close flushes for at most a few seconds:
    every acknowledged batch was flushed already."""
    kafka = _kafka(fresh_broker)
    produce(kafka, [(b"k", b"v")])
    flushing = threading.Event()

    class _FlushesItsOwnSends(LoopHandler):  # as the scorer does, with its produce_timeout_s
        def process(self, batch, producer) -> None:
            fresh_broker.stop()
            for rec in batch:
                producer.send(NEWS_SCORED, key=rec.key, value=rec.value)
            flushing.set()
            producer.flush(timeout=30)

    loop = ConsumeLoop(_config("flush", produce_timeout_s=30.0, commit_timeout_s=2.0), kafka, _FlushesItsOwnSends())
    stop, thread = _start(loop)
    wait_for(flushing.is_set, 60, "the flush to a broker that is gone")
    started = time.monotonic()
    _stop(stop, thread)
    assert time.monotonic() - started < 12
