"""The scorer's admission step: polled ``news.raw`` records are held for the event-time merge
(:mod:`finsentry.ingest.event_order`) and released in event-time order; partitions that still hold records are
paused, the others resumed.

A :meth:`~finsentry.ingest.consume_loop.LoopHandler.admit` / ``take_held`` pair for the scorer's
:class:`~finsentry.ingest.consume_loop.ConsumeLoop`: the loop calls :meth:`EventTimeAdmission.admit` after every
poll (loop thread) and :meth:`EventTimeAdmission.take_held` on a rewind (loop thread) or a revocation (IO
thread); a lock keeps the merger consistent between the two threads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from finsentry.ingest.consume_loop import record_seconds
from finsentry.ingest.event_order import EventTimeMerger

log = logging.getLogger(__name__)

MAX_ALIGNMENT_WAIT_S = 5.0
"""Seconds held records wait for a partition reported as behind that delivers nothing, before they go on anyway."""

END_OFFSET_REFRESH_S = 1.0
"""Seconds between ``end_offsets`` requests for a partition whose fetches report no high watermark (pacing)."""


class EventTimeAdmission:
    """Holds polled records and releases them in event-time order (see the module doc).

    Args:
        max_skew: ``ingest.scorer.max_partition_skew_seconds`` (s, > 0). max_message_bytes: values longer than
            this are not parsed for their event time (validation dead-letters them). paused_gauge: a Prometheus
            gauge set to the number of partitions holding records (None: not exported).

    Raises:
        ValueError: ``max_skew`` is not positive.
    """

    def __init__(self, max_skew: float, max_message_bytes: int, paused_gauge: Any = None) -> None:
        self.merger = EventTimeMerger(max_skew, MAX_ALIGNMENT_WAIT_S)
        self.max_message_bytes = max_message_bytes
        self.paused_gauge = paused_gauge
        self._lock = threading.Lock()
        self._end_offsets: dict[TopicPartition, tuple[int | None, float]] = {}  # tp -> (end offset, monotonic s)

    def admit(self, polled: Mapping[TopicPartition, list[Any]], consumer: Any, room: int | None = None) -> list[Any]:
        """Hold the polled records, then release what the merge allows (sorted by event time), at most ``room``
        records (None: all); the rest stay ready for the next call (:meth:`ready`)."""
        now_wall = time.time()
        with self._lock:
            for tp, records in polled.items():
                timed = [(merge_time(r, self.max_message_bytes), r) for r in records]
                self.merger.add(tp.partition, timed, now_wall)
        return self._align(consumer, room)

    def ready(self) -> bool:
        """Whether records released by the merge wait to be admitted (the next :meth:`admit` returns them at once,
        so the loop should not wait on its poll)."""
        with self._lock:
            return self.merger.ready() > 0

    def take_held(self, partitions: set[TopicPartition] | None) -> list[Any]:
        """Held records of ``partitions`` (None: all), no longer held (a rewind re-reads them, a new owner reads
        a revoked partition's)."""
        with self._lock:
            if partitions is None:
                return self.merger.take_all()
            return self.merger.forget(tp.partition for tp in partitions)

    def _align(self, consumer: Any, room: int | None) -> list[Any]:
        """Release held records in event-time order (at most ``room``); pause the partitions still holding some,
        resume the others."""
        assigned = set(consumer.assignment() or ())
        with self._lock:
            holding_before = self.merger.holding()
        behind: set[int] = set()
        if holding_before:  # nothing held: nothing to decide, no request
            for tp in assigned:
                high = consumer.highwater(tp)  # from the last fetch response; no request
                if high is None:  # no fetch parsed yet (or the broker sent none): ask for the end offset
                    high = self._end_offset(consumer, tp)
                if high is None:
                    continue
                try:
                    position = consumer.position(tp, timeout_ms=0)  # known once fetched: no request
                except KafkaError:
                    continue
                if position is not None and position < high:
                    behind.add(tp.partition)
        with self._lock:
            released = self.merger.release(behind, time.monotonic(), room)
            holding = self.merger.holding()
        paused = set(consumer.paused())
        to_pause = {tp for tp in assigned if tp.partition in holding} - paused
        to_resume = {tp for tp in paused if tp.partition not in holding}
        if to_pause:
            consumer.pause(*to_pause)
        if to_resume:
            consumer.resume(*to_resume)
        _release_parked_records(consumer)
        if self.paused_gauge is not None:
            self.paused_gauge.set(len(holding))
        return released

    def _end_offset(self, consumer: Any, tp: TopicPartition) -> int | None:
        """The partition's end offset from ``end_offsets`` (one request per partition at most every 1 s), or None."""
        now = time.monotonic()
        cached = self._end_offsets.get(tp)
        if cached is None or now - cached[1] >= END_OFFSET_REFRESH_S:
            try:
                value = consumer.end_offsets([tp]).get(tp)
            except KafkaError as exc:
                log.debug("end_offsets(%s) failed: %s", tp, exc)
                value = None
            cached = self._end_offsets[tp] = (value, now)
        return cached[0]


def merge_time(record: Any, max_bytes: int) -> float | None:
    """The time a ``news.raw`` record is merged by: its ``published_at``, but never later than its Kafka timestamp.

    A source whose clock runs fast dates its items after the moment it sent them; merged by that date, one such
    item at the head of its partition would hold the partition's correctly dated items back while the other
    partitions run ahead (and the aggregator would then drop those items as late). The send time (the record
    timestamp, produce time) bounds it, as Kafka Streams orders by record timestamps.
    """
    t = event_time(record.value, max_bytes)
    sent = record_seconds(record)
    return t if t is None or sent is None else min(t, sent)


def event_time(value: bytes | None, max_bytes: int) -> float | None:
    """``published_at`` of a raw ``news.raw`` value as epoch seconds (UTC when no offset is given), or None.

    Only for the event-time merge (:mod:`finsentry.ingest.event_order`): a value over ``max_bytes``, or one this
    cannot read for any reason (bad JSON, nesting too deep, no or odd ``published_at``), gives None and is left
    to validation, which dead-letters it with the right reason.

    >>> event_time(b'{"published_at": "2015-08-24T13:30:00Z"}', 1000), event_time(b"{nope", 1000)
    (1440423000.0, None)
    """
    if value is None or len(value) > max_bytes:
        return None
    try:
        ts = datetime.fromisoformat(json.loads(value)["published_at"])
    except Exception:  # a hint only: never let a bad record stop the loop here
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _release_parked_records(consumer: Any) -> None:
    """Work around a kafka-python 3.0.12 bug that stalls resumed partitions (no-op where it does not apply).

    Pausing a partition whose fetched records are half returned parks them; its fetcher restores parked records
    only while its in-line slot is ``None``, but a drained slot keeps its empty records object, so parked
    partitions are never returned nor fetched again (``Fetcher._fetched_records`` / ``_fetchable_partitions``).
    Clearing a drained slot lets the next poll restore one parked partition; this runs after every pacing step.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    slot = getattr(fetcher, "_next_partition_records", None)
    if slot is not None and not slot and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None
