"""The aggregator service (``finsentry aggregator``): a consumer group on ``sentiment.keyed`` feeding the
aggregation core, publishing spike events to ``sentiment.spikes``, and serving metrics and the JSON API.

State follows partitions, rebuilt by replay (docs/monitor.md says why): when partitions are assigned, the
consumer seeks each to the first offset whose record timestamp (produce time, wall clock) is at or after
``now - lookback_seconds`` (``offsets_for_times``), re-reads from there, and only then continues live. A
partition that has no record in the lookback starts at its committed offset (or the end). The embedded
broker answers offset 0 with timestamp -1 instead of "none" for such a partition; an answer whose
timestamp is missing or before the asked time is treated as "none".

Records before the group's committed offset were handled by an earlier owner: replaying them rebuilds state
but repeats no side effect. Counters are not incremented for them, and the spike events of a partition's
keys are not published while that partition replays: a key's buckets close at its partition's watermark, so
every bucket closed during the replay was closed, and its event published, by the earlier owner before it
committed. Events kept for ``/api/spikes`` are rebuilt all the same. Offsets are committed after each
polled batch, after the spike producer is flushed (at-least-once: a crash between the flush and the commit
publishes a few events twice, never loses one), and never moved backwards by the replay.

A record that fails validation goes to ``news.dlq`` (original bytes; headers ``reason`` (a
:class:`~finsentry.ingest.dlq.DlqReason` code), ``message``, ``source_topic``, ``source_partition``,
``source_offset``), is counted in ``finsentry_aggregator_rejected_messages_total{reason}``, and is skipped; a
record that passes validation but makes the aggregation raise (a bug) is logged, counted with reason
``aggregation_failed`` and skipped (it stays in ``sentiment.keyed``). A record whose ``published_at`` lies more
than ``monitor.max_future_seconds`` after the wall clock is not aggregated (it would raise its partition's
watermark and make every real record there late): it is logged, counted with reason ``future_event_time`` and
skipped, and stays in ``sentiment.keyed`` (a later rebuild may accept it once the clock has caught up; see
:mod:`finsentry.monitor.aggregator`). One bad record never stops the consumer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka import ConsumerRebalanceListener

from finsentry.ingest.contract import KeyedMessageError, dlq_headers, parse_keyed
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.topics import NEWS_DLQ, SENTIMENT_KEYED, SENTIMENT_SPIKES
from finsentry.model.attribution import LazyAttributor
from finsentry.monitor.aggregator import Aggregator, Outcome
from finsentry.monitor.drift import DriftTracker, register_drift
from finsentry.monitor.http_api import MonitorHTTPServer
from finsentry.monitor.metrics import AggregatorMetrics
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.reconcile import PartitionLedger
from finsentry.monitor.spikes import SpikeEvent

if TYPE_CHECKING:
    from finsentry.ingest.settings import KafkaSettings
    from finsentry.monitor.settings import MonitorSettings

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
"""Longest a poll waits for records, so the loop notices the stop event within about this time."""

FUTURE_EVENT_TIME = "future_event_time"
"""``reason`` of ``finsentry_aggregator_rejected_messages_total`` for records dated too far ahead of the clock."""

AGGREGATION_FAILED = "aggregation_failed"
"""``reason`` of ``finsentry_aggregator_rejected_messages_total`` for records the aggregation raised on."""


class _Listener(ConsumerRebalanceListener):
    """Rebalance callbacks: they run inside ``poll`` on the consumer's IO loop, so they only record and pause."""

    def __init__(self, service: AggregatorService) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked) -> None:
        self.service._revoked([tp.partition for tp in revoked])

    def on_partitions_assigned(self, assigned) -> None:
        if assigned:
            self.service.consumer.pause(*assigned)
            self.service._to_setup.update(assigned)


