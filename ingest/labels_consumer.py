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

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError

from finsentry.ingest.consume_loop import (
    ConsumeLoop,
    LoopConfig,
    LoopHandler,
    LoopStats,
    TrackedProducer,
    send_dead_letter,
)
from finsentry.ingest.contract import decode_json_object
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import NEWS_LABELS
from finsentry.model.label_store import InvalidLabel, LabelRecord, LabelStore, parse_label

log = logging.getLogger(__name__)

LABELS_GROUP_ID = "finsentry-labels"
"""Consumer group of the labels consumers."""

RETRY_PAUSE_S = 1.0
"""Seconds to wait before re-reading a batch whose store write or dead-letter produce failed."""


@dataclass
class LabelsStats(LoopStats):
    """Counts of one run: ``consumed``, ``stored`` records, ``batches``, ``retries``, ``dead_letters`` by reason
    (and the loop's ``commit_failures``, ``redone_batches``)."""

    consumed: int = 0
    stored: int = 0
    batches: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    @property
    def retries(self) -> int:
        """Batches re-read after their store write or dead-letter produce failed."""
        return self.redone_batches


def decode_label(value: bytes | None) -> LabelRecord:
    """Parse and validate one ``news.labels`` value.

    Raises:
        InvalidLabel: with ``.reason`` set to the :class:`~finsentry.ingest.dlq.DlqReason` to file it under: the
            record-level reasons of :func:`~finsentry.ingest.contract.decode_json_object` (``empty_message``,
            ``invalid_utf8``, ``invalid_json`` (NaN, a number too large, nesting too deep included),
            ``duplicate_field``, ``not_an_object``), else ``invalid_label``.

    >>> try:
    ...     decode_label(b"[" * 100_000)
    ... except InvalidLabel as exc:
    ...     print(exc.reason.value)
    invalid_json
    """
    try:
        obj = decode_json_object(value)
    except InvalidRecord as exc:
        raise _invalid(exc.reason, exc.message) from exc
    try:
        return parse_label(obj)
    except InvalidLabel as exc:
        raise _invalid(DlqReason.INVALID_LABEL, str(exc)) from exc


def _invalid(reason: DlqReason, message: str) -> InvalidLabel:
    err = InvalidLabel(message)
    err.reason = reason  # type: ignore[attr-defined]
    return err


class LabelsConsumer(LoopHandler):
    """Consumes ``news.labels`` in consumer group ``group_id`` into ``store`` (a
    :class:`~finsentry.ingest.consume_loop.ConsumeLoop` handler: store and dead letters acknowledged, then commit;
    a failed store write or produce rewinds the batch).

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
        config = LoopConfig(
            name="labels",
            topics=(NEWS_LABELS,),
            group_id=self.group_id,
            client_id=f"{self.kafka.client_id}-labels",
            poll_ms=self.poll_ms,
            max_batch_items=self.max_records,
            error_backoff_s=RETRY_PAUSE_S,
            retry_on=(KafkaError, OSError, ValueError),
        )
        log.info("labels consumer in group %r -> %s", self.group_id, self.store.root)
        ConsumeLoop(config, self.kafka, self, stats=self.stats).run(stop or threading.Event(), max_seconds)
        log.info(
            "labels consumer stopped: consumed %d, stored %d, dead letters %s",
            self.stats.consumed,
            self.stats.stored,
            dict(self.stats.dead_letters),
        )
        return self.stats

    def process(self, batch: list[Any], producer: TrackedProducer | None) -> None:
        """Dead-letter the bad labels, wait for their acknowledgements, then append the good ones to the store.

        Raises:
            ProduceFailed: a dead letter was not acknowledged. OSError, ValueError: the store write failed.
        """
        assert producer is not None
        good: list[LabelRecord] = []
        sources: list[str] = []
        reasons: list[str] = []
        for record in batch:
            try:
                good.append(decode_label(record.value))
                sources.append(f"{record.topic}:{record.partition}:{record.offset}")
            except InvalidLabel as exc:
                reason: DlqReason = exc.reason  # type: ignore[attr-defined]
                send_dead_letter(producer, record, reason, str(exc))
                reasons.append(reason.value)
        producer.acknowledge()
        self.store.append(good, sources)
        self.stats.batches += 1
        self.stats.consumed += len(batch)
        self.stats.stored += len(good)
        self.stats.dead_letters.update(reasons)


__all__ = ["LABELS_GROUP_ID", "LabelsConsumer", "LabelsStats", "decode_label"]
