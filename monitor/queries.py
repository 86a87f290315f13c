"""The monitor's read side: thread-safe, JSON-ready queries of an :class:`~finsentry.monitor.aggregator.Aggregator`
(trends, spikes, buckets, detectors, health) for the HTTP API and the Prometheus exposition. The aggregator holds
the state and is written only by the consumer loop; this module only reads it.

The consumer loop mutates the aggregator while holding :attr:`MonitorState.lock`; HTTP handler threads and
Prometheus scrapes take the same lock only to copy what they need, then build the answer outside it.
Rolling views are computed with pandas from a copy of the bucket rows and cached for ``max_age`` seconds
(wall clock) so a burst of requests costs one computation.

Answer sizes: ``trends`` and ``detectors`` list at most ``limit`` keys (default and upper bound
``monitor.api_max_keys``; :func:`top_keys`) and say how many are held (``total``), so an answer stays small however
many keys the instance holds (100,000 tickers made each of them about 40 MB, fetched by the dashboard every 2 s).
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from finsentry.ingest.contract import iso_epoch
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.rolling import rolling_views


class UnknownKeyError(KeyError):
    """The aggregate key is not held by this instance (wrong key, another instance's partition, or expired)."""


class BadRequestError(ValueError):
    """A query parameter is invalid; the message says which and what is allowed."""


@dataclass
class Snapshot:
    """A consistent copy of the trend state: views per key and window, and the detector's last numbers per key.

    ``detectors[key]`` = ``{z, volume_z, active, window_items}`` (z / volume_z None when undefined;
    ``window_items``: distinct stories in the window of the scale that gave ``z``, the shortest scale's before
    the detector has spoken).
    """

    taken_at: float
    views: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)


def top_keys(snapshot: Snapshot, limit: int, window: str) -> list[str]:
    """The keys an answer of at most ``limit`` keys lists, sorted: ``all``, every ``topic:*`` key (20 at most) and
    every key with an open spike, whatever ``limit``; then the busiest others (most items in ``window``, ties by
    key) up to ``limit`` keys in all.

    >>> views = {k: {"1d": {"items": n}} for k, n in [("all", 9), ("ticker:A", 1), ("ticker:B", 5), ("ticker:C", 3)]}
    >>> top_keys(Snapshot(0.0, views, {"ticker:A": {"active": True}}), 3, "1d")
    ['all', 'ticker:A', 'ticker:B']
    """
    views, detectors = snapshot.views, snapshot.detectors
    pinned, rest = [], []
    for k in views:
        if k == "all" or k.startswith("topic:") or detectors.get(k, {}).get("active"):
            pinned.append(k)
        else:
            rest.append(k)
    busiest = heapq.nsmallest(max(0, limit - len(pinned)), rest, key=lambda k: (-views[k][window]["items"], k))
    return sorted(pinned + busiest)


