"""Per-UTC-day totals of one key's buckets for the console's day lines.

:class:`DayTotals` takes buckets as they come (:meth:`~DayTotals.update`; ``finsentry run`` feeds it the ``all``
key's buckets as the aggregator closes them), keeps each by its start time (a bucket seen again, e.g. closed again
by a replay on reassignment, replaces the earlier copy instead of counting twice), and hands a day out once the
bound it is given has passed the day's end (:meth:`~DayTotals.pop_due`), then forgets it. Memory: the buckets of
the days not yet handed out.

>>> days = DayTotals()
>>> days.update([
...     {"start": "2023-03-09T23:58:00Z", "items": 2, "negative": 1, "score_sum": -0.5},
...     {"start": "2023-03-10T00:00:00Z", "items": 3, "negative": 0, "score_sum": 0.9},
... ])
>>> days.update([{"start": "2023-03-10T00:00:00Z", "items": 4, "negative": 1, "score_sum": 0.4}])  # newer counts
>>> days.pop_due(datetime(2023, 3, 10, 0, 5, tzinfo=UTC))
[('2023-03-09', {'items': 2, 'negative': 1, 'score_sum': -0.5})]
>>> days.pop_due(datetime(2023, 3, 11, tzinfo=UTC))
[('2023-03-10', {'items': 4, 'negative': 1, 'score_sum': 0.4})]
>>> days.update([{"start": "2023-03-10T00:00:00Z", "items": 9, "negative": 9, "score_sum": -9.0}])  # late: ignored
>>> days.pop_due(datetime(2023, 3, 12, tzinfo=UTC))
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

FIELDS = ("items", "negative", "score_sum")
"""Bucket counts summed per day: items, negative items, sum of ``sentiment_score``."""


class DayTotals:
    """Per-day sums of bucket counts (:data:`FIELDS`), handed out once per UTC day."""

    def __init__(self) -> None:
        self._buckets: dict[str, Mapping[str, Any]] = {}
        self._done: set[str] = set()

    def update(self, buckets: Iterable[Mapping[str, Any]]) -> None:
        """Take the buckets held now (dicts with ``start`` as ISO UTC and the :data:`FIELDS`); a bucket's latest
        counts replace its earlier ones; buckets of days already handed out are ignored."""
        for b in buckets:
            if b["start"][:10] not in self._done:
                self._buckets[b["start"]] = b

    def pop_due(self, watermark: datetime) -> list[tuple[str, dict[str, float]]]:
        """``(day, totals)`` of every day whose end (UTC midnight after it) is at or before ``watermark`` (aware),
        oldest first; each day once."""
        days: dict[str, dict[str, float]] = {}
        for start, b in self._buckets.items():
            d = days.setdefault(start[:10], dict.fromkeys(FIELDS, 0))
            for k in FIELDS:
                d[k] += b[k]
        due = [
            (day, days[day])
            for day in sorted(days)
            if datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1) <= watermark
        ]
        self._done.update(day for day, _t in due)
        self._buckets = {k: v for k, v in self._buckets.items() if k[:10] not in self._done}
        return due
