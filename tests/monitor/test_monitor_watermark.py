"""Per-partition watermark: max event time per partition, instance watermark = min over partitions with data - grace."""

from __future__ import annotations

import pytest

from finsentry.monitor.watermark import PartitionWatermark


def test_min_over_partitions_with_data_minus_grace():
    w = PartitionWatermark(grace=120)
    assert w.value is None
    assert w.observe(0, 1000.0) is True and w.value == 880.0
    assert w.observe(0, 900.0) is False and w.partition_mark(0) == 1000.0  # older event: mark unchanged
    assert w.observe(1, 400.0) is True and w.value == 280.0  # a new partition joins the minimum
    assert w.observe(0, 5000.0) is True and w.value == 280.0  # the fast partition does not move it
    assert w.observe(1, 700.0) is True and w.value == 580.0
    assert w.partition_watermark(0) == 4880.0 and w.partition_watermark(1) == 580.0
    w.forget(1)
    assert w.value == 4880.0 and w.marks == {0: 5000.0}  # revoked: only partition 0 remains
    w.forget(7)
    assert w.value == 4880.0


def test_negative_grace_is_refused():
    with pytest.raises(ValueError, match="grace"):
        PartitionWatermark(-1)
