"""The labels consumer: ``news.labels`` -> validated labels in the label store; bad ones -> ``news.dlq``.

Value of a ``news.labels`` record: JSON ``{id, text, topic?, sentiment?, labeler, labeled_at}`` (see
:mod:`finsentry.model.label_store` for the rules). A value that is not UTF-8 JSON goes to ``news.dlq`` with
reason ``invalid_utf8`` / ``invalid_json``; one that parses but fails validation (unknown topic, no label,
missing field, no time zone, ...) with ``invalid_label``; the ``message`` header says exactly what.

At least once: each polled batch is appended to the store (one Parquet file), its dead letters are produced
and acknowledged, and only then are the offsets committed. If the store or the produce fails, nothing is
committed; the consumer seeks back to the batch start and retries after a pause. A redelivered record is
stored again, with the same ``news.labels:<partition>:<offset>`` source; conflict resolution counts exact
repeats once, so this changes no training label. A bad record never stops the loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from finsentry.ingest.contract import dlq_headers
from finsentry.ingest.dlq import DlqReason
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import NEWS_DLQ, NEWS_LABELS
from finsentry.model.label_store import InvalidLabel, LabelRecord, LabelStore, parse_label

log = logging.getLogger(__name__)

LABELS_GROUP_ID = "finsentry-labels"
"""Consumer group of the labels consumers."""

RETRY_PAUSE_S = 1.0
"""Seconds to wait before re-reading a batch whose store write or dead-letter produce failed."""


@dataclass
class LabelsStats:
    """Counts of one run: ``consumed``, ``stored`` records, ``batches``, ``retries``, ``dead_letters`` by reason."""

    consumed: int = 0
    stored: int = 0
    batches: int = 0
    retries: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)


def decode_label(value: bytes | None) -> LabelRecord:
    """Parse and validate one ``news.labels`` value.

    Raises:
        InvalidLabel: with ``.reason`` set to the :class:`~finsentry.ingest.dlq.DlqReason` to file it under.
    """
    try:
        text = (value or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(DlqReason.INVALID_UTF8, f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(DlqReason.INVALID_JSON, f"not JSON ({exc.msg} at char {exc.pos})") from exc
    try:
        return parse_label(obj)
    except InvalidLabel as exc:
        raise _invalid(DlqReason.INVALID_LABEL, str(exc)) from exc


def _invalid(reason: DlqReason, message: str) -> InvalidLabel:
    err = InvalidLabel(message)
    err.reason = reason  # type: ignore[attr-defined]
    return err


class LabelsConsumer:
    """Consumes ``news.labels`` in consumer group ``group_id`` into ``store``.

    Args:
        store: the label store to append to. kafka: connection settings. group_id: consumer group.
        max_records: records per poll (one store file per batch). poll_ms: ms one poll waits.
    """

    def __init__(
        self,
        store: LabelStore,
        kafka: KafkaSettings,
        group_id: str = LABELS_GROUP_ID,
        max_records: int = 500,
        poll_ms: int = 500,
    ) -> None:
        self.store = store
        self.kafka = kafka
        self.group_id = group_id
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.stats = LabelsStats()

    def run(self, stop: threading.Event | None = None, max_seconds: float | None = None) -> LabelsStats:
        """Consume until ``stop`` is set or ``max_seconds`` (wall clock) have passed; returns the counts.

        Raises:
            kafka.errors.NoBrokersAvailable: no broker answers at start-up.
        """
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        consumer = make_consumer(self.kafka, self.group_id, NEWS_LABELS, client_id=f"{self.kafka.client_id}-labels")
        producer = make_producer(self.kafka, client_id=f"{self.kafka.client_id}-labels")
        log.info("labels consumer in group %r -> %s", self.group_id, self.store.root)
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                polled = consumer.poll(timeout_ms=self.poll_ms, max_records=self.max_records)
                records = [r for recs in polled.values() for r in recs]
                if not records:
                    continue
                try:
                    self._process(records, producer)
                except (KafkaError, OSError, ValueError) as exc:
                    self.stats.retries += 1
                    log.warning("batch of %d labels not stored (%s); retrying", len(records), exc)
                    self._seek_back(consumer, records)
                    stop.wait(RETRY_PAUSE_S)
                    continue
                self._commit(consumer, records)
        finally:
            consumer.close(autocommit=False)
            producer.close(timeout=5)
        log.info(
            "labels consumer stopped: consumed %d, stored %d, dead letters %s",
            self.stats.consumed,
            self.stats.stored,
            dict(self.stats.dead_letters),
        )
        return self.stats

    def _process(self, records: list[Any], producer) -> None:
        good: list[LabelRecord] = []
        sources: list[str] = []
        futures = []
        reasons: list[str] = []
        for record in records:
            try:
                good.append(decode_label(record.value))
                sources.append(f"{record.topic}:{record.partition}:{record.offset}")
            except InvalidLabel as exc:
                reason: DlqReason = exc.reason  # type: ignore[attr-defined]
                headers = dlq_headers(reason, str(exc), record.topic, record.partition, record.offset)
                futures.append(producer.send(NEWS_DLQ, key=record.key, value=record.value or b"", headers=headers))
                reasons.append(reason.value)
        producer.flush(timeout=30)
        failed = [f for f in futures if not f.succeeded()]
        if failed:
            raise KafkaError(f"{len(failed)} dead letters not acknowledged (first: {failed[0].exception})")
        self.store.append(good, sources)
        self.stats.batches += 1
        self.stats.consumed += len(records)
        self.stats.stored += len(good)
        self.stats.dead_letters.update(reasons)

    def _commit(self, consumer, records: list[Any]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in offsets or offsets[tp].offset < r.offset + 1:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        try:
            consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance: the records come again, and count once (see module doc)
            log.warning("offset commit failed (%s); those labels may be redelivered", exc)

    @staticmethod
    def _seek_back(consumer, records: list[Any]) -> None:
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        assigned = set(consumer.assignment() or ())
        for tp, offset in first.items():
            if tp in assigned:
                consumer.seek(tp, offset)


__all__ = ["LABELS_GROUP_ID", "LabelsConsumer", "LabelsStats", "decode_label"]
