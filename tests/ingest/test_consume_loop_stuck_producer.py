"""The consume loop's producer after a broker restart with records in flight, on a real embedded broker.

Tansu keeps no state across a restart (producer ids included). Records sent while it is down are retried with
UnknownProducerIdError once it is back until they expire (``delivery_timeout_ms``); kafka-python (3.0.x) then
resets its producer id to -1 without ever asking for a new one, and every later send neither completes nor
expires, without the producer turning fatal. :class:`TrackedProducer` replaces a producer with a send unsettled
past its delivery timeout (+ ``STUCK_MARGIN_S``)."""

from __future__ import annotations

import threading
import time

import pytest
from ingest_testkit import TopicReader, produce, wait_for
from test_consume_loop import _config, _Copy, _kafka

from finsentry.ingest import consume_loop as consume_loop_module
from finsentry.ingest.consume_loop import STUCK_MARGIN_S, ConsumeLoop, TrackedProducer
from finsentry.ingest.kafka_clients import make_producer
from finsentry.ingest.topics import NEWS_SCORED

# short producer timeouts so a buffered record expires in seconds (defaults: 120 s delivery, 60 s max block)
SHORT_TIMEOUTS = {"max_block_ms": 1000, "request_timeout_ms": 2000, "delivery_timeout_ms": 6000}


class _StopsTheBrokerMidBatch(_Copy):
    """Copies records (as ``_Copy``); the first batch holding a value ``stop`` stops the broker before its sends,
    so they are buffered while the broker is down, and sets ``stopped``."""

    def __init__(self, broker) -> None:
        super().__init__()
        self.broker = broker
        self.stopped = threading.Event()

    def process(self, batch, producer) -> None:
        if not self.stopped.is_set() and any(r.value == b"stop" for r in batch):
            self.broker.stop()
            self.stopped.set()
        super().process(batch, producer)


@pytest.fixture
def short_producer_timeouts(monkeypatch):
    """The loop's producers (first and renewed) with :data:`SHORT_TIMEOUTS`."""
    monkeypatch.setattr(
        consume_loop_module, "make_producer", lambda kafka, **kw: make_producer(kafka, **(SHORT_TIMEOUTS | kw))
    )


def test_records_in_flight_across_a_broker_restart_do_not_stall_the_loop(fresh_broker, short_producer_timeouts):
    """The batch whose sends are buffered while the broker is down is redone; after the restart its sends are
    retried (UnknownProducerIdError, taken for retention: the producer never had a record acknowledged on those
    partitions) until they expire, and the idempotent producer is left without a producer id, never fatal: every
    redo of the batch then timed out on the same producer and records read after the restart were never produced.

    The keys matter: a record acknowledged before the stop on a partition written after it turns the retries into
    an epoch bump, which Tansu refuses (UnknownError), a fatal error that ``renew_if_broken`` already handled."""
    kafka = _kafka(fresh_broker)
    produce(kafka, [(b"a", f"a{i}".encode()) for i in range(6)])  # key a: partition 4 only
    handler = _StopsTheBrokerMidBatch(fresh_broker)
    loop = ConsumeLoop(_config("in-flight", produce_timeout_s=3), kafka, handler)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    reader = None
    try:
        wait_for(lambda: len(handler.passed) >= 6, 60, "the first 6 records processed and acknowledged")
        tracked = loop.producer
        produce(kafka, [(b"s", b"stop")])  # partition 5
        wait_for(handler.stopped.is_set, 60, "the batch that stops the broker")
        stuck = tracked.producer if tracked else None  # the KafkaProducer its sends are buffered in
        time.sleep(3)  # its sends sit in the producer's buffer
        fresh_broker.start()  # a new broker: no topics, no producer ids, no offsets
        after = [f"b{i}".encode() for i in range(6)]
        produce(kafka, [(f"b{i}".encode(), v) for i, v in enumerate(after)])  # partitions 0, 1, 2, 5
        reader = TopicReader(kafka, NEWS_SCORED)
        try:
            reader.read_until(
                lambda r: set(after) <= {x.value for x in r.records[NEWS_SCORED]}, 60, "the 6 new records produced"
            )
        except AssertionError as exc:
            manager = getattr(loop.producer.producer, "_transaction_manager", None) if loop.producer else None
            ids = None if manager is None else manager.producer_id_and_epoch
            state = None if ids is None else (ids.producer_id, ids.epoch, manager.has_fatal_error())
            got = sorted({x.value for x in reader.records[NEWS_SCORED]})
            raise AssertionError(
                f"{exc}; scored {got}; batches {handler.batches}; redone {loop.stats.redone_batches}; "
                f"renewed {tracked.renewed if tracked else None}; producer id/epoch, fatal: {state}"
            ) from None
    finally:
        if reader is not None:
            reader.close()
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert loop.stats.redone_batches >= 1  # the batch sent while the broker was down was redone...
    assert tracked is not None and tracked.renewed >= 1  # ...with a new producer
    assert loop.stats.producers_renewed == tracked.renewed
    # the replaced producer is closed: no I/O thread left retrying for ever (its close logs a KafkaTimeoutError)
    wait_for(lambda: not stuck._sender.is_alive(), 10, "the stuck producer's I/O thread to end")


