"""The relay's view of the monitor's spikes: a consumer of ``sentiment.spikes`` filling a bounded cache by spike id.

The monitor publishes every spike event (``started`` / ``updated`` / ``ended``, docs/contracts.md) on
``sentiment.spikes``; each carries the spike's id and its start and peak figures. The relay reads them in its own
consumer group (``alerts.spikes_group_id``) into a :class:`SpikeCache`, so the webhook handler looks the evidence
up in memory: it never calls the monitor back, and answers Alertmanager in well under a second whether the
monitor is up, slow or stopped.

On start and on every partition assignment the consumer seeks to the first record produced within
``alerts.spikes_lookback_seconds`` (wall clock; ``offsets_for_times``) and re-reads from there, so a restarted
relay knows the open spikes again (every event carries the start, so the newest event of a spike is enough).
Records are at least once: a repeated or older event of a spike never replaces a newer one. A record that is not
JSON or not a spike event is counted (``finsentry_relay_spike_records_rejected_total{reason}``) and skipped; the
consumer loop (:mod:`finsentry.ingest.consume_loop`) never stops on one record, and retries a broker it cannot
reach.

Memory: at most ``alerts.spike_cache_size`` spikes (the least recently updated is dropped first), each its newest
event plus the evidence of its start.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from finsentry.alerts.metrics import SPIKE_CACHE_SPIKES, SPIKE_RECORDS, SPIKE_RECORDS_REJECTED
from finsentry.common.textfiles import JsonSyntaxError, strict_json_loads
from finsentry.ingest.consume_loop import ConsumeLoop, LoopConfig, LoopHandler
from finsentry.ingest.lookback import seek_to_lookback
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import SENTIMENT_SPIKES
from finsentry.monitor.spikes import SpikeEvent, SpikeRecordError

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
"""Longest a poll waits, so the loop notices the stop event within about this time."""

RETRY_S = 1.0
"""Wait before reconnecting after the broker could not be reached (seconds)."""


@dataclass(frozen=True, slots=True)
class CachedSpike:
    """One spike as the relay knows it: its newest event and the evidence of the event that started it.

    ``start_evidence`` is empty when the relay only saw later events of the spike (it started before the lookback).
    """

    latest: SpikeEvent
    start_evidence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def evidence(self) -> list[dict[str, Any]]:
        """The stories that started the spike, else those of its newest event."""
        return self.start_evidence or self.latest.evidence


class SpikeCache:
    """Spikes by id, least recently updated dropped first beyond ``capacity``; also the newest spike per key.

    Thread-safe: the consumer thread adds, webhook handler threads read; every method takes one lock for O(1) work.

    >>> from finsentry.monitor.spikes import continue_spike
    >>> c = SpikeCache(capacity=1)
    >>> c.add(continue_spike(SpikeEvent("started", "all", 0.0, 60.0, 60, .5, .1, .1, 4.0, 5, None, None, 10, 5), None))
    True
    >>> c.latest("all").latest.spike_id, len(c)
    ('all@1970-01-01T00:01:00Z', 1)
    """

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._spikes: OrderedDict[str, CachedSpike] = OrderedDict()
        self._by_key: dict[str, str] = {}  # key -> id of its newest spike (by start time)
        self.dropped = 0
        """Spikes dropped to stay within ``capacity``."""

    def add(self, event: SpikeEvent) -> bool:
        """Take ``event`` in; False when it is not newer than what the cache holds for its spike (a repeat).

        Raises:
            ValueError: the event has no ``spike_id`` (a monitor older than the spike record).
        """
        sid = event.spike_id
        if not sid or event.start is None:
            raise ValueError(f"spike event of {event.key} at {event.bucket_end} has no spike_id/start")
        with self._lock:
            old = self._spikes.get(sid)
            if old is not None and (old.latest.bucket_end, _rank(old.latest)) >= (event.bucket_end, _rank(event)):
                return False
            start_evidence = list(event.evidence) if event.event == "started" else (old.start_evidence if old else [])
            self._spikes[sid] = CachedSpike(event, start_evidence)
            self._spikes.move_to_end(sid)
            current = self._by_key.get(event.key)
            newer = current is None or current not in self._spikes
            if not newer:
                cur_start = self._spikes[current].latest.start
                newer = cur_start is None or event.start.bucket_end >= cur_start.bucket_end
            if newer:
                self._by_key[event.key] = sid
            while len(self._spikes) > self.capacity:
                gone, spike = self._spikes.popitem(last=False)
                if self._by_key.get(spike.latest.key) == gone:
                    del self._by_key[spike.latest.key]
                self.dropped += 1
            SPIKE_CACHE_SPIKES.set(len(self._spikes))
            return True

    def get(self, spike_id: str) -> CachedSpike | None:
        """The spike with this id, or None."""
        with self._lock:
            return self._spikes.get(spike_id)

    def latest(self, key: str) -> CachedSpike | None:
        """The newest spike (by start) of aggregate ``key``, or None."""
        with self._lock:
            sid = self._by_key.get(key)
            return None if sid is None else self._spikes.get(sid)

    def __len__(self) -> int:
        with self._lock:
            return len(self._spikes)


def _rank(event: SpikeEvent) -> int:
    """Order of events of one bucket: an ``ended`` event is newer than an ``updated`` one."""
    return {"started": 0, "updated": 1, "ended": 2}.get(event.event, 0)


def parse_record(value: bytes | str | None) -> SpikeEvent:
    """The :class:`SpikeEvent` of a ``sentiment.spikes`` record value.

    Raises:
        SpikeRecordError: not UTF-8 JSON (message starts ``invalid_json``; strict: NaN, a number too large for a
            float and nesting too deep included, :func:`~finsentry.common.textfiles.strict_json_loads`) or not a
            spike event with an id.

    >>> parse_record(b"[" * 100_000)
    Traceback (most recent call last):
    finsentry.monitor.spikes.SpikeRecordError: invalid_json: nested too deeply
    """
    raw = value if value is not None else b""
    try:
        data = strict_json_loads(raw if isinstance(raw, str) else raw.decode("utf-8"))
    except (JsonSyntaxError, UnicodeDecodeError) as exc:
        raise SpikeRecordError(f"invalid_json: {exc}") from None
    event = SpikeEvent.from_dict(data)
    if not event.spike_id or event.start is None:
        raise SpikeRecordError("spike_id and start are required (a monitor older than the spike record?)")
    return event


class SpikeConsumer(LoopHandler):
    """Reads ``sentiment.spikes`` into ``cache`` until stopped; run it with :meth:`start` (a daemon thread).

    A :class:`~finsentry.ingest.consume_loop.ConsumeLoop` handler: it rebuilds on assignment (:meth:`setup`
    seeks to the lookback before any record of a new partition is read), produces nothing, and the loop
    reconnects to a broker it cannot reach.

    Args:
        kafka: the broker connection (``ingest.kafka``). cache: where spikes go. group_id: the relay's consumer
        group. lookback_seconds: wall-clock seconds re-read on assignment.

    Attributes:
        ready: set once partitions are assigned and sought (tests wait on it). read / rejected: records.
    """

    rebuilds_on_assign = True

    def __init__(self, kafka: KafkaSettings, cache: SpikeCache, group_id: str, lookback_seconds: float) -> None:
        self.kafka = kafka
        self.cache = cache
        self.group_id = group_id
        self.lookback_seconds = lookback_seconds
        self.ready = threading.Event()
        self.read = 0
        self.rejected = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop = ConsumeLoop(
            LoopConfig(
                name="relay-spikes",
                topics=(SENTIMENT_SPIKES,),
                group_id=group_id,
                poll_ms=POLL_TIMEOUT_MS,
                produce=False,
                error_backoff_s=RETRY_S,
                reconnect=True,
            ),
            kafka,
            self,
        )

    def start(self) -> SpikeConsumer:
        """Start the consumer thread (returns at once)."""
        self._thread = threading.Thread(target=self.run, name="relay-spikes", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop and close the consumer (waits at most ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Consume until :meth:`stop`; a broker that cannot be reached is retried every :data:`RETRY_S` seconds."""
        self.loop.run(self._stop)

    def process(self, batch: list[Any], producer: Any) -> None:
        """Take every record of a polled batch into the cache (a bad one is counted and skipped)."""
        for rec in batch:
            self._take(rec)

    def setup(self, consumer: Any, partitions: set[Any]) -> None:
        """Seek newly assigned partitions to the lookback (the loop keeps them paused until this returns)."""
        self._seek(consumer, partitions)

    def _seek(self, consumer: Any, tps: set[Any]) -> None:
        seek_to_lookback(consumer, tps, self.lookback_seconds, with_committed=False)
        log.info(
            "relay: reading %s partitions %s from %d s back",
            SENTIMENT_SPIKES,
            sorted(tp.partition for tp in tps),
            self.lookback_seconds,
        )
        self.ready.set()

    def _take(self, rec: Any) -> None:
        """Parse one record into the cache; count and skip a bad one (never raises)."""
        try:
            event = parse_record(rec.value)
            self.cache.add(event)
        except (SpikeRecordError, ValueError) as exc:
            reason = "invalid_json" if str(exc).startswith("invalid_json") else "invalid_record"
            self._reject(rec, reason, str(exc))
            return
        except Exception as exc:  # a bug must not stop the consumer either
            self._reject(rec, "invalid_record", f"{type(exc).__name__}: {exc}")
            return
        self.read += 1
        SPIKE_RECORDS.inc()

    def _reject(self, rec: Any, reason: str, message: str) -> None:
        self.rejected += 1
        SPIKE_RECORDS_REJECTED.labels(reason=reason).inc()
        where = (
            f"{getattr(rec, 'topic', SENTIMENT_SPIKES)}[{getattr(rec, 'partition', '?')}]@{getattr(rec, 'offset', '?')}"
        )
        log.warning("relay: skipped %s: %s: %s", where, reason, message.splitlines()[0][:300] if message else "")
