"""The scorer service: consumer group on ``news.raw`` -> micro-batches -> ``Scorer.predict`` -> ``news.scored`` +
``sentiment.keyed`` (+ ``news.dlq`` for bad records), at least once.

One loop, one thread (kafka-python runs its network IO on its own thread):

1. Collect a micro-batch: poll until ``max_batch_items`` records or ``max_batch_wait_ms`` after the first one.
   Polled records pass through an event-time merge first (:mod:`finsentry.ingest.event_order`): a record
   more than ``max_partition_skew_seconds`` ahead of the slowest partition that still has records waits,
   and its partition is paused, so a scorer catching up on a backlog feeds the aggregators in event-time order.
2. Validate and normalize each record (:func:`~finsentry.ingest.validation.validate_news_raw`); a bad one becomes
   a dead letter, an id already scored (seen-id LRU, or twice in the batch) is counted as a duplicate and
   skipped. One ``Scorer.predict`` call scores the rest; should the model reject the batch, items are scored
   one by one and the ones it still rejects become ``scoring_failed`` dead letters.
3. Produce ``news.scored`` (key = id), the ``sentiment.keyed`` fan-out (key = aggregate key) and the dead
   letters, ``flush`` and check every acknowledgement. Only then commit ``offset + 1`` per partition. If a
   produce fails (or any Kafka error interrupts steps 1-3), nothing is committed: the consumer seeks back to
   the batch start and the batch is redone.

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

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kafka import OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaError

from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.contract import dlq_headers, to_json_bytes
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.event_order import EventTimeMerger
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.metrics_http import MetricsServer
from finsentry.ingest.scored import scored_item
from finsentry.ingest.scorer_metrics import ScorerMetrics
from finsentry.ingest.seen_ids import SeenIds
from finsentry.ingest.settings import IngestSettings
from finsentry.ingest.topics import NEWS_DLQ, NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED
from finsentry.ingest.validation import NewsItem, validate_news_raw

if TYPE_CHECKING:
    from finsentry.model.scorer import Prediction, Scorer
    from finsentry.model.settings import ModelSettings

log = logging.getLogger(__name__)

MAX_ALIGNMENT_WAIT_S = 5.0
"""Seconds held records wait for a partition reported as behind that delivers nothing, before they go on anyway."""

END_OFFSET_REFRESH_S = 1.0
"""Seconds between ``end_offsets`` requests for a partition whose fetches report no high watermark (pacing)."""

ERROR_BACKOFF_S = 1.0
"""Seconds to wait after a Kafka error in the loop before polling again."""


MAX_DLQ_KEY_BYTES = 1024
"""Longest original key copied to a dead letter, bytes."""


class ProduceFailed(RuntimeError):
    """Some produce of a batch was not acknowledged; the batch is not committed and will be redone."""


class CompanyTableError(ValueError):
    """The company table (setting ``ingest.company_table``) cannot be read or parsed; the message names the file.

    A ``ValueError``, not an ``OSError``: callers that report a missing model artifact on ``FileNotFoundError``
    must not blame ``model.path`` for a missing table.
    """


def load_company_table(path: Path | str | None) -> CompanyTickerMap | None:
    """The company-name -> ticker map of the StockNet-style TSV at ``path`` (None: no mapping).

    Raises:
        CompanyTableError: the file is missing, unreadable, not UTF-8, or lacks the Symbol / Company columns.
    """
    if path is None:
        return None
    try:
        return CompanyTickerMap.from_stocknet_table(path)
    except OSError as exc:
        raise CompanyTableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # UnicodeDecodeError, or the columns are missing
        text = str(exc)
        raise CompanyTableError(text if str(path) in text else f"{path}: {text}") from exc


@dataclass
class ScorerStats:
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
    commit_failures: int = 0
    redone_batches: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    partitions_seen: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Dead:
    record: Any
    error: InvalidRecord


class _Rebalance(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's IO thread while the service thread is blocked in ``poll`` or ``close``."""

    def __init__(self, service: ScorerService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked) -> None:
        self.service.metrics.count_revoked(len(revoked), evicted=False)
        offsets = self.service._release(set(revoked), commit=True)
        if offsets:
            try:
                await self.service._consumer.commit_async(offsets)
                log.info("committed %s on revocation", {tp.partition: o.offset for tp, o in offsets.items()})
            except Exception as exc:  # never raise here: it would surface from poll()
                log.warning("commit on revocation failed (%s); those records will be redelivered", exc)

    async def on_partitions_assigned(self, assigned) -> None:
        self.service._on_assigned(set(assigned))

    async def on_partitions_lost(self, lost) -> None:
        self.service.metrics.count_revoked(len(lost), evicted=True)  # kafka-python: membership lost, e.g. a late poll
        self.service._release(set(lost), commit=False)


