"""The spike detector's settings group (``monitor.spike``): taken by the detector as it is, validated once, the
baseline clamp a setting of its own, old flat keys refused by name, presets as named constructors, and the dedup
horizon apart from the wall-clock lookback."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor import settings as monitor_settings
from finsentry.monitor.aggregator import Aggregator, Outcome
from finsentry.monitor.ewm import EWMeanVar
from finsentry.monitor.multiscale import ScaleChart
from finsentry.monitor.settings import RENAMED_KEYS, MonitorSettings, preset
from finsentry.monitor.spike_settings import SpikeSettings
from finsentry.monitor.spikes import share_std

HOUR = 3600.0
DAY = 86_400


def test_the_detector_takes_the_group_itself():
    s = MonitorSettings(spike={"scales_seconds": [86_400, 3600], "start_z": 3.5})
    agg = Aggregator(s)
    assert agg.params is s.spike
    assert s.spike.scales == (3600, 86_400) and agg.scale_buckets == [60, 1440]


def test_the_thresholds_are_checked_once_in_the_group_naming_its_keys():
    with pytest.raises(ValidationError, match="end_z=3.0 must be below start_z=3.0") as err:
        MonitorSettings(spike={"start_z": 3.0, "end_z": 3.0})
    assert [e["loc"] for e in err.value.errors()] == [("spike",)]
    with pytest.raises(ValidationError, match=r"spike\.scales_seconds \[90\] must be positive multiples"):
        MonitorSettings(spike={"scales_seconds": [3600, 90]})


def _learnt_share_mean(**spike: float) -> float:
    """The share baseline of a 1-hour scale after ten windows of 4 negative in 20, then one of 20 in 20."""
    chart = ScaleChart(3600, SpikeSettings(scales_seconds=[3600], **spike))
    for i in range(10):
        chart.learn(HOUR * (i + 1), 20, 4)
    chart.learn(HOUR * 11, 20, 20)
    return chart.share.mean


def test_the_baseline_clamp_is_its_own_setting_not_the_start_threshold():
    hl = SpikeSettings().baseline_half_life_seconds
    replica = EWMeanVar(hl)
    for i in range(10):
        replica.update(0.2, HOUR * (i + 1), w=20)
    cap = replica.mean + 3.0 * share_std(replica, 20, 0.05)  # 0.2 + 3 * sqrt(0.2 * 0.8 / 20) = 0.468
    assert cap == pytest.approx(0.2 + 3 * math.sqrt(0.16 / 20))
    replica.update(cap, HOUR * 11, w=20)
    assert _learnt_share_mean() == pytest.approx(replica.mean, rel=1e-12)
    # a higher start threshold leaves what the baselines learn alone; a lower clamp learns less of the surge
    assert _learnt_share_mean(start_z=5.0) == _learnt_share_mean()
    assert _learnt_share_mean(baseline_clamp_z=1.0) < _learnt_share_mean()


@pytest.mark.parametrize("old", sorted(RENAMED_KEYS))
def test_an_old_flat_key_stops_naming_its_new_key(old):
    new = RENAMED_KEYS[old]
    with pytest.raises(ValidationError) as err:
        MonitorSettings(**{old: 1})
    (e,) = err.value.errors()
    assert e["type"] == "renamed_setting" and e["ctx"]["renamed"] == [[old, new]]
    assert f"monitor.{old} is now monitor.{new} (env FINSENTRY_MONITOR__{new.upper().replace('.', '__')})" in e["msg"]


def test_renaming_the_start_threshold_names_the_clamp_that_used_to_follow_it():
    with pytest.raises(
        ValidationError, match="baseline clamp that used to follow it is now monitor.spike.baseline_clamp_z"
    ):
        MonitorSettings(spike_start_z=4)


def test_presets_are_named_constructors_with_a_by_name_lookup():
    s = MonitorSettings.stocknet()
    assert s == preset("stocknet") == monitor_settings.PRESETS["stocknet"]()
    assert (s.bucket_seconds, s.windows_seconds, s.grace_seconds) == (3600, [DAY, 7 * DAY], 3600)
    assert (s.lookback_seconds, s.dedup_horizon_seconds) == (14 * DAY, 14 * DAY)
    assert s.spike.scales == (DAY,) and (s.spike.min_items, s.spike.baseline_min_items) == (10, 20)
    assert s.spike.baseline_half_life_seconds == 7 * DAY and s.spike.start_z == 3.0  # the rest: defaults
    assert MonitorSettings.stocknet.__doc__ and "StockNet" in MonitorSettings.stocknet.__doc__


def test_a_preset_applies_over_a_base_and_overrides_merge_into_the_group():
    base = MonitorSettings(http_port=9001, spike={"start_z": 4.0, "warmup_windows": 1})
    s = preset("stocknet", base, grace_seconds=7200, spike={"end_z": 2.0})
    assert (s.http_port, s.grace_seconds, s.bucket_seconds) == (9001, 7200, 3600)
    assert (s.spike.start_z, s.spike.end_z, s.spike.warmup_windows, s.spike.baseline_min_items) == (4.0, 2.0, 1, 20)
    with pytest.raises(KeyError, match=r"presets: \['stocknet'\]"):
        preset("nope")
    with pytest.raises(ValidationError, match="not both"):  # the base's single window against the preset's scales
        preset("stocknet", MonitorSettings(spike={"window_seconds": 300}))


def _item(id_: str, ts: datetime) -> KeyedItem:
    return KeyedItem(id=id_, key="all", published_at=ts, sentiment="neutral", sentiment_score=0.0, text=f"text {id_}")


@pytest.mark.parametrize(("dedup_days", "lookback_days", "second_copy"), [(1, 14, "accepted"), (3, 1, "duplicate")])
def test_the_dedup_horizon_is_event_time_of_its_own_not_the_lookback(dedup_days, lookback_days, second_copy):
    s = MonitorSettings(dedup_horizon_seconds=dedup_days * DAY, lookback_seconds=lookback_days * DAY)
    agg = Aggregator(s)
    t0 = datetime(2015, 8, 24, 10, tzinfo=UTC)
    assert agg.process(_item("a", t0)) is Outcome.ACCEPTED
    assert agg.process(_item("b", t0 + timedelta(days=2))) is Outcome.ACCEPTED  # event time moves 2 days on
    assert agg.process(_item("a", t0 + timedelta(days=2, seconds=1))) is Outcome(second_copy)


def test_the_dedup_horizon_must_cover_the_longest_window():
    with pytest.raises(ValidationError, match="dedup_horizon_seconds=3600 must cover the longest window"):
        MonitorSettings(dedup_horizon_seconds=3600)
