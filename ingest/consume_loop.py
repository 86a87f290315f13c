"""One consume-process-produce runner for every Kafka consumer of finsentry (scorer, aggregator, labels consumer,
the relay's spike consumer, the hot swap's ``models.events`` reader).

A :class:`ConsumeLoop` owns the clients and the delivery guarantees; a :class:`LoopHandler` (the service) owns
what one batch means. One turn of the loop:

1. **Poll and batch**: poll until ``max_batch_items`` records, or ``max_batch_wait_ms`` after the first one, or
   an idle poll (``poll_ms`` with nothing open). Polled records pass through :meth:`LoopHandler.admit` first (by
   default all of them join the batch at once; the scorer holds some back for its event-time merge and pauses
   their partitions, :mod:`finsentry.ingest.event_order`, and releases at most the batch's room; while it has
   released records left, :meth:`LoopHandler.can_release`, the loop polls without waiting).
2. **Process**: :meth:`LoopHandler.process` with the batch and the loop's :class:`TrackedProducer`. A bad record
   must not raise: the handler sends it to ``news.dlq`` (:func:`send_dead_letter`) and counts it, so one record
   never stops a consumer.
3. **Acknowledge, then commit**: every produce of the batch is flushed and its acknowledgement checked
   (``acks="checked"``; :class:`ProduceFailed` if one is missing), or only flushed (``acks="flushed"``, the
   aggregator: its state has absorbed the batch, re-reading it would publish nothing again). Only then are the
   batch's next offsets (``offset + 1`` per partition, as :meth:`LoopHandler.committable` allows) committed. A
   commit refused by the group (a rebalance) is kept and retried after the next batch, on revocation and on
   close (``stats.commit_failures``). With ``overlap_acks`` (the scorer) a batch's acknowledgements are awaited
   one turn later, while the next batch is collected and prepared (:meth:`LoopHandler.prepare`: its validation
   and scoring), and before that batch produces anything: a turn is collect N+1, prepare N+1, acknowledge and
   commit N (:meth:`LoopHandler.acknowledged`), produce N+1. An idle turn (nothing collected; while a batch
   waits for its acknowledgements the first poll does not wait) and a stop acknowledge it at once. Offsets still
   move only after every produce of their batch is acknowledged; what a rewind adds is the prepared batch,
   dropped unproduced. A partition revoked while its batch waited is not committed by this instance: its new
   owner reads that batch again (a rebalance may repeat records; it never skips one).
4. **Rewind on failure**: an error of ``retry_on`` (default: any ``KafkaError``, which includes
   :class:`ProduceFailed` and :class:`PollFailed`, any error of ``poll`` itself) between the poll and the
   acknowledgement commits nothing: every partition is sought back to the first record
   of the unacknowledged batch (``overlap_acks``), of the batch, of the open batch and of the records the handler
   holds, and the loop waits ``error_backoff_s`` (``stats.redone_batches``). So delivery is at least once: a
   crash or a failure repeats records, never skips.
5. **Renew a broken producer**: after every turn that leaves no batch waiting for its acknowledgements, a
   producer that failed for good, or is stuck (a send neither acknowledged nor failed past its delivery timeout
   + :data:`STUCK_MARGIN_S`), is replaced (:meth:`TrackedProducer.renew_if_broken`, ``stats.producers_renewed``);
   its unacknowledged batch is redone (a waiting batch is never given to a new producer: its acknowledgement
   fails first, which rewinds it).

Rebalance callbacks (consumer groups only; an ``AsyncConsumerRebalanceListener``, run on kafka-python's IO
thread while the loop thread is blocked in ``poll`` or ``close``):

- revoked / lost: the open and held records of those partitions are dropped (their next owner reads them from
  the committed offset; should a partition come back to this instance, the loop seeks it back to the first
  dropped record, as kafka-python keeps its fetch position), then :meth:`LoopHandler.on_revoked`; on a revocation
  (not a loss) the pending offsets of those partitions are committed.
- assigned: :meth:`LoopHandler.on_assigned`; a handler with ``rebuilds_on_assign`` (the aggregator and the
  relay's spike cache rebuild their state by re-reading) gets its new partitions paused there, and, after that
  poll returns, :meth:`LoopHandler.setup` in the loop thread (it seeks them), then they are resumed; records the
  poll returned for them before the seek are not processed.

Without a group (``group_id=None``, the hot swap: every scorer reads every ``models.events`` record) the loop
assigns itself every partition of its topics at their end and commits nothing.

>>> LoopConfig(name="labels", topics=("news.labels",), group_id="finsentry-labels").max_batch_items
500
>>> from pydantic import ValidationError
>>> try:
...     LoopConfig(name="x", topics=(), group_id=None)
... except ValidationError as exc:
...     print(exc.errors()[0]["loc"], exc.errors()[0]["type"])
('topics',) too_short
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kafka import OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaError, KafkaTimeoutError
from pydantic import BaseModel, ConfigDict, Field

from finsentry.ingest.contract import dlq_headers
from finsentry.ingest.dlq import DlqReason
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import NEWS_DLQ

log = logging.getLogger(__name__)

MAX_DLQ_KEY_BYTES = 1024
"""Longest original key copied to a dead letter, bytes."""
FLUSH_SLICE_S = 0.5
"""A flush of :class:`TrackedProducer` checks the loop's stop event this often, seconds."""
CLOSE_FLUSH_S = 5.0
"""Longest flush of the producer on close, seconds: every acknowledged batch was flushed already; what is left
belongs to a batch that was not committed and is read again."""
STUCK_MARGIN_S = 10.0
"""A send still neither acknowledged nor failed this long after the producer's ``delivery_timeout_ms`` (by which
kafka-python fails it at the latest) means the producer is stuck and :meth:`TrackedProducer.renew_if_broken`
replaces it, seconds."""
MAX_DLQ_VALUE_BYTES = 1_048_576
"""Longest original value copied to a dead letter unless the caller says otherwise, bytes (the scorer's default
``ingest.scorer.dlq_max_value_bytes``): a whole copy of a larger record would be refused by the producer (4 MiB
requests) or the broker, and its dead letter never written."""


