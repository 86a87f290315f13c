"""The replay producer: CSV / JSONL news into ``news.raw``, in event-time order, paced.

Pacing: with ``speedup`` X, item *i* is sent ``(t_i - t_0) / X`` seconds after the start (``t`` = event
time), so a day of news with X = 1440 takes a minute; with ``rate`` R, item *i* is sent ``i / R`` seconds
after the start; with neither, as fast as the producer goes. Key = item id, value = the ``news.raw`` JSON
object; the record timestamp is the produce time (wall clock), the event time travels as ``published_at``.

Library use (the ``finsentry run`` supervisor calls it in a thread)::

    report = replay(["data/stocknet_tweets/monthly"], settings.ingest.kafka, rate=50, stop=stop_event)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from finsentry.ingest.contract import to_json_bytes
from finsentry.ingest.kafka_clients import make_producer
from finsentry.ingest.replay_source import ColumnMap, ReplayItem, load_items, why_nothing
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import NEWS_RAW

log = logging.getLogger(__name__)


SPEEDUP_RANGE = (1e-3, 1e9)
"""Accepted ``speedup`` values: from 1,000 times slower than the original event times to a year of news in
0.03 s (anything faster is the same as no pacing)."""

RATE_RANGE = (1e-3, 1e7)
"""Accepted ``rate`` values, messages per second."""

MAX_WAIT_S = 3600.0
"""Longest single sleep of :func:`send_items` (a long gap is slept in pieces, so no timeout can overflow)."""


class NothingToReplay(ValueError):
    """The files and options yield no item worth sending; the message says why (see ``why_nothing``).

    ``refused`` holds the ``(file:line, reason)`` of the rows refused while reading (see ``LoadedItems``)."""

    def __init__(self, message: str, refused: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.refused = list(refused)


def check_pacing(speedup: float | None = None, rate: float | None = None) -> None:
    """Raise ``ValueError`` unless at most one of ``speedup`` / ``rate`` is given and it is a finite number in
    :data:`SPEEDUP_RANGE` / :data:`RATE_RANGE`; the message names the option and the range.

    >>> check_pacing(speedup=1440), check_pacing(rate=50), check_pacing()
    (None, None, None)
    >>> check_pacing(speedup=float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: speedup must be a finite number from 0.001 to 1e+09, got nan
    """
    if speedup is not None and rate is not None:
        raise ValueError("give either speedup or rate, not both")
    for name, value, (low, high) in (("speedup", speedup, SPEEDUP_RANGE), ("rate", rate, RATE_RANGE)):
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{name} must be a finite number from {low:g} to {high:g}, got {value:g}")


@dataclass
class ReplayReport:
    """What a replay did. rows: rows read. merged_rows: StockNet rows folded into their tweet's item.
    skipped: rows not sent, by reason. items: items to send. sent: acknowledged. failed: not acknowledged.
    elapsed_s: wall seconds of sending. first_event, last_event: event-time range sent (UTC) or None.
    stopped: True if the stop event ended it early. refused: ``(file:line, reason)`` of the rows refused
    while reading (the scorer would dead-letter them; also counted in ``skipped``)."""

    rows: int = 0
    merged_rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    items: int = 0
    sent: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    first_event: datetime | None = None
    last_event: datetime | None = None
    stopped: bool = False
    refused: list[tuple[str, str]] = field(default_factory=list)


def send_offsets(items: Sequence[ReplayItem], speedup: float | None = None, rate: float | None = None) -> list[float]:
    """Seconds after the start at which each item is due (see the module doc); all 0 without pacing.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2014, 1, 1, tzinfo=UTC)
    >>> items = [ReplayItem(t0 + timedelta(minutes=m), {}) for m in (0, 1, 3)]
    >>> send_offsets(items, speedup=60), send_offsets(items, rate=2)
    ([0.0, 1.0, 3.0], [0.0, 0.5, 1.0])

    Raises:
        ValueError: both ``speedup`` and ``rate`` given, or one of them is out of range (:func:`check_pacing`).
    """
    check_pacing(speedup, rate)
    if not items:
        return []
    if speedup is not None:
        t0 = items[0].event_time
        return [(i.event_time - t0).total_seconds() / speedup for i in items]
    if rate is not None:
        return [n / rate for n in range(len(items))]
    return [0.0] * len(items)


def send_items(
    items: Sequence[ReplayItem],
    producer,
    *,
    topic: str = NEWS_RAW,
    speedup: float | None = None,
    rate: float | None = None,
    stop: threading.Event | None = None,
    progress: bool = True,
    flush_timeout_s: float = 60.0,
) -> ReplayReport:
    """Send ``items`` (already in event-time order) to ``topic`` with ``producer``, paced; flush at the end.

    Stops early (``stopped=True``) when ``stop`` is set; what was sent by then is flushed.
    """
    report = ReplayReport(items=len(items))
    offsets = send_offsets(items, speedup, rate)
    stop = stop or threading.Event()
    failures: list[BaseException] = []
    start = time.monotonic()
    with tqdm(total=len(items), disable=not progress, unit="msg", desc=f"replay -> {topic}") as bar:
        for item, due in zip(items, offsets, strict=True):
            wait = start + due - time.monotonic()
            while wait > 0 and not stop.is_set():
                stop.wait(min(wait, MAX_WAIT_S))
                wait = start + due - time.monotonic()
            if stop.is_set():
                report.stopped = True
                break
            future = producer.send(topic, key=item.id.encode("utf-8"), value=to_json_bytes(item.value))
            future.add_errback(failures.append)
            report.sent += 1
            report.first_event = report.first_event or item.event_time
            report.last_event = item.event_time
            bar.update(1)
        producer.flush(timeout=flush_timeout_s)
    report.failed = len(failures)
    report.sent -= report.failed
    report.elapsed_s = time.monotonic() - start
    if failures:
        log.error("%d produces failed; first: %s", len(failures), failures[0])
    return report


def replay(
    paths: Sequence[str | Path],
    kafka: KafkaSettings,
    *,
    columns: ColumnMap | None = None,
    overrides: Sequence[str] = (),
    stocknet: bool | None = None,
    speedup: float | None = None,
    rate: float | None = None,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    limit_rows: int | None = None,
    source: str | None = None,
    assume_utc: bool = False,
    topic: str = NEWS_RAW,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> ReplayReport:
    """Read ``paths`` (:func:`~finsentry.ingest.replay_source.load_items`) and send them (:func:`send_items`).

    ``columns`` / ``overrides`` / ``stocknet`` / ``time_from`` / ``time_to`` / ``limit_rows`` / ``source`` /
    ``assume_utc`` go to ``load_items``; ``speedup`` / ``rate`` / ``stop`` / ``progress`` to ``send_items``.
    Returns a :class:`ReplayReport`.

    Rows the scorer would dead-letter for a reason visible in the file (a bad JSONL line, a bad id, a field of
    the wrong type) are not sent: they are in ``report.refused`` with their ``file:line`` (and counted in
    ``report.skipped``); the other rows are sent.

    Raises:
        FileNotFoundError, ValueError: unreadable input or bad options (the message says which).
        NothingToReplay: no row yields an item with a text (a wrong column mapping, a time range that matches
            nothing, every row refused); raised before connecting to Kafka.
        kafka.errors.NoBrokersAvailable: no broker at ``kafka.bootstrap_servers``.
    """
    send_offsets([], speedup, rate)  # validate pacing before reading anything
    loaded = load_items(
        paths,
        columns,
        overrides=overrides,
        stocknet=stocknet,
        time_from=time_from,
        time_to=time_to,
        limit_rows=limit_rows,
        source=source,
        assume_utc=assume_utc,
    )
    nothing = why_nothing(loaded, time_from, time_to, limit_rows)
    if nothing is not None:
        raise NothingToReplay(f"nothing to replay from {', '.join(map(str, paths))}: {nothing}", loaded.refused)
    log.info(
        "replaying %d items from %d rows (%d merged, skipped %s)",
        len(loaded.items),
        loaded.rows,
        loaded.merged_rows,
        dict(loaded.skipped),
    )
    producer = make_producer(kafka, client_id=f"{kafka.client_id}-replay")
    try:
        report = send_items(
            loaded.items, producer, topic=topic, speedup=speedup, rate=rate, stop=stop, progress=progress
        )
    finally:
        producer.close(timeout=10)
    report.rows, report.merged_rows, report.skipped = loaded.rows, loaded.merged_rows, loaded.skipped
    report.refused = loaded.refused
    return report
