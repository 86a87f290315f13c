"""``finsentry report``'s trend CSVs around a stretch the aggregator closed at once: no rows made up in it."""

from __future__ import annotations

import pandas as pd
from test_monitor_report import scored, stream

from finsentry.monitor.report import backfill, write_report
from finsentry.monitor.settings import MonitorSettings


def test_views_longer_than_the_detector_add_no_rows_in_a_stretch_closed_at_once(tmp_path):
    # the detector's one scale is 5 minutes, the longest view an hour (as the stocknet preset's 1-day scale and
    # 7-day view): a 40-minute stretch without stories is closed at once, and the trend CSV must not fill it
    s = MonitorSettings(
        bucket_seconds=60,
        windows_seconds=[300, 3600],
        spike={"window_seconds": 300, "baseline_min_items": 10},
        lookback_seconds=7200,
        dedup_horizon_seconds=7200,
    )
    later = [scored(1000 + i, 100 + i / 2, False, ["ZZ"]) for i in range(20)]  # minutes 100-109, after 40 quiet
    result = backfill([*stream(), *later], s)
    closed = sorted(c.start for c in result.closed if c.key == "all")
    write_report(result, tmp_path, name="gap")
    trend = pd.read_csv(tmp_path / "gap" / "trends" / "all.csv")
    starts = pd.to_datetime(trend["start"], utc=True).map(lambda t: t.timestamp()).tolist()
    assert starts == closed, sorted(set(starts) - set(closed))[:5]  # one row per closed bucket, none made up
    assert trend["window_items"].notna().all() and trend["spike_active"].notna().all()
    # right after the stretch the hour's view still counts the stories of the hour before it (time-based)
    first_after = trend[pd.to_datetime(trend["start"], utc=True) >= pd.Timestamp("2015-08-24T14:40:00Z")].iloc[0]
    assert first_after["items_5m"] == 2 and first_after["items_1h"] == 2 + 4 * 19, first_after  # minutes 41-59
