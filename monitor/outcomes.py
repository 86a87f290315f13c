"""What a live ``sentiment.keyed`` record's outcome adds to the aggregator's metrics and log.

The aggregator service (:mod:`finsentry.monitor.service`) calls :meth:`OutcomeCounter.count` for each record of
a partition that is live, never for one replayed to rebuild state (its earlier owner counted it). Outcomes
(:class:`~finsentry.monitor.aggregator.Outcome`): accepted (``finsentry_aggregated_messages_total``, per topic
and sentiment ``finsentry_items_total``), late (``finsentry_late_events_total{key}``, tickers as ``ticker:*``,
and a warning), future (``finsentry_aggregator_rejected_messages_total{reason=future_event_time}`` and a
warning), duplicate (``finsentry_duplicate_messages_total``); keys evicted on the way add to
``finsentry_aggregator_evicted_keys_total``.
"""

from __future__ import annotations

import logging
from typing import Any

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator, Outcome
from finsentry.monitor.metrics import AggregatorMetrics
from finsentry.monitor.spike_publisher import fmt_figure

log = logging.getLogger("finsentry.monitor.service")  # the service's log, where operators look for late records

FUTURE_EVENT_TIME = "future_event_time"
"""``reason`` of ``finsentry_aggregator_rejected_messages_total`` for records dated too far ahead of the clock."""


class OutcomeCounter:
    """Counts and logs live outcomes on ``metrics``; ``max_future_seconds`` (``monitor.max_future_seconds``, s)
    is named in the warning about a record dated too far ahead."""

    def __init__(self, metrics: AggregatorMetrics, aggregator: Aggregator, max_future_seconds: int) -> None:
        self.metrics = metrics
        self.aggregator = aggregator
        self.max_future_seconds = max_future_seconds

    def count(self, rec: Any, partition: int, item: KeyedItem, outcome: Outcome, evicted_before: int) -> None:
        """Count the ``outcome`` of ``item`` (from record ``rec`` of ``partition``); ``evicted_before``: the
        aggregator's ``evicted_keys`` before it processed the item."""
        mt = self.metrics
        if self.aggregator.evicted_keys > evicted_before:
            mt.evicted_keys.inc(self.aggregator.evicted_keys - evicted_before)
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
                fmt_figure(self.aggregator.watermark.partition_watermark(partition)),
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
                self.max_future_seconds,
            )
        else:
            mt.duplicates.inc()
