"""The multi-scale detector and novelty on constructed series, against scipy.stats and hand-computed values.

Daily series are fed one observation per day (the day scale's window), with a half-life so long that the EWMA
baselines are the plain mean and variance, which can be computed by hand.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest
from scipy import stats

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.multiscale import MultiScaleDetector, binomial_z, count_z
from finsentry.monitor.novelty import NoveltyIndex, simhash
from finsentry.monitor.settings import MonitorSettings
from finsentry.monitor.spike_settings import SpikeSettings

DAY = 86_400.0
FLAT = SpikeSettings(scales_seconds=[86_400], baseline_half_life_seconds=1e15, warmup_windows=3, baseline_min_items=10)


def midp_z(dist, k: int) -> float:
    """Reference: the mid-p upper tail of a frozen scipy distribution as a standard normal quantile."""
    return float(stats.norm.isf(dist.sf(k) + 0.5 * dist.pmf(k)))


@pytest.mark.parametrize(
    ("k", "mean", "var"), [(5, 1.0, 1.0), (12, 4.0, 4.0), (7, 2.0, 5.0), (0, 3.0, 3.0), (30, 8.0, 20.0)]
)
def test_count_z_matches_scipy_poisson_and_negative_binomial(k, mean, var):
    if var > mean:
        r = mean * mean / (var - mean)
        ref = midp_z(stats.nbinom(r, r / (r + mean)), k)
    else:
        ref = midp_z(stats.poisson(mean), k)
    assert count_z(k, mean, var) == pytest.approx(ref, abs=1e-9), (k, mean, var)


@pytest.mark.parametrize(("k", "n", "p"), [(10, 35, 0.12), (14, 20, 0.25), (0, 10, 0.2), (40, 40, 0.3)])
def test_binomial_z_matches_scipy(k, n, p):
    assert binomial_z(k, n, p) == pytest.approx(midp_z(stats.binom(n, p), k), abs=1e-9)


def test_a_poisson_surge_with_an_ordinary_share_fires_on_volume():
    """Every day 40 stories, 4 negative; then a day when all news doubles and the negatives triple (80, 12)."""
    d = MultiScaleDetector(FLAT)
    for day in range(10):
        obs, tr = d.observe(DAY * (day + 1), [(40, 4)], closed_items=1000)
        assert tr is None
    obs, tr = d.observe(DAY * 11, [(80, 12)], closed_items=1000)
    # share 0.15 vs 0.10: (0.15 - 0.10) / max(binomial sqrt(0.1 * 0.9 / 80) = 0.0335, floor 0.05) = 1.0, no
    # spike by share; the count: mean 4, variance 0 -> Poisson(4): P(X > 12) + P(X = 12) / 2 = 0.00059 -> z 3.24
    assert obs.share_z == pytest.approx(1.0)
    assert obs.volume_baseline == pytest.approx(4.0) and obs.volume_z == pytest.approx(midp_z(stats.poisson(4), 12))
    assert obs.volume_z == pytest.approx(3.2415, abs=1e-3)
    assert tr == "started" and obs.trigger == "volume" and obs.window_seconds == 86_400


def test_a_volume_surge_at_a_lower_share_is_not_a_negative_spike():
    """All news triples (120 stories) and negatives double (8): more news, but a *smaller* negative share."""
    d = MultiScaleDetector(FLAT)
    for day in range(10):
        d.observe(DAY * (day + 1), [(40, 4)], closed_items=1000)
    obs, tr = d.observe(DAY * 11, [(120, 8)], closed_items=1000)
    assert obs.volume_z is not None and obs.volume_z > 1.5  # the count alone is up
    assert tr is None and obs.trigger == "share" and obs.z < 0, obs


def test_a_weekend_gap_does_not_make_monday_a_surge():
    """Weekdays 40 stories / 4 negative, weekends 4 / 0, three weeks; then an ordinary Monday."""
    d = MultiScaleDetector(FLAT)
    day = 0
    for _week in range(3):
        for weekday in range(7):
            day += 1
            n, k = (40, 4) if weekday < 5 else (4, 0)
            obs, tr = d.observe(DAY * day, [(n, k)], closed_items=1000)
            assert tr is None, (day, obs)
    obs, tr = d.observe(DAY * (day + 1), [(40, 4)], closed_items=1000)
    # count baseline by hand: 15 weekdays of 4 and 6 weekend days of 0 -> mean 60/21, variance 240/21 - mean**2
    mean = 60 / 21
    var = 240 / 21 - mean**2
    assert obs.volume_baseline == pytest.approx(mean) and obs.volume_std == pytest.approx(var**0.5)
    # (4 - mean) / sd = 0.63 < 1: the exact negative-binomial tail is not needed (and would say 0.68)
    assert obs.volume_z == pytest.approx((4 - mean) / var**0.5) and obs.volume_z == pytest.approx(0.6325, abs=1e-4)
    r = mean * mean / (var - mean)
    assert midp_z(stats.nbinom(r, r / (r + mean)), 4) < 1.0
    assert tr is None and obs.z < 1.5, obs


def test_a_slow_drift_is_learnt_not_alarmed():
    """The negative share drifts from 10% to 25% over 45 days at 100 stories a day (one-week half-life)."""
    p = SpikeSettings(
        scales_seconds=[86_400], baseline_half_life_seconds=7 * DAY, warmup_windows=3, baseline_min_items=10
    )
    d = MultiScaleDetector(p)
    zs = []
    for day in range(45):
        k = round(100 * (0.10 + 0.15 * day / 44))
        obs, tr = d.observe(DAY * (day + 1), [(100, k)], closed_items=1000)
        zs.append(obs.z)
        assert tr is None, (day, k, obs)
    assert max(z for z in zs if z is not None) < 3.0, zs


def test_the_day_scale_speaks_where_the_hour_is_too_thin():
    """A key with 2 stories an hour: hour windows never hold 10 stories; the day window (48) does."""
    p = SpikeSettings(
        scales_seconds=[3600, 86_400], baseline_half_life_seconds=7 * DAY, warmup_windows=3, baseline_min_items=10
    )
    d = MultiScaleDetector(p)
    hour = 0
    for _ in range(24 * 7):
        hour += 1
        d.observe(3600.0 * hour, [(2, 0 if hour % 4 else 1), (48, 6)], closed_items=1000)
    obs, tr = d.observe(3600.0 * (hour + 1), [(2, 2), (48, 20)], closed_items=1000)
    assert tr == "started" and obs.window_seconds == 86_400, obs


def test_a_spike_does_not_teach_its_own_baseline():
    d = MultiScaleDetector(FLAT)
    for day in range(10):
        d.observe(DAY * (day + 1), [(100, 10)], closed_items=1000)
    before = d.charts[0].share.get()
    assert d.observe(DAY * 11, [(100, 40)], closed_items=1000)[1] == "started"
    assert d.observe(DAY * 12, [(100, 35)], closed_items=1000)[1] == "updated"
    assert d.charts[0].share.get() == before  # frozen while the spike is open
    assert d.observe(DAY * 13, [(100, 10)], closed_items=1000)[1] == "ended"


def test_warm_up_keeps_a_new_key_silent():
    d = MultiScaleDetector(FLAT)
    d.observe(DAY, [(40, 4)], closed_items=1000)
    obs, tr = d.observe(2 * DAY, [(40, 30)], closed_items=1000)  # one day of history: < 3 windows
    assert tr is None and obs.z is None


# ------------------------------------------------------------------ novelty
def test_simhash_near_duplicates_and_distinct_stories():
    a = simhash("Oil prices plunge as OPEC talks collapse")
    b = simhash("RT @energy: Oil prices plunge as OPEC talks collapse https://t.co/q")
    c = simhash("Apple beats estimates on strong iPhone sales")
    assert (a ^ b).bit_count() == 0 and (a ^ c).bit_count() > 3


def test_simhash_is_the_bitwise_majority_of_its_feature_hashes():
    def h(feature: str) -> int:
        return int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")

    assert simhash("Oil!") == h("oil")  # one feature: its own hash
    x, y, z = h("oil"), h("slumps"), h("oil slumps")  # two words and their pair: bit set where two of three are
    assert simhash("oil slumps") == (x & y) | (x & z) | (y & z)
    feats = [h(f) for f in ("oil", "slumps", "again", "oil slumps", "slumps again")]  # five features: 3 of 5
    majority = sum(1 << b for b in range(64) if sum((f >> b) & 1 for f in feats) >= 3)
    assert simhash("oil slumps again") == majority


def test_novelty_index_forgets_after_its_horizon():
    idx = NoveltyIndex(horizon_seconds=3600)
    assert idx.update("x1", "Bank shares tumble on rate fears", 0.0) == (1.0, "x1")
    assert idx.update("x2", "Bank shares tumble on rate fears", 1800.0) == (0.0, "x1")
    assert idx.update("x3", "Bank shares tumble on rate fears", 7300.0) == (1.0, "x3")  # x1, x2 expired
    assert len(idx) == 1 and idx.duplicates == 1


VOCAB = [f"w{i}" for i in range(400)]


def headline(rng: random.Random) -> str:
    return " ".join(rng.sample(VOCAB, 9))


def keyed(i: int, t: datetime, text: str, negative: bool) -> KeyedItem:
    return KeyedItem(
        id=f"n{i}",
        key="all",
        published_at=t,
        sentiment="negative" if negative else "neutral",
        sentiment_score=-0.8 if negative else 0.0,
        text=text,
    )


def burst_run(syndicated: bool) -> tuple[Aggregator, list]:
    """Six days of 24 distinct stories a day (3 negative), then 30 negative copies of one story, or 30 stories."""
    rng = random.Random(7)
    settings = MonitorSettings(
        bucket_seconds=3600, windows_seconds=[86_400], spike={"scales_seconds": [86_400]}, grace_seconds=0
    )
    events: list = []
    agg = Aggregator(settings, on_spike=events.append, clock=lambda: 2e9)
    t0 = datetime(2024, 3, 4, tzinfo=UTC)
    i = 0
    for hour in range(24 * 6):
        i += 1
        agg.process(keyed(i, t0 + timedelta(hours=hour, minutes=5), headline(rng), hour % 8 == 0))
    story = "Regional lender halts withdrawals as deposits flee"
    for j in range(30):
        i += 1
        text = f"RT @desk{j}: {story}" if syndicated else headline(rng)
        agg.process(keyed(i, t0 + timedelta(days=6, minutes=10 + j), text, True))
    for hour in range(1, 30):  # the day after: ordinary news moves the watermark on
        i += 1
        agg.process(keyed(i, t0 + timedelta(days=6, hours=hour, minutes=5), headline(rng), hour % 8 == 0))
    return agg, events


def test_a_story_syndicated_30_times_does_not_start_a_spike_by_itself():
    agg, events = burst_run(syndicated=True)
    assert agg.near_duplicates == 29 and agg.stats()["near_duplicates"] == 29
    assert [e for e in events if e.event == "started"] == [], [(e.key, e.z, e.trigger) for e in events]


def test_thirty_distinct_negative_stories_do_start_one():
    agg, events = burst_run(syndicated=False)
    started = [e for e in events if e.event == "started"]
    assert agg.near_duplicates == 0
    assert len(started) == 1 and started[0].key == "all" and started[0].z >= 3.0, started
    texts = [e["text"] for e in started[0].evidence]
    assert len(texts) == len(set(texts)) == 5


def test_a_quiet_ticker_with_an_open_spike_is_exported_whatever_the_cap():
    """Issue 15, finding 3: the ticker cap kept only the busiest tickers, so a quiet one turning negative had no
    series and TickerNegativeSpike could not fire."""
    from finsentry.monitor.metrics import exported_keys
    from finsentry.monitor.queries import Snapshot

    def view(items: int) -> dict:
        return {"1d": {"items": items}}

    views = {"all": view(300), "ticker:BUSY": view(200), "ticker:MID": view(50), "ticker:QUIET": view(3)}
    detectors = {
        "ticker:BUSY": {"active": False},
        "ticker:MID": {"active": False},
        "ticker:QUIET": {"active": True, "z": 15.0},
    }
    snap = Snapshot(0.0, views, detectors)
    assert exported_keys(snap, 1, "1d") == ["all", "ticker:BUSY", "ticker:QUIET"]
    assert exported_keys(Snapshot(0.0, views, {}), 1, "1d") == ["all", "ticker:BUSY"]


# ------------------------------------------------- found by a bad-input review
def test_non_latin_and_wordless_texts_are_not_one_story():
    idx = NoveltyIndex(86_400)
    texts = [
        "腾讯股价暴跌，投资者恐慌",
        "苹果发布新款手机",
        "日経平均株価が急落した",
        "انهيار أسهم أرامكو",
        "📉📉💥",
        "https://t.co/a",
    ]
    results = [idx.update(str(i), t, float(i)) for i, t in enumerate(texts)]
    assert results == [(1.0, str(i)) for i in range(len(texts))], results
    assert simhash("📉📉💥") is None and len(idx) == 4  # the wordless ones are novel and not kept


def test_copies_of_one_story_are_counted_not_kept():
    idx = NoveltyIndex(86_400)
    for i in range(5000):
        assert idx.update(f"c{i}", "Regional lender halts withdrawals", float(i)) == (1.0 if i == 0 else 0.0, "c0")
    assert len(idx) == 1 and idx.duplicates == 4999


def test_a_lasting_level_shift_ends_its_spike_once_learnt():
    """25% negative for two weeks, then 40% for three weeks: the spike must end, not stay open for weeks."""
    p = SpikeSettings(
        scales_seconds=[3600, 86_400], baseline_half_life_seconds=7 * DAY, warmup_windows=3, baseline_min_items=10
    )
    d = MultiScaleDetector(p)
    hour = 0
    for _ in range(24 * 14):
        hour += 1
        d.observe(3600.0 * hour, [(20, 5), (480, 120)], closed_items=10_000)
    transitions = []
    for _ in range(24 * 21):
        hour += 1
        transitions.append(d.observe(3600.0 * hour, [(20, 8), (480, 192)], closed_items=10_000)[1])
    assert transitions[0] == "started"
    ended = transitions.index("ended")
    assert ended <= 24 * 7, ended  # learnt within a week of the shift
    assert not d.active


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (binomial_z, (5, 3, 0.5)),
        (binomial_z, (-1, 3, 0.5)),
        (binomial_z, (1, 3, 0.0)),
        (binomial_z, (1, 3, float("nan"))),
        (count_z, (-1, 1.0, 1.0)),
        (count_z, (3, float("nan"), 1.0)),
        (count_z, (3, 1.0, float("inf"))),
    ],
)
def test_impossible_counts_are_refused(call, args):
    with pytest.raises(ValueError, match="needs"):
        call(*args)


def test_count_z_is_stable_when_the_variance_barely_exceeds_the_mean():
    assert count_z(5, 1.0, 1.0 + 1e-15) == pytest.approx(count_z(5, 1.0, 1.0))
    assert count_z(1003, 500.0, 500.0 * (1 + 1e-15)) == pytest.approx(count_z(1003, 500.0, 500.0))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"spike": {"window_seconds": 300, "scales_seconds": [3600]}}, "not both"),
        ({"spike": {"scales_seconds": [3600, 3600]}}, "duplicates"),
        ({"spike": {"scales_seconds": [90]}}, "spike.scales_seconds"),
        ({"spike": {"window_seconds": 90}}, "spike.window_seconds"),
    ],
)
def test_contradictory_detector_settings_are_refused_naming_the_setting(kw, message):
    with pytest.raises(ValueError, match=message):
        MonitorSettings(**kw)


# ------------------------------------------------------------- quiet runs
def test_idle_run_counts_the_buckets_before_a_scale_is_due():
    d = MultiScaleDetector(SpikeSettings(scales_seconds=[3600, 86400]))
    assert d.idle_run(60.0, 60.0, 100, [(0, 0), (0, 0)]) == 0  # nothing observed yet
    d.observe(60.0, [(5, 1), (5, 1)], closed_items=5, fresh=True)  # both scales judged at t = 60
    assert d.idle_run(120.0, 60.0, 100, [(5, 1), (5, 1)]) == 0  # the hour is judged every minute (3600 / 60 s)
    assert d.idle_run(120.0, 60.0, 100, [(0, 0), (5, 1)]) == 0  # the hour window has just emptied: reported
    d.observe(120.0, [(0, 0), (5, 1)], closed_items=5, fresh=False)
    # the day is next due 1440 s after t = 60: the bucket ends 180, 240, ..., 1440 pass unchanged, 1500 does not
    assert d.idle_run(180.0, 60.0, 100, [(0, 0), (5, 1)]) == (1440 - 180) // 60 + 1 == 22
    assert d.idle_run(180.0, 60.0, 10, [(0, 0), (5, 1)]) == 10
    state, last = d.state(), d.last
    for i in range(22):
        assert d.observe(180.0 + 60 * i, [(0, 0), (5, 1)], closed_items=5, fresh=False) == (last, None)
    assert d.state() == state
    d.observe(1500.0, [(0, 0), (5, 1)], closed_items=5, fresh=False)
    assert d.charts[1].last_eval == 1500.0


def test_quiet_buckets_closed_at_once_equal_closing_them_one_by_one(monkeypatch):
    settings = MonitorSettings()  # 1-minute buckets, hour and day scales
    closed: list = []
    agg = Aggregator(settings, on_close=closed.append, on_close_keys=frozenset({"ticker:AAA"}), clock=lambda: 4e9)
    observe = MultiScaleDetector.observe
    calls: list = []  # the detector of each observe() call

    def counted(self, *args, **kw):
        calls.append(self)
        return observe(self, *args, **kw)

    monkeypatch.setattr(MultiScaleDetector, "observe", counted)
    t0 = datetime(2015, 8, 24, 10, 0, 30, tzinfo=UTC)
    one = keyed(1, t0, "Acme recalls its flagship product", negative=True)
    agg.process(KeyedItem(**{**one.model_dump(), "key": "ticker:AAA"}))
    agg.process(keyed(2, t0 + timedelta(hours=26), "Markets close flat", negative=False))  # moves the watermark
    ks = agg.key_state("ticker:AAA")
    b0 = int(t0.timestamp()) // 60
    expected = []  # the same detector fed every bucket: one story, an hour in the hour window, a day in the day's
    reference = MultiScaleDetector(settings.spike)
    for b in range(b0, ks.closed_until):
        windows = [(1, 1) if b - b0 < 60 else (0, 0), (1, 1) if b - b0 < 1440 else (0, 0)]
        expected.append(observe(reference, (b + 1) * 60, windows, 1, b == b0)[0])
    assert [c.start for c in closed] == [60.0 * b for b in range(b0, ks.closed_until)] and len(closed) > 1500
    assert [c.observation for c in closed] == expected
    assert sum(d is ks.detector for d in calls) < 150  # ~60 in the hour, then one per 24 minutes: not 1,500


def test_observe_run_equals_one_observe_per_bucket():
    p = SpikeSettings(scales_seconds=[600, 86400], baseline_half_life_seconds=86400)
    rng = random.Random(3)
    one, runs = MultiScaleDetector(p), MultiScaleDetector(p)
    t = closed = 0
    by_one, by_run = [], []
    for chunk in range(400):  # ~5 days of 1-minute buckets in runs of equal windows
        length = rng.randint(1, 40)
        n = rng.choice([0, 0, 3, 12, 30])
        neg = n if chunk % 50 == 49 else rng.randint(0, n // 3)  # now and then a burst of negative stories
        day = 10 * n + rng.randint(0, 40)
        windows = [(n, neg), (day, min(day, 3 * neg + rng.randint(0, 8)))]
        closed += n
        for i in range(length):
            obs, transition = one.observe(60 * (t + i + 1), windows, closed, n > 0 and i == 0)
            by_one += [(obs, transition)] if transition else []
        fed = 0
        while fed < length:
            obs, transition, k = runs.observe_run(
                60 * (t + fed + 1), 60, length - fed, windows, closed, n > 0 and not fed
            )
            fed += k
            by_run += [(obs, transition)] if transition else []
        t += length
        assert runs.state() == one.state()
    assert by_run == by_one and {"started", "ended"} <= {tr for _obs, tr in by_one}


@pytest.mark.parametrize("numpy_from", [1, 2, 3])
def test_novelty_index_gives_the_same_answers_whether_a_band_value_holds_an_array_or_not(monkeypatch, numpy_from):
    """Band values switch to a numpy array of hashes at ``_NUMPY_FROM`` entries and back below half of it; with
    the switch at 1-3 entries (arrays built and dropped all the time, the horizon expiring entries) every
    ``(novelty, cluster_id)`` equals the list-only index's, on 1,500 real headlines and one-word variants."""
    import finsentry.monitor.novelty as novelty
    from finsentry.model.datasets import load_examples

    rng = random.Random(7)
    base = [e.text for e in load_examples("topic_valid")[:500]]
    texts = []
    for text in base:
        words = text.split()
        texts.append(text)
        for _ in range(2):  # near variants share bands with their original: lists of several entries
            w = list(words)
            w[rng.randrange(len(w))] = rng.choice(["rises", "falls", "bank", "oil", "record", "cut"])
            texts.append(" ".join(w))

    def answers(threshold: int) -> list[tuple[float, str]]:
        monkeypatch.setattr(novelty, "_NUMPY_FROM", threshold)
        index = NoveltyIndex(horizon_seconds=600)
        return [index.update(f"i{n}", text, 30.0 * n) for n, text in enumerate(texts)]

    lists_only = answers(10**9)
    with_arrays = answers(numpy_from)
    differ = [(n, a, b) for n, (a, b) in enumerate(zip(lists_only, with_arrays, strict=True)) if a != b]
    assert not differ, differ[:5]
    assert sum(1 for a in lists_only if a[0] == 0.0) > 0 and sum(1 for a in lists_only if 0 < a[0] < 1) > 0
