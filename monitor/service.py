"""The aggregator service (``finsentry aggregator``): a consumer group on ``sentiment.keyed`` feeding the
aggregation core, publishing spike events to ``sentiment.spikes`` (:mod:`finsentry.monitor.spike_publisher`),
and serving metrics and the JSON API. The consumer loop is the shared one (:mod:`finsentry.ingest.consume_loop`);
this module is its handler.

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
A spike event whose send fails never breaks the aggregation of the record that emitted it: the publisher keeps it
and sends it again on a later turn of the loop (:mod:`finsentry.monitor.spike_publisher`), and the partition's
committed offset stays at that record until the event is delivered, so an instance that stops or dies first
loses no event: the next owner processes the record live and publishes it.

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

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finsentry.ingest.consume_loop import ConsumeLoop, LoopConfig, LoopHandler, record_seconds, send_dead_letter
from finsentry.ingest.contract import KeyedMessageError, parse_keyed
from finsentry.ingest.lookback import seek_to_lookback
from finsentry.ingest.topics import SENTIMENT_KEYED
from finsentry.model.attribution import LazyAttributor
from finsentry.monitor.aggregator import Aggregator, Outcome
from finsentry.monitor.drift import DriftTracker, register_drift
from finsentry.monitor.http_api import MonitorHTTPServer
from finsentry.monitor.metrics import AggregatorMetrics
from finsentry.monitor.outcomes import OutcomeCounter
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.reconcile import PartitionLedger
from finsentry.monitor.spike_publisher import SpikePublisher
from finsentry.monitor.spikes import SpikeEvent

if TYPE_CHECKING:
    from finsentry.ingest.settings import KafkaSettings
    from finsentry.monitor.settings import MonitorSettings

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
"""Longest a poll waits for records, so the loop notices the stop event within about this time."""

MAX_POLL_RECORDS = 2000
"""Records per batch (one poll)."""

AGGREGATION_FAILED = "aggregation_failed"
"""``reason`` of ``finsentry_aggregator_rejected_messages_total`` for records the aggregation raised on."""


class AggregatorService(LoopHandler):
    """One aggregator instance: Kafka consumer loop, spike publisher, HTTP service.

    Run it with :meth:`run` (blocks until ``stop`` is set) in the main thread or in a thread of a supervisor. The
    loop is a :class:`~finsentry.ingest.consume_loop.ConsumeLoop` (one poll per batch, produces flushed before
    the commit); this class is its handler: it rebuilds on assignment (:meth:`setup`), processes a batch under
    the state lock (:meth:`process`), drops revoked partitions' keys and never commits inside a replay.

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

    rebuilds_on_assign = True

    def __init__(
        self,
        monitor: MonitorSettings,
        kafka: KafkaSettings,
        model_path: Path,
        on_spike: Callable[[SpikeEvent], None] | None = None,
    ) -> None:
        self.monitor = monitor
        self.kafka = kafka
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
            spike_events_pending=lambda: self.publisher.pending,
        )
        self.publisher = SpikePublisher(
            on_spike, failures=self.metrics.spike_send_failures, dropped=self.metrics.spike_events_dropped
        )
        self.drift = DriftTracker.for_model(model_path)  # finsentry_prediction_drift_psi (monitor/drift.py)
        self.outcomes = OutcomeCounter(self.metrics, self.aggregator, self.monitor.max_future_seconds)
        register_drift(self.metrics.registry, self.drift)
        self.ready = threading.Event()
        self.http: MonitorHTTPServer | None = None
        self.loop: ConsumeLoop | None = None
        self.consumer = None
        self.producer = None
        self._replay_until: dict[int, int] = {}  # partition -> committed offset it is replaying up to
        self.suppressed = 0
        """Spike events rebuilt by replays and not published again."""
        self._origin: tuple[int, int] | None = None
        self.ledger = PartitionLedger()
        """Records read vs. outcomes counted, per partition (:mod:`finsentry.monitor.reconcile`)."""

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
        config = LoopConfig(
            name="aggregator",
            topics=(SENTIMENT_KEYED,),
            group_id=m.group_id,
            poll_ms=POLL_TIMEOUT_MS,
            max_batch_items=MAX_POLL_RECORDS,
            acks="flushed",
            produce_timeout_s=10.0,
            error_backoff_s=0.5,
            consumer_options={"max_poll_records": MAX_POLL_RECORDS},
        )
        self.loop = ConsumeLoop(config, self.kafka, self)
        try:
            self.loop.open()
            self.producer, self.consumer = self.loop.producer, self.loop.consumer
            self.state.status = "running"
            self.ready.set()
            self.loop.serve(stop)
        finally:
            self.state.status = "stopping"
            self.ready.set()
            self._close()

    def process(self, batch: list[Any], producer: Any) -> None:
        """Aggregate one polled batch under the state lock (replayed records silently), then reconcile.

        Publishes and dead letters go through ``producer``, the loop's (None: the one this service holds).
        """
        if producer is not None:
            self.producer = producer
        by_partition: dict[Any, list[Any]] = {}
        for rec in batch:
            by_partition.setdefault(rec.partition, []).append(rec)
        with self.state.lock:
            for p, records in by_partition.items():
                for rec in records:
                    until = self._replay_until.get(p)
                    if until is not None and rec.offset >= until:
                        self._replay_done(p)  # the first record the earlier owner did not commit: live from here
                    self.ledger.read(p, rec.offset)
                    self._handle(rec, p)
                    self.ledger.accounted(p)
                    self.state.records += 1
                next_offset = records[-1].offset + 1
                self.state.partitions.setdefault(p, {})["offset"] = next_offset
                until = self._replay_until.get(p)
                if until is not None and next_offset >= until:
                    self._replay_done(p)
            self.drift.advance(self.aggregator.watermark.value)
            for p, n in self.ledger.unreconciled().items():
                self.metrics.unreconciled.labels(str(p)).set(n)
                self.state.partitions.setdefault(p, {})["unreconciled"] = n

    def committable(self, offsets: dict[Any, int]) -> dict[Any, int]:
        """Next offsets past the replay only (a replay never moves the group's committed offset backwards), and
        no further than the first record whose spike event is not yet delivered
        (:meth:`~finsentry.monitor.spike_publisher.SpikePublisher.undelivered_from`)."""
        undelivered = self.publisher.undelivered_from()
        out = {}
        for tp, off in offsets.items():
            until = self._replay_until.get(tp.partition)
            if until is None or off > until:
                out[tp] = min(off, undelivered.get(tp.partition, off))
        return out

    def unreconciled(self) -> int:
        """Records of the assigned partitions neither aggregated nor counted as dropped (0 when all is well)."""
        with self.state.lock:
            return sum(self.ledger.unreconciled().values())

    def _handle(self, rec, partition: int) -> None:
        self._origin = (partition, rec.offset)  # the record behind any spike event it emits
        live = partition not in self._replay_until
        try:
            item = parse_keyed(rec.value, rec.key)
        except KeyedMessageError as exc:
            if live:
                self._dead_letter(rec, exc.reason, str(exc))
            return
        record_time = record_seconds(rec)  # produce time; None when the producer set none
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
        if live:
            self.outcomes.count(rec, partition, item, outcome, evicted)

    # -------------------------------------------------------------- rebalance
    def setup(self, consumer: Any, partitions: set[Any]) -> None:
        """Seek newly assigned partitions to the lookback offset and note what must be replayed silently."""
        starts = seek_to_lookback(consumer, partitions, self.monitor.lookback_seconds, with_committed=True)
        for tp, (start, committed) in starts.items():
            p = tp.partition
            with self.state.lock:
                self.ledger.start(p, start)
                if committed is not None:  # kept events of an earlier ownership must not pull the commit back
                    self.publisher.release(p, committed)
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

    def on_revoked(self, partitions: set[Any], lost: bool) -> None:
        """Revoked or lost partitions: their keys' state is dropped (IO thread)."""
        self._revoked([tp.partition for tp in partitions])

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

    def on_tick(self, loop: ConsumeLoop) -> None:
        """After every turn of the loop: send again the spike events whose send failed, through the loop's current
        producer (:mod:`finsentry.monitor.spike_publisher`)."""
        self.publisher.resend(loop.producer)

    def _spike(self, event: SpikeEvent) -> None:
        ks = self.aggregator.key_state(event.key)
        if ks is not None and ks.partition in self._replay_until:
            self.suppressed += 1  # published by the earlier owner of the partition
        else:
            # never raises: a failed send is kept, sent again, and holds the partition's commit at its record
            self.publisher.publish(event, self.producer, origin=self._origin)

    def _dead_letter(self, rec, reason: str, message: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        log.warning("dead letter %s[%d]@%d: %s: %s", rec.topic, rec.partition, rec.offset, reason, message)
        send_dead_letter(self.producer, rec, reason, message)

    def _close(self) -> None:
        if self.loop is not None:
            self.loop.close()  # commit, leave the group (revocation drops the keys), flush and close the producer
        self.publisher.close()  # logs the spike events that were never delivered
        self.producer = self.consumer = None
        if self.http is not None:
            self.http.stop()
        log.info("aggregator stopped")


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


__all__ = ["AggregatorService", "describe", "start_in_thread"]