class AggregatorService:
    """One aggregator instance: Kafka consumer loop, spike publisher, HTTP service.

    Run it with :meth:`run` (blocks until ``stop`` is set) in the main thread or in a thread of a supervisor.

    Args:
        monitor: the ``monitor`` settings (windows, spikes, HTTP service, consumer group, attribution).
        kafka: the Kafka connection (``ingest.kafka``).
        model_path: the scorer's model folder (``model.path``): the default attribution model and the training
            mix that prediction drift is measured against.
        on_spike: called with every *published* :class:`SpikeEvent` (e.g. the ``finsentry run`` console);
            exceptions it raises are logged and ignored.

    Attributes:
        ready: set once the HTTP service is bound and the consumer subscribed. http_port: the bound port.
        state: the :class:`MonitorState` (aggregator + lock) the API reads.
    """

    def __init__(
        self,
        monitor: MonitorSettings,
        kafka: KafkaSettings,
        model_path: Path,
        on_spike: Callable[[SpikeEvent], None] | None = None,
    ) -> None:
        self.monitor = monitor
        self.kafka = kafka
        self.on_spike = on_spike
        folder = self.monitor.attribution_folder(model_path)
        self.aggregator = Aggregator(
            self.monitor, on_spike=self._spike, attributor=None if folder is None else LazyAttributor(folder)
        )
        self.state = MonitorState(self.aggregator)
        self.metrics = AggregatorMetrics(
            self.state.snapshot,
            lambda: self.aggregator.watermark.value,
            lambda: self.aggregator.key_count,
            self.monitor.ticker_metrics_cap,
            self.monitor.window_names,
            lambda: self.aggregator.near_duplicates / max(self.aggregator.accepted, 1),
            active_spikes=self._active_spikes,
        )
        self.drift = DriftTracker.for_model(model_path)  # finsentry_prediction_drift_psi (monitor/drift.py)
        register_drift(self.metrics.registry, self.drift)
        self.ready = threading.Event()
        self.http: MonitorHTTPServer | None = None
        self.consumer = None
        self.producer = None
        self._to_setup: set = set()
        self._replay_until: dict[int, int] = {}  # partition -> committed offset it is replaying up to
        self.suppressed = 0
        """Spike events rebuilt by replays and not published again."""
        self.ledger = PartitionLedger()
        """Records read vs. outcomes counted, per partition (:mod:`finsentry.monitor.reconcile`)."""
        self._sent = False

    @property
    def http_port(self) -> int | None:
        """The bound HTTP port (None before :attr:`ready`)."""
        return None if self.http is None else self.http.port

    # ------------------------------------------------------------------- loop
    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, then commit, close the clients and the HTTP server.

        Raises:
            OSError: the HTTP address cannot be bound.
        """
        m = self.monitor
        self.http = MonitorHTTPServer(m.http_host, m.http_port, self.state, self.metrics.registry).start()
        log.info("monitor HTTP service on http://%s:%d/", m.http_host, self.http.port)
        kafka = self.kafka
        try:
            self.producer = make_producer(kafka)
            self.consumer = make_consumer(kafka, m.group_id, max_poll_records=2000)
            self.consumer.subscribe([SENTIMENT_KEYED], listener=_Listener(self))
            self.state.status = "running"
            self.ready.set()
            while not stop.is_set():
                self._poll_once()
        finally:
            self.state.status = "stopping"
            self.ready.set()
            self._close()

    def _poll_once(self) -> None:
        consumer = self.consumer
        try:
            batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        except Exception:  # a broker hiccup must not end the service; kafka-python reconnects
            log.exception("poll failed; retrying")
            time.sleep(0.5)
            return
        if self._to_setup:
            fresh = set(self._to_setup)
            self._to_setup.clear()
            batch = {tp: recs for tp, recs in batch.items() if tp not in fresh}
            self._setup(fresh)
        if not batch:
            return
        commits: dict = {}
        with self.state.lock:
            for tp, records in batch.items():
                p = tp.partition
                for rec in records:
                    until = self._replay_until.get(p)
                    if until is not None and rec.offset >= until:
                        self._replay_done(p)  # the first record the earlier owner did not commit: live from here
                    self.ledger.read(p, rec.offset)
                    self._handle(rec, p)
                    self.ledger.accounted(p)
                    self.state.records += 1
                commits[tp] = records[-1].offset + 1
                self.state.partitions.setdefault(p, {})["offset"] = commits[tp]
                until = self._replay_until.get(p)
                if until is not None and commits[tp] >= until:
                    self._replay_done(p)
            self.drift.advance(self.aggregator.watermark.value)
            for p, n in self.ledger.unreconciled().items():
                self.metrics.unreconciled.labels(str(p)).set(n)
                self.state.partitions.setdefault(p, {})["unreconciled"] = n
        self._commit(commits)

    def unreconciled(self) -> int:
        """Records of the assigned partitions neither aggregated nor counted as dropped (0 when all is well)."""
        with self.state.lock:
            return sum(self.ledger.unreconciled().values())

    def _handle(self, rec, partition: int) -> None:
        live = partition not in self._replay_until
        try:
            item = parse_keyed(rec.value, rec.key)
        except KeyedMessageError as exc:
            if live:
                self._dead_letter(rec, exc.reason, str(exc))
            return
        ts = getattr(rec, "timestamp", None)  # produce time, ms; -1 or None when the producer set none
        record_time = ts / 1000 if ts is not None and ts >= 0 else None
        if item.received_at is not None:  # when the source sent it: the bound that also holds during a catch-up
            sent = item.received_at.timestamp()
            record_time = sent if record_time is None else min(record_time, sent)
        evicted = self.aggregator.evicted_keys
        try:
            outcome = self.aggregator.process(item, partition, record_time)
        except Exception:  # a bug on one record must not stop the consumer; the record stays in the topic
            log.exception("cannot aggregate %s[%d]@%d; skipped", rec.topic, partition, rec.offset)
            if live:
                self.metrics.rejected.labels(AGGREGATION_FAILED).inc()
            return
        if outcome is Outcome.ACCEPTED and item.key == "all":  # each item once, replayed ones too (drift is state)
            self.drift.observe(item.topic, item.sentiment, item.published_at)
        if not live:
            return
        mt = self.metrics
        if self.aggregator.evicted_keys > evicted:
            mt.evicted_keys.inc(self.aggregator.evicted_keys - evicted)
        if outcome is Outcome.ACCEPTED:
            mt.messages.inc()
            if item.key.startswith("topic:"):
                mt.items.labels(item.key[6:], item.sentiment).inc()
        elif outcome is Outcome.LATE:
            mt.late.labels("ticker:*" if item.key.startswith("ticker:") else item.key).inc()
            log.warning(
                "late event %s for %s at %s: its bucket closed at watermark %s; not aggregated",
                item.id,
                item.key,
                item.published_at.isoformat(),
                _fmt(self.aggregator.watermark.partition_watermark(partition)),
            )
        elif outcome is Outcome.FUTURE:
            mt.rejected.labels(FUTURE_EVENT_TIME).inc()
            log.warning(
                "%s[%d]@%d: %s for %s published at %s, more than monitor.max_future_seconds = %d s after the wall"
                " clock; not aggregated",
                rec.topic,
                partition,
                rec.offset,
                item.id,
                item.key,
                item.published_at.isoformat(),
                self.monitor.max_future_seconds,
            )
        else:
            mt.duplicates.inc()

    # -------------------------------------------------------------- rebalance
    def _setup(self, tps: set) -> None:
        """Seek newly assigned partitions to the lookback offset and note what must be replayed silently."""
        consumer = self.consumer
        target_ms = int((time.time() - self.monitor.lookback_seconds) * 1000)
        try:
            answers = consumer.offsets_for_times({tp: target_ms for tp in tps})
        except Exception:
            log.exception("offsets_for_times failed; starting the assigned partitions at their committed offsets")
            answers = {}
        for tp in sorted(tps):
            committed = consumer.committed(tp)
            start = lookback_start(answers.get(tp), target_ms, committed)
            if start is None:
                consumer.seek_to_end(tp)
                start = consumer.position(tp)
            consumer.seek(tp, start)
            p = tp.partition
            with self.state.lock:
                self.ledger.start(p, start)
                if committed is not None and committed > start:
                    self._replay_until[p] = committed
                self.state.partitions[p] = {
                    "offset": start,
                    "replaying": p in self._replay_until,
                    "replay_until": committed,
                }
            log.info(
                "partition %d: start at offset %d (committed %s, lookback %d s)",
                p,
                start,
                committed,
                self.monitor.lookback_seconds,
            )
        consumer.resume(*tps)

    def _revoked(self, partitions: list[int]) -> None:
        if not partitions:
            return
        with self.state.lock:
            self.aggregator.revoke(partitions)
            for p in partitions:
                self._replay_until.pop(p, None)
                self.state.partitions.pop(p, None)
                self.ledger.forget(p)
                self.metrics.unreconciled.remove(str(p))  # a no-op when the series does not exist
        log.info("partitions %s revoked: their keys' state dropped", sorted(partitions))

    def _replay_done(self, partition: int) -> None:
        self._replay_until.pop(partition, None)
        self.state.partitions.setdefault(partition, {})["replaying"] = False
        log.info("partition %d rebuilt; live from here (%d spike events rebuilt so far)", partition, self.suppressed)

    # ----------------------------------------------------------- side effects
    def _active_spikes(self) -> list[SpikeEvent]:
        """The open spikes' latest events (a copy taken under the state lock; for the spike gauges)."""
        with self.state.lock:
            return list(self.aggregator.active_spikes.values())

    def _spike(self, event: SpikeEvent) -> None:
        ks = self.aggregator.key_state(event.key)
        if ks is not None and ks.partition in self._replay_until:
            self.suppressed += 1  # published by the earlier owner of the partition
        else:
            self._publish(event)

    def _publish(self, event: SpikeEvent) -> None:
        body = event.to_dict()
        log.info(
            "spike %s %s at %s: share %.3f vs baseline %s, z %s, %d items",
            event.event,
            event.key,
            body["bucket_end"],
            event.share if event.share is not None else float("nan"),
            _fmt(event.baseline_mean),
            _fmt(event.z),
            event.items,
        )
        if self.producer is not None:
            self.producer.send(SENTIMENT_SPIKES, key=event.key.encode(), value=json.dumps(body).encode())
            self._sent = True
        if self.on_spike is not None:
            try:
                self.on_spike(event)
            except Exception:
                log.exception("on_spike hook failed for %s", event.key)

    def _dead_letter(self, rec, reason: str, message: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        log.warning("dead letter %s[%d]@%d: %s: %s", rec.topic, rec.partition, rec.offset, reason, message)
        headers = dlq_headers(reason, message, rec.topic, rec.partition, rec.offset)
        value = rec.value if isinstance(rec.value, bytes) else str(rec.value).encode()
        self.producer.send(NEWS_DLQ, key=rec.key, value=value, headers=headers)
        self._sent = True

    def _commit(self, commits: dict) -> None:
        from kafka.structs import OffsetAndMetadata

        if self._sent:
            self.producer.flush(10)
            self._sent = False
        offsets = {}
        for tp, off in commits.items():
            until = self._replay_until.get(tp.partition)
            if until is None or off > until:
                offsets[tp] = OffsetAndMetadata(off, "", -1)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except Exception as exc:  # e.g. a rebalance in progress: the next batch commits again
            log.warning("offset commit failed (%s); will commit with the next batch", exc)

    def _close(self) -> None:
        try:
            if self.producer is not None:
                self.producer.flush(10)
                self.producer.close(5)
        except Exception:
            log.exception("closing the spike producer")
        try:
            if self.consumer is not None:
                self.consumer.close(autocommit=False)
        except Exception:
            log.exception("closing the consumer")
        if self.http is not None:
            self.http.stop()
        log.info("aggregator stopped")


def lookback_start(answer, target_ms: int, committed: int | None) -> int | None:
    """Offset a newly assigned partition starts at: the first record at or after ``target_ms`` (record timestamp,
    ms), else the committed offset, else None (= the end).

    ``answer`` is ``offsets_for_times``'s ``OffsetAndTimestamp`` for the partition, or None. The embedded broker
    answers ``(offset 0, timestamp -1)`` instead of None when no record is at or after the time, so an answer
    without a timestamp, or with one before the asked time, counts as None.

    >>> from kafka.structs import OffsetAndTimestamp
    >>> lookback_start(OffsetAndTimestamp(120, 1_700_000_000_500, 0), 1_700_000_000_000, 300)
    120
    >>> lookback_start(OffsetAndTimestamp(0, -1, 0), 1_700_000_000_000, 300)   # Tansu's "none"
    300
    >>> lookback_start(None, 1_700_000_000_000, None) is None
    True
    """
    if answer is None or answer.timestamp is None or answer.timestamp < target_ms:
        return committed
    return answer.offset


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def start_in_thread(
    monitor: MonitorSettings,
    kafka: KafkaSettings,
    model_path: Path,
    stop: threading.Event,
    on_spike: Callable[[SpikeEvent], None] | None = None,
) -> tuple[AggregatorService, threading.Thread]:
    """Start an :class:`AggregatorService` (arguments as its own, ``stop`` as :meth:`AggregatorService.run`'s) in
    a daemon thread; returns it once ready (or raises if it died).

    Raises:
        RuntimeError: the service did not become ready within 30 s (the thread's error is logged).
    """
    service = AggregatorService(monitor, kafka, model_path, on_spike=on_spike)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run(stop)
        except BaseException as exc:
            errors.append(exc)
            service.ready.set()
            log.exception("aggregator service failed")

    thread = threading.Thread(target=target, name="aggregator", daemon=True)
    thread.start()
    if not service.ready.wait(30) or errors:
        raise RuntimeError(f"aggregator did not start: {errors[0] if errors else 'timeout'}")
    return service, thread


def describe(service: AggregatorService) -> dict[str, Any]:
    """Where the service listens, for logs and the ``finsentry run`` console."""
    m = service.monitor
    return {"http": f"http://{m.http_host}:{service.http_port}/", "group_id": m.group_id, "topic": SENTIMENT_KEYED}
