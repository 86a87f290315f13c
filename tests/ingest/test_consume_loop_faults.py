"""The consume-process-produce runner (ingest/consume_loop.py) under faults, on a real embedded broker: a broker
that goes away and comes back, a produce that fails, a commit the group refuses, a handler that raises."""

from __future__ import annotations

import threading
import time

from ingest_testkit import TopicReader, produce, wait_for
from test_consume_loop import _config, _Copy, _kafka

from finsentry.ingest.consume_loop import ConsumeLoop
from finsentry.ingest.topics import NEWS_SCORED


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
