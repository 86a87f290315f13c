"""The scorer service across a restart of the embedded broker with its produces in flight (a real broker).

Tansu keeps nothing across a restart, producer ids included (it answers a producer id it has not handed out since
with UnknownProducerIdError). The scorer's producer got its producer id before any record (nothing acknowledged on
any partition), so once the broker is back every send of the batch is answered UnknownProducerIdError, taken for
retention, and retried until it expires; kafka-python (3.0.x) then resets the
producer id to -1 and never asks for a new one: every redo of the batch timed out on the same producer, which never
turned fatal."""

from __future__ import annotations

import threading
import time

import pytest
from ingest_testkit import TopicReader, good_items, produce, produce_items, scorer_settings, wait_for

from finsentry.ingest import consume_loop as consume_loop_module
from finsentry.ingest.kafka_clients import make_producer
from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.topics import NEWS_DLQ, NEWS_SCORED

pytestmark = pytest.mark.broker

# short producer timeouts so a buffered record expires in seconds (defaults: 120 s delivery, 60 s max block)
SHORT_TIMEOUTS = {"max_block_ms": 1000, "request_timeout_ms": 2000, "delivery_timeout_ms": 6000}


class _StopsTheBrokerOnItsFirstBatch(ScorerService):
    """A scorer that stops ``broker`` before producing its first batch (so those produces are buffered while it is
    down) and sets ``stopped``."""

    def __init__(self, *args, broker, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.broker = broker
        self.stopped = threading.Event()

    def process(self, batch, producer) -> None:
        if not self.stopped.is_set():
            self.broker.stop()
            self.stopped.set()
        super().process(batch, producer)


def test_the_scorer_scores_new_items_after_a_broker_restart_with_its_produces_in_flight(
    fresh_broker, scorer, monkeypatch
):
    monkeypatch.setattr(
        consume_loop_module, "make_producer", lambda kafka, **kw: make_producer(kafka, **(SHORT_TIMEOUTS | kw))
    )
    settings = scorer_settings(fresh_broker, "restart", produce_timeout_s=3.0)
    for _ in range(4):  # producer ids 1-4: the scorer's (5) is one the restarted broker does not hand out again
        produce(settings.kafka, [(b"x", b"x")], topic=NEWS_DLQ)
    service = _StopsTheBrokerOnItsFirstBatch(scorer, settings, serve_metrics=False, broker=fresh_broker)
    service.start_thread()
    reader = None
    try:
        wait_for(lambda: bool(service.loop.assigned()), 60, "the scorer to join its group")
        produce_items(settings.kafka, good_items(4, prefix="before"))
        wait_for(service.stopped.is_set, 60, "the first batch, which stops the broker")
        tracked = service.loop.producer
        time.sleep(3)  # its produces sit in the producer's buffer
        fresh_broker.start()  # a new broker: no producer ids, no records, no offsets
        after = good_items(6, prefix="after")
        produce_items(settings.kafka, after)
        reader = TopicReader(settings.kafka, NEWS_SCORED)
        expected = {i["id"] for i in after}
        try:
            reader.read_until(lambda r: expected <= set(r.ids()), 90, "the 6 items sent after the restart scored")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; scored {sorted(set(reader.ids()))}; stats {service.stats}; "
                f"renewed {tracked.renewed if tracked else None}"
            ) from None
    finally:
        if reader is not None:
            reader.close()
        service.stop_and_join()
    assert service.stats.redone_batches >= 1  # the batch produced while the broker was down was redone...
    assert tracked is not None and tracked.renewed >= 1 and service.stats.producers_renewed == tracked.renewed
