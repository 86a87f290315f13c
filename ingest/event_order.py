"""Reading ``news.raw`` partitions in event-time order: records are held back until no partition lags behind them.

Why: every aggregate key's ``sentiment.keyed`` partition receives items from *all* ``news.raw`` partitions, and
the aggregator closes a key's buckets at the highest event time its partition has seen minus the grace
(:mod:`finsentry.monitor.watermark`). A scorer that catches up on a backlog (after an outage or a rebalance) and
drains one ``news.raw`` partition ahead of the others would push every keyed partition's watermark to *now*
while the other partitions still hold older items, and those would arrive late and be dropped. The consumer
returns one partition's fetched records to the end before the next one's, and one fetch of a thin stream can
span hours, so the scorer merges its partitions by event time, as Kafka Streams picks the partition whose head
record has the smallest timestamp and as Flink aligns watermarks across source splits.

Rules (times are ``published_at`` in epoch seconds, UTC):

- Polled records are *held* per partition, in offset order. A partition is *behind* when it still has records
  the consumer has not returned (the caller says which: position below the fetch high watermark).
- The *frontier* is the smallest, over the partitions that hold records or are behind, of the event time of
  the partition's first held record, or for a behind partition holding none, of the last event time released
  from it (unknown: nothing is released from the others until it has been read; it is not paused, so its
  records come with the next fetch).
- Release, partition by partition in offset order, every held record dated at most ``max_skew`` after the
  frontier, then compute the frontier again and repeat until nothing more is releasable (a release moves the
  frontier: releasing one record at a time and waiting for the next poll before the next one paced a backlog
  to a few records per poll). The slowest partition's first record is always releasable, so reading
  progresses. Partitions still holding records should be paused (the caller does), which bounds the memory
  held to one poll per partition.
- Released records wait in a *ready* queue (each release's records sorted by event time, after those released
  before, so the order is the merge's whatever the caller's batches); a call returns at most ``limit`` of them,
  so a batch never grows past the caller's room, and the rest come with the next calls (no new records needed:
  see :meth:`EventTimeMerger.ready`).
- An event time is first clamped to ``wall clock + max_skew``: a source whose clock runs fast cannot make its
  partition look minutes ahead (and hold it back for minutes). Records without a readable ``published_at``
  are released at once (validation dead-letters them).
- If nothing could be released for ``max_wait`` seconds while records are held (a partition reported as
  behind that never delivers), the oldest held records are released anyway: pacing may delay news, never
  stall it.

``max_skew`` must stay below the aggregator's grace (``monitor.grace_seconds``); the settings check it.

Limit: the merge is per scorer instance. Several scorers each align their own partitions, so two scorers that
resume at different moments after an outage (or one that lags the other by minutes of event time) can still
deliver out of order by more than the grace, and the aggregator drops the difference as late (counted per key,
``FinsentryLateEventsDropped``). Closing the gap needs the scorers' source watermarks in the keyed records and
an aggregator that closes on their minimum (Flink's watermark propagation), with an idle-source rule; that is
not built.

>>> merge = EventTimeMerger(max_skew=30, max_wait=5)
>>> merge.add(0, [(1000.0, "a0"), (1100.0, "a1")], now=9e9)
>>> merge.add(1, [(1010.0, "b0"), (1020.0, "b1")], now=9e9)
>>> merge.release(behind={0, 1}, now=0.0)       # frontier 1000: a1 (100 s ahead) waits for partition 1
['a0', 'b0', 'b1']
>>> merge.holding()
{0}
>>> merge.release(behind={0, 1}, now=1.0)       # partition 1 still behind, last released at 1020: a1 waits
[]
>>> merge.release(behind={0}, now=2.0)          # partition 1 is drained: nothing holds a1 back
['a1']
>>> merge.add(2, [(9999.0, "fast")], now=1000.0)  # a fast clock: merged as now + max_skew = 1030
>>> merge.add(3, [(1020.0, "c0")], now=1000.0)
>>> merge.release(behind=set(), now=3.0)
['c0', 'fast']

Each release moves the frontier, so one call releases a whole backlog the rules allow, at most ``limit`` at a time:

>>> merge = EventTimeMerger(max_skew=30, max_wait=5)
>>> merge.add(0, [(1000.0, "a0"), (1050.0, "a1"), (1100.0, "a2")], now=9e9)
>>> merge.add(1, [(1020.0, "b0"), (1070.0, "b1")], now=9e9)
>>> merge.release(behind={0, 1}, now=0.0, limit=3)  # frontier 1000, then 1050, then 1100
['a0', 'b0', 'a1']
>>> merge.ready(), merge.holding(), merge.release(behind={0, 1}, now=0.0)
(2, set(), ['b1', 'a2'])
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


class EventTimeMerger:
    """Held records per partition and the event-time merge that releases them (see the module doc).

    Not thread-safe. Records are opaque to it; the caller passes ``(event_time or None, record)`` pairs.

    Args:
        max_skew: seconds of event time a released record may lie after the frontier (> 0).
        max_wait: seconds (of the caller's monotonic clock) after which held records are released even if a
            behind partition has delivered nothing (> 0).

    Raises:
        ValueError: ``max_skew`` or ``max_wait`` is not positive.
    """

    def __init__(self, max_skew: float, max_wait: float) -> None:
        if not max_skew > 0:
            raise ValueError(f"max_skew must be > 0 seconds, got {max_skew}")
        if not max_wait > 0:
            raise ValueError(f"max_wait must be > 0 seconds, got {max_wait}")
        self.max_skew = float(max_skew)
        self.max_wait = float(max_wait)
        self._held: dict[int, deque[tuple[float | None, Any]]] = {}
        self._released_marks: dict[int, float] = {}  # per partition: largest (clamped) event time released
        self._ready: list[tuple[float, int, int, Any]] = []  # released, not yet returned: (time, seq, partition, r)
        self._seq = 0  # release order, to keep the sort stable
        self._stuck_since: float | None = None

    def add(self, partition: int, records: Iterable[tuple[float | None, Any]], now: float) -> None:
        """Hold ``(event_time, record)`` pairs polled from ``partition`` (in offset order); ``now``: wall clock, s."""
        held = self._held.setdefault(partition, deque())
        limit = now + self.max_skew
        for t, record in records:
            held.append((None if t is None else min(t, limit), record))

    def holding(self) -> set[int]:
        """Partitions with held records (to be paused until they are released)."""
        return {p for p, held in self._held.items() if held}

    def ready(self) -> int:
        """Records released by the merge, not yet returned (the next :meth:`release` returns them, no poll needed)."""
        return len(self._ready)

    def forget(self, partitions: Iterable[int]) -> list[Any]:
        """Drop revoked partitions; returns their ready and held records (not processed: their next owner reads
        them)."""
        gone = set(partitions)
        dropped = [r for _, _, p, r in self._ready if p in gone]
        self._ready = [x for x in self._ready if x[2] not in gone]
        for p in gone:
            dropped.extend(r for _, r in self._held.pop(p, ()))
            self._released_marks.pop(p, None)
        return dropped

    def take_all(self) -> list[Any]:
        """Every ready and held record (for a rewind); nothing stays held or ready."""
        out = [r for _, _, _, r in self._ready]
        out += [r for held in self._held.values() for _, r in held]
        self._ready = []
        for held in self._held.values():
            held.clear()
        return out

    def release(self, behind: set[int], now: float, limit: int | None = None) -> list[Any]:
        """Records that may be processed now, sorted by event time (see the module doc).

        Args:
            behind: partitions that still have records the consumer has not returned.
            now: the caller's monotonic clock, seconds (for ``max_wait``).
            limit: most records to return (None: all released); the others stay ready for the next call.
        """
        out: list[tuple[float, int, int, Any]] = []
        while (frontier := self._frontier(behind)) is not None:
            bound, before = frontier + self.max_skew, len(out)
            for p, held in self._held.items():
                while held and (held[0][0] is None or held[0][0] <= bound):
                    self._take(p, held, out)
            if len(out) == before:
                break  # the frontier did not move: nothing more is releasable now
        if out or not self.holding():
            self._stuck_since = None
        elif self._stuck_since is None:
            self._stuck_since = now
        elif now - self._stuck_since >= self.max_wait:  # a behind partition that never delivers: go on
            self._stuck_since = None
            p, held = min(((p, h) for p, h in self._held.items() if h), key=lambda ph: _key(ph[1][0][0]))
            log.warning(
                "partitions %s reported records to read but delivered none for %g s: partition %d released"
                " without them (its items may reach the aggregators late)",
                sorted(behind),
                self.max_wait,
                p,
            )
            while held:
                self._take(p, held, out)
        self._ready += sorted(out, key=lambda x: (x[0], x[1]))  # after those released before: the merge's order
        n = len(self._ready) if limit is None else max(0, limit)
        taken, self._ready = self._ready[:n], self._ready[n:]
        return [r for _, _, _, r in taken]

    def _take(self, p: int, held: deque[tuple[float | None, Any]], out: list[tuple[float, int, int, Any]]) -> None:
        t, record = held.popleft()
        if t is not None:
            self._released_marks[p] = max(t, self._released_marks.get(p, float("-inf")))
        self._seq += 1
        out.append((_key(t), self._seq, p, record))

    def _frontier(self, behind: set[int]) -> float | None:
        """Smallest next event time over holding and behind partitions; None if a behind one is unknown."""
        candidates: list[float] = []
        for p in set(behind) | self.holding():
            held = self._held.get(p)
            if held:
                candidates.append(_key(held[0][0]))
            elif p in self._released_marks:
                candidates.append(self._released_marks[p])
            else:
                return None  # behind, nothing read yet: wait for its first records
        return min(candidates) if candidates else None


def _key(t: float | None) -> float:
    return float("-inf") if t is None else t