class MonitorState:
    """An aggregator, its lock, and the read side used by the API and the metrics.

    Args:
        aggregator: the aggregation core. max_age: seconds (wall clock) a snapshot is reused.
    """

    def __init__(self, aggregator: Aggregator, max_age: float = 1.0) -> None:
        self.aggregator = aggregator
        self.settings = aggregator.settings
        self.lock = threading.RLock()
        self.max_age = max_age
        self._snapshot: Snapshot | None = None
        self._snapshot_version: tuple[int, int, int] | None = None
        self.records = 0
        """Kafka records handled by this process (replayed ones included)."""
        self.partitions: dict[int, dict[str, Any]] = {}
        """Per assigned partition: ``{offset (next to read), replaying (bool)}``, kept by the service."""
        self.status = "starting"

    # ---------------------------------------------------------------- snapshot
    def snapshot(self) -> Snapshot:
        """Views and detector numbers of every key (cached ``max_age`` s, refreshed when data changed)."""
        agg = self.aggregator
        now = time.monotonic()
        with self.lock:
            version = (agg.accepted, agg.expired_keys, agg.key_count)
            snap = self._snapshot
            if snap is not None and (version == self._snapshot_version or now - snap.taken_at < self.max_age):
                return snap
            rows = agg.bucket_rows()
            keys = agg.keys
            detectors = {}
            for k in keys:
                ks = agg.key_state(k)
                last = ks.detector.last
                detectors[k] = {
                    "z": None if last is None else last.z,
                    "volume_z": None if last is None else last.volume_z,
                    "active": ks.detector.active,
                    # the stories behind the current z (its scale's window), as the spike events count them
                    "window_items": ks.win_items[0] if last is None else last.items,
                }
        views = rolling_views(rows, self.settings.window_names, self.settings.bucket_seconds, keys)
        snap = Snapshot(now, views, detectors)
        with self.lock:
            self._snapshot = snap
            self._snapshot_version = version
        return snap

    # -------------------------------------------------------------------- API
    def health(self) -> dict[str, Any]:
        """``{status, watermark (ISO UTC or None), keys, model_versions, records, accepted, late, duplicates, future,
        partitions}`` (``future``: records not aggregated as dated beyond ``monitor.max_future_seconds``)."""
        agg = self.aggregator
        with self.lock:
            w = agg.watermark.value
            return {
                "status": self.status,
                "watermark": None if w is None else iso_epoch(w),
                "keys": agg.key_count,
                "model_versions": sorted(agg.model_versions),
                "records": self.records,
                "accepted": agg.accepted,
                "late": agg.late,
                "duplicates": agg.duplicates,
                "future": agg.future,
                "partitions": {str(p): dict(v) for p, v in sorted(self.partitions.items())},
            }

    def trends(self, window: str | None = None, limit: int | None = None, key: str | None = None) -> dict[str, Any]:
        """``{windows: [names], keys: {key: {window: view}}, total, limit}``: the views of the :func:`top_keys` (at
        most ``limit`` keys, ranked by items in ``window``, else in the longest window), or of ``key`` alone;
        ``total`` = keys held. ``window`` limits the views to one window.

        Raises:
            BadRequestError: ``window`` is not a configured window name, or ``limit`` is not 1 ..
                ``monitor.api_max_keys``. UnknownKeyError: ``key`` is given and not held.
        """
        limit = self._limit(limit)
        names = list(self.settings.window_names)
        if window is not None:
            if window not in names:
                raise BadRequestError(f"unknown window {window!r}; configured windows: {names}")
            names = [window]
        snap = self.snapshot()
        if key is not None:
            if key not in snap.views:
                raise UnknownKeyError(key)
            keys = [key]
        else:
            keys = top_keys(snap, limit, window or self._longest_window())
        views = {k: {n: snap.views[k][n] for n in names} for k in keys}
        return {"windows": names, "keys": views, "total": len(snap.views), "limit": limit}

    def _limit(self, limit: int | None) -> int:
        """``limit``, or ``monitor.api_max_keys`` when None.

        Raises:
            BadRequestError: ``limit`` is not 1 .. ``monitor.api_max_keys``.
        """
        most = self.settings.api_max_keys
        if limit is None:
            return most
        if not 1 <= limit <= most:
            raise BadRequestError(f"limit must be 1..{most} (monitor.api_max_keys), got {limit}")
        return limit

    def _longest_window(self) -> str:
        names = self.settings.window_names
        return max(names, key=names.__getitem__)

    def spikes(self, state: str = "all", key: str | None = None, limit: int = 100) -> dict[str, Any]:
        """Recent spike events, newest first: all of them (``state=all``) or the open spikes' latest events.

        Raises:
            BadRequestError: ``state`` is not ``active`` / ``all`` or ``limit`` < 1.
        """
        if state not in ("active", "all"):
            raise BadRequestError(f"state must be 'active' or 'all', got {state!r}")
        if limit < 1:
            raise BadRequestError(f"limit must be >= 1, got {limit}")
        agg = self.aggregator
        with self.lock:
            events = list(agg.active_spikes.values()) if state == "active" else list(agg.spikes)
        if state == "active":
            events.sort(key=lambda e: e.bucket_end)
        if key is not None:
            events = [e for e in events if e.key == key]
        return {"spikes": [e.to_dict() for e in reversed(events[-limit:])]}

    def buckets(self, key: str, limit: int | None = None) -> dict[str, Any]:
        """``{key, bucket_seconds, buckets: [...]}`` (oldest first, the newest ``limit``).

        Raises:
            UnknownKeyError: the key is not held. BadRequestError: ``limit`` < 1.
        """
        if limit is not None and limit < 1:
            raise BadRequestError(f"limit must be >= 1, got {limit}")
        with self.lock:
            try:
                rows = self.aggregator.buckets(key, limit)
            except KeyError as exc:
                raise UnknownKeyError(key) from exc
            start = self._history_start(key)
        return {
            "key": key,
            "bucket_seconds": self.settings.bucket_seconds,
            "history_start": None if start is None else iso_epoch(start),
            "buckets": rows,
        }

    def _history_start(self, key: str) -> float | None:
        """Event time (epoch s) from which this instance's bucket histories are complete; call under the lock.

        It is read from ``all`` (every item carries that key), else from ``key`` itself (an instance whose
        partitions do not hold ``all``): the oldest bucket the key holds while none has expired, or the retention
        horizon (the retention before the first bucket not yet closed; older buckets are dropped) once some have.
        A rolling window that starts before it is partial: the monitor holds less than the window there (the
        dashboard marks it).
        """
        agg = self.aggregator
        ks = agg.key_state("all") or agg.key_state(key)
        if ks is None or not ks.buckets:
            return None
        oldest = min(ks.buckets)
        if ks.closed_until is not None:
            held = sum(b.distinct for i, b in ks.buckets.items() if i < ks.closed_until)
            if ks.items_closed > held:  # stories of expired buckets were counted: the history is the retention
                oldest = ks.closed_until - agg.retention_buckets
        return float(oldest * agg.bucket_seconds)

    def detectors(self, key: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """``{keys: {key: detector state}, total, limit}`` (baselines, last z, spike flag) for ``key`` alone or for
        the :func:`top_keys` (at most ``limit``, ranked by items in the longest window, as ``trends``); ``total`` =
        keys held.

        Raises:
            BadRequestError: ``limit`` is not 1 .. ``monitor.api_max_keys``. UnknownKeyError: ``key`` is given and
                not held.
        """
        limit = self._limit(limit)
        agg = self.aggregator
        if key is None:
            keys = top_keys(self.snapshot(), limit, self._longest_window())
        with self.lock:
            if key is not None:
                if agg.key_state(key) is None:
                    raise UnknownKeyError(key)
                keys = [key]
            states = {k: agg.detector_state(k) for k in keys if agg.key_state(k) is not None}
            return {"keys": states, "total": agg.key_count, "limit": limit}