class ProduceFailed(KafkaError):
    """Some produce of a batch was not acknowledged; the batch is not committed and will be redone."""


class PollFailed(KafkaError):
    """``poll`` raised something other than a ``KafkaError`` (a broker hiccup surfacing as ``OSError``, ...); a
    ``KafkaError``, so the loop rewinds and polls again after the backoff, as for any Kafka error."""


class LoopConfig(BaseModel):
    """How one :class:`ConsumeLoop` reads, batches, acknowledges and retries (validated, immutable).

    Attributes:
        name: for logs and the thread name. topics: what it reads (at least one). group_id: consumer group
            (None: no group, every partition from its end, no commits). client_id: Kafka client id (None: the
            connection's). poll_ms: longest one poll waits while no batch is open (ms, > 0).
        max_batch_items: records per batch (>= 1). max_batch_wait_ms: how long a batch stays open after its
            first record (ms, >= 0; 0: one poll per batch). produce: build a producer (False: the handler
            produces nothing). acks: ``checked`` (every produce acknowledged, else :class:`ProduceFailed`) or
            ``flushed`` (flushed only). produce_timeout_s: longest flush (s, > 0). commit_timeout_s: longest wait
            for one offset commit (s, > 0; one that times out is kept for the next, as a refused one).
            error_backoff_s: wait after a failed batch or poll before the next poll (s, > 0). retry_on: errors that
            rewind and redo the batch (others end :meth:`ConsumeLoop.serve`). reconnect: :meth:`ConsumeLoop.run`
            retries a broker it cannot reach, and reconnects after an unexpected error, instead of raising.
            consumer_options: more ``KafkaConsumer`` keyword arguments (``max_poll_interval_ms``, ...).
            overlap_acks: await a batch's acknowledgements (and commit it) after the next batch is collected and
            prepared, before it produces (module doc, step 3); False: right after the batch's produces.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    topics: tuple[str, ...] = Field(min_length=1)
    group_id: str | None
    client_id: str | None = None
    poll_ms: int = Field(200, gt=0)
    max_batch_items: int = Field(500, ge=1)
    max_batch_wait_ms: int = Field(0, ge=0)
    produce: bool = True
    acks: Literal["checked", "flushed"] = "checked"
    produce_timeout_s: float = Field(30.0, gt=0)
    commit_timeout_s: float = Field(5.0, gt=0)
    error_backoff_s: float = Field(1.0, gt=0)
    retry_on: tuple[type[BaseException], ...] = (KafkaError,)
    reconnect: bool = False
    consumer_options: dict[str, Any] = Field(default_factory=dict)
    overlap_acks: bool = False


@dataclass
class LoopStats:
    """Counts of a loop: ``commit_failures`` (commits refused, kept for later), ``redone_batches`` (rewinds),
    ``producers_renewed`` (producers replaced because they failed for good or were stuck)."""

    commit_failures: int = 0
    redone_batches: int = 0
    producers_renewed: int = 0


class LoopHandler:
    """What a service plugs into a :class:`ConsumeLoop`; every method but :meth:`process` has a default.

    Set ``rebuilds_on_assign = True`` to have newly assigned partitions paused until :meth:`setup` has sought them.
    """

    rebuilds_on_assign: bool = False

    def process(self, batch: list[Any], producer: TrackedProducer | None) -> None:
        """Handle one batch (records in the order admitted); produce through ``producer``.

        Raises:
            an error of ``retry_on`` to have the batch redone; anything else ends the loop.
        """
        raise NotImplementedError

    def prepare(self, batch: list[Any]) -> None:
        """Work on ``batch`` that produces nothing, done before :meth:`process` (default: none). With
        ``overlap_acks`` it runs while the previous batch's produces are still unacknowledged, so it must not rely
        on that batch's :meth:`acknowledged` (the scorer validates and scores here, and re-checks its seen ids in
        :meth:`process`). A batch prepared may be dropped unprocessed (a rewind), and is then prepared again."""

    def acknowledged(self) -> None:
        """Every produce of the last batch given to :meth:`process` is acknowledged; its commit follows (default:
        nothing). Not called for a batch that failed (it is redone)."""

    def admit(self, polled: Mapping[TopicPartition, list[Any]], consumer: Any, room: int | None = None) -> list[Any]:
        """The polled records that join the open batch now, at most ``room`` (the batch's free places; the poll
        returned at most that many) (default: all, partition by partition)."""
        return [r for records in polled.values() for r in records]

    def can_release(self) -> bool:
        """Whether :meth:`admit` has records to give without new ones (the loop then polls without waiting;
        default: False)."""
        return False

    def take_held(self, partitions: set[TopicPartition] | None) -> list[Any]:
        """Give back the records :meth:`admit` holds (of ``partitions``; None: all), for a rewind or revocation."""
        return []

    def committable(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The next offsets of a processed batch that may be committed (default: all)."""
        return offsets

    def commit(self, loop: ConsumeLoop) -> None:
        """Commit after an acknowledged batch (default :meth:`ConsumeLoop.commit_pending`)."""
        loop.commit_pending()

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions assigned (IO thread, inside ``poll``: record, never block or raise)."""

    def on_revoked(self, partitions: set[TopicPartition], lost: bool) -> None:
        """Partitions revoked, or lost (evicted from the group) when ``lost`` (IO thread; never raise)."""

    def setup(self, consumer: Any, partitions: set[TopicPartition]) -> None:
        """Seek newly assigned partitions (loop thread; only with ``rebuilds_on_assign``)."""

    def on_tick(self, loop: ConsumeLoop) -> None:
        """After every turn of the loop, busy or idle (gauges, housekeeping)."""


class TrackedProducer:
    """A producer that remembers the futures of what was sent since the last :meth:`acknowledge`.

    Same ``send`` / ``flush`` as ``KafkaProducer``; ``timeout_s`` bounds :meth:`acknowledge`'s flush (seconds).
    ``factory`` builds a replacement when the producer has failed for good or is stuck (:meth:`renew_if_broken`).
    ``clock``: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        producer: Any,
        timeout_s: float,
        factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.producer = producer
        self.timeout_s = timeout_s
        self.factory = factory
        self.clock = clock
        self.renewed = 0
        self.stop: threading.Event | None = None  # the loop's: a flush gives up once it is set
        self._futures: list[Any] = []
        self._unsettled: deque[tuple[float, Any]] = deque()  # (clock after send, future), oldest first

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, headers: Any = None) -> Any:
        """Send one record (bytes key and value); returns its future."""
        future = self.producer.send(topic, key=key, value=value, headers=headers)
        self._futures.append(future)
        if self.stuck_after_s() is not None and hasattr(future, "is_done"):
            self._settle()
            self._unsettled.append((self.clock(), future))  # after send: the record is in a batch by now
        return future

    def stuck_after_s(self) -> float | None:
        """How long a send may stay unsettled before the producer counts as stuck: its ``delivery_timeout_ms``
        plus :data:`STUCK_MARGIN_S`, seconds; None when the producer does not say (no watchdog)."""
        config = getattr(self.producer, "config", None)
        delivery_ms = config.get("delivery_timeout_ms") if isinstance(config, Mapping) else None
        return None if delivery_ms is None else delivery_ms / 1000 + STUCK_MARGIN_S

    def oldest_unsettled_s(self) -> float | None:
        """Age of the oldest send still neither acknowledged nor failed (seconds), None if there is none.

        Sends of failed batches count too (:meth:`forget` does not drop them here): they are the producer's."""
        self._settle()
        return self.clock() - self._unsettled[0][0] if self._unsettled else None

    def _settle(self) -> None:
        """Drop the settled sends at the front of the watch list (it keeps at most one delivery timeout's worth
        of sends behind an unsettled one)."""
        while self._unsettled and self._unsettled[0][1].is_done:
            self._unsettled.popleft()

    def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered and wait for it (at most ``timeout`` seconds, or until the loop's ``stop`` is
        set, checked every :data:`FLUSH_SLICE_S`).

        Raises:
            kafka.errors.KafkaTimeoutError: not all sent within ``timeout``, or given up on a stop.
        """
        flush_until_stopped(self.producer, timeout, self.stop)

    def acknowledge(self, check: bool = True) -> None:
        """Flush, then (``check``) require every send since the last call to be acknowledged.

        Raises:
            ProduceFailed: a send was not acknowledged within ``timeout_s``.
        """
        futures, self._futures = self._futures, []
        if not futures:
            return
        try:
            self.flush(self.timeout_s)
        except KafkaError as exc:
            log.warning("flush failed: %s", exc)
        if check:
            check_acks(futures)

    def forget(self) -> None:
        """Drop the futures sent since the last :meth:`acknowledge`: their batch failed and will be redone, so
        they must not fail the redo's acknowledgement."""
        self._futures = []

    def close(self, timeout: float) -> None:
        """Flush and close the producer (at most ``timeout`` seconds)."""
        self.producer.close(timeout=timeout)

    def renew_if_broken(self) -> bool:
        """Replace the producer with a new one from ``factory`` when it is in a fatal state or stuck; True if
        replaced.

        kafka-python's idempotent producer turns fatal on some broker errors (a restarted broker that forgot its
        producer ids answers ``InitProducerId`` with an error) and then fails every later send, so redoing the
        batch with it would fail for ever. It can also get stuck without turning fatal: when a batch that was
        already sent expires, kafka-python (3.0.x) resets its producer id to -1 and never asks for a new one, so
        every later send neither completes nor expires. It is taken for stuck when a send stays unsettled past
        :meth:`stuck_after_s`. A replacement that cannot be built (no broker yet) is tried again on the next
        call; the old producer is kept until then. What the old one had not sent is lost with it: those sends
        belong to batches not yet acknowledged, which the loop redoes.
        """
        reason = self._broken()
        if self.factory is None or reason is None:
            return False
        try:
            fresh = self.factory()
        except Exception as exc:
            log.warning("the producer %s and cannot be replaced yet: %s", reason, exc)
            return False
        old, self.producer, self._futures = self.producer, fresh, []
        self._unsettled.clear()
        self.renewed += 1
        log.warning("the producer %s; replaced by a new one", reason)
        try:
            old.close(timeout=0)
        except Exception as exc:
            log.warning("closing the failed producer: %s", exc)
        return True

    def _broken(self) -> str | None:
        """Why the producer must be replaced (for the log), or None when it works."""
        manager = getattr(self.producer, "_transaction_manager", None)
        if manager is not None and manager.has_fatal_error():
            return f"failed for good ({manager.last_error})"
        age, limit = self.oldest_unsettled_s(), self.stuck_after_s()
        if age is None or limit is None or age < limit:
            return None
        ids = getattr(manager, "producer_id_and_epoch", None)
        producer_id = f", producer id {ids.producer_id}" if ids is not None else ""
        return f"is stuck (a send unsettled for {age:.1f} s, past its delivery timeout{producer_id})"


