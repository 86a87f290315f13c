"""The spike record (issue 13, item 1): every event of a spike carries its id and its start and peak figures, the
same after a rebuild; the JSON shape round-trips; the console quotes the record's figures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.settings import MonitorSettings
from finsentry.monitor.spikes import SpikeEvent, SpikeRecordError
from finsentry.run_console import figures_text, spike_lines

T0 = datetime(2015, 8, 24, 10, 0, tzinfo=UTC)
KEY = "topic:earnings"
QUIET_BUCKETS = 20
SPIKE = [7, 9, 5, 2]  # negatives of 10 stories in the buckets after the quiet ones: start, peak, lower, end


def _settings() -> MonitorSettings:
    return MonitorSettings(
        bucket_seconds=60,
        windows_seconds=[300, 3600],
        grace_seconds=0,
        spike={"window_seconds": 60, "baseline_half_life_seconds": 600, "baseline_min_items": 20},
        lookback_seconds=7200,
        dedup_horizon_seconds=7200,
    )


def _stream() -> list[KeyedItem]:
    items = []
    negatives = [2] * QUIET_BUCKETS + SPIKE + [0]
    for b, neg in enumerate(negatives):
        n = 10 if b < len(negatives) - 1 else 1  # the last bucket only closes the one before it
        for i in range(n):
            sentiment = "negative" if i < neg else "neutral"
            t = T0 + timedelta(seconds=60 * b + 5 * i)
            words = " ".join(f"w{(b * 131 + i * 17 + j * 7) % 9973}" for j in range(8))
            items.append(
                KeyedItem(
                    id=f"b{b}i{i}",
                    key=KEY,
                    published_at=t,
                    sentiment=sentiment,
                    sentiment_score=-0.8 if sentiment == "negative" else 0.1,
                    text=f"story {b} {i} {words}",
                )
            )
    return items


def _events() -> list[SpikeEvent]:
    events: list[SpikeEvent] = []
    agg = Aggregator(_settings(), on_spike=events.append)
    for it in _stream():
        agg.process(it)
    return events


def test_every_event_of_a_spike_carries_its_id_start_and_peak():
    events = _events()
    kinds = [e.event for e in events]
    assert kinds == ["started", "updated", "updated", "ended"], [(e.event, e.z, e.negative) for e in events]
    started, peak, lower, ended = events
    start_end = (T0 + timedelta(minutes=QUIET_BUCKETS + 1)).timestamp()
    assert started.bucket_end == start_end
    sid = f"{KEY}@2015-08-24T10:21:00Z"
    assert {e.spike_id for e in events} == {sid}
    # the start is the started event's own figures, carried unchanged by every later event
    assert started.start == started.figures() == started.peak
    assert all(e.start == started.start for e in events)
    assert (started.start.negative, started.start.items) == (7, 10)
    # the peak moves to the bucket with 9 of 10 negative (higher z) and stays there while z falls
    assert peak.z > started.z, [(e.event, e.z) for e in events]
    assert peak.peak == peak.figures() and (peak.peak.negative, peak.peak.items) == (9, 10)
    assert lower.z < peak.z and lower.peak == peak.peak and ended.peak == peak.peak
    assert (ended.negative, ended.z < 1.5) == (2, True), (ended.negative, ended.z)


def test_a_rebuild_gives_the_same_records():
    first = [e.to_dict() for e in _events()]
    again = [e.to_dict() for e in _events()]
    assert first == again


def test_the_json_record_round_trips_and_bad_records_say_which_field():
    for e in _events():
        body = json.loads(json.dumps(e.to_dict()))
        assert body["start"]["bucket_end"] == "2015-08-24T10:21:00Z"
        assert SpikeEvent.from_dict(body) == e
    good = _events()[0].to_dict()
    with pytest.raises(SpikeRecordError, match="event must be one of"):
        SpikeEvent.from_dict(good | {"event": "begun"})
    with pytest.raises(SpikeRecordError, match="start: items must be an integer"):
        SpikeEvent.from_dict(good | {"start": good["start"] | {"items": "ten"}})
    with pytest.raises(SpikeRecordError, match="bucket_end must be an ISO-8601 time with a zone"):
        SpikeEvent.from_dict(good | {"bucket_end": "2015-08-24T10:21:00"})
    with pytest.raises(SpikeRecordError, match="a spike event must be a JSON object"):
        SpikeEvent.from_dict([good])


def test_the_console_quotes_the_record():
    started, _peak, _lower, ended = (e.to_dict() for e in _events())
    line = spike_lines(started)[0]
    assert line.endswith(figures_text(started["start"])), line
    assert "z=" + format(started["start"]["z"], ".1f") in line
    end_line = spike_lines(ended)[0]
    assert f"started 2015-08-24 10:21 UTC {figures_text(ended['start'])}" in end_line, end_line
    assert f"; peak {figures_text(ended['peak'], baseline=False)}; now z={ended['z']:.1f}" in end_line, end_line


def test_the_report_summary_quotes_the_record():
    from finsentry.monitor.report import spike_table

    events = _events()
    ended = events[-1]
    table = spike_table(events)
    assert len(table) == 1, table
    row = table.iloc[0]
    assert row["spike_id"] == ended.spike_id
    got = (row["start_z"], row["start_share"], row["start_negative"], row["start_items"])
    assert got == (ended.start.z, ended.start.share, ended.start.negative, ended.start.items), got
    got = (row["peak_z"], row["peak_share"], row["peak_negative"], row["items"])
    assert got == (ended.peak.z, ended.peak.share, ended.peak.negative, ended.peak.items), got
    assert row["buckets"] == 3 and row["end"].timestamp() == ended.bucket_end


def test_the_gauges_carry_the_spike_id_and_its_start_and_peak_figures():
    from finsentry.monitor.metrics import AggregatorMetrics
    from finsentry.monitor.queries import Snapshot

    started, peak, _lower, _ended = _events()
    open_spikes: list[SpikeEvent] = []
    metrics = AggregatorMetrics(
        lambda: Snapshot(0.0), lambda: None, lambda: 1, 50, {}, active_spikes=lambda: open_spikes
    )

    def value(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"key": KEY, "spike_id": started.spike_id})

    assert value("finsentry_spike_start_zscore") is None, "no series without an open spike"
    open_spikes.append(peak)
    got = {
        n: value(f"finsentry_spike_{n}")
        for n in ("start_zscore", "start_negative_ratio", "start_items", "start_negative_items", "start_baseline_ratio")
    }
    s = peak.start
    assert got == {
        "start_zscore": s.z,
        "start_negative_ratio": s.share,
        "start_items": 10.0,
        "start_negative_items": 7.0,
        "start_baseline_ratio": s.baseline_mean,
    }, got
    assert (value("finsentry_spike_peak_zscore"), value("finsentry_spike_peak_negative_items")) == (peak.z, 9.0)
