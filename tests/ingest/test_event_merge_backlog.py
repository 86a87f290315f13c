"""A backlog through the event-time merge and the consume loop goes at the speed the rules allow, in batches no
larger than the loop's room (ingest/event_order.py, ingest/consume_loop.py).

Before: the merge released only the records within ``max_skew`` of the frontier as it stood at the start of a
call, and the loop then waited a whole ``poll_ms`` on its paused partitions before the next call, so a backlog
of tweets minutes apart went through at a few records per 200 ms poll (~16 items/s, whatever the model's speed).
"""

from __future__ import annotations

import random
import threading
import time
from types import SimpleNamespace

from kafka import TopicPartition

from finsentry.ingest.consume_loop import ConsumeLoop, LoopConfig, LoopHandler
from finsentry.ingest.event_order import EventTimeMerger
from finsentry.ingest.topics import NEWS_RAW

SKEW = 30.0


def _backlog(partitions: int = 6, items: int = 360, seed: int = 7) -> dict[int, list[tuple[float, str]]]:
    """Items 0-120 s apart in event time, each on a random partition (each partition in event-time order)."""
    rng = random.Random(seed)
    out: dict[int, list[tuple[float, str]]] = {p: [] for p in range(partitions)}
    t = 1_440_000_000.0
    for i in range(items):
        t += rng.uniform(0, 120)
        out[rng.randrange(partitions)].append((t, f"r{i}"))
    return out


def _merger(backlog: dict[int, list[tuple[float, str]]]) -> EventTimeMerger:
    merge = EventTimeMerger(max_skew=SKEW, max_wait=5)
    for p, records in backlog.items():
        merge.add(p, records, now=9e9)
    return merge


def test_one_release_takes_every_record_the_rules_allow_in_event_time_order():
    backlog = _backlog()
    times = {r: t for records in backlog.values() for t, r in records}
    merge = _merger(backlog)
    released = merge.release(behind=set(backlog), now=0.0)  # every partition has more to read
    # the first partition to run dry bounds the others: its last record + max_skew
    bound = min(records[-1][0] for records in backlog.values()) + SKEW
    expected = sorted((r for r, t in times.items() if t <= bound), key=times.__getitem__)
    assert len(expected) > 100  # a real backlog, not a few records
    assert released == expected
    assert merge.release(behind=set(backlog), now=0.1) == []  # nothing more until partitions deliver


def test_a_limit_returns_the_same_records_in_the_same_order_in_pieces():
    backlog = _backlog()
    whole = _merger(backlog).release(behind=set(backlog), now=0.0)
    merge = _merger(backlog)
    pieces = [merge.release(behind=set(backlog), now=0.0, limit=64)]
    while merge.ready():
        pieces.append(merge.release(behind=set(backlog), now=0.0, limit=64))
    assert [len(p) for p in pieces[:-1]] == [64] * (len(pieces) - 1) and 0 < len(pieces[-1]) <= 64
    assert [r for piece in pieces for r in piece] == whole


def test_ready_records_are_given_back_on_a_rewind_and_on_a_revocation():
    merge = EventTimeMerger(max_skew=SKEW, max_wait=5)
    merge.add(0, [(1000.0, "a0"), (1001.0, "a1")], now=9e9)
    merge.add(1, [(1002.0, "b0"), (1003.0, "b1")], now=9e9)
    assert merge.release(behind=set(), now=0.0, limit=1) == ["a0"]
    assert sorted(merge.forget([1])) == ["b0", "b1"]
    assert merge.ready() == 1 and merge.take_all() == ["a1"] and merge.ready() == 0


class _Held(LoopHandler):
    """Holds ``n`` records and gives at most the loop's room per admit (as the scorer's merge does)."""

    def __init__(self, n: int, stop: threading.Event) -> None:
        self.left = [SimpleNamespace(topic=NEWS_RAW, partition=0, offset=o, key=None, value=b"v") for o in range(n)]
        self.batches: list[int] = []
        self.stop = stop

    def admit(self, polled, consumer, room=None):
        out, self.left = self.left[:room], self.left[room:]
        return out

    def can_release(self) -> bool:
        return bool(self.left)

    def process(self, batch, producer) -> None:
        self.batches.append(len(batch))
        if not self.left:
            self.stop.set()


class _Paused:
    """A consumer whose partitions are all paused: every poll returns nothing after ``timeout_ms``."""

    def __init__(self) -> None:
        self.timeouts: list[int] = []

    def poll(self, timeout_ms, max_records):
        self.timeouts.append(timeout_ms)
        time.sleep(timeout_ms / 1000)
        return {}

    def assignment(self):
        return {TopicPartition(NEWS_RAW, 0)}

    def commit(self, offsets, timeout_ms=None) -> None:
        pass


def test_the_loop_does_not_wait_on_a_poll_while_the_handler_has_records_ready():
    stop = threading.Event()
    handler = _Held(150, stop)
    config = LoopConfig(
        name="t", topics=(NEWS_RAW,), group_id="g", produce=False, poll_ms=200, max_batch_items=64, max_batch_wait_ms=20
    )
    loop = ConsumeLoop(config, None, handler)  # type: ignore[arg-type]
    loop.consumer = consumer = _Paused()
    start = time.monotonic()
    loop.serve(stop)
    assert handler.batches == [64, 64, 22]  # never more than the room
    assert consumer.timeouts[:3] == [0, 0, 0]  # the first poll of each batch: records were ready
    assert all(t <= 20 for t in consumer.timeouts[3:])  # then only the last batch's max_batch_wait_ms
    assert time.monotonic() - start < 1.0  # not one 200 ms idle poll per batch
