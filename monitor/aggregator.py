"""The aggregation core, without Kafka: event-time buckets per key, watermarks, dedup, expiry, spike detection.

Feed it :class:`~finsentry.ingest.contract.KeyedItem` records with the partition each came from
(:meth:`Aggregator.process`); read rolling views (:mod:`finsentry.monitor.rolling`), bucket history and spike
events back. The Kafka service (:mod:`finsentry.monitor.service`) and the offline report
(:mod:`finsentry.monitor.report`) both drive this class, so live and backfilled numbers are the same.

Per message from partition ``p``, in this order:

0. a record whose event time lies more than ``monitor.max_future_seconds`` after the wall clock is counted
   (``future``) and dropped before it can touch anything (see "The wall clock" below);
1. ``p``'s high mark is raised (:class:`~finsentry.monitor.watermark.PartitionWatermark`) to the event time, or
   to the record's produce time when the event time lies after it (see "A fast source clock" below); if ``p``'s
   watermark (high mark - grace) passed bucket ends, the due buckets of ``p``'s keys close, in bucket order,
   each feeding the spike detector (:mod:`finsentry.monitor.spikes`), and ``p``'s keys idle for longer than
   the retention (the longest window) expire;
2. a duplicate ``(id, key)`` seen within ``monitor.dedup_horizon_seconds`` of event time is counted and dropped;
3. a late event (its bucket already closed for its key) is counted, per key too (:meth:`Aggregator.late_by_key`),
   and dropped (:mod:`finsentry.monitor.buckets`);
4. the item is counted in its bucket.

Which watermark closes a key's buckets: every aggregate key lives on exactly one partition, so its buckets
close at *its partition's* watermark, which is never behind the instance watermark (the minimum over
partitions with data, minus grace: every bucket ending before it is closed on every partition; it is what
``/api/health`` and ``finsentry_event_time_watermark_seconds`` report). A partition replayed far behind
the others is therefore never judged against their progress, and nothing it carries is dropped as late.

Determinism: everything a key computes (buckets, which buckets are closed, baselines, spikes, expiry)
depends only on the sequence of records of its own partition; how the consumer interleaves partitions
changes nothing. So an aggregator rebuilt by replaying the topic ends in exactly the state of one that never
stopped (``tests/monitor/test_monitor_broker.py``).

The wall clock: the one input besides the records is the guard of step 0. Without it, one record dated far
ahead (a source's wrong clock, or ``9999-12-31`` written straight to ``sentiment.keyed``) would raise its
partition's high mark there: every bucket of the partition's keys would close, every key would expire, and
every real record after it would be late until the wall clock caught up. The guard makes a record's fate
depend on when it is processed: one rejected as future may be accepted by a later rebuild (once the clock
has passed its event time, minus the tolerance). That is acceptable: the record was impossible when it
arrived (news is not published in the future beyond clock skew); a rebuild that accepts it treats it as what
it has become, an item no further ahead than the tolerance; and records within the tolerance, the normal
case, are never affected, so the rebuild of a normal stream stays exact.

A fast source clock: an item dated minutes ahead, but within the tolerance of step 0, would raise its
partition's watermark past the buckets that every correctly dated item after it belongs to, and all of them
would be late. So the high mark only moves up to ``record_time``: the time the source sent the item (the
``received_at`` the scorer copies from the ``news.raw`` record's Kafka timestamp), or, for records without it,
the Kafka timestamp of the ``sentiment.keyed`` record (the scorer's clock when it produced it). An item dated
after the moment it was sent moves the watermark no further than a correctly dated item sent at that moment
would, and the items after it keep the whole grace; the send time holds this even when the scorer catches up
on a backlog long after (the produce time alone would not). The item itself is aggregated in its own bucket
(counted in ``clamped``, in ``/api/health``). Taking times carried by the records, not this process's clock,
keeps a rebuild exact: a replay of the same records makes the same decisions. Replays of old news (event
times long before their send time) are never clamped.

Memory: per key, the non-empty buckets of the longest window, evidence for the short window, the ids of
the dedup horizon and two small baselines. Keys with no traffic for the longest window are dropped.
Idle keys whose short window is empty are not visited when the watermark moves; they catch up when their next
event arrives or when they expire. Closing a run of empty buckets costs O(1), not one detector step per bucket,
wherever that changes nothing: a run after an empty longest window (:meth:`MultiScaleDetector.skip_empty`), and
any run in which no bucket enters or leaves a window and no scale is due (:meth:`MultiScaleDetector.idle_run`:
the detector would repeat its last observation, which ``on_close`` gets for each of them). A key whose windows
hold stories still takes one detector step per closed bucket (the hour scale is judged every minute), but the
buckets whose windows stay as they are go to the detector in one call (:meth:`MultiScaleDetector.observe_run`,
the same steps without the per-bucket overhead) unless ``on_close`` wants the key's every bucket.

The key cap: at most ``monitor.max_keys`` keys are held (one item names at most 64 tickers, but a stream of
items naming ever new tickers, or records written straight to ``sentiment.keyed``, would otherwise grow the
instance without bound: 100,000 tickers took it from 187 MB to 1.25 GB). When an accepted record creates a key
beyond the cap, the ``ticker:`` key idle the longest (its partition's latest event time minus its own) is
dropped with its buckets, baselines and dedup ids, without spike events (counted in ``evicted_keys``,
``stats()["evicted_keys"]``). ``all``, ``topic:*`` keys (21 at most) and keys with an open spike are never
evicted, so they may hold the count a few keys over the cap. A ticker evicted and seen again starts afresh (no
baseline: it cannot alarm until it has warmed up again). Which key goes depends on the keys held at that
moment, so under the cap's pressure a rebuild by replay may evict other keys than the original run did: the
determinism above holds while the instance stays under the cap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.buckets import Bucket, bucket_index, evidence
from finsentry.monitor.multiscale import MultiScaleDetector
from finsentry.monitor.novelty import NoveltyIndex
from finsentry.monitor.settings import MonitorSettings
from finsentry.monitor.spike_settings import SpikeSettings
from finsentry.monitor.spikes import EVIDENCE_ITEMS, Observation, SpikeEvent, continue_spike
from finsentry.monitor.watermark import PartitionWatermark

log = logging.getLogger(__name__)

MAX_LATE_KEYS = 10_000
"""Keys with their own late count in :meth:`Aggregator.late_by_key`; late events of further keys count under
:data:`LATE_OTHER_KEY` (a stream of late events for ever new keys cannot grow memory without bound)."""

LATE_OTHER_KEY = "other"


class Outcome(Enum):
    """What :meth:`Aggregator.process` did with a message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    FUTURE = "future"
    """Event time more than ``monitor.max_future_seconds`` after the wall clock: not aggregated."""