class _Future:
    def __init__(self) -> None:
        self.is_done = False


class _Producer:
    """Sends whose futures settle only when the test says; ``delivery_timeout_ms`` 6000."""

    def __init__(self) -> None:
        self.config = {"delivery_timeout_ms": 6000}
        self.futures: list[_Future] = []
        self.closed = False

    def send(self, topic, key=None, value=None, headers=None) -> _Future:
        self.futures.append(_Future())
        return self.futures[-1]

    def close(self, timeout=None) -> None:
        self.closed = True


def test_a_producer_with_a_send_unsettled_past_its_delivery_timeout_is_replaced():
    now = [0.0]
    made: list[_Producer] = []

    def factory() -> _Producer:
        made.append(_Producer())
        return made[-1]

    first = factory()
    tracked = TrackedProducer(first, timeout_s=1.0, factory=factory, clock=lambda: now[0])
    assert tracked.stuck_after_s() == 6.0 + STUCK_MARGIN_S
    tracked.send(NEWS_SCORED, value=b"a")
    now[0] = 1.0
    tracked.send(NEWS_SCORED, value=b"b")
    first.futures[0].is_done = True  # the first settles: the second (sent at 1.0) is the oldest unsettled
    tracked.forget()  # a failed batch's sends stay watched
    now[0] = 1.0 + 6.0 + STUCK_MARGIN_S - 0.1
    assert tracked.oldest_unsettled_s() == pytest.approx(6.0 + STUCK_MARGIN_S - 0.1)
    assert not tracked.renew_if_broken() and tracked.producer is first
    now[0] += 0.1
    assert tracked.renew_if_broken()
    assert (tracked.producer, tracked.renewed, first.closed, tracked.oldest_unsettled_s()) == (made[1], 1, True, None)


def test_settled_sends_and_producers_without_a_delivery_timeout_are_never_taken_for_stuck():
    now = [0.0]
    producer = _Producer()
    tracked = TrackedProducer(producer, timeout_s=1.0, factory=_Producer, clock=lambda: now[0])
    for _ in range(3):
        tracked.send(NEWS_SCORED, value=b"v")
    for future in producer.futures:
        future.is_done = True
    now[0] = 1000.0
    assert tracked.oldest_unsettled_s() is None and not tracked.renew_if_broken()
    producer.config = {}  # a producer that does not say: no watchdog
    tracked.send(NEWS_SCORED, value=b"v")
    now[0] = 2000.0
    assert tracked.stuck_after_s() is None and not tracked.renew_if_broken() and tracked.producer is producer
