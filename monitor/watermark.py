"""Event-time watermarks of one aggregator instance, tracked per assigned partition.

Each partition's high mark is the largest ``published_at`` seen on it; its watermark is the high mark minus
the grace period: no event within grace of the partition's progress can fall before it. The instance
watermark is the minimum of the watermarks of the partitions that have delivered data (a partition with no
data yet does not hold it back; when its first record arrives it joins the minimum, which may then go back).

Why per partition: a replay runs thousands of times faster than real time and the consumer reads partitions
unevenly, so one partition may be hours of event time ahead of another. A watermark driven by the fastest
partition would close buckets that slower ones are still filling, and drop their data as late. Every
aggregate key lives on one partition, so the aggregator closes a key's buckets at its own partition's
watermark; the instance watermark is the guarantee across partitions (every bucket ending before it is
closed everywhere) and is what the API and the metrics report.

>>> w = PartitionWatermark(grace=120)
>>> w.observe(0, 1000.0), w.value
(True, 880.0)
>>> w.observe(1, 400.0), w.value           # partition 1 joins: the minimum goes back
(True, 280.0)
>>> w.observe(0, 5000.0), w.value          # partition 0 runs ahead: the instance value is held by partition 1
(True, 280.0)
>>> w.observe(0, 4000.0), w.partition_watermark(0)   # an older event moves nothing
(False, 4880.0)
"""

from __future__ import annotations


class PartitionWatermark:
    """Per-partition high marks (max event time, seconds) and the instance watermark (min - grace).

    Args:
        grace: seconds of event time the watermark trails the slowest partition (>= 0).
    """

    def __init__(self, grace: float) -> None:
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace}")
        self.grace = float(grace)
        self._marks: dict[int, float] = {}
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The instance watermark in epoch seconds, or None while no partition has data."""
        return self._value

    def observe(self, partition: int, t: float) -> bool:
        """Record event time ``t`` (seconds) seen on ``partition``; returns True if the partition's mark rose."""
        old = self._marks.get(partition)
        if old is not None and t <= old:
            return False
        self._marks[partition] = t
        if old is None or self._value is None or old - self.grace <= self._value:
            self._recompute()  # this partition was (or is now) the slowest one: the minimum may move
        return True

    def forget(self, partition: int) -> None:
        """Drop a revoked partition (the instance watermark is recomputed without it)."""
        if self._marks.pop(partition, None) is not None:
            self._recompute()

    def partition_mark(self, partition: int) -> float | None:
        """Max event time seen on ``partition`` (seconds), or None."""
        return self._marks.get(partition)

    def partition_watermark(self, partition: int) -> float | None:
        """``partition_mark - grace``: no event within grace on that partition can fall before it."""
        m = self._marks.get(partition)
        return None if m is None else m - self.grace

    @property
    def marks(self) -> dict[int, float]:
        """Copy of the per-partition high marks."""
        return dict(self._marks)

    def _recompute(self) -> None:
        self._value = min(self._marks.values()) - self.grace if self._marks else None
