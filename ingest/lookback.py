"""Where a consumer that rebuilds its state by re-reading starts a newly assigned partition: the first record
produced within the last ``lookback_seconds`` (wall clock, ``offsets_for_times``).

Used by the aggregator (``monitor.lookback_seconds``; it also knows the group's committed offset, up to which it
replays silently) and by the relay's spike cache (``alerts.spikes_lookback_seconds``), both from
:meth:`~finsentry.ingest.consume_loop.LoopHandler.setup`, while the loop keeps the partitions paused.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def lookback_start(answer: Any, target_ms: int, committed: int | None) -> int | None:
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


def seek_to_lookback(
    consumer: Any, partitions: set[Any], lookback_seconds: float, with_committed: bool
) -> dict[Any, tuple[int, int | None]]:
    """Seek each of ``partitions`` to its :func:`lookback_start` (the end when there is none).

    Args:
        consumer: a kafka-python consumer the partitions are assigned to. lookback_seconds: wall-clock seconds.
        with_committed: fall back to the group's committed offset (else straight to the end).

    Returns:
        partition -> (start offset, committed offset or None), in partition order.

    Raises:
        kafka.errors.KafkaError: reading the committed offset or the end failed (the caller's loop retries);
            a failed ``offsets_for_times`` is logged and the partitions start at the fallback instead.
    """
    target_ms = int((time.time() - lookback_seconds) * 1000)
    try:
        answers = consumer.offsets_for_times({tp: target_ms for tp in partitions})
    except Exception as exc:
        log.warning("offsets_for_times failed (%s); starting %s at the committed offsets or the end", exc, partitions)
        answers = {}
    out: dict[Any, tuple[int, int | None]] = {}
    for tp in sorted(partitions):
        committed = consumer.committed(tp) if with_committed else None
        start = lookback_start(answers.get(tp), target_ms, committed)
        if start is None:
            consumer.seek_to_end(tp)
            start = consumer.position(tp)  # resolve the end now, not at the next fetch (records may arrive before)
        else:
            consumer.seek(tp, start)
        out[tp] = (start, committed)
    return out