class KeyState:
    """Everything the aggregator holds for one aggregate key (internal; read through :class:`Aggregator`)."""

    __slots__ = (
        "key",
        "partition",
        "buckets",
        "closed_until",
        "max_bucket",
        "win_items",
        "win_neg",
        "items_closed",
        "detector",
        "seen",
        "seen_order",
        "last_event",
        "heap_token",
        "novelty",
    )

    def __init__(self, key: str, partition: int, params: SpikeSettings, novelty_horizon: float) -> None:
        self.key = key
        self.partition = partition
        self.buckets: dict[int, Bucket] = {}
        self.closed_until: int | None = None  # every bucket index below this is closed
        self.max_bucket = -1
        n = len(params.scales)
        self.win_items = [0] * n  # per detector scale: items / negatives of the closed buckets in its window
        self.win_neg = [0] * n
        self.items_closed = 0  # distinct stories in all closed buckets since the key was created
        self.detector = MultiScaleDetector(params)
        self.seen: dict[str, float] = {}
        self.seen_order: deque[tuple[float, str]] = deque()
        self.last_event = float("-inf")
        self.heap_token: int | None = None
        self.novelty = NoveltyIndex(novelty_horizon)


@dataclass(frozen=True, slots=True)
class ClosedBucket:
    """One closed bucket of one key, as passed to ``on_close`` (the offline report records these)."""

    key: str
    start: float
    items: int
    negative: int
    neutral: int
    positive: int
    score_sum: float
    observation: Observation


