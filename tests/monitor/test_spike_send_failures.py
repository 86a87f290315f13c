"""A spike event whose send to ``sentiment.spikes`` fails (the broker restarting, metadata unavailable, the buffer
full: kafka-python raises ``KafkaTimeoutError`` inside ``send``) is neither lost nor allowed to break the
aggregation of the record that triggered it: the publisher keeps it (at most
:data:`~finsentry.monitor.spike_publisher.MAX_PENDING`, the oldest dropped first, counted) and sends it again, in
order, on the loop's next turn or next publish. Before, the error escaped ``Aggregator.process``: the record was
counted as ``aggregation_failed`` and the event was never sent, so the relay had no record of the spike."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from kafka.errors import KafkaTimeoutError
from keyed_testkit import keyed_record, keyed_value

from finsentry.ingest.consume_loop import TrackedProducer
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.topics import SENTIMENT_KEYED, SENTIMENT_SPIKES
from finsentry.monitor.service import AggregatorService
from finsentry.monitor.spike_publisher import SpikePublisher
from finsentry.monitor.spikes import SpikeEvent
from finsentry.settings import load_settings


class _Future:
    """A produce future, done: delivered, or failed with ``exception``."""

    def __init__(self, exception: Exception | None = None) -> None:
        self.is_done = True
        self.exception = exception

    def succeeded(self) -> bool:
        return self.exception is None

    def failed(self) -> bool:
        return self.exception is not None


class _Producer:
    """Records every send; while ``down``, a send to ``sentiment.spikes`` raises as kafka-python's does when no
    broker answers its metadata request (``max_block_ms``); ``unacked`` sends are accepted but their future fails."""

    def __init__(self) -> None:
        self.down = False
        self.unacked = 0
        self.attempts = 0
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def send(self, topic, key=None, value=None, headers=None):
        if topic == SENTIMENT_SPIKES:
            self.attempts += 1
            if self.down:
                raise KafkaTimeoutError("Failed to update metadata after 60.0 secs.")
            if self.unacked:
                self.unacked -= 1
                return _Future(KafkaTimeoutError("Batch for sentiment.spikes-0 has expired"))
        self.sent.append((topic, key, value))
        return _Future()

    def spikes(self) -> list[tuple[str, str]]:
        """``(event, spike_id)`` of every delivered spike record, in order."""
        out = []
        for topic, _key, value in self.sent:
            if topic == SENTIMENT_SPIKES:
                body = json.loads(value)
                out.append((body["event"], body["spike_id"]))
        return out


def _keyed(offset: int, key: str, minute: float, negative: bool) -> SimpleNamespace:
    value = keyed_value(key, f"{key}-{offset}", minute)
    if negative:
        value |= {"sentiment": "negative", "sentiment_score": -0.9}
    return keyed_record(offset, value)


def _spiking_records(key: str = "ticker:HOT") -> list[SimpleNamespace]:
    """34 minutes of ``key`` at 5 items a minute (one negative), four all negative (a spike starts), then calm
    again for six minutes (it ends), then three more minutes to close the last buckets (as in test_key_limits)."""
    out = []
    for minute in range(43):
        for j in range(5):
            negative = j == 0 or 30 <= minute < 34
            out.append(_keyed(len(out), key, minute + j / 5, negative))
    return out


def _service(hooked: list[SpikeEvent]) -> AggregatorService:
    settings = load_settings(monitor={"http_port": 0, "spike": {"window_seconds": 300}})
    return AggregatorService(settings.monitor, settings.ingest.kafka, settings.model.path, on_spike=hooked.append)


def _sample(service: AggregatorService, name: str, labels: dict[str, str] | None = None) -> float | None:
    return service.metrics.registry.get_sample_value(name, labels or {})


def test_a_spike_send_that_raises_is_kept_and_sent_on_the_next_turn_and_the_record_is_aggregated():
    hooked: list[SpikeEvent] = []
    reference = _service([])  # the same records with a broker that never fails
    reference.producer = _Producer()
    for rec in _spiking_records():
        reference._handle(rec, 0)
    expected = reference.producer.spikes()
    assert [e for e, _ in expected][0] == "started" and [e for e, _ in expected][-1] == "ended"

    service = _service(hooked)
    service.publisher.retry_s = 0.0  # a try at every publish and turn (the pause after a failure: below)
    service.producer = producer = _Producer()
    producer.down = True
    for rec in _spiking_records():
        service._handle(rec, 0)
    assert _sample(service, "finsentry_aggregator_rejected_messages_total", {"reason": "aggregation_failed"}) is None
    assert _sample(service, "finsentry_aggregated_messages_total") == len(_spiking_records())
    assert producer.spikes() == []
    assert [(e.event, e.spike_id) for e in hooked] == expected  # the hook saw every event, once
    assert _sample(service, "finsentry_aggregator_spike_events_pending") == len(expected)
    # one failed attempt per publish: the head of the queue is tried first and the rest waits behind it
    assert _sample(service, "finsentry_aggregator_spike_send_failures_total") == len(expected) == producer.attempts

    service.on_tick(SimpleNamespace(producer=producer))  # still down: one more failed try, nothing lost
    assert _sample(service, "finsentry_aggregator_spike_send_failures_total") == len(expected) + 1
    assert _sample(service, "finsentry_aggregator_spike_events_pending") == len(expected)

    producer.down = False
    service.on_tick(SimpleNamespace(producer=producer))  # the loop's next turn, with the loop's producer
    assert producer.spikes() == expected  # every event, in order, once
    assert _sample(service, "finsentry_aggregator_spike_events_pending") == 0
    assert _sample(service, "finsentry_aggregator_spike_events_dropped_total") == 0
    agg, ref = service.aggregator, reference.aggregator  # the records were aggregated as if nothing had failed
    assert (agg.bucket_rows(), agg.stats()) == (ref.bucket_rows(), ref.stats())
    assert agg.detector_state("ticker:HOT") == ref.detector_state("ticker:HOT")


def _event(i: int) -> SpikeEvent:
    end = 1_440_432_000.0 + 60 * i
    return SpikeEvent("updated", f"ticker:T{i}", end - 60, end, 300, 0.5, 0.1, 0.05, 8.0, 2, 0.4, 1.6, 4, 2)


def test_the_publisher_keeps_at_most_max_pending_events_dropping_the_oldest_and_counts_them():
    producer = _Producer()
    producer.down = True
    publisher = SpikePublisher(max_pending=3, retry_s=0.0)
    for i in range(5):
        publisher.publish(_event(i), producer)
    assert (publisher.pending, publisher.dropped, publisher.failed_sends) == (3, 2, 5)
    producer.down = False
    publisher.resend(producer)
    assert [json.loads(v)["key"] for _t, _k, v in producer.sent] == ["ticker:T2", "ticker:T3", "ticker:T4"]
    assert [k for _t, k, _v in producer.sent] == [b"ticker:T2", b"ticker:T3", b"ticker:T4"]
    assert (publisher.pending, publisher.dropped, publisher.failed_sends) == (0, 2, 5)


def test_a_new_event_waits_behind_the_kept_ones_so_the_order_holds():
    producer = _Producer()
    publisher = SpikePublisher(retry_s=0.0)
    producer.down = True
    publisher.publish(_event(0), producer)
    producer.down = False
    publisher.publish(_event(1), producer)  # the next publish sends the kept one first
    assert [k for _t, k, _v in producer.sent] == [b"ticker:T0", b"ticker:T1"]
    assert publisher.pending == 0


def test_a_send_whose_future_fails_after_the_flush_is_sent_again_in_order():
    producer = _Producer()
    publisher = SpikePublisher()
    producer.unacked = 1  # accepted by send, then expired in the producer's buffer (the broker went away)
    publisher.publish(_event(0), producer)
    assert (producer.sent, publisher.failed_sends, publisher.pending) == ([], 0, 1)  # known at the next turn
    publisher.resend(producer)  # the loop's next turn, after its flush
    assert publisher.failed_sends == 1 and [k for _t, k, _v in producer.sent] == [b"ticker:T0"]
    publisher.publish(_event(1), producer)
    assert [k for _t, k, _v in producer.sent] == [b"ticker:T0", b"ticker:T1"]  # sent again, not lost, in order
    publisher.resend(producer)
    assert (publisher.pending, publisher.failed_sends, len(producer.sent)) == (0, 1, 2)


def test_after_a_failed_send_nothing_is_tried_for_retry_s_so_a_dead_broker_blocks_one_send_not_every_one():
    now = [100.0]
    producer = _Producer()
    producer.down = True
    publisher = SpikePublisher(retry_s=5.0, clock=lambda: now[0])
    for i in range(3):
        publisher.publish(_event(i), producer)
    publisher.resend(producer)
    assert (producer.attempts, publisher.failed_sends, publisher.pending) == (1, 1, 3)
    now[0] += 4.9
    publisher.resend(producer)
    assert producer.attempts == 1
    now[0] += 0.1
    producer.down = False
    publisher.resend(producer)
    assert [k for _t, k, _v in producer.sent] == [b"ticker:T0", b"ticker:T1", b"ticker:T2"]
    assert (producer.attempts, publisher.pending) == (4, 0)


def test_without_a_producer_the_event_is_logged_and_hooked_only_as_before():
    hooked: list[SpikeEvent] = []
    publisher = SpikePublisher(hooked.append)
    publisher.publish(_event(0), None)
    assert [e.key for e in hooked] == ["ticker:T0"] and publisher.pending == 0


def test_a_hook_that_raises_is_logged_and_ignored(caplog):
    def boom(_event: SpikeEvent) -> None:
        raise RuntimeError("console gone")

    producer = _Producer()
    SpikePublisher(boom).publish(_event(0), producer)
    assert len(producer.sent) == 1 and "on_spike hook failed for ticker:T0" in caplog.text


def test_on_a_real_broker_spikes_fired_while_it_is_down_reach_sentiment_spikes_once_it_is_back(broker):
    """Stop the embedded broker just before the records that start a spike and aggregate them: the producer
    accepts the events into its buffer, where they expire (``delivery_timeout_ms``) while the broker is down;
    the publisher keeps them and sends them again once it is back: every event arrives, in order.

    The producer is not idempotent here: the embedded broker forgets producer ids when it restarts, and
    kafka-python's idempotent producer whose buffered records expired then waits for a new producer id for ever
    without turning fatal (found writing this test). The consume loop's ``TrackedProducer`` now replaces such a
    stuck producer after its delivery timeout + 10 s (``tests/ingest/test_consume_loop_stuck_producer.py``); this
    test keeps a bare producer so that it checks the publisher's own resending, not the renewal."""
    reference, fired_at = _service([]), []
    reference.producer = _Producer()
    records = _spiking_records()
    for i, rec in enumerate(records):
        before = len(reference.producer.sent)
        reference._handle(rec, 0)
        if len(reference.producer.sent) > before and not fired_at:
            fired_at.append(i)
    expected = reference.producer.spikes()

    kafka = broker.kafka_settings()
    # short timeouts: a send blocks 1 s without metadata; a buffered record expires after 6 s (default 120)
    timeouts = {"max_block_ms": 1000, "request_timeout_ms": 2000, "delivery_timeout_ms": 6000}
    make = lambda: make_producer(kafka, enable_idempotence=False, max_in_flight_requests_per_connection=1, **timeouts)  # noqa: E731
    tracked = TrackedProducer(make(), timeout_s=10.0, factory=make)
    service = _service([])
    service.publisher.retry_s = 0.5

    def turns(until, seconds: float) -> None:  # the loop's idle turns
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            tracked.renew_if_broken()
            service.on_tick(SimpleNamespace(producer=tracked))
            time.sleep(0.2)

    try:
        service.process(records[: fired_at[0]], tracked)
        tracked.acknowledge(check=False)
        broker.stop()
        service.process(records[fired_at[0] :], tracked)  # a spike starts, is updated and ends: nothing delivered
        failed = _sample(service, "finsentry_aggregator_rejected_messages_total", {"reason": "aggregation_failed"})
        assert failed is None
        assert _sample(service, "finsentry_aggregator_spike_events_pending") == len(expected)
        turns(lambda: service.publisher.failed_sends >= len(expected), 30)  # expired in the buffer: kept
        assert _sample(service, "finsentry_aggregator_spike_send_failures_total") >= len(expected)
        assert _sample(service, "finsentry_aggregator_spike_events_pending") == len(expected)
        broker.start()
        turns(lambda: service.publisher.pending == 0, 60)
        assert service.publisher.pending == 0
    finally:
        tracked.close(timeout=1.0)
    assert _sample(service, "finsentry_aggregator_spike_events_dropped_total") == 0
    consumer = make_consumer(kafka, None, SENTIMENT_SPIKES)
    try:
        got: list[tuple[str, str]] = []
        deadline = time.monotonic() + 30
        while len(got) < len(expected) and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=200).values():
                got += [(json.loads(r.value)["event"], json.loads(r.value)["spike_id"]) for r in recs]
    finally:
        consumer.close(autocommit=False)
    assert got == expected


