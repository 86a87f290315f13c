"""Spike detector on constructed series: z-scores, gates and hysteresis by hand (half-life = spacing, so d = 1/2)."""

from __future__ import annotations

import math

import pytest

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.buckets import Bucket, evidence
from finsentry.monitor.spike_settings import SpikeSettings
from finsentry.monitor.spikes import SpikeDetector

PARAMS = SpikeSettings(
    window_seconds=60,
    baseline_half_life_seconds=60,
    min_items=10,
    baseline_min_items=20,
    start_z=3.0,
    end_z=1.5,
    share_std_floor=0.1,
    volume_std_floor=1.0,
)


def quiet(d: SpikeDetector, n: int = 5) -> None:
    for i in range(n):
        d.observe(60.0 * (i + 1), items=10, negative=2, history_items=100)  # share 0.2


def test_start_update_end_with_hand_computed_z():
    d = SpikeDetector(PARAMS)
    quiet(d)
    # baseline: mean 0.2, variance 0; the std is the largest of sqrt(v * n_bar / n) = 0, the binomial
    # sqrt(0.2 * 0.8 / 10) = 0.126491 and the floor 0.1: z = (0.6 - 0.2) / 0.126491 = 3.162
    s0 = math.sqrt(0.2 * 0.8 / 10)
    obs, tr = d.observe(360.0, items=10, negative=6, history_items=100)
    assert tr == "started" and obs.z == pytest.approx(0.4 / s0) and obs.z == pytest.approx(3.16227766)
    assert obs.baseline_mean == pytest.approx(0.2) and obs.baseline_std == pytest.approx(s0)
    assert obs.share == 0.6 and obs.active
    # the update is winsorized at 0.2 + 3 * s0 = 0.579473. Decayed sums (d = 1/2 per step, weight 10 each):
    # weight 9.6875 + 10, sum 1.9375 + 5.794733, sum of squares 0.3875 + 10 * 0.579473**2
    clipped = 0.2 + 3 * s0
    w, sx, sxx = 19.6875, 1.9375 + 10 * clipped, 0.3875 + 10 * clipped**2
    mean = sx / w
    var = sxx / w - mean**2
    assert mean == pytest.approx(0.3927483526) and var == pytest.approx(0.0359909297)
    obs, tr = d.observe(420.0, items=10, negative=10, history_items=100)
    # std for 10 items: sqrt(var * mean_weight 10 / 10) = 0.18971 beats the binomial sqrt(m (1 - m) / 10) = 0.15443
    assert obs.baseline_std == pytest.approx(math.sqrt(var))
    assert tr == "updated" and obs.z == pytest.approx((1.0 - mean) / math.sqrt(var)) and obs.z == pytest.approx(3.2009)
    obs, tr = d.observe(480.0, items=10, negative=2, history_items=100)
    assert tr == "ended" and obs.z < 1.5 and not obs.active


def test_hysteresis_keeps_a_spike_between_end_and_start_thresholds():
    slow = PARAMS.model_copy(update={"baseline_half_life_seconds": 6000})  # a slow baseline: 100 steps per half-life
    d = SpikeDetector(slow)
    quiet(d, 20)
    assert d.observe(1260.0, items=10, negative=6, history_items=100)[1] == "started"  # z = 0.4 / 0.1265
    # baseline now ~0.22, std ~0.13 (binomial): share 0.5 gives z ~2.1, between end and start
    obs, tr = d.observe(1320.0, items=10, negative=5, history_items=100)
    assert 1.5 <= obs.z < 3.0 and tr == "updated"
    fresh = SpikeDetector(slow)
    quiet(fresh, 20)
    obs_fresh, tr_fresh = fresh.observe(1260.0, items=10, negative=5, history_items=100)
    assert 1.5 <= obs_fresh.z < 3.0 and tr_fresh is None  # the same z would not have started one
    obs, tr = d.observe(1380.0, items=10, negative=3, history_items=100)
    assert obs.z < 1.5 and tr == "ended"


def test_thin_windows_and_thin_history_cannot_alarm():
    d = SpikeDetector(PARAMS)
    quiet(d)
    obs, tr = d.observe(360.0, items=9, negative=9, history_items=100)  # fewer than min_items
    assert obs.z is None and tr is None and obs.share == 1.0
    d2 = SpikeDetector(PARAMS)
    quiet(d2)
    obs, tr = d2.observe(360.0, items=10, negative=10, history_items=19)  # history below baseline_min_items
    assert obs.z is None and tr is None


def test_an_open_spike_survives_a_thinner_window_and_ends_when_it_empties():
    d = SpikeDetector(PARAMS)
    quiet(d)
    assert d.observe(360.0, items=10, negative=8, history_items=100)[1] == "started"
    obs, tr = d.observe(420.0, items=4, negative=4, history_items=100)  # below min_items: z still computed
    assert tr == "updated" and obs.z is not None and obs.z > 1.5
    obs, tr = d.observe(480.0, items=0, negative=0, history_items=100)
    assert tr == "ended" and obs.z is None and obs.share is None


def test_std_scales_with_window_size():
    """A baseline learnt from 1-item windows is compared with a 16-item burst at sqrt(v * n_bar / n)."""
    d = SpikeDetector(PARAMS)
    for i in range(40):  # alternating one-item windows: share 0 or 1, one in five negative
        d.observe(60.0 * (i + 1), items=1, negative=1 if i % 5 == 0 else 0, history_items=100)
    sh = d.share
    mean, var = sh.mean, sh.var
    obs, tr = d.observe(60.0 * 41, items=16, negative=16, history_items=100)
    binomial = math.sqrt(mean * (1 - mean) / 16)
    assert obs.baseline_std == pytest.approx(max(math.sqrt(var / 16), binomial, 0.1))
    assert obs.z == pytest.approx((1.0 - mean) / obs.baseline_std) and tr == "started"


def test_volume_z_against_its_own_baseline():
    d = SpikeDetector(PARAMS)
    for i in range(5):
        d.observe(60.0 * (i + 1), items=10, negative=2, history_items=100)
    obs, _ = d.observe(360.0, items=20, negative=6, history_items=100)
    # volume baseline: mean 2, std 0 -> floor 1 item: (6 - 2) / 1
    assert obs.volume_baseline == pytest.approx(2.0) and obs.volume_z == pytest.approx(4.0)


def test_end_threshold_must_be_below_start():
    with pytest.raises(ValueError, match="end_z"):
        SpikeSettings(start_z=2.0, end_z=2.0)


def test_evidence_keeps_the_five_most_negative():
    from datetime import UTC, datetime

    b1, b2 = Bucket(), Bucket()
    scores = [0.3, -0.9, -0.1, -0.5, 0.8, -0.95, -0.2, -0.7]
    for i, sc in enumerate(scores):
        it = KeyedItem(
            id=f"i{i}",
            key="all",
            published_at=datetime(2015, 1, 1, tzinfo=UTC),
            sentiment="neutral",
            sentiment_score=sc,
            text=f"t{i}",
            url=f"u{i}",
        )
        (b1 if i < 4 else b2).add(it, sc, keep=5)
    ev = evidence([b1, b2], 5)
    assert [e["sentiment_score"] for e in ev] == [-0.95, -0.9, -0.7, -0.5, -0.2]
    assert ev[0] == {
        "id": "i5",
        "text": "t5",
        "url": "u5",
        "sentiment_score": -0.95,
        "published_at": "2015-01-01T00:00:00Z",
        "truncated": False,
    }
