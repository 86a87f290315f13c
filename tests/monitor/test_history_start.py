"""``history_start`` of ``/api/keys/<key>/buckets``: from when the instance's bucket histories are complete, so the
dashboard can mark the rolling windows that start before it as partial (issue 13, item 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.settings import MonitorSettings

T0 = datetime(2015, 8, 24, 13, 0, tzinfo=UTC)


def _feed(agg: Aggregator, key: str, minutes: range, start: int = 0) -> None:
    for n, minute in enumerate(minutes):
        agg.process(
            KeyedItem(
                id=f"{key}-{start + n}",
                key=key,
                published_at=T0 + timedelta(minutes=minute, seconds=10),
                sentiment="neutral",
                sentiment_score=0.1,
                text=f"headline {key} {start + n}",
            )
        )


def test_history_starts_at_the_first_bucket_of_all_until_buckets_expire() -> None:
    # 1-minute buckets, a 5-minute window and spike scale: buckets older than 5 minutes are dropped
    agg = Aggregator(MonitorSettings(bucket_seconds=60, windows_seconds=[300], spike={"window_seconds": 300}))
    state = MonitorState(agg)
    _feed(agg, "all", range(3, 6))
    _feed(agg, "ticker:LATE", range(5, 6))
    # nothing expired yet: the first bucket of `all`, for every key (a ticker first seen later has a complete
    # history from there too: the monitor saw that it had no news)
    assert state.buckets("all")["history_start"] == "2015-08-24T13:03:00Z"
    assert state.buckets("ticker:LATE")["history_start"] == "2015-08-24T13:03:00Z"
    _feed(agg, "all", range(6, 30), start=3)
    # minute 29 holds the latest event; with the 2-minute grace, buckets before minute 27 are closed and
    # those more than 5 minutes before the first open one (minute 27) are dropped: history from minute 22
    b = state.buckets("all")
    assert b["buckets"][0]["start"] == "2015-08-24T13:22:00Z"
    assert b["history_start"] == "2015-08-24T13:22:00Z"


def test_history_start_survives_a_gap_at_the_retention_horizon() -> None:
    """With no news at all just inside the retention, the oldest bucket held is younger than the horizon; the
    history is still complete from the horizon (the monitor was running and saw nothing)."""
    s = MonitorSettings(bucket_seconds=60, windows_seconds=[300], spike={"window_seconds": 300}, key_idle_seconds=3600)
    agg = Aggregator(s)
    state = MonitorState(agg)
    _feed(agg, "all", range(0, 10))
    _feed(agg, "all", range(25, 31), start=10)  # a 15-minute gap (the key is kept: idle limit 1 h)
    b = state.buckets("all")
    assert b["buckets"][0]["start"] == "2015-08-24T13:25:00Z"
    assert b["history_start"] == "2015-08-24T13:23:00Z"  # first open bucket 13:28 (latest 13:30 - 2 min grace)


def test_an_instance_without_all_reads_the_key_itself() -> None:
    agg = Aggregator(MonitorSettings(bucket_seconds=60, windows_seconds=[300], spike={"window_seconds": 300}))
    _feed(agg, "ticker:ONLY", range(4, 6))
    assert MonitorState(agg).buckets("ticker:ONLY")["history_start"] == "2015-08-24T13:04:00Z"
