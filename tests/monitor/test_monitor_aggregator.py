"""The aggregation core with hand-computed values: grace, lateness, UTC buckets, dedup, expiry, watermarks."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from finsentry.common.mappings import deep_merge
from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator, Outcome
from finsentry.monitor.rolling import rolling_views
from finsentry.monitor.settings import MonitorSettings

T0 = datetime(2015, 8, 24, 10, 0, tzinfo=UTC)


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def item(id_: str, key: str, ts: datetime, sentiment: str = "neutral", score: float = 0.0) -> KeyedItem:
    return KeyedItem(id=id_, key=key, published_at=ts, sentiment=sentiment, sentiment_score=score, text=f"text {id_}")


def minute_settings(**kw) -> MonitorSettings:
    base = dict(
        bucket_seconds=60,
        windows_seconds=[300, 3600],
        grace_seconds=120,
        spike={"window_seconds": 300},
        lookback_seconds=7200,
        dedup_horizon_seconds=7200,
    )
    return MonitorSettings(**deep_merge(base, kw))


def counts(agg: Aggregator, key: str) -> dict[str, int]:
    return {b["start"]: b["items"] for b in agg.buckets(key)}


def test_out_of_order_inside_grace_is_counted():
    agg = Aggregator(minute_settings())
    outcomes = [
        agg.process(item("a", "all", at(0, 30))),
        agg.process(item("b", "all", at(2, 10))),
        agg.process(item("c", "all", at(1, 50))),  # 20 s behind the partition's max: inside the 120 s grace
    ]
    assert outcomes == [Outcome.ACCEPTED] * 3
    assert counts(agg, "all") == {"2015-08-24T10:00:00Z": 1, "2015-08-24T10:01:00Z": 1, "2015-08-24T10:02:00Z": 1}
    # watermark = 10:02:10 - 120 s = 10:00:10: no bucket has ended before it yet
    assert agg.watermark.value == at(0, 10).timestamp()
    assert agg.key_state("all").closed_until is None
    assert agg.late == 0


def test_late_beyond_grace_is_counted_and_dropped():
    agg = Aggregator(minute_settings())
    for i, ts in enumerate([at(0, 30), at(1, 50), at(2, 10), at(5, 0)]):
        agg.process(item(f"i{i}", "all", ts))
    # watermark 10:05:00 - 2 min = 10:03:00: buckets 10:00, 10:01, 10:02 are closed
    assert agg.key_state("all").closed_until * 60 == at(3).timestamp()
    assert agg.process(item("late", "all", at(2, 30))) is Outcome.LATE
    assert agg.late == 1 and agg.accepted == 4
    assert counts(agg, "all")["2015-08-24T10:02:00Z"] == 1  # the closed bucket did not change
    assert agg.process(item("ok", "all", at(3, 5))) is Outcome.ACCEPTED  # 10:03 bucket ends after 10:03:00
    # a new key on the same partition is judged by the partition's watermark: 10:01 ended before 10:03
    assert agg.process(item("new", "ticker:X", at(1, 0))) is Outcome.LATE
    assert agg.late == 2 and "ticker:X" not in agg.keys


def test_buckets_align_to_utc_hours_and_days():
    agg = Aggregator(
        minute_settings(
            bucket_seconds=3600,
            windows_seconds=[86400],
            spike={"window_seconds": 3600},
            lookback_seconds=86400,
            dedup_horizon_seconds=86400,
        )
    )
    agg.process(item("a", "all", datetime(2015, 8, 24, 23, 0, 0, tzinfo=UTC)))
    agg.process(item("b", "all", datetime(2015, 8, 24, 23, 59, 59, 999000, tzinfo=UTC)))
    agg.process(item("c", "all", datetime(2015, 8, 25, 0, 0, 0, tzinfo=UTC)))
    plus2 = timezone_plus(2)
    agg.process(item("d", "all", datetime(2015, 8, 25, 1, 30, tzinfo=plus2)))  # = 2015-08-24T23:30Z
    assert counts(agg, "all") == {"2015-08-24T23:00:00Z": 3, "2015-08-25T00:00:00Z": 1}


def timezone_plus(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def test_duplicates_are_counted_once_per_key():
    agg = Aggregator(minute_settings())
    assert agg.process(item("x", "all", at(0, 10))) is Outcome.ACCEPTED
    assert agg.process(item("x", "all", at(0, 10))) is Outcome.DUPLICATE
    assert agg.process(item("x", "ticker:AAPL", at(0, 10))) is Outcome.ACCEPTED  # same item, another key
    assert agg.duplicates == 1 and agg.accepted == 2
    assert counts(agg, "all") == {"2015-08-24T10:00:00Z": 1}


def test_idle_keys_expire_after_the_longest_window_and_memory_stays_bounded():
    agg = Aggregator(minute_settings())  # longest window 3600 s
    agg.process(item("a0", "ticker:A", at(0)))
    for m in range(71):  # 10:00 .. 11:10, one item a minute on `all`
        agg.process(item(f"all{m}", "all", at(m)))
    # partition watermark 11:08; ticker:A last seen 10:00 < 11:08 - 1 h: expired
    assert agg.keys == ["all"] and agg.expired_keys == 1
    # `all` keeps the buckets of the last hour before its closed edge plus the open ones: 10:08 .. 11:10
    starts = list(counts(agg, "all"))
    assert len(starts) == 63 and starts[0] == "2015-08-24T10:08:00Z" and starts[-1] == "2015-08-24T11:10:00Z"
    assert agg.process(item("a1", "ticker:A", at(70, 30))) is Outcome.ACCEPTED  # comes back as a fresh key
    assert agg.key_state("ticker:A").items_closed == 0


def test_each_partition_closes_on_its_own_watermark():
    agg = Aggregator(minute_settings())
    for m in range(31):  # partition 0 replayed up to 12:30 first
        agg.process(item(f"p0-{m}", "ticker:A", at(120 + m)), partition=0)
    assert agg.watermark.value == at(148).timestamp()
    # partition 1 is two hours behind: nothing it carries is late
    outcomes = [agg.process(item(f"p1-{m}", "ticker:B", at(m)), partition=1) for m in range(31)]
    assert outcomes == [Outcome.ACCEPTED] * 31
    # the instance watermark is the minimum over partitions with data, minus grace
    assert agg.watermark.value == at(28).timestamp()
    assert agg.key_state("ticker:B").closed_until * 60 == at(28).timestamp()
    # partition 0's keys stay closed up to its own watermark, 12:28
    assert agg.key_state("ticker:A").closed_until * 60 == at(148).timestamp()
    assert agg.process(item("p0-old", "ticker:A", at(140)), partition=0) is Outcome.LATE
    assert agg.process(item("p0-ok", "ticker:A", at(149, 30)), partition=0) is Outcome.ACCEPTED


def test_rolling_views_by_hand():
    s = minute_settings()
    agg = Aggregator(s)
    agg.process(item("a", "all", at(0, 10), "negative", -0.8))
    agg.process(item("b", "all", at(30), "positive", 0.6))
    agg.process(item("c", "all", at(58), "negative", -0.4))
    agg.process(item("d", "all", at(59, 30), "neutral", 0.1))
    views = rolling_views(agg.bucket_rows(), s.window_names, 60, agg.keys)["all"]
    # 5m: the buckets 10:55 .. 10:59 (latest event 10:59:30): items c, d
    assert views["5m"] == {
        "items": 2,
        "negative": 1,
        "neutral": 1,
        "positive": 0,
        "negative_ratio": 0.5,
        "mean_score": pytest.approx((-0.4 + 0.1) / 2),
    }
    # 1h: 10:00 .. 10:59: all four
    assert views["1h"]["items"] == 4 and views["1h"]["negative_ratio"] == 0.5
    assert views["1h"]["mean_score"] == pytest.approx((-0.8 + 0.6 - 0.4 + 0.1) / 4)


def _stream(seed: int) -> list[tuple[int, KeyedItem]]:
    """Three partitions, in-grace jitter, a burst of negatives, an idle gap that expires a key."""
    rng = random.Random(seed)
    out = []
    keys = {0: ["all", "ticker:A"], 1: ["topic:markets"], 2: ["ticker:B"]}
    n = 0
    for minute in range(200):
        for p, ks in keys.items():
            for key in ks:
                if key == "ticker:B" and 60 <= minute < 140:
                    continue  # idle longer than the longest window (60 min): expires, then returns
                for _ in range(rng.randint(0, 4)):
                    n += 1
                    burst = key == "ticker:A" and 120 <= minute < 126
                    neg = burst or rng.random() < 0.2
                    ts = at(minute, rng.uniform(0, 59)) - timedelta(seconds=rng.uniform(0, 90))
                    out.append((p, item(f"n{n}", key, ts, "negative" if neg else "neutral", -0.7 if neg else 0.05)))
    return out


def _state(agg: Aggregator) -> dict:
    return {
        "buckets": {k: agg.buckets(k) for k in agg.keys},
        "detectors": {k: agg.detector_state(k) for k in agg.keys},
        "spikes": [e.to_dict() for e in agg.spikes],
        "stats": agg.stats(),
    }


def test_partition_interleaving_changes_nothing():
    stream = _stream(3)
    s = minute_settings(spike={"min_items": 10, "baseline_min_items": 10})
    runs = []
    for order in ("round_robin", "partition_by_partition", "reversed_partitions"):
        agg = Aggregator(s)
        if order == "round_robin":
            seq = stream
        else:
            parts = sorted({p for p, _ in stream}, reverse=order == "reversed_partitions")
            seq = [(p, it) for q in parts for p, it in stream if p == q]
        for p, it in seq:
            agg.process(it, p)
        runs.append(_state(agg))
    assert runs[0]["stats"]["expired_keys"] >= 1 and runs[0]["spikes"], "the stream must exercise expiry and spikes"
    for other in runs[1:]:
        assert other["buckets"] == runs[0]["buckets"]
        assert other["detectors"] == runs[0]["detectors"]
        assert sorted(other["spikes"], key=str) == sorted(runs[0]["spikes"], key=str)
        assert other["stats"] == runs[0]["stats"]


def test_the_fast_path_over_empty_buckets_equals_closing_them_one_by_one():
    stream = _stream(4)
    s = minute_settings(spike={"min_items": 10, "baseline_min_items": 10})
    fast = Aggregator(s)
    slow = Aggregator(s, on_close=lambda _c: None)  # on_close forces one close per bucket
    for p, it in stream:
        fast.process(it, p)
        slow.process(it, p)
    assert {k: fast.buckets(k) for k in fast.keys} == {k: slow.buckets(k) for k in slow.keys}
    for k in fast.keys:
        a, b = fast.detector_state(k), slow.detector_state(k)
        assert len(a["scales"]) == len(b["scales"]) == 1
        for scale_a, scale_b in zip(a["scales"], b["scales"], strict=True):
            for part in ("share", "volume"):
                for name, v in scale_a[part].items():
                    assert v == pytest.approx(scale_b[part][name], rel=1e-9, abs=1e-12), (k, part, name)
        assert a["active"] == b["active"] and a["closed_until"] == b["closed_until"]
    assert len(fast.spikes) == len(slow.spikes) > 0
    for x, y in zip(fast.spikes, slow.spikes, strict=True):
        assert (x.event, x.key, x.bucket_end, x.items, x.negative) == (
            y.event,
            y.key,
            y.bucket_end,
            y.items,
            y.negative,
        )
        for name in ("z", "volume_z", "baseline_mean", "baseline_std", "volume_baseline"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None and v is None) or u == pytest.approx(v, rel=1e-9), name


def test_a_fast_source_clock_does_not_make_the_items_after_it_late():
    """Issue 15 finding 2: one item dated 9 min after it was scored, then 30 correctly dated ones.

    Without the record time (how the aggregator judged before) the fast item moves the watermark to
    10:09 - 2 min = 10:07, and all 30 items of 10:00-10:00:29 are late; with it, none is.
    """
    scored_at = at(0, 30).timestamp()  # the scorer's clock when it produced the records
    fast = item("fast", "all", at(9, 0))
    normal = [item(f"n{i}", "all", at(0, i)) for i in range(30)]
    for record_time, expected_late in ((None, 30), (scored_at, 0)):
        agg = Aggregator(minute_settings(), clock=lambda: scored_at)
        assert agg.process(fast, 0, record_time) is Outcome.ACCEPTED  # the fast item itself is counted
        outcomes = [agg.process(n, 0, record_time) for n in normal]
        assert agg.late == outcomes.count(Outcome.LATE) == expected_late, (record_time, agg.stats())
        assert agg.clamped == (0 if record_time is None else 1)
    # the item dated ahead stays in its own bucket until the watermark reaches it
    assert counts(agg, "all") == {"2015-08-24T10:00:00Z": 30, "2015-08-24T10:09:00Z": 1}
    assert agg.watermark.partition_mark(0) == scored_at


def test_late_events_are_counted_per_key():
    agg = Aggregator(minute_settings())
    for key in ("all", "topic:markets", "ticker:AAPL"):
        agg.process(item(f"first-{key}", key, at(10)))  # watermark 10:08 closes buckets before it
    for i in range(3):
        assert agg.process(item(f"l{i}", "all", at(1, i))) is Outcome.LATE
    assert agg.process(item("l3", "ticker:AAPL", at(2))) is Outcome.LATE
    assert agg.late_by_key() == {"all": 3, "ticker:AAPL": 1}
    assert agg.stats()["late"] == 4


def test_a_fast_item_scored_during_a_catch_up_is_bounded_by_when_it_was_sent():
    """The soak's case: the fast item (sent at 10:00:30, dated 10:09) is scored in a catch-up at 10:20, so the
    keyed record's own timestamp no longer bounds it; its ``received_at`` (send time) does."""
    from finsentry.ingest.contract import parse_keyed

    sent = at(0, 30)
    fast = {"id": "fast", "key": "all", "published_at": at(9).isoformat(), "sentiment": "neutral",
            "sentiment_score": 0.0, "received_at": sent.isoformat()}  # fmt: skip
    item_fast = parse_keyed(json.dumps(fast).encode())
    assert item_fast.received_at == sent
    normal = [item(f"n{i}", "all", at(0, 31 + i)) for i in range(20)]
    agg = Aggregator(minute_settings(), clock=lambda: at(20).timestamp())
    bound = min(at(20).timestamp(), item_fast.received_at.timestamp())  # what the service passes
    agg.process(item_fast, 0, bound)
    assert [agg.process(n, 0, at(20).timestamp()) for n in normal] == [Outcome.ACCEPTED] * 20, agg.stats()
    assert agg.late == 0 and agg.watermark.partition_mark(0) <= at(0, 50).timestamp()


def test_on_close_keys_hands_over_only_those_keys_and_keeps_every_other_key_identical():
    """``finsentry run``'s day lines need the closed buckets of ``all`` only; a global ``on_close`` made every key
    close its idle buckets one by one (3x slower on a 26-day replay)."""
    stream = _stream(4)
    s = minute_settings(spike={"min_items": 10, "baseline_min_items": 10})
    every, some = [], []
    full = Aggregator(s, on_close=every.append)
    only_all = Aggregator(s, on_close=some.append, on_close_keys=frozenset({"all"}))
    for p, it in stream:
        full.process(it, p)
        only_all.process(it, p)
    assert {c.key for c in some} == {"all"} and len({c.key for c in every}) > 1
    assert [(c.start, c.items, c.negative) for c in some] == [
        (c.start, c.items, c.negative) for c in every if c.key == "all"
    ]
    assert {k: only_all.buckets(k) for k in only_all.keys} == {k: full.buckets(k) for k in full.keys}
    assert [(x.event, x.key, x.bucket_end, x.items, x.negative) for x in only_all.spikes] == [
        (y.event, y.key, y.bucket_end, y.items, y.negative) for y in full.spikes
    ]