def flush_until_stopped(producer: Any, timeout: float | None, stop: threading.Event | None) -> None:
    """``producer.flush(timeout)``, given up once ``stop`` is set (checked every :data:`FLUSH_SLICE_S`; None:
    never): a flush to a broker that is gone must not hold up a shutdown.

    Raises:
        kafka.errors.KafkaTimeoutError: not all sent within ``timeout`` seconds, or given up on ``stop``.
    """
    if stop is None:
        producer.flush(timeout=timeout)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            producer.flush(timeout=FLUSH_SLICE_S if left is None else min(FLUSH_SLICE_S, left))
            return
        except KafkaTimeoutError:
            if stop.is_set() or (left is not None and left <= FLUSH_SLICE_S):
                raise


def check_acks(futures: Sequence[Any]) -> None:
    """Require every produce future (already flushed) to have succeeded.

    Raises:
        ProduceFailed: some did not (names how many and the first error).
    """
    failed = [f for f in futures if not f.succeeded()]
    if failed:
        raise ProduceFailed(f"{len(failed)} of {len(futures)} produces failed (first: {failed[0].exception})")


def send_dead_letter(
    producer: Any, record: Any, reason: DlqReason | str, message: str, max_value_bytes: int = MAX_DLQ_VALUE_BYTES
) -> Any:
    """Send ``record``'s original bytes to ``news.dlq`` with the dead-letter headers (``docs/dlq.md``).

    A value longer than ``max_value_bytes`` (default :data:`MAX_DLQ_VALUE_BYTES`) is cut to it (header
    ``value_truncated`` = the original length); a null value (tombstone) is sent empty, a ``str`` one as UTF-8; a
    key is cut to :data:`MAX_DLQ_KEY_BYTES`. Returns the producer's future.
    """
    value = record.value
    value = b"" if value is None else value if isinstance(value, bytes) else str(value).encode("utf-8")
    extra = {}
    if len(value) > max_value_bytes:
        extra["value_truncated"] = str(len(value))
        value = value[:max_value_bytes]
    headers = dlq_headers(reason, message, record.topic, record.partition, record.offset, **extra)
    key = record.key[:MAX_DLQ_KEY_BYTES] if record.key is not None else None
    return producer.send(NEWS_DLQ, key=key, value=value, headers=headers)


