"""The scorer service: consumer group on ``news.raw`` -> micro-batches -> ``Scorer.predict`` -> ``news.scored`` +
``sentiment.keyed`` (+ ``news.dlq`` for bad records), at least once.

One loop, one thread (kafka-python runs its network IO on its own thread): the shared
:class:`~finsentry.ingest.consume_loop.ConsumeLoop`, whose handler this service is. The construction's company
table is :mod:`finsentry.ingest.scorer_setup`, the event-time admission :mod:`finsentry.ingest.scorer_pacing`;
this module holds the service's controls and its process step (validate, score, produce).

1. Collect a micro-batch: poll until ``max_batch_items`` records or ``max_batch_wait_ms`` after the first one.
   Polled records pass through an event-time merge first (:mod:`finsentry.ingest.event_order`): a record
   more than ``max_partition_skew_seconds`` ahead of the slowest partition that still has records waits,
   and its partition is paused, so a scorer catching up on a backlog feeds the aggregators in event-time order.
2. Validate and normalize each record (:func:`~finsentry.ingest.validation.validate_news_raw`); a bad one becomes
   a dead letter, an id already scored (seen-id LRU, or twice in the batch) is counted as a duplicate and
   skipped. One ``Scorer.predict`` call scores the rest; should the model reject the batch, items are scored
   one by one and the ones it still rejects become ``scoring_failed`` dead letters.
3. Produce ``news.scored`` (key = id), the ``sentiment.keyed`` fan-out (key = aggregate key) and the dead
   letters. With ``overlap_acks`` (a constructor option, off by default since a demo item went uncounted in 2 of
   5 runs with it on; cause not found) their acknowledgements are awaited one turn later: after the next
   batch is collected, validated and scored, before it produces (or at once when nothing more arrives, and on
   stop). Only once every produce of a batch is acknowledged are its ids remembered, its items counted and
   ``offset + 1`` per partition committed. If a produce fails (or any Kafka error interrupts steps 1-3),
   nothing is committed: the consumer seeks back to the start of the unacknowledged batch, the scored next
   batch is dropped unproduced, and both are redone. An item of the next batch whose id the acknowledged batch
   carried is counted as a duplicate when it is produced (it was scored before that batch's ids were
   remembered).

A crash (even ``kill -9``) therefore loses nothing; records after the last commit are redelivered and may be
scored again (downstream dedups by id). Rebalances: ``max_poll_interval_ms`` is far above the slowest batch;
a failed commit (``CommitFailedError``, ``RebalanceInProgressError``, ...) is kept and retried after the next
batch or on revocation; on revocation the not-yet-scored (open or held) records of the revoked partitions are
dropped (their new owner reads them from the committed offset; should a partition come straight back to this
instance, it seeks back to the first dropped record, as kafka-python keeps its fetch position) and pending
offsets are committed.
``request_stop`` (SIGINT/SIGTERM in ``finsentry scorer``) finishes the open batch, commits, leaves the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from kafka import TopicPartition

from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.consume_loop import (
    ConsumeLoop,
    LoopConfig,
    LoopHandler,
    LoopStats,
    ProduceFailed,
    record_seconds,
    send_dead_letter,
)
from finsentry.ingest.contract import to_json_bytes
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.metrics_http import MetricsServer
from finsentry.ingest.scored import scored_item
from finsentry.ingest.scorer_metrics import ScorerMetrics
from finsentry.ingest.scorer_pacing import EventTimeAdmission
from finsentry.ingest.scorer_setup import CompanyTableError, load_company_table
from finsentry.ingest.seen_ids import SeenIds
from finsentry.ingest.settings import IngestSettings
from finsentry.ingest.topics import NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED
from finsentry.ingest.validation import NewsItem, validate_news_raw

if TYPE_CHECKING:
    from finsentry.model.scorer import Prediction, Scorer
    from finsentry.model.settings import ModelSettings

log = logging.getLogger(__name__)

ERROR_BACKOFF_S = 1.0
"""Seconds to wait after a Kafka error in the loop before polling again."""


@dataclass
class ScorerStats(LoopStats):
    """Counts of one :meth:`ScorerService.run` (plain ints; the Prometheus metrics count the same things).

    Attributes: consumed, scored, duplicates, batches: ints. tickers_dropped: tickers left out of scored items
    beyond ``max_tickers_per_item``. dead_letters: reason code -> count.
    commit_failures: commits refused (rebalance in progress, ...). redone_batches: batches re-read after a
    failed produce. partitions_seen: every ``news.raw`` partition this instance was assigned at some point.
    """

    consumed: int = 0
    scored: int = 0
    duplicates: int = 0
    batches: int = 0
    tickers_dropped: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    partitions_seen: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Dead:
    record: Any
    error: InvalidRecord


@dataclass
class _Prepared:
    """A batch validated and scored, not yet produced: ``items`` (record, item) and ``predictions`` in the same
    order, ``dead`` letters, ``duplicates`` found so far."""

    batch: Sequence[Any]
    items: list[tuple[Any, NewsItem]]
    predictions: list[Prediction | InvalidRecord]
    dead: list[_Dead]
    duplicates: int


@dataclass
class _Produced:
    """A batch's produces: ``futures`` to acknowledge, and what is counted once they are: ``scored`` (record,
    item, prediction), ``dead`` letters, ``duplicates``; ``acked_at`` index in ``scored`` -> epoch seconds its
    ``news.scored`` produce was acknowledged (set by the producer's IO thread)."""

    futures: list[Any]
    scored: list[tuple[Any, NewsItem, Prediction]]
    dead: list[_Dead]
    duplicates: int
    acked_at: dict[int, float] = field(default_factory=dict)


class ScorerService(LoopHandler):
    """Consumes ``news.raw`` in a consumer group and writes scored items, fan-out and dead letters.

    Args:
        model: a loaded :class:`~finsentry.model.scorer.Scorer` (swap it later with :meth:`swap_model`).
        settings: the ``ingest`` settings (Kafka connection, ``scorer`` section, company table).
        companies: company-name -> ticker map; default ``"from_settings"``: read ``settings.company_table``
            (None = no mapping).
        metrics: metrics to update (default: fresh ones on their own registry).
        serve_metrics: serve ``/metrics`` on ``settings.scorer.metrics_host:metrics_port`` while running.

    Use :meth:`run` (blocks until :meth:`request_stop` or the ``stop`` event) or :meth:`start_thread`.
    """

    def __init__(
        self,
        model: Scorer,
        settings: IngestSettings,
        *,
        companies: CompanyTickerMap | None | Literal["from_settings"] = "from_settings",
        metrics: ScorerMetrics | None = None,
        serve_metrics: bool = True,
        overlap_acks: bool = False,
    ) -> None:
        self.settings = settings
        self.config = cfg = settings.scorer
        if companies == "from_settings":
            companies = load_company_table(settings.company_table)
        self.companies: CompanyTickerMap | None = companies
        self.metrics = metrics or ScorerMetrics()
        self.stats = ScorerStats()
        self._model = model
        self._next_model: Scorer | None = None
        self.metrics.set_model_version(model.model_version)
        self._seen = SeenIds(cfg.seen_ids_capacity)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._admission = EventTimeAdmission(
            cfg.max_partition_skew_seconds, cfg.max_message_bytes, self.metrics.paused_partitions
        )
        kafka = settings.kafka
        self.loop = ConsumeLoop(
            LoopConfig(
                name="scorer",
                topics=(NEWS_RAW,),
                group_id=cfg.group_id,
                client_id=f"{kafka.client_id}-scorer",
                poll_ms=cfg.idle_poll_ms,
                max_batch_items=cfg.max_batch_items,
                max_batch_wait_ms=cfg.max_batch_wait_ms,
                produce_timeout_s=cfg.produce_timeout_s,
                error_backoff_s=ERROR_BACKOFF_S,
                overlap_acks=overlap_acks,  # off: a demo item went uncounted in 2 of 5 runs with it on (open)
                consumer_options={
                    "max_poll_records": cfg.max_poll_records,
                    "max_poll_interval_ms": cfg.max_poll_interval_ms,
                    "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
                },
            ),
            kafka,
            self,
            stats=self.stats,
        )
        self._last_lag = 0.0
        self._metrics_server = (
            MetricsServer(self.metrics.registry, cfg.metrics_host, cfg.metrics_port) if serve_metrics else None
        )
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._prepared: _Prepared | None = None  # prepared by the loop, not yet produced
        self._produced: _Produced | None = None  # produced, waiting for the loop's acknowledgement

    @classmethod
    def from_settings(cls, ingest: IngestSettings, model: ModelSettings, **kwargs: Any) -> ScorerService:
        """A service with the ``ingest`` settings, its model loaded from the ``model`` settings (path, providers,
        threads, spinning, max_length, batch_size).

        The company table (``ingest.company_table``, unless ``companies`` is passed) is read first, so a bad table
        is reported before the model is loaded.

        Raises:
            CompanyTableError: the company table cannot be read (a ``ValueError``; names ``ingest.company_table``'s
                file). ModelLoadError: the artifact at ``model.path`` is missing or corrupt.
        """
        from finsentry.model.scorer import Scorer

        if kwargs.get("companies", "from_settings") == "from_settings":
            kwargs["companies"] = load_company_table(ingest.company_table)
        return cls(Scorer.from_settings(model), ingest, **kwargs)

    # ---------------------------------------------------------------- public controls

    @property
    def model(self) -> Scorer:
        """The model (a loaded :class:`~finsentry.model.scorer.Scorer`) used for the next batch."""
        return self._next_model or self._model

    def swap_model(self, new: Scorer) -> None:
        """Use ``new`` from the next micro-batch on (thread-safe; the batch being scored finishes on the old one)."""
        with self._lock:
            self._next_model = new

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish the open batch, commit, leave the group and return (thread-safe)."""
        self._stop.set()

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics`` while serving (the bound port when configured as 0), else None."""
        return self._metrics_server.url if self._metrics_server and self._metrics_server.serving else None

    def assigned_partitions(self) -> set[int]:
        """``news.raw`` partitions currently assigned to this instance (a copy; thread-safe)."""
        return {tp.partition for tp in self.loop.assigned()}

    def start_thread(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread; its exception (if any) is kept in :attr:`error`."""

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # kept for the caller; the thread must not die silently
                self._error = exc
                log.exception("scorer service failed")

        self._thread = threading.Thread(target=target, name="scorer-service", daemon=True)
        self._thread.start()
        return self._thread

    @property
    def error(self) -> BaseException | None:
        """The exception that ended a :meth:`start_thread` run, if any."""
        return self._error

    def stop_and_join(self, timeout_s: float = 30.0) -> None:
        """:meth:`request_stop`, then wait up to ``timeout_s`` seconds for the thread of :meth:`start_thread`.

        Raises:
            TimeoutError: the thread is still running after ``timeout_s``.
        """
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise TimeoutError(f"scorer service did not stop within {timeout_s} s")

    # ---------------------------------------------------------------- the loop

    def run(self, stop: threading.Event | None = None) -> ScorerStats:
        """Consume, score and produce until :meth:`request_stop` (or ``stop`` is set); returns the counts.

        Raises:
            OSError: the metrics port cannot be bound.
            kafka.errors.NoBrokersAvailable: no broker answers at start-up.
        """
        if stop is not None:
            self._stop = stop  # request_stop() now sets the caller's event too
        if self._metrics_server is not None:
            self._metrics_server.start()
        try:
            self.loop.open()
            log.info(
                "scorer in group %r on %s, model %s",
                self.config.group_id,
                self.settings.kafka.bootstrap_servers,
                self.model.model_version,
            )
            self.loop.serve(self._stop)
        finally:
            self._shutdown()
        return self.stats

    # ---------------------------------------------------------------- the loop's handler

    def prepare(self, batch: list[Any]) -> None:
        """The loop's prepare step (while the previous batch's produces may still be unacknowledged): validate and
        score ``batch`` (:meth:`_prepare`)."""
        self._prepared = self._prepare(batch)

    def process(self, batch: list[Any], producer: Any) -> None:
        """The loop's process step: produce the prepared ``batch`` (preparing it first if it was not), without
        waiting for the acknowledgements (the loop awaits them, then calls :meth:`acknowledged`)."""
        prepared, self._prepared = self._prepared, None
        if prepared is None or prepared.batch is not batch:
            prepared = self._prepare(batch)
        self._produced = None
        self._produced = self._produce(prepared, producer)

    def acknowledged(self) -> None:
        """The produces of the last processed batch are acknowledged: remember its ids, count it."""
        produced, self._produced = self._produced, None
        if produced is not None:
            self._account(produced)

    def admit(self, polled: Any, consumer: Any, room: int | None = None) -> list[Any]:
        """Hold polled records for the event-time merge; release them in event-time order (at most ``room``)."""
        return self._admission.admit(polled, consumer, room)

    def can_release(self) -> bool:
        """Records the merge released that the next :meth:`admit` returns without a poll."""
        return self._admission.ready()

    def take_held(self, partitions: set[TopicPartition] | None) -> list[Any]:
        """Records held by the merge (of ``partitions``; None: all), given back."""
        return self._admission.take_held(partitions)

    def commit(self, loop: ConsumeLoop) -> None:
        """Commit after an acknowledged batch and on shutdown: :meth:`_commit_pending`."""
        self._commit_pending()

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Note the partitions ever assigned (``stats.partitions_seen``)."""
        self.stats.partitions_seen |= {tp.partition for tp in partitions}

    def on_revoked(self, partitions: set[TopicPartition], lost: bool) -> None:
        """Count revoked (or, ``lost``, evicted) partitions."""
        self.metrics.count_revoked(len(partitions), evicted=lost)

    def on_tick(self, loop: ConsumeLoop) -> None:
        """Refresh the lag gauge every ``lag_refresh_s``."""
        if time.monotonic() - self._last_lag >= self.config.lag_refresh_s:
            self._update_lag()
            self._last_lag = time.monotonic()

    def _prepare(self, batch: Sequence[Any]) -> _Prepared:
        """Validate each record (bad ones become dead letters), skip ids already seen or twice in the batch, score
        the rest with one ``predict`` (the model of the moment: a swap takes effect here)."""
        cfg = self.config
        self.stats.batches += 1
        self.metrics.batch_items.observe(len(batch))
        self.metrics.consumed.inc(len(batch))
        self.stats.consumed += len(batch)
        items: list[tuple[Any, NewsItem]] = []
        dead: list[_Dead] = []
        batch_ids: set[str] = set()
        duplicates = 0
        now = datetime.now(UTC)
        for record in batch:
            try:
                item = validate_news_raw(
                    record.value,
                    max_message_bytes=cfg.max_message_bytes,
                    allowed_langs=cfg.allowed_langs,
                    companies=self.companies,
                    max_future_seconds=cfg.max_future_seconds,
                    now=now,
                    max_tickers=cfg.max_tickers_per_item,
                )
            except InvalidRecord as exc:
                dead.append(_Dead(record, exc))
                continue
            if item.id in self._seen or item.id in batch_ids:
                duplicates += 1
                continue
            batch_ids.add(item.id)
            items.append((record, item))
        model = self._take_model()
        predictions = self._predict(model, [item.text for _, item in items])
        return _Prepared(batch, items, predictions, dead, duplicates)

    def _produce(self, prepared: _Prepared, producer) -> _Produced:
        """Send ``news.scored``, the ``sentiment.keyed`` fan-out and the dead letters of a prepared batch; an item
        whose id was remembered since it was prepared (the batch before, acknowledged in between) is a duplicate
        and is not sent. Nothing is counted yet (:meth:`_account`, once acknowledged)."""
        out = _Produced([], [], list(prepared.dead), prepared.duplicates)
        scored_at = datetime.now(UTC)
        for (record, item), prediction in zip(prepared.items, prepared.predictions, strict=True):
            if isinstance(prediction, InvalidRecord):
                out.dead.append(_Dead(record, prediction))
                continue
            if item.id in self._seen:
                out.duplicates += 1
                continue
            key = item.id.encode("utf-8")
            value = scored_item(item, prediction, scored_at)
            future = producer.send(NEWS_SCORED, key=key, value=to_json_bytes(value.to_wire()))
            if hasattr(future, "add_callback"):
                future.add_callback(_note_ack, out.acked_at, len(out.scored))
            out.futures.append(future)
            received = record_seconds(record)
            received_at = datetime.fromtimestamp(received, UTC) if received is not None else None
            for keyed in value.keyed(received_at):
                out.futures.append(
                    producer.send(SENTIMENT_KEYED, key=keyed.key.encode("utf-8"), value=to_json_bytes(keyed.to_wire()))
                )
            out.scored.append((record, item, prediction))
        for d in out.dead:
            out.futures.append(self._send_dead_letter(producer, d))
        return out

    def _account(self, produced: _Produced) -> None:
        """After the acknowledgements: remember the scored ids, count items, duplicates, dead letters, latencies
        (to each item's acknowledged ``news.scored`` produce; now, where the producer did not say)."""
        now = time.time()
        scored = produced.scored
        for i, (record, item, _) in enumerate(scored):
            self._seen.add(item.id)
            sent = record_seconds(record)
            if sent is not None:
                self.metrics.scored_latency.observe(max(0.0, produced.acked_at.get(i, now) - sent))
        self.metrics.scored.inc(len(scored))
        self.metrics.count_long_texts(p for _, _, p in scored)
        dropped_tickers = sum(item.tickers_dropped for _, item, _ in scored)
        self.metrics.tickers_dropped.inc(dropped_tickers)
        self.stats.tickers_dropped += dropped_tickers
        self.stats.scored += len(scored)
        self.metrics.duplicates.inc(produced.duplicates)
        self.stats.duplicates += produced.duplicates
        for d in produced.dead:
            self.metrics.dead_letters.labels(reason=d.error.reason.value).inc()
            self.stats.dead_letters[d.error.reason.value] += 1

    def _take_model(self) -> Scorer:
        with self._lock:
            if self._next_model is not None:
                old, self._model, self._next_model = self._model, self._next_model, None
                log.info("swapped model %s -> %s", old.model_version, self._model.model_version)
                self.metrics.set_model_version(self._model.model_version)
            return self._model

    def _predict(self, model: Scorer, texts: list[str]) -> list[Prediction | InvalidRecord]:
        """One ``predict`` for the batch; if it raises, one call per text so only the offending items fail."""
        if not texts:
            return []
        start = time.perf_counter()
        try:
            out: list[Prediction | InvalidRecord] = list(model.predict(texts))
            self.metrics.inference_latency.observe(time.perf_counter() - start)
            return out
        except Exception as exc:
            log.warning("batch of %d rejected by the model (%s); scoring one by one", len(texts), exc)
        out = []
        for text in texts:
            try:
                out.append(model.predict([text])[0])
            except Exception as exc:
                out.append(InvalidRecord(DlqReason.SCORING_FAILED, f"{type(exc).__name__}: {exc}"))
        return out

    def _send_dead_letter(self, producer, dead: _Dead):
        record, error = dead.record, dead.error
        log.debug("dead letter %s@%d: %s", record.partition, record.offset, error)
        return send_dead_letter(
            producer, record, error.reason, error.message, max_value_bytes=self.config.dlq_max_value_bytes
        )

    def _commit_pending(self) -> None:
        """Commit the acknowledged offsets of assigned partitions; on a group error keep them for later."""
        self.loop.commit_pending()

    # ---------------------------------------------------------------- lag, shutdown

    def _update_lag(self) -> None:
        """Lag per assigned partition = fetch high watermark - next offset to read (untrustworthy on Tansu)."""
        consumer = self.loop.consumer
        if consumer is None:
            return
        lag: dict[int, int] = {}
        positions = self.loop.positions()
        for tp in self.loop.assigned():
            high = consumer.highwater(tp)
            if high is not None and tp in positions:
                lag[tp.partition] = max(0, high - positions[tp])
        self.metrics.set_lag(lag)

    def _shutdown(self) -> None:
        """Commit what is pending, close the consumer (revocation commits again), close producer and metrics."""
        try:
            self.loop.close()
        finally:
            if self._metrics_server is not None:
                self._metrics_server.stop()
            log.info(
                "scorer stopped: consumed %d, scored %d, duplicates %d, dead letters %s",
                self.stats.consumed,
                self.stats.scored,
                self.stats.duplicates,
                dict(self.stats.dead_letters),
            )


def _note_ack(acked_at: dict[int, float], index: int, _metadata: Any) -> None:
    """Producer callback (its IO thread): the ``news.scored`` produce ``index`` was acknowledged now."""
    acked_at[index] = time.time()


__all__ = ["CompanyTableError", "ProduceFailed", "ScorerService", "ScorerStats", "load_company_table"]
