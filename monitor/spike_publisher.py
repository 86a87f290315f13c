"""Publishing the aggregator's spike events: one log line, one ``sentiment.spikes`` record, the caller's hook.

The aggregator service decides *whether* an event is published (not while its partition replays, see
:mod:`finsentry.monitor.service`); this module does the publishing.

A publish never raises into the aggregation that emitted the event (it runs inside ``Aggregator.process``: an
error there would skip the rest of that record). A send that fails (kafka-python raises ``KafkaTimeoutError``
from ``send`` when no broker answers its metadata request or its buffer stays full for ``max_block_ms``; a send
it accepted may still fail later, e.g. expire in its buffer while the broker restarts) is logged, counted
(``finsentry_aggregator_spike_send_failures_total``) and kept: the kept events are sent again, oldest first,
before any new one and on every turn of the consumer loop (:meth:`SpikePublisher.resend`), through the loop's
current producer, but not within :data:`RETRY_S` of a failed send (a send to a broker that is gone blocks for
``max_block_ms``, 60 s by default, under the state lock when it comes from ``process``: meanwhile new events are
only queued). At most :data:`MAX_PENDING` events are kept; beyond that the oldest is dropped, logged and
counted (``finsentry_aggregator_spike_events_dropped_total``).

Kept events live in memory, but they are not lost when the instance stops or dies: each remembers the record
that emitted it (partition, offset), and :meth:`SpikePublisher.undelivered_from` gives, per partition, the
lowest such offset among the events not known to be delivered. The aggregator service commits no further than
that (:meth:`~finsentry.monitor.service.AggregatorService.committable`), so the next owner of the partition
processes that record live again and publishes the event itself (at least once: events emitted after it and
delivered are published a second time). When the partition is assigned again, events of records below the
group's committed offset stop holding it (:meth:`SpikePublisher.release`): another owner committed past them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from finsentry.ingest.topics import SENTIMENT_SPIKES
from finsentry.monitor.spikes import SpikeEvent

log = logging.getLogger("finsentry.monitor.service")  # the service's log, where operators look for spikes

MAX_PENDING = 1000
"""Spike events kept for sending again at most (about 2 KB each); beyond it the oldest is dropped."""
RETRY_S = 5.0
"""After a failed send, no send is tried for this long (seconds, monotonic clock); events are only queued."""


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


def fmt_figure(x: float | None) -> str:
    """A figure for a log line: three decimals, ``n/a`` for None.

    >>> fmt_figure(None), fmt_figure(2.34567)
    ('n/a', '2.346')
    """
    return "n/a" if x is None else f"{x:.3f}"


@dataclass(slots=True)
class _Record:
    """One encoded spike event: ``seq`` (publish order), ``key`` / ``value`` (the record's bytes), ``name`` (for
    logs: ``<event> <spike_id or key>``)."""

    seq: int
    key: bytes
    value: bytes
    name: str
    origin: tuple[int, int] | None = None
    """``(partition, offset)`` of the ``sentiment.keyed`` record whose processing emitted the event, or None."""


class SpikePublisher:
    """Logs a spike event, sends it to ``sentiment.spikes`` (key = aggregate key, value = its JSON) and calls
    ``on_spike`` (e.g. the ``finsentry run`` console); exceptions the hook raises are logged and ignored. Failed
    sends are kept and sent again (module doc). Not thread-safe: the consumer loop's thread calls it.

    Args:
        on_spike: called with every published event, whether its send succeeded or not.
        max_pending: events kept for sending again at most (>= 1; default :data:`MAX_PENDING`).
        failures: a counter incremented per failed send (``finsentry_aggregator_spike_send_failures_total``).
        dropped: a counter incremented per event dropped unsent (``finsentry_aggregator_spike_events_dropped_total``).
        retry_s: no send is tried for this long after a failed one (seconds, >= 0; default :data:`RETRY_S`).
        clock: monotonic seconds (for tests).

    Attributes:
        failed_sends: sends that failed (raised, or their future failed). dropped: events dropped unsent.

    Raises:
        ValueError: ``max_pending`` < 1 or ``retry_s`` < 0.
    """

    def __init__(
        self,
        on_spike: Callable[[SpikeEvent], None] | None = None,
        max_pending: int = MAX_PENDING,
        failures: _Counter | None = None,
        dropped: _Counter | None = None,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pending < 1 or retry_s < 0:
            raise ValueError(f"need max_pending >= 1 and retry_s >= 0, got {max_pending} and {retry_s}")
        self.retry_s = retry_s
        self._clock = clock
        self._next_try = -math.inf
        self.on_spike = on_spike
        self.max_pending = max_pending
        self.failed_sends = 0
        self.dropped = 0
        self._failures = failures
        self._dropped = dropped
        self._seq = 0
        self._queue: deque[_Record] = deque()  # not sent yet (or sent and failed), oldest first
        self._in_flight: list[tuple[_Record, Any]] = []  # accepted by send, delivery not known yet: (record, future)

    def _undelivered(self) -> list[_Record]:
        """The events not known to be delivered: kept for sending again, or sent and not yet acknowledged (read
        from copies: a scrape calls it from another thread)."""
        in_flight = list(self._in_flight)
        return [*list(self._queue), *(r for r, f in in_flight if not (f.is_done and f.succeeded()))]

    @property
    def pending(self) -> int:
        """How many events are not known to be delivered (:meth:`_undelivered`)."""
        return len(self._undelivered())

    def publish(self, event: SpikeEvent, producer: Any, origin: tuple[int, int] | None = None) -> None:
        """Publish ``event`` through ``producer`` (None: log and hook only, e.g. before the loop is open); events
        kept from failed sends go first. ``origin``: ``(partition, offset)`` of the record that emitted it, which
        holds the partition's commit back until the event is delivered (:meth:`undelivered_from`). Never raises
        (but for what the log handlers raise)."""
        body = event.to_dict()
        log.info(
            "spike %s %s at %s: share %.3f vs baseline %s, z %s, %d items",
            event.event,
            event.key,
            body["bucket_end"],
            event.share if event.share is not None else float("nan"),
            fmt_figure(event.baseline_mean),
            fmt_figure(event.z),
            event.items,
        )
        if producer is not None:
            try:
                value = json.dumps(body).encode()
            except (TypeError, ValueError):  # a bug in the event: it can never be sent
                log.exception("cannot encode spike %s %s; dropped", event.event, event.key)
                self._drop(1)
            else:
                self._seq += 1
                name = f"{event.event} {event.spike_id or event.key}"
                self._keep(_Record(self._seq, event.key.encode(), value, name, origin))
                self.resend(producer)
        if self.on_spike is not None:
            try:
                self.on_spike(event)
            except Exception:
                log.exception("on_spike hook failed for %s", event.key)

    def undelivered_from(self) -> dict[int, int]:
        """Per partition, the lowest offset of a record whose event is not known to be delivered (kept for sending
        again, or sent and not yet acknowledged): commit no further than it. Partitions without one are absent.

        >>> SpikePublisher().undelivered_from()
        {}
        """
        self._collect_failed()
        out: dict[int, int] = {}
        for record in self._undelivered():
            if record.origin is not None:
                partition, offset = record.origin
                out[partition] = min(out.get(partition, offset), offset)
        return out

    def release(self, partition: int, below: int) -> None:
        """Stop holding ``partition``'s commit at records before offset ``below`` (the group's committed offset
        when the partition is assigned again): another owner processed those records and committed past them, so
        it published their events. The events are still sent (a duplicate at worst); holding them would move the
        group's committed offset back to their records.

        >>> SpikePublisher().release(0, 10)
        """
        for record in [*list(self._queue), *(r for r, _f in list(self._in_flight))]:
            if record.origin is not None and record.origin[0] == partition and record.origin[1] < below:
                record.origin = None

    def resend(self, producer: Any) -> None:
        """Send the kept events through ``producer``, oldest first, until one fails (one failed try per call: a
        send to a broker that is gone blocks for the producer's ``max_block_ms``). Sends accepted earlier whose
        future has failed since are kept again first, in their order. None, or within ``retry_s`` of a failed
        send: nothing is sent. Never raises."""
        self._collect_failed()
        if producer is None or self._clock() < self._next_try:
            return
        while self._queue:
            record = self._queue[0]
            try:
                future = producer.send(SENTIMENT_SPIKES, key=record.key, value=record.value)
            except Exception as exc:  # KafkaTimeoutError, a closed or failed producer, ...
                self._failed(record, exc, len(self._queue))
                self._next_try = self._clock() + self.retry_s
                return
            self._queue.popleft()
            if future is not None and hasattr(future, "is_done"):
                self._in_flight.append((record, future))

    def _collect_failed(self) -> None:
        """Move the sends whose future has failed back to the queue (in publish order); forget delivered ones."""
        failed: list[_Record] = []
        still: list[tuple[_Record, Any]] = []
        for record, future in self._in_flight:
            if not future.is_done:
                still.append((record, future))
            elif future.failed():
                failed.append(record)
                self._failed(record, future.exception, len(self._queue) + len(failed))
        self._in_flight = still
        if failed:
            merged = sorted([*failed, *self._queue], key=lambda r: r.seq)
            self._queue.clear()
            for record in merged:
                self._keep(record)

    def _keep(self, record: _Record) -> None:
        self._queue.append(record)
        extra = len(self._queue) - self.max_pending
        for _ in range(max(extra, 0)):
            lost = self._queue.popleft()
            log.error("spike %s dropped unsent: more than %d spike events wait to be sent", lost.name, self.max_pending)
        if extra > 0:
            self._drop(extra)

    def _drop(self, n: int) -> None:
        self.dropped += n
        if self._dropped is not None:
            self._dropped.inc(n)

    def _failed(self, record: _Record, exc: BaseException | None, waiting: int) -> None:
        self.failed_sends += 1
        if self._failures is not None:
            self._failures.inc()
        log.warning(
            "cannot send spike %s to %s (%s: %s); kept with %d waiting, sent again later",
            record.name,
            SENTIMENT_SPIKES,
            type(exc).__name__,
            exc,
            waiting,
        )

    def close(self) -> None:
        """Log the events that were never delivered (called when the service stops): the commit stayed before the
        records that emitted them, so the partitions' next owner publishes them again."""
        self._collect_failed()
        if self._queue:
            log.error(
                "%d spike events were never sent to %s by this instance; the committed offsets stay before the "
                "records that emitted them, so the next owner of their partitions publishes them",
                len(self._queue),
                SENTIMENT_SPIKES,
            )


__all__ = ["MAX_PENDING", "SpikePublisher", "fmt_figure"]