class Aggregator:
    """Event-time aggregation of keyed sentiment for the keys of the partitions fed to it. Not thread-safe.

    Args:
        settings: bucket size, windows, grace, dedup horizon, the spike detector's group (``settings.spike``).
        on_spike: called with every :class:`SpikeEvent` (started / updated / ended), in order.
        on_close: called with every :class:`ClosedBucket`, in bucket order per key (for backfills).
        on_close_keys: the keys whose closed buckets ``on_close`` gets (None: every key); the others keep closing a
            run of empty buckets at once (``finsentry run``'s day lines need only ``all``).
        list_empty_runs: False: ``on_close`` gets none of the buckets of a run of empty buckets longer than the
            longest window that starts after an empty longest window (they close in O(1), as for keys without
            ``on_close``, and change no spike state). ``finsentry report`` sets it, so a record dated a year
            away costs two detector steps, not one listed bucket per minute of the year (525,600).
        clock: the wall clock, Unix seconds (default :func:`time.time`; tests pass a fixed one); an event time
            more than ``settings.max_future_seconds`` after it is rejected (:attr:`Outcome.FUTURE`).
        attributor: adds ``attribution`` (the words behind each item's negative score) to the evidence of every
            spike event, before the event is kept or passed on (an object with ``annotate(evidence)``:
            :class:`~finsentry.model.attribution.LazyAttributor`); None: evidence without it. It must give the
            same words for the same item every time, so a rebuild by replay gives equal events.
    """

    def __init__(
        self,
        settings: MonitorSettings,
        on_spike: Callable[[SpikeEvent], None] | None = None,
        on_close: Callable[[ClosedBucket], None] | None = None,
        clock: Callable[[], float] = time.time,
        on_close_keys: frozenset[str] | None = None,
        attributor: Any = None,
        list_empty_runs: bool = True,
    ) -> None:
        self.settings = settings
        self.attributor = attributor
        self.bucket_seconds = settings.bucket_seconds
        self.params = settings.spike
        self.scale_buckets = [w // self.bucket_seconds for w in self.params.scales]
        self.window_buckets = self.scale_buckets[-1]  # the longest scale: buckets keep evidence this long
        self.retention_buckets = settings.retention_seconds // self.bucket_seconds
        steps = [chart.step for chart in MultiScaleDetector(self.params).charts]
        self._every_bucket = [i for i, step in enumerate(steps) if step <= self.bucket_seconds]
        """Scales judged on every closed bucket while their window holds stories (the hour's step is a minute)."""
        self.expire_seconds = float(settings.key_idle_limit_seconds)
        self.dedup_horizon = float(settings.dedup_horizon_seconds)
        self.watermark = PartitionWatermark(settings.grace_seconds)
        self.on_spike = on_spike
        self.on_close = on_close
        self.on_close_keys = on_close_keys
        self.list_empty_runs = list_empty_runs
        self.clock = clock
        self.max_future = float(settings.max_future_seconds)
        self._future_limit = float("-inf")  # clock() + max_future when last read; the clock only moves on
        self._keys: dict[str, KeyState] = {}
        self._lru: dict[int, OrderedDict[str, None]] = {}  # per partition: keys by last accepted event
        self._heaps: dict[int, list[tuple[float, int, str]]] = {}  # per partition: (due, token, key)
        self._due: dict[int, int] = {}  # per partition: bucket index its watermark last reached
        self._tokens = itertools.count()
        self.active_spikes: dict[str, SpikeEvent] = {}
        self.spikes: deque[SpikeEvent] = deque(maxlen=settings.spikes_history)
        self.accepted = 0
        self.duplicates = 0
        self.late = 0
        self.future = 0
        self.clamped = 0
        self._late_by_key: Counter[str] = Counter()
        self.expired_keys = 0
        self.max_keys = settings.max_keys
        self.evicted_keys = 0
        """Keys dropped to keep at most ``max_keys`` (see "The key cap" in the module doc)."""
        self.near_duplicates = 0
        self.novelty_horizon = float(settings.spike.novelty_horizon_seconds)
        self.model_versions: dict[str, int] = {}

    # ------------------------------------------------------------------ ingest
    def process(self, item: KeyedItem, partition: int = 0, record_time: float | None = None) -> Outcome:
        """Aggregate one keyed item that came from ``partition``; returns what happened to it.

        Args:
            item: the parsed ``sentiment.keyed`` record.
            partition: its partition.
            record_time: the record's Kafka timestamp, epoch seconds (produce time); None (offline backfills):
                the event time alone moves the watermark.
        """
        t = item.published_at.timestamp()
        if t > self._future_limit:  # read the clock only when an event time passes the last limit
            self._future_limit = self.clock() + self.max_future
            if t > self._future_limit:
                self.future += 1
                return Outcome.FUTURE
        B = self.bucket_seconds
        wm = self.watermark
        mark = t
        if record_time is not None and t > record_time:
            mark = record_time  # dated after it was scored (a fast source clock): no further than the present
            self.clamped += 1
        if wm.observe(partition, mark):
            self._advance(partition)
        key = item.key
        ks = self._keys.get(key)
        created = ks is None
        if ks is None:
            ks = KeyState(key, partition, self.params, self.novelty_horizon)
            self._keys[key] = ks
        elif ks.heap_token is None:
            self._catch_up(ks)

        if item.id in ks.seen:
            self.duplicates += 1
            return Outcome.DUPLICATE
        b = bucket_index(t, B)
        pw = wm.partition_watermark(partition)
        if (ks.closed_until is not None and b < ks.closed_until) or (b + 1) * B <= pw:
            self.late += 1
            late = self._late_by_key
            late[key if key in late or len(late) < MAX_LATE_KEYS else LATE_OTHER_KEY] += 1
            if ks.closed_until is None and not ks.buckets:
                del self._keys[key]
            return Outcome.LATE

        bucket = ks.buckets.get(b)
        if bucket is None:
            bucket = ks.buckets[b] = Bucket()
        novel = True
        cluster = None
        if item.text.strip():
            novelty, cluster = ks.novelty.update(item.id, item.text, t)
            novel = novelty > 0.0
            if not novel:
                self.near_duplicates += 1
        bucket.add(item, item.sentiment_score, EVIDENCE_ITEMS, novel, cluster)
        if b > ks.max_bucket:
            ks.max_bucket = b
        if t > ks.last_event:
            ks.last_event = t
        ks.seen[item.id] = t
        ks.seen_order.append((t, item.id))
        cutoff = wm.partition_mark(partition) - self.dedup_horizon
        order = ks.seen_order
        while order[0][0] < cutoff:
            old_t, old_id = order.popleft()
            if ks.seen.get(old_id) == old_t:
                del ks.seen[old_id]
        lru = self._lru.get(partition)
        if lru is None:
            lru = self._lru[partition] = OrderedDict()
        lru[key] = None
        lru.move_to_end(key)
        self.accepted += 1
        if item.model_version:
            self.model_versions[item.model_version] = self.model_versions.get(item.model_version, 0) + 1
        if ks.heap_token is None:
            first = ks.closed_until if ks.closed_until is not None else b
            self._push(ks, (first + 1) * B)
        elif ks.closed_until is None and b < ks.max_bucket:
            self._push(ks, (b + 1) * B)  # an earlier first bucket: due sooner
        if created and len(self._keys) > self.max_keys:
            self._evict(key)
        return Outcome.ACCEPTED

    def revoke(self, partitions: set[int] | list[int]) -> None:
        """Forget ``partitions`` (revoked in a rebalance): their keys' state is dropped without spike events."""
        parts = set(partitions)
        for key in [k for k, ks in self._keys.items() if ks.partition in parts]:
            self._drop(key)
        for p in parts:
            self.watermark.forget(p)
            self._heaps.pop(p, None)
            self._lru.pop(p, None)
            self._due.pop(p, None)

    def flush(self, until: float | None = None) -> None:
        """Close every bucket of every key that ends at or before ``until`` (epoch s; default: all buckets).

        For backfills at the end of the input; a live aggregator never calls it (it would close buckets that
        in-grace data may still reach).
        """
        for ks in list(self._keys.values()):
            limit = ks.max_bucket + 1 if until is None else bucket_index(until, self.bucket_seconds)
            self._close_until(ks, limit)

    # ----------------------------------------------------------------- closing
    def _push(self, ks: KeyState, due: float) -> None:
        token = next(self._tokens)
        ks.heap_token = token
        heap = self._heaps.get(ks.partition)
        if heap is None:
            heap = self._heaps[ks.partition] = []
        heapq.heappush(heap, (due, token, ks.key))

    def _advance(self, partition: int) -> None:
        """Close the due buckets of ``partition``'s keys at its watermark; expire its idle keys."""
        w = self.watermark.partition_watermark(partition)
        if w is None:
            return
        limit = bucket_index(w, self.bucket_seconds)
        heap = self._heaps.get(partition)
        while heap and heap[0][0] <= w:
            _due, token, key = heapq.heappop(heap)
            ks = self._keys.get(key)
            if ks is None or ks.heap_token != token:
                continue
            ks.heap_token = None
            self._close_until(ks, limit)
            self._repush(ks)
        if limit > self._due.get(partition, -1):
            self._due[partition] = limit
            self._sweep(partition, w)

    def _repush(self, ks: KeyState) -> None:
        """Queue ``ks`` for its partition's next watermark move if it has open buckets, a window or a spike."""
        c = ks.closed_until
        if c is None or ks.heap_token is not None:
            return
        B = self.bucket_seconds
        if ks.max_bucket >= c or ks.detector.active:
            self._push(ks, (c + 1) * B)
        elif ks.win_items[-1] > 0:
            # only stories leaving the windows until the detector is next due: wake the key then, not every bucket
            due = ks.detector.next_due(float((c + 1) * B), ks.max_bucket, B, self.scale_buckets)
            if due is not None:
                self._push(ks, due)

    def _catch_up(self, ks: KeyState) -> None:
        """Close an idle key's empty buckets up to its partition's watermark."""
        w = self.watermark.partition_watermark(ks.partition)
        if w is not None and ks.closed_until is not None:
            self._close_until(ks, bucket_index(w, self.bucket_seconds))

    def _close_until(self, ks: KeyState, limit: int) -> None:
        """Close ``ks``'s buckets with index below ``limit``, in order."""
        if ks.closed_until is None:
            if not ks.buckets:
                return
            ks.closed_until = min(ks.buckets)
        B = self.bucket_seconds
        scales = self.scale_buckets
        m = self.window_buckets
        r = self.retention_buckets
        buckets = ks.buckets
        det = ks.detector
        report = self.on_close is not None and (self.on_close_keys is None or ks.key in self.on_close_keys)
        every = self._every_bucket
        # a run of empty buckets after an empty window longer than this closes in O(1), not one close each: any
        # run without on_close; with on_close, only a run longer than the longest window, and only where
        # list_empty_runs is off (None: never)
        skip_over = None if report and self.list_empty_runs else m if report else 0
        while ks.closed_until < limit:
            b = ks.closed_until
            if skip_over is not None and ks.win_items[-1] == 0 and not det.active and b + 1 < limit:
                nxt = min((i for i in buckets if i >= b), default=limit)
                run = min(limit, nxt) - 1 - b  # leave the run's last bucket to the regular close below
                if run > skip_over:
                    det.skip_empty((b + 1) * B, B, run)
                    for i in [i for i in buckets if i <= b + run - 1 - r]:
                        del buckets[i]
                    ks.closed_until = b = b + run
            quiet = b not in buckets and det.last is not None
            for i in every:
                quiet = quiet and not ks.win_items[i]
            if quiet:
                run = self._quiet_run(ks, b, limit)
                if run > 0:  # the detector would pass over these buckets unchanged: close them in O(1)
                    if report:
                        for i in range(b, b + run):
                            self._report_close(ks, i, None, det.last)
                    for i in [i for i in buckets if b - r <= i < b + run - r]:
                        del buckets[i]
                    ks.closed_until = b = b + run
                    if b >= limit:
                        break
            bucket = buckets.get(b)
            wi, wn = ks.win_items, ks.win_neg
            if bucket is not None:
                for i in range(len(scales)):
                    wi[i] += bucket.distinct
                    wn[i] += bucket.distinct_negative
                ks.items_closed += bucket.distinct
            for i, mi in enumerate(scales):
                old = buckets.get(b - mi)
                if old is not None:
                    wi[i] -= old.distinct
                    wn[i] -= old.distinct_negative
                    if mi == m:
                        old.evidence = None
            buckets.pop(b - r, None)
            fresh = bucket is not None and bucket.distinct > 0
            windows = list(zip(wi, wn, strict=True))
            if report:
                obs, transition = det.observe((b + 1) * B, windows, ks.items_closed, fresh)
                self._report_close(ks, b, bucket, obs)
            else:  # the buckets after b that leave the windows as they are, fed at once (stops at a transition)
                # (none after an empty longest window: the next close takes skip_empty's O(1) path above)
                steady = self._steady(ks, b, limit) if wi[-1] > 0 or det.active else 0
                obs, transition, fed = det.observe_run((b + 1) * B, B, 1 + steady, windows, ks.items_closed, fresh)
                for i in range(b + 1, b + fed):
                    buckets.pop(i - r, None)
                b += fed - 1
            ks.closed_until = b + 1
            if transition is not None:
                self._emit(ks, b, transition, obs)

    def _quiet_run(self, ks: KeyState, b: int, limit: int) -> int:
        """How many buckets from ``b`` (below ``limit``) close without a change: none of them holds stories, no
        bucket leaves a window of the detector's scales and the detector is not due (its windows stay as they are,
        so closing them one by one would only repeat its last observation)."""
        B = self.bucket_seconds
        windows = list(zip(ks.win_items, ks.win_neg, strict=True))
        run = ks.detector.idle_run(float((b + 1) * B), float(B), limit - b, windows)
        end = b + run
        for i in ks.buckets:  # the next bucket to enter the windows, or to leave one of them, ends the run
            if run == 0:
                break
            if i >= b:
                end = min(end, i)
            for m in self.scale_buckets:
                if i + m >= b:
                    end = min(end, i + m)
        return end - b

    def _steady(self, ks: KeyState, b: int, limit: int) -> int:
        """How many buckets right after ``b`` (below ``limit``) leave ``ks``'s windows as bucket ``b`` left them: none
        holds stories and none of the detector's scales loses a bucket in them."""
        buckets = ks.buckets
        scales = self.scale_buckets
        j = b + 1
        while j < limit and j not in buckets:
            for m in scales:
                if j - m in buckets:
                    return j - b - 1
            j += 1
        return j - b - 1

    def _report_close(self, ks: KeyState, b: int, bucket: Bucket | None, obs: Observation) -> None:
        start = float(b * self.bucket_seconds)
        if bucket is None:
            rec = ClosedBucket(ks.key, start, 0, 0, 0, 0, 0.0, obs)
        else:
            rec = ClosedBucket(
                ks.key, start, bucket.items, bucket.negative, bucket.neutral, bucket.positive, bucket.score_sum, obs
            )
        self.on_close(rec)  # type: ignore[misc]

    def _emit(self, ks: KeyState, b: int, transition: str, obs: Observation) -> None:
        B = self.bucket_seconds
        span = (obs.window_seconds or self.params.scales[0]) // B
        window = [ks.buckets[i] for i in range(b - span + 1, b + 1) if i in ks.buckets]
        items = evidence(window, EVIDENCE_ITEMS)
        if self.attributor is not None:
            self.attributor.annotate(items)
        event = SpikeEvent(
            event=transition,
            key=ks.key,
            bucket_start=float(b * B),
            bucket_end=float((b + 1) * B),
            window_seconds=obs.window_seconds or self.params.scales[0],
            share=obs.share,
            baseline_mean=obs.baseline_mean,
            baseline_std=obs.baseline_std,
            z=obs.z,
            volume=obs.negative,
            volume_baseline=obs.volume_baseline,
            volume_z=obs.volume_z,
            items=obs.items,
            negative=obs.negative,
            evidence=items,
            trigger=obs.trigger,
            share_z=obs.share_z,
        )
        event = continue_spike(event, self.active_spikes.get(ks.key))  # the spike's id, start and peak
        if transition == "ended":
            self.active_spikes.pop(ks.key, None)
        else:
            self.active_spikes[ks.key] = event
        self.spikes.append(event)
        if self.on_spike is not None:
            self.on_spike(event)

    # ------------------------------------------------------------------ expiry
    def _sweep(self, partition: int, w: float) -> None:
        """Expire ``partition``'s keys whose last event is more than the retention before its watermark ``w``."""
        cutoff = w - self.expire_seconds
        lru = self._lru.get(partition)
        while lru:
            key = next(iter(lru))
            ks = self._keys.get(key)
            if ks is None or ks.partition != partition:
                lru.pop(key)
                continue
            if ks.last_event >= cutoff:
                break
            self._expire(ks, w)

    def _expire(self, ks: KeyState, until: float) -> None:
        """Close ``ks`` up to ``until`` (ends an active spike the way a live run would) and drop it."""
        self._close_until(ks, bucket_index(until, self.bucket_seconds))
        self.expired_keys += 1
        self._drop(ks.key)

    def _evict(self, keep: str) -> None:
        """Drop the longest-idle evictable keys (never ``keep``) until at most ``max_keys`` are held, or none is
        left to evict (see "The key cap" in the module doc)."""
        while len(self._keys) > self.max_keys:
            victim = self._longest_idle(keep)
            if victim is None:
                return
            self.evicted_keys += 1
            self._drop(victim)

    def _longest_idle(self, keep: str) -> str | None:
        """The evictable key idle the longest: per partition the first in LRU order that is a ``ticker:`` key
        without an open spike (and not ``keep``), compared by how far its last event lies behind its partition's
        high mark; None when there is none."""
        best: tuple[float, int, str] | None = None
        for partition, lru in self._lru.items():
            mark = self.watermark.partition_mark(partition)
            for key in lru:
                ks = self._keys.get(key)
                if ks is None or key == keep or not key.startswith("ticker:") or ks.detector.active:
                    continue
                idle = (mark if mark is not None else ks.last_event) - ks.last_event
                if best is None or (-idle, partition) < (-best[0], best[1]):
                    best = (idle, partition, key)
                break
        return None if best is None else best[2]

    def _drop(self, key: str) -> None:
        ks = self._keys.pop(key, None)
        if ks is not None and ks.partition in self._lru:
            self._lru[ks.partition].pop(key, None)
        self.active_spikes.pop(key, None)

    # ------------------------------------------------------------------- reads
    @property
    def keys(self) -> list[str]:
        """Keys currently held, sorted."""
        return sorted(self._keys)

    @property
    def key_count(self) -> int:
        """Number of keys currently held."""
        return len(self._keys)

    def key_state(self, key: str) -> KeyState | None:
        """The state of ``key`` (internal object; do not mutate), or None."""
        return self._keys.get(key)

    def ref_bucket(self, ks: KeyState) -> int:
        """Index of the bucket holding the latest event time seen on ``ks``'s partition (views end there)."""
        mark = self.watermark.partition_mark(ks.partition)
        ref = bucket_index(mark, self.bucket_seconds) if mark is not None else ks.max_bucket
        return max(ref, ks.max_bucket)

    def buckets(self, key: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Bucket history of ``key`` (closed and open, oldest first; the newest ``limit``), as dicts.

        Raises:
            KeyError: the key is not held here.
        """
        ks = self._keys[key]
        idx = sorted(ks.buckets)
        if limit is not None:
            idx = idx[-limit:] if limit > 0 else []
        return [ks.buckets[i].counts(float(i * self.bucket_seconds)) for i in idx]

    def bucket_rows(self) -> list[tuple[str, int, int, int, int, int, int, float]]:
        """Every held bucket as ``(key, bucket_index, ref_bucket, items, negative, neutral, positive, score_sum)``."""
        rows = []
        for ks in self._keys.values():
            ref = self.ref_bucket(ks)
            for i, bk in ks.buckets.items():
                rows.append((ks.key, i, ref, bk.items, bk.negative, bk.neutral, bk.positive, bk.score_sum))
        return rows

    def detector_state(self, key: str) -> dict[str, Any]:
        """Detector baselines, last observation and bucket bookkeeping of ``key``.

        Raises:
            KeyError: the key is not held here.
        """
        ks = self._keys[key]
        return {
            "partition": ks.partition,
            "closed_until": None if ks.closed_until is None else ks.closed_until * self.bucket_seconds,
            "window_items": ks.win_items,
            "window_negative": ks.win_neg,
            "items_closed": ks.items_closed,
            **ks.detector.state(),
        }

    def late_by_key(self) -> dict[str, int]:
        """Late events dropped so far, per aggregate key (keys with none are absent; a copy)."""
        return dict(self._late_by_key)

    def stats(self) -> dict[str, Any]:
        """Counters of this aggregator: accepted, duplicates, late, future, clamped, expired keys, keys evicted over
        ``monitor.max_keys``, near-duplicates, keys held."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "late": self.late,
            "future": self.future,
            "clamped": self.clamped,
            "expired_keys": self.expired_keys,
            "evicted_keys": self.evicted_keys,
            "near_duplicates": self.near_duplicates,
            "keys": len(self._keys),
        }