class ScorerService:
    """Consumes ``news.raw`` in a consumer group and writes scored items, fan-out and dead letters.

    Args:
        scorer: a loaded :class:`~finsentry.model.scorer.Scorer` (swap it later with :meth:`swap_scorer`).
        settings: the ``ingest`` settings (Kafka connection, ``scorer`` section, company table).
        companies: company-name -> ticker map; default ``"from_settings"``: read ``settings.company_table``
            (None = no mapping).
        metrics: metrics to update (default: fresh ones on their own registry).
        serve_metrics: serve ``/metrics`` on ``settings.scorer.metrics_host:metrics_port`` while running.

    Use :meth:`run` (blocks until :meth:`request_stop` or the ``stop`` event) or :meth:`start_thread`.
    """

    def __init__(
        self,
        scorer: Scorer,
        settings: IngestSettings,
        *,
        companies: CompanyTickerMap | None | Literal["from_settings"] = "from_settings",
        metrics: ScorerMetrics | None = None,
        serve_metrics: bool = True,
    ) -> None:
        self.settings = settings
        self.config = settings.scorer
        if companies == "from_settings":
            companies = load_company_table(settings.company_table)
        self.companies: CompanyTickerMap | None = companies
        self.metrics = metrics or ScorerMetrics()
        self.stats = ScorerStats()
        self._scorer = scorer
        self._next_scorer: Scorer | None = None
        self.metrics.set_model_version(scorer.model_version)
        self._seen = SeenIds(self.config.seen_ids_capacity)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[Any] = []  # records polled into the open batch, not yet processed
        self._pending: dict[TopicPartition, int] = {}  # processed, acknowledged, not yet committed: next offset
        self._positions: dict[TopicPartition, int] = {}  # next offset to read, per partition (for the lag gauge)
        self._assigned: set[TopicPartition] = set()
        self._merger = EventTimeMerger(self.config.max_partition_skew_seconds, MAX_ALIGNMENT_WAIT_S)
        self._seek_on_assign: dict[TopicPartition, int] = {}  # first offset dropped on revocation, per partition
        self._end_offsets: dict[TopicPartition, tuple[int | None, float]] = {}  # tp -> (end offset, monotonic s)
        self._consumer: Any = None
        self._metrics_server = (
            MetricsServer(self.metrics.registry, self.config.metrics_host, self.config.metrics_port)
            if serve_metrics
            else None
        )
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

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
    def scorer(self) -> Scorer:
        """The scorer used for the next batch."""
        return self._next_scorer or self._scorer

    def swap_scorer(self, new: Scorer) -> None:
        """Use ``new`` from the next micro-batch on (thread-safe; the batch being scored finishes on the old one)."""
        with self._lock:
            self._next_scorer = new

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish the open batch, commit, leave the group and return (thread-safe)."""
        self._stop.set()

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics`` while serving (the bound port when configured as 0), else None."""
        return self._metrics_server.url if self._metrics_server and self._metrics_server.serving else None

    def assigned_partitions(self) -> set[int]:
        """``news.raw`` partitions currently assigned to this instance (a copy; thread-safe)."""
        with self._lock:
            return {tp.partition for tp in self._assigned}

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
        cfg = self.config
        if self._metrics_server is not None:
            self._metrics_server.start()
        kafka = self.settings.kafka
        producer = None
        try:
            producer = make_producer(kafka, client_id=f"{kafka.client_id}-scorer")
            self._consumer = make_consumer(
                kafka,
                cfg.group_id,
                client_id=f"{kafka.client_id}-scorer",
                max_poll_records=cfg.max_poll_records,
                max_poll_interval_ms=cfg.max_poll_interval_ms,
                fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            )
            self._consumer.subscribe([NEWS_RAW], listener=_Rebalance(self))
            log.info(
                "scorer in group %r on %s, model %s", cfg.group_id, kafka.bootstrap_servers, self.scorer.model_version
            )
            last_lag = 0.0
            while not self._stop.is_set():
                batch: list[Any] = []
                try:
                    batch = self._collect_batch()
                    if batch:
                        self._process(batch, producer)
                except (KafkaError, ProduceFailed) as exc:
                    log.warning("%s: %s; re-reading the batch in %.1f s", type(exc).__name__, exc, ERROR_BACKOFF_S)
                    self._rewind(batch)
                    self._stop.wait(ERROR_BACKOFF_S)
                if time.monotonic() - last_lag >= cfg.lag_refresh_s:
                    self._update_lag()
                    last_lag = time.monotonic()
        finally:
            self._shutdown(producer)
        return self.stats

    def _collect_batch(self) -> list[Any]:
        """Poll until the batch is full, ``max_batch_wait_ms`` passed since its first record, or stop."""
        cfg = self.config
        consumer = self._consumer
        with self._lock:
            self._open = []
        deadline: float | None = None
        while not self._stop.is_set():
            with self._lock:
                room = cfg.max_batch_items - len(self._open)
            if room <= 0:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            timeout_ms = cfg.idle_poll_ms if deadline is None else max(0, int((deadline - now) * 1000))
            polled = consumer.poll(timeout_ms=timeout_ms, max_records=room)
            with self._lock:
                self._assigned = set(consumer.assignment() or ())
                now_wall = time.time()
                for tp, records in polled.items():
                    if tp in self._assigned:
                        timed = [(_merge_time(r, cfg.max_message_bytes), r) for r in records]
                        self._merger.add(tp.partition, timed, now_wall)
            released = self._align()
            with self._lock:
                self._open.extend(released)
                if self._open and deadline is None:
                    deadline = time.monotonic() + cfg.max_batch_wait_ms / 1000
                idle = not polled and not self._open
            if idle:
                break  # idle: let the caller refresh the lag gauge and check stop
        with self._lock:
            batch, self._open = self._open, []
        return batch

    def _align(self) -> list[Any]:
        """Release held records in event-time order; pause the partitions still holding some, resume the others.

        See :mod:`finsentry.ingest.event_order`. Returns the records that may join the open batch.
        """
        consumer = self._consumer
        with self._lock:
            assigned = set(self._assigned)
            holding_before = self._merger.holding()
        behind: set[int] = set()
        if holding_before:  # nothing held: nothing to decide, no request
            for tp in assigned:
                high = consumer.highwater(tp)  # from the last fetch response; no request
                if high is None:  # no fetch parsed yet (or the broker sent none): ask for the end offset
                    high = self._end_offset(tp)
                if high is None:
                    continue
                try:
                    position = consumer.position(tp, timeout_ms=0)  # known once fetched: no request
                except KafkaError:
                    continue
                if position is not None and position < high:
                    behind.add(tp.partition)
        with self._lock:
            released = self._merger.release(behind, time.monotonic())
            holding = self._merger.holding()
        paused = set(consumer.paused())
        to_pause = {tp for tp in assigned if tp.partition in holding} - paused
        to_resume = {tp for tp in paused if tp.partition not in holding}
        if to_pause:
            consumer.pause(*to_pause)
        if to_resume:
            consumer.resume(*to_resume)
        _release_parked_records(consumer)
        self.metrics.paused_partitions.set(len(holding))
        return released

    def _end_offset(self, tp: TopicPartition) -> int | None:
        """The partition's end offset from ``end_offsets`` (one request per partition at most every 1 s), or None."""
        now = time.monotonic()
        cached = self._end_offsets.get(tp)
        if cached is None or now - cached[1] >= END_OFFSET_REFRESH_S:
            try:
                value = self._consumer.end_offsets([tp]).get(tp)
            except KafkaError as exc:
                log.debug("end_offsets(%s) failed: %s", tp, exc)
                value = None
            cached = self._end_offsets[tp] = (value, now)
        return cached[0]

    def _process(self, batch: Sequence[Any], producer) -> None:
        """Validate, score, produce, flush, check acknowledgements, commit (see the module doc)."""
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

        scorer = self._take_scorer()
        predictions = self._predict(scorer, [item.text for _, item in items])
        futures = []
        scored: list[tuple[Any, NewsItem]] = []
        scored_at = datetime.now(UTC)
        for (record, item), prediction in zip(items, predictions, strict=True):
            if isinstance(prediction, InvalidRecord):
                dead.append(_Dead(record, prediction))
                continue
            key = item.id.encode("utf-8")
            value = scored_item(item, prediction, scored_at)
            futures.append(producer.send(NEWS_SCORED, key=key, value=to_json_bytes(value.to_wire())))
            received = _record_seconds(record)
            received_at = datetime.fromtimestamp(received, UTC) if received is not None else None
            for keyed in value.keyed(received_at):
                futures.append(
                    producer.send(SENTIMENT_KEYED, key=keyed.key.encode("utf-8"), value=to_json_bytes(keyed.to_wire()))
                )
            scored.append((record, item))
        for d in dead:
            futures.append(self._send_dead_letter(producer, d))
        self._await_acks(producer, futures)

        # acknowledged: account, remember ids, commit
        done = time.time()
        for record, item in scored:
            self._seen.add(item.id)
            sent = _record_seconds(record)
            if sent is not None:
                self.metrics.scored_latency.observe(max(0.0, done - sent))
        self.metrics.scored.inc(len(scored))
        self.metrics.count_long_texts(p for p in predictions if not isinstance(p, InvalidRecord))
        dropped_tickers = sum(item.tickers_dropped for _, item in scored)
        self.metrics.tickers_dropped.inc(dropped_tickers)
        self.stats.tickers_dropped += dropped_tickers
        self.stats.scored += len(scored)
        self.metrics.duplicates.inc(duplicates)
        self.stats.duplicates += duplicates
        for d in dead:
            self.metrics.dead_letters.labels(reason=d.error.reason.value).inc()
            self.stats.dead_letters[d.error.reason.value] += 1
        next_offsets: dict[TopicPartition, int] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), record.offset + 1)
        with self._lock:
            self._pending.update(next_offsets)
            self._positions.update(next_offsets)
        self._commit_pending()

    def _take_scorer(self) -> Scorer:
        with self._lock:
            if self._next_scorer is not None:
                old, self._scorer, self._next_scorer = self._scorer, self._next_scorer, None
                log.info("swapped model %s -> %s", old.model_version, self._scorer.model_version)
                self.metrics.set_model_version(self._scorer.model_version)
            return self._scorer

    def _predict(self, scorer: Scorer, texts: list[str]) -> list[Prediction | InvalidRecord]:
        """One ``predict`` for the batch; if it raises, one call per text so only the offending items fail."""
        if not texts:
            return []
        start = time.perf_counter()
        try:
            out: list[Prediction | InvalidRecord] = list(scorer.predict(texts))
            self.metrics.inference_latency.observe(time.perf_counter() - start)
            return out
        except Exception as exc:
            log.warning("batch of %d rejected by the model (%s); scoring one by one", len(texts), exc)
        out = []
        for text in texts:
            try:
                out.append(scorer.predict([text])[0])
            except Exception as exc:
                out.append(InvalidRecord(DlqReason.SCORING_FAILED, f"{type(exc).__name__}: {exc}"))
        return out

    def _send_dead_letter(self, producer, dead: _Dead):
        record, error = dead.record, dead.error
        value = record.value if record.value is not None else b""
        extra = {}
        if len(value) > self.config.dlq_max_value_bytes:
            extra["value_truncated"] = str(len(value))
            value = value[: self.config.dlq_max_value_bytes]
        log.debug("dead letter %s@%d: %s", record.partition, record.offset, error)
        headers = dlq_headers(error.reason, error.message, record.topic, record.partition, record.offset, **extra)
        key = record.key[:MAX_DLQ_KEY_BYTES] if record.key is not None else None
        return producer.send(NEWS_DLQ, key=key, value=value, headers=headers)

    def _await_acks(self, producer, futures: list) -> None:
        """Flush and check every acknowledgement.

        Raises:
            ProduceFailed: some produce was not acknowledged (the caller re-reads the batch).
        """
        try:
            producer.flush(timeout=self.config.produce_timeout_s)
        except KafkaError as exc:
            log.warning("flush failed: %s", exc)
        failed = [f for f in futures if not f.succeeded()]
        if failed:
            raise ProduceFailed(f"{len(failed)} of {len(futures)} produces failed (first: {failed[0].exception})")

    def _rewind(self, batch: Sequence[Any]) -> None:
        """Seek back to the first offset of ``batch`` and of the open batch, per assigned partition.

        Called after an error anywhere between polling and acknowledging, so no polled record is skipped; records
        whose produces were acknowledged already are then seen again and skipped as duplicates.
        """
        with self._lock:
            records = [*batch, *self._open, *self._merger.take_all()]
            self._open = []
            assigned = set(self._assigned)
        first: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            first[tp] = min(first.get(tp, record.offset), record.offset)
        for tp, offset in first.items():
            if tp in assigned:
                self._consumer.seek(tp, offset)
        if first:
            self.stats.redone_batches += 1

    def _commit_pending(self) -> None:
        """Commit the acknowledged offsets of assigned partitions; on a group error keep them for later."""
        with self._lock:
            offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in self._pending.items() if tp in self._assigned}
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:  # CommitFailedError, RebalanceInProgressError, IllegalGenerationError, ...
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s: %s); kept for the next try", type(exc).__name__, exc)
            return
        with self._lock:
            for tp, meta in offsets.items():
                if self._pending.get(tp) == meta.offset:
                    del self._pending[tp]

    # ---------------------------------------------------------------- rebalance callbacks (IO thread)

    def _release(self, partitions: set[TopicPartition], commit: bool) -> dict[TopicPartition, OffsetAndMetadata]:
        """Drop open and held records of ``partitions``; return their pending offsets to commit (if ``commit``).

        The first dropped offset of each partition is remembered: should the partition come back to this
        instance, kafka-python keeps its fetch position past the dropped records, so :meth:`_on_assigned` seeks
        back to it (without this, those records would be skipped).
        """
        with self._lock:
            dropped = [r for r in self._open if TopicPartition(r.topic, r.partition) in partitions]
            self._open = [r for r in self._open if TopicPartition(r.topic, r.partition) not in partitions]
            dropped += self._merger.forget(tp.partition for tp in partitions)
            for r in dropped:
                tp = TopicPartition(r.topic, r.partition)
                self._seek_on_assign[tp] = min(self._seek_on_assign.get(tp, r.offset), r.offset)
            offsets = {tp: OffsetAndMetadata(self._pending.pop(tp), "", -1) for tp in partitions if tp in self._pending}
            for tp in partitions:
                self._positions.pop(tp, None)
            self._assigned -= partitions
        if partitions:
            log.info("partitions %s %s", sorted(tp.partition for tp in partitions), "revoked" if commit else "lost")
        return offsets if commit else {}

    def _on_assigned(self, partitions: set[TopicPartition]) -> None:
        with self._lock:
            self._assigned |= partitions
            self.stats.partitions_seen |= {tp.partition for tp in partitions}
            seeks = {tp: o for tp, o in self._seek_on_assign.items() if tp in partitions}
            self._seek_on_assign.clear()
        for tp, offset in seeks.items():
            try:  # every record of the partition before ``offset`` was processed; the ones from it were not
                self._consumer.seek(tp, offset)
                log.info("partition %d back: re-read from offset %d (dropped on revocation)", tp.partition, offset)
            except Exception as exc:  # never raise in a rebalance callback: the committed offset still holds
                log.warning("cannot seek %s back to %d after reassignment: %s", tp, offset, exc)
        log.info("assigned news.raw partitions %s", sorted(tp.partition for tp in partitions))

    # ---------------------------------------------------------------- lag, shutdown

    def _update_lag(self) -> None:
        """Lag per assigned partition = fetch high watermark - next offset to read (untrustworthy on Tansu)."""
        lag: dict[int, int] = {}
        with self._lock:
            assigned, positions = set(self._assigned), dict(self._positions)
        for tp in assigned:
            high = self._consumer.highwater(tp)
            if high is not None and tp in positions:
                lag[tp.partition] = max(0, high - positions[tp])
        self.metrics.set_lag(lag)

    def _shutdown(self, producer) -> None:
        """Commit what is pending, close the consumer (revocation commits again), close producer and metrics."""
        consumer = self._consumer
        try:
            if consumer is not None:
                try:
                    self._commit_pending()
                finally:
                    consumer.close(autocommit=False)
        except Exception as exc:
            log.warning("closing the consumer: %s", exc)
        finally:
            if producer is not None:
                producer.close(timeout=10)
            if self._metrics_server is not None:
                self._metrics_server.stop()
            log.info(
                "scorer stopped: consumed %d, scored %d, duplicates %d, dead letters %s",
                self.stats.consumed,
                self.stats.scored,
                self.stats.duplicates,
                dict(self.stats.dead_letters),
            )