def test_the_commit_stays_at_the_record_whose_event_is_undelivered_and_moves_on_once_delivered():
    from kafka import TopicPartition

    records = _spiking_records()
    service = _service([])
    service.publisher.retry_s = 0.0
    service.producer = producer = _Producer()
    producer.down = True
    origins = []
    for rec in records:
        before = service.publisher.pending
        service._handle(rec, 0)
        if service.publisher.pending > before:
            origins.append(rec.offset)
    tp = TopicPartition("sentiment.keyed", 0)
    assert len(origins) >= 2 and service.publisher.undelivered_from() == {0: origins[0]}, origins
    # the batch's next offset is len(records), but the first record whose event is unsent is where it stays
    assert service.committable({tp: len(records)}) == {tp: origins[0]}
    assert service.committable({TopicPartition("sentiment.keyed", 3): 7}) == {TopicPartition("sentiment.keyed", 3): 7}
    producer.down = False
    service.on_tick(SimpleNamespace(producer=producer))
    assert service.publisher.pending == 0 and service.committable({tp: len(records)}) == {tp: len(records)}


def test_on_a_real_broker_events_unsent_when_the_aggregator_stops_are_published_by_the_next_owner(broker):
    """Aggregator A cannot send its spike events (its sends to sentiment.spikes fail) and stops with them kept: its
    committed offset stays at the record that started the spike, so B, the next member of the group, processes
    that record live and publishes every event A could not. Before, A committed past them and they were lost."""
    import threading

    from kafka import TopicPartition

    from finsentry.monitor.service import start_in_thread

    key = "ticker:HOLD"
    records = _spiking_records(key)
    reference = _service([])
    reference.producer = _Producer()
    for rec in records:
        reference._handle(rec, 0)
    expected = reference.producer.spikes()
    assert [e for e, _ in expected][0] == "started", expected
    settings = load_settings(
        ingest={"kafka": {"bootstrap_servers": broker.bootstrap_servers}},
        monitor={"group_id": "agg-hold", "http_port": 0, "spike": {"window_seconds": 300}},
    )

    def start():
        stop = threading.Event()
        service, thread = start_in_thread(settings.monitor, settings.ingest.kafka, settings.model.path, stop)
        deadline = time.monotonic() + 60
        while len(service.state.partitions) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(service.state.partitions) == 6, service.state.partitions
        return service, thread, stop

    def wait(predicate, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    service_a, thread_a, stop_a = start()
    down = _Producer()
    down.down = True
    service_a.publisher.resend = lambda _producer: SpikePublisher.resend(service_a.publisher, down)
    producer = make_producer(broker.kafka_settings())
    try:
        for rec in records:
            producer.send(SENTIMENT_KEYED, key=rec.key, value=rec.value)
        producer.flush(30)
        wait(lambda: service_a.aggregator.accepted == len(records), 60, "A to aggregate every record")
        wait(lambda: service_a.publisher.pending == len(expected), 30, "A to keep every event")
        partition = service_a.aggregator.key_state(key).partition
        held = service_a.publisher.undelivered_from()[partition]
    finally:
        stop_a.set()
        thread_a.join(30)
        producer.close(5)
    assert down.spikes() == [] and down.attempts >= 1

    consumer = make_consumer(broker.kafka_settings(), "agg-hold", SENTIMENT_KEYED)
    try:
        tp = TopicPartition(SENTIMENT_KEYED, partition)
        committed = consumer.committed(tp)
    finally:
        consumer.close(autocommit=False)
    assert committed == held, (committed, held)

    service_b, thread_b, stop_b = start()
    try:
        wait(lambda: service_b.aggregator.accepted == len(records), 60, "B to rebuild")
        wait(lambda: service_b.publisher.pending == 0, 30, "B to deliver its events")
    finally:
        stop_b.set()
        thread_b.join(30)
    reader = make_consumer(broker.kafka_settings(), None, SENTIMENT_SPIKES)
    got: list[tuple[str, str]] = []
    try:
        deadline = time.monotonic() + 30
        while not set(expected) <= set(got) and time.monotonic() < deadline:
            for recs in reader.poll(timeout_ms=200).values():
                got += [
                    (json.loads(r.value)["event"], json.loads(r.value)["spike_id"])
                    for r in recs
                    if r.key == key.encode()
                ]
    finally:
        reader.close(autocommit=False)
    assert got == expected, (got, expected)  # every event A kept, once, in order (B published nothing else)


class _Consumer:
    """Just what ``AggregatorService.setup`` asks of a consumer: every partition starts at offset 0 (the lookback)
    and the group has committed ``committed``."""

    def __init__(self, committed: int) -> None:
        self._committed = committed

    def offsets_for_times(self, times):
        from kafka.structs import OffsetAndTimestamp

        return {tp: OffsetAndTimestamp(0, ms) for tp, ms in times.items()}

    def committed(self, _tp) -> int:
        return self._committed

    def seek(self, _tp, _offset) -> None:
        pass


def test_kept_events_of_a_partition_that_comes_back_do_not_pull_its_commit_below_the_groups():
    """A keeps events of partition 0 (its sends fail) and loses the partition in a rebalance; B processes the
    records from A's held commit, publishes the events and commits far past them (5000). When A gets partition 0
    back, its old kept events must not hold the commit at their records: that moved the group's committed offset
    back from 5000, and the next owner would process, publish and dead-letter everything in between again. A still
    sends them (a duplicate at worst). Got back with the commit still at their records, they keep holding it."""
    from kafka import TopicPartition

    records = _spiking_records()
    tp = TopicPartition("sentiment.keyed", 0)
    for committed, held in ((5000, False), (None, True)):
        service = _service([])
        service.publisher.retry_s = 0.0
        service.producer = producer = _Producer()
        producer.down = True
        for rec in records:
            service._handle(rec, 0)
        first = service.publisher.undelivered_from()[0]
        kept = service.publisher.pending
        assert kept >= 2 and service.committable({tp: len(records)}) == {tp: first}
        service.on_revoked({tp}, False)
        service.setup(_Consumer(first if committed is None else committed), {tp})
        assert service.publisher.pending == kept  # still to be sent
        assert service.committable({tp: 5001}) == {tp: first if held else 5001}, (committed, first)