def record_seconds(record: Any) -> float | None:
    """A Kafka record's timestamp (produce time) in epoch seconds, or None when the producer set none (-1).

    >>> from types import SimpleNamespace
    >>> record_seconds(SimpleNamespace(timestamp=1_700_000_000_500)), record_seconds(SimpleNamespace(timestamp=-1))
    (1700000000.5, None)
    """
    ts = getattr(record, "timestamp", None)
    return ts / 1000 if ts is not None and ts >= 0 else None


def next_offsets(records: Sequence[Any]) -> dict[TopicPartition, int]:
    """``offset + 1`` of the last of ``records`` per partition (what a commit after them names)."""
    out: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        out[tp] = max(out.get(tp, 0), r.offset + 1)
    return out


def first_offsets(records: Sequence[Any]) -> dict[TopicPartition, int]:
    """The smallest offset of ``records`` per partition (where a rewind seeks)."""
    out: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        out[tp] = min(out.get(tp, r.offset), r.offset)
    return out


class _Rebalance(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's IO thread while the loop thread is blocked in ``poll`` or ``close``."""

    def __init__(self, loop: ConsumeLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked) -> None:
        offsets = self.loop._release(set(revoked), lost=False)
        if offsets:
            try:
                await self.loop.consumer.commit_async(offsets)
                log.info("committed %s on revocation", {tp.partition: o.offset for tp, o in offsets.items()})
            except Exception as exc:  # never raise here: it would surface from poll()
                log.warning("commit on revocation failed (%s); those records will be redelivered", exc)

    async def on_partitions_assigned(self, assigned) -> None:
        self.loop._assign(set(assigned))

    async def on_partitions_lost(self, lost) -> None:
        self.loop._release(set(lost), lost=True)


class ConsumeLoop:
    """Runs ``handler`` over ``config.topics`` (see the module doc). Thread-safe accessors; one loop thread.

    Use :meth:`run` (open, serve, close), or :meth:`open` / :meth:`serve` / :meth:`close` for a caller that must
    act between opening and serving.
    """

    def __init__(self, config: LoopConfig, kafka: KafkaSettings, handler: LoopHandler, stats: LoopStats | None = None):
        self.config = config
        self.kafka = kafka
        self.handler = handler
        self.stats = stats if stats is not None else LoopStats()
        self.consumer: Any = None
        self.producer: TrackedProducer | None = None
        self._lock = threading.Lock()
        self._open: list[Any] = []  # records polled into the open batch, not yet processed
        self._pending: dict[TopicPartition, int] = {}  # processed, acknowledged, not yet committed: next offset
        self._positions: dict[TopicPartition, int] = {}  # next offset after the last processed record
        self._assigned: set[TopicPartition] = set()
        self._seek_on_assign: dict[TopicPartition, int] = {}  # first offset dropped on revocation
        self._to_setup: set[TopicPartition] = set()
        self._unacked: list[Any] | None = None  # processed, its produces not yet acknowledged (loop thread only)

    # ------------------------------------------------------------------ accessors

    def assigned(self) -> set[TopicPartition]:
        """Partitions assigned now (a copy)."""
        with self._lock:
            return set(self._assigned)

    def positions(self) -> dict[TopicPartition, int]:
        """Next offset after the last processed record, per assigned partition (a copy)."""
        with self._lock:
            return dict(self._positions)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> ConsumeLoop:
        """Build the producer and the consumer; subscribe (group) or assign every partition at its end.

        Raises:
            kafka.errors.KafkaError: e.g. ``NoBrokersAvailable``; nothing is left open.
        """
        cfg, kafka = self.config, self.kafka
        client_id = cfg.client_id or kafka.client_id
        try:
            if cfg.produce:
                self.producer = TrackedProducer(
                    make_producer(kafka, client_id=client_id),
                    cfg.produce_timeout_s,
                    factory=lambda: make_producer(kafka, client_id=client_id),
                )
            self.consumer = make_consumer(kafka, cfg.group_id, client_id=client_id, **cfg.consumer_options)
            if cfg.group_id is not None:
                self.consumer.subscribe(list(cfg.topics), listener=_Rebalance(self))
            else:
                tps = [
                    TopicPartition(t, p)
                    for t in cfg.topics
                    for p in sorted(self.consumer.partitions_for_topic(t) or {0})
                ]
                self.consumer.assign(tps)
                self.consumer.seek_to_end(*tps)
                for tp in tps:
                    self.consumer.position(tp)  # resolve "end" now, not at the first fetch
                with self._lock:
                    self._assigned = set(tps)
        except BaseException:
            self.close()
            raise
        return self

    def run(self, stop: threading.Event, max_seconds: float | None = None) -> None:
        """Open, serve until ``stop`` is set (or ``max_seconds`` of wall clock), close.

        With ``reconnect`` a broker that cannot be reached, or an unexpected error, is retried every
        ``error_backoff_s`` until ``stop``.

        Raises:
            kafka.errors.KafkaError: (without ``reconnect``) no broker answers at start-up.
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while not stop.is_set():
            try:
                self.open()
            except Exception as exc:
                if not self.config.reconnect:
                    raise
                log.warning("%s: cannot read %s (%s); retrying", self.config.name, ",".join(self.config.topics), exc)
                stop.wait(self.config.error_backoff_s)
                continue
            try:
                self.serve(stop, deadline)
                return
            except Exception:
                if not self.config.reconnect:
                    raise
                log.exception("%s: consumer failed; reconnecting", self.config.name)
                stop.wait(self.config.error_backoff_s)
            finally:
                self.close()

    def serve(self, stop: threading.Event, deadline: float | None = None) -> None:
        """Turn the loop until ``stop`` is set or the monotonic ``deadline`` passes (see the module doc)."""
        cfg = self.config
        if self.producer is not None:
            self.producer.stop = stop  # a flush to a broker that is gone must not hold up a stop
        self._unacked = None
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            batch: list[Any] = []
            try:
                batch = self._collect(stop)
                if batch:
                    self._finish(batch)
                else:
                    self._settle()  # idle: acknowledge and commit the batch that waits
            except cfg.retry_on as exc:
                self._fail(exc, batch)
                stop.wait(cfg.error_backoff_s)
            if self._unacked is None and self.producer is not None and self.producer.renew_if_broken():
                self.stats.producers_renewed += 1  # a fatal or stuck producer would fail every redo of the batch
            self.handler.on_tick(self)
        try:
            self._settle()  # the last batch (overlap_acks): acknowledged and committed before the loop ends
        except cfg.retry_on as exc:
            self._fail(exc, [])

    def _fail(self, exc: BaseException, batch: list[Any]) -> None:
        """After an error of ``retry_on``: rewind the unacknowledged batch and ``batch``, forget their sends."""
        cfg = self.config
        log.warning(
            "%s: %s: %s; re-reading the batch in %.1f s", cfg.name, type(exc).__name__, exc, cfg.error_backoff_s
        )
        unacked, self._unacked = self._unacked or [], None
        self._rewind([*unacked, *batch])
        if self.producer is not None:
            self.producer.forget()  # the failed attempt's sends are no part of the redo

    def close(self) -> None:
        """Commit what is pending (through the handler), close the consumer (a revocation commits again), then the
        producer."""
        try:
            if self.consumer is not None:
                try:
                    self.handler.commit(self)
                finally:
                    self.consumer.close(autocommit=False)
        except Exception as exc:
            log.warning("%s: closing the consumer: %s", self.config.name, exc)
        finally:
            self.consumer = None
            self._unacked = None  # never acknowledged: read again from the committed offsets
            producer, self.producer = self.producer, None
            if producer is not None:
                try:
                    producer.close(timeout=min(self.config.produce_timeout_s, CLOSE_FLUSH_S))
                except Exception as exc:
                    log.warning("%s: closing the producer: %s", self.config.name, exc)

    # ------------------------------------------------------------------ one turn

    def _collect(self, stop: threading.Event) -> list[Any]:
        """Poll until the batch is full, ``max_batch_wait_ms`` passed since its first record, idle, or stop."""
        cfg, consumer = self.config, self.consumer
        with self._lock:
            self._open = []
        deadline: float | None = None
        while not stop.is_set():
            with self._lock:
                room = cfg.max_batch_items - len(self._open)
            if room <= 0:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            timeout_ms = cfg.poll_ms if deadline is None else max(0, int((deadline - now) * 1000))
            if deadline is None and self._unacked is not None:
                timeout_ms = 0  # a batch waits for its acknowledgements: nothing to collect means acknowledge it now
            if self.handler.can_release():
                timeout_ms = 0  # the handler holds records it may release now: waiting for the broker only stalls
            try:
                polled = consumer.poll(timeout_ms=timeout_ms, max_records=room)
            except KafkaError:
                raise
            except Exception as exc:  # kafka-python reconnects; one failed poll must not end the service
                raise PollFailed(f"poll failed: {type(exc).__name__}: {exc}") from exc
            with self._lock:
                self._assigned = set(consumer.assignment() or ())
                fresh, self._to_setup = self._to_setup, set()
                polled = {tp: recs for tp, recs in polled.items() if tp in self._assigned and tp not in fresh}
            if fresh:
                self._setup(fresh)
            released = self.handler.admit(polled, consumer, room)
            with self._lock:
                self._open.extend(released)
                if self._open and deadline is None:
                    deadline = time.monotonic() + cfg.max_batch_wait_ms / 1000
                idle = not polled and not self._open
            if idle:
                break  # idle: let the caller tick and check stop
        with self._lock:
            batch, self._open = self._open, []
        return batch

    def _setup(self, partitions: set[TopicPartition]) -> None:
        """Let the handler seek newly assigned (paused) partitions, then resume them (kept paused if it raises)."""
        partitions = partitions & set(self.consumer.assignment() or ())
        if not partitions:
            return
        try:
            self.handler.setup(self.consumer, partitions)
        except BaseException:
            with self._lock:
                self._to_setup |= partitions  # still paused: set up again after the next poll
            raise
        self.consumer.resume(*partitions)

    def _finish(self, batch: list[Any]) -> None:
        """Prepare, (``overlap_acks``: acknowledge and commit the previous batch,) process; without
        ``overlap_acks`` acknowledge and commit this one now."""
        self.handler.prepare(batch)
        if self.config.overlap_acks:
            self._settle()
        self.handler.process(batch, self.producer)
        self._unacked = batch
        if not self.config.overlap_acks:
            self._settle()

    def _settle(self) -> None:
        """Acknowledge the processed batch (if one waits), tell the handler, note its next offsets, commit.

        Offsets of partitions no longer assigned (revoked while the batch waited) are left to their new owner.

        Raises:
            ProduceFailed: (``acks="checked"``) a produce of the batch was not acknowledged; the batch still waits,
                for the caller's rewind.
        """
        batch = self._unacked
        if batch is None:
            return
        producer = self.producer
        if producer is not None:
            producer.acknowledge(check=self.config.acks == "checked")
        self._unacked = None
        self.handler.acknowledged()
        offsets = next_offsets(batch)
        committable = self.handler.committable(dict(offsets))
        with self._lock:
            if self.config.group_id is not None:
                self._pending.update({tp: o for tp, o in committable.items() if tp in self._assigned})
            self._positions.update({tp: o for tp, o in offsets.items() if tp in self._assigned})
        self.handler.commit(self)

    def _rewind(self, batch: Sequence[Any]) -> None:
        """Seek back to the first offset of ``batch``, of the open batch and of the held records, per partition.

        Records whose produces were acknowledged already are then read again (at least once).
        """
        with self._lock:
            records = [*batch, *self._open]
            self._open = []
            assigned = set(self._assigned)
        records += self.handler.take_held(None)
        first = first_offsets(records)
        for tp, offset in first.items():
            if tp in assigned:
                self.consumer.seek(tp, offset)
        if first:
            self.stats.redone_batches += 1

    def commit_pending(self) -> bool:
        """Commit the acknowledged offsets of assigned partitions; False when the group refused (kept for later)."""
        with self._lock:
            offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in self._pending.items() if tp in self._assigned}
        if not offsets or self.consumer is None:
            return True
        try:
            self.consumer.commit(offsets, timeout_ms=int(self.config.commit_timeout_s * 1000))
        except KafkaError as exc:  # CommitFailedError, RebalanceInProgressError, KafkaTimeoutError, ...
            self.stats.commit_failures += 1
            log.warning(
                "%s: offset commit failed (%s: %s); kept for the next try", self.config.name, type(exc).__name__, exc
            )
            return False
        with self._lock:
            for tp, meta in offsets.items():
                if self._pending.get(tp) == meta.offset:
                    del self._pending[tp]
        return True

    # ------------------------------------------------------------------ rebalance (IO thread)

    def _release(self, partitions: set[TopicPartition], lost: bool) -> dict[TopicPartition, OffsetAndMetadata]:
        """Drop open and held records of ``partitions``; return their pending offsets to commit (not if ``lost``)."""
        with self._lock:
            dropped = [r for r in self._open if TopicPartition(r.topic, r.partition) in partitions]
            self._open = [r for r in self._open if TopicPartition(r.topic, r.partition) not in partitions]
        dropped += self.handler.take_held(partitions)
        with self._lock:
            for tp, offset in first_offsets(dropped).items():
                self._seek_on_assign[tp] = min(self._seek_on_assign.get(tp, offset), offset)
            offsets = {tp: OffsetAndMetadata(self._pending.pop(tp), "", -1) for tp in partitions if tp in self._pending}
            for tp in partitions:
                self._positions.pop(tp, None)
            self._assigned -= partitions
            self._to_setup -= partitions
        try:
            self.handler.on_revoked(partitions, lost)
        except Exception:  # never raise in a rebalance callback
            log.exception("%s: revocation handler failed", self.config.name)
        if partitions:
            log.info(
                "%s: partitions %s %s",
                self.config.name,
                sorted(tp.partition for tp in partitions),
                "lost" if lost else "revoked",
            )
        return {} if lost else offsets

    def _assign(self, partitions: set[TopicPartition]) -> None:
        with self._lock:
            self._assigned |= partitions
            seeks = {tp: o for tp, o in self._seek_on_assign.items() if tp in partitions}
            self._seek_on_assign.clear()
        for tp, offset in seeks.items():
            try:  # every record of the partition before ``offset`` was processed; the ones from it were not
                self.consumer.seek(tp, offset)
                log.info("partition %d back: re-read from offset %d (dropped on revocation)", tp.partition, offset)
            except Exception as exc:  # never raise in a rebalance callback: the committed offset still holds
                log.warning("cannot seek %s back to %d after reassignment: %s", tp, offset, exc)
        try:
            self.handler.on_assigned(partitions)
        except Exception:
            log.exception("%s: assignment handler failed", self.config.name)
        if self.handler.rebuilds_on_assign and partitions:
            self.consumer.pause(*partitions)
            with self._lock:
                self._to_setup |= partitions
        log.info(
            "%s: assigned %s partitions %s",
            self.config.name,
            ",".join(self.config.topics),
            sorted(tp.partition for tp in partitions),
        )


__all__ = [
    "MAX_DLQ_KEY_BYTES",
    "MAX_DLQ_VALUE_BYTES",
    "ConsumeLoop",
    "LoopConfig",
    "LoopHandler",
    "LoopStats",
    "PollFailed",
    "ProduceFailed",
    "TrackedProducer",
    "check_acks",
    "flush_until_stopped",
    "first_offsets",
    "next_offsets",
    "record_seconds",
    "send_dead_letter",
]