def _merge_time(record: Any, max_bytes: int) -> float | None:
    """The time a ``news.raw`` record is merged by: its ``published_at``, but never later than its Kafka timestamp.

    A source whose clock runs fast dates its items after the moment it sent them; merged by that date, one such
    item at the head of its partition would hold the partition's correctly dated items back while the other
    partitions run ahead (and the aggregator would then drop those items as late). The send time (the record
    timestamp, produce time) bounds it, as Kafka Streams orders by record timestamps.
    """
    t = _event_time(record.value, max_bytes)
    sent = _record_seconds(record)
    return t if t is None or sent is None else min(t, sent)


def _record_seconds(record: Any) -> float | None:
    """A Kafka record's timestamp (produce time) in epoch seconds, or None when the producer set none (-1)."""
    ts = record.timestamp
    return ts / 1000 if ts is not None and ts >= 0 else None


def _event_time(value: bytes | None, max_bytes: int) -> float | None:
    """``published_at`` of a raw ``news.raw`` value as epoch seconds (UTC when no offset is given), or None.

    Only for the event-time merge (:mod:`finsentry.ingest.event_order`): a value over ``max_bytes``, or one this
    cannot read for any reason (bad JSON, nesting too deep, no or odd ``published_at``), gives None and is left
    to validation, which dead-letters it with the right reason.
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
