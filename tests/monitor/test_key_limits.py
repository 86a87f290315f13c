"""Bounded keys in the aggregator (issue 15, finding 7): an instance holds at most ``monitor.max_keys`` keys (the
ticker idle the longest without an open spike goes, counted), and ``/api/trends`` / ``/api/detectors`` answer with
at most ``?limit=`` keys and the total (100,000 tickers made each about 40 MB, fetched by the dashboard every 2 s).
Invalid keys: ``test_keyed_key_syntax.py``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from keyed_testkit import T0, keyed_record, keyed_value

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator, Outcome
from finsentry.monitor.http_api import MonitorHTTPServer
from finsentry.monitor.metrics import AggregatorMetrics
from finsentry.monitor.queries import BadRequestError, MonitorState, UnknownKeyError
from finsentry.monitor.service import AggregatorService
from finsentry.monitor.settings import MonitorSettings
from finsentry.settings import SettingsError, load_settings


def item(id_: str, key: str, minute: float, negative: bool = False) -> KeyedItem:
    return KeyedItem(
        id=id_,
        key=key,
        published_at=T0 + timedelta(minutes=minute),
        sentiment="negative" if negative else "neutral",
        sentiment_score=-0.9 if negative else 0.1,
        text=f"headline {id_}",
    )


# --- 2. at most monitor.max_keys keys per instance ----------------------------------------------------------------


def spiking(agg: Aggregator, key: str, partition: int = 0) -> None:
    """34 minutes of ``key`` at 5 items a minute, one negative, then four minutes all negative: a spike opens
    (the single 5-minute detector window of :func:`settings`, as in test_monitor_http)."""
    n = 0
    for minute in range(34):
        for j in range(5):
            n += 1
            neg = j == 0 or minute >= 30
            assert agg.process(item(f"{key}-{n}", key, minute + j / 5, neg), partition) is Outcome.ACCEPTED


def settings(**kw) -> MonitorSettings:
    return MonitorSettings(spike={"window_seconds": 300}, http_port=0, **kw)


def test_max_keys_10_with_30_tickers_holds_10_evicts_20_and_keeps_the_spiking_one():
    agg = Aggregator(settings(max_keys=10))
    spiking(agg, "ticker:HOT")  # its last event is the oldest of all, but its spike is open
    for i in range(3):  # minutes 34..36 move the watermark on until the spike's buckets close
        agg.process(item(f"pad{i}", "ticker:HOT", 34 + i), 0)
    assert "ticker:HOT" in agg.active_spikes
    others = [f"ticker:T{i:02d}" for i in range(29)]
    for i, key in enumerate(others[:9]):  # 10 keys: nothing evicted yet
        agg.process(item(f"o{i}", key, 37 + i / 100), 0)
    assert (agg.key_count, agg.evicted_keys) == (10, 0)
    agg.process(item("again", "ticker:T00", 37.5), 0)  # T00 is no longer the longest idle
    for i, key in enumerate(others[9:17], start=9):
        agg.process(item(f"o{i}", key, 38 + i / 100), 0)
    assert agg.keys == ["ticker:HOT", "ticker:T00", *others[9:17]]  # T01..T08 went first, oldest first
    for i, key in enumerate(others[17:], start=17):
        agg.process(item(f"o{i}", key, 38 + i / 100), 0)
    assert agg.keys == ["ticker:HOT", *others[20:]]
    assert (agg.key_count, agg.evicted_keys, agg.stats()["evicted_keys"]) == (10, 20, 20)
    assert "ticker:HOT" in agg.active_spikes
    assert {(e.key, e.event) for e in agg.spikes} == {("ticker:HOT", "started"), ("ticker:HOT", "updated")}


def test_all_and_topic_keys_are_never_evicted_and_may_hold_the_count_over_the_cap():
    agg = Aggregator(settings(max_keys=1))
    for i, key in enumerate(["all", "topic:markets", "ticker:A", "ticker:B", "ticker:C"]):
        assert agg.process(item(f"n{i}", key, i), 0) is Outcome.ACCEPTED
    assert agg.keys == ["all", "ticker:C", "topic:markets"] and agg.evicted_keys == 2


def test_the_longest_idle_is_measured_on_each_partitions_own_event_time():
    """Partition 0 replays 2015 news, partition 1 is live: a key is idle by its own partition's clock."""
    agg = Aggregator(settings(max_keys=2))
    agg.process(item("r1", "ticker:OLD", 0), 0)  # partition 0: its latest event, idle 0 by its clock
    agg.process(item("l1", "ticker:LIVE", 5_000_000), 1)  # partition 1, ~9.5 years later
    agg.process(item("l2", "ticker:NEW", 5_000_010), 1)  # LIVE is now 10 minutes behind partition 1
    assert agg.keys == ["ticker:NEW", "ticker:OLD"] and agg.evicted_keys == 1


def test_an_evicted_ticker_seen_again_starts_afresh():
    agg = Aggregator(settings(max_keys=2))
    for i, key in enumerate(["ticker:A", "ticker:B", "ticker:C", "ticker:A"]):
        assert agg.process(item(f"n{i}", key, i), 0) is Outcome.ACCEPTED
    assert agg.keys == ["ticker:A", "ticker:C"] and agg.evicted_keys == 2
    assert [b["items"] for b in agg.buckets("ticker:A")] == [1]  # only the new item


def test_the_service_counts_evictions_in_a_metric_live_only():
    settings = load_settings(monitor={"http_port": 0, "max_keys": 2})
    service = AggregatorService(settings.monitor, settings.ingest.kafka, settings.model.path)
    for i in range(5):
        service._handle(keyed_record(i, keyed_value(f"ticker:T{i}", f"n{i}", i)), 0)
    sample = service.metrics.registry.get_sample_value
    assert sample("finsentry_aggregator_evicted_keys_total") == 3 and service.aggregator.key_count == 2
    service._replay_until[0] = 1_000  # a rebuild by replay: evicts all the same, not counted again
    service._handle(keyed_record(5, keyed_value("ticker:T5", "n5", 5)), 0)
    assert service.aggregator.evicted_keys == 4 and sample("finsentry_aggregator_evicted_keys_total") == 3


@pytest.mark.parametrize(
    ("name", "bad"), [("max_keys", 0), ("max_keys", 10_000_001), ("api_max_keys", 0), ("api_max_keys", 100_001)]
)
def test_the_key_limits_are_bounded_settings(name, bad):
    assert (load_settings().monitor.max_keys, load_settings().monitor.api_max_keys) == (50_000, 500)
    with pytest.raises(SettingsError, match=rf"monitor\.{name}"):
        load_settings(monitor={name: bad})


# --- 3. API answers stay small whatever the key count --------------------------------------------------------------


@pytest.fixture(scope="module")
def five_thousand():
    """5,000 keys: all, topic:markets, a spiking ticker, three busy tickers (4, 3, 2 items), 4,994 with one item."""
    agg = Aggregator(settings(api_max_keys=100))
    spiking(agg, "ticker:HOT")
    for i in range(3):
        agg.process(item(f"pad{i}", "ticker:HOT", 34 + i), 0)
    agg.process(item("a", "all", 37), 0)
    agg.process(item("m", "topic:markets", 37), 0)
    for n, key in ((4, "ticker:BUSY1"), (3, "ticker:BUSY2"), (2, "ticker:BUSY3")):
        for j in range(n):
            agg.process(item(f"{key}-{j}", key, 37 + j / 10), 0)
    for i in range(4994):
        agg.process(item(f"s{i}", f"ticker:S{i:04d}", 37.5), 0)
    assert agg.key_count == 5000 and "ticker:HOT" in agg.active_spikes
    state = MonitorState(agg)
    metrics = AggregatorMetrics(state.snapshot, lambda: agg.watermark.value, lambda: agg.key_count, 50, {})
    srv = MonitorHTTPServer("127.0.0.1", 0, state, metrics.registry).start()
    yield state, srv
    srv.stop()


def get(srv: MonitorHTTPServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


PINNED = ["all", "ticker:HOT", "topic:markets"]


def test_trends_of_5000_keys_answer_limit_keys_and_the_total(five_thousand):
    state, srv = five_thousand
    code, body = get(srv, "/api/trends")
    t = json.loads(body)
    assert code == 200 and (len(t["keys"]), t["total"], t["limit"]) == (100, 5000, 100)
    singles = [f"ticker:S{i:04d}" for i in range(94)]  # one item each: ties broken by key
    assert list(t["keys"]) == sorted([*PINNED, "ticker:BUSY1", "ticker:BUSY2", "ticker:BUSY3", *singles])
    assert t["keys"]["all"]["1d"]["items"] == 1 and t["keys"]["ticker:HOT"]["1d"]["items"] == 173
    assert len(body) < 40_000  # every key: about 1.8 MB

    five = json.loads(get(srv, "/api/trends?limit=5")[1])
    assert (list(five["keys"]), five["total"], five["limit"]) == (
        ["all", "ticker:BUSY1", "ticker:BUSY2", "ticker:HOT", "topic:markets"],
        5000,
        5,
    )
    pinned = json.loads(get(srv, "/api/trends?limit=1&window=5m")[1])  # pinned keys whatever the limit
    assert list(pinned["keys"]) == PINNED and pinned["windows"] == ["5m"]
    one = json.loads(get(srv, "/api/trends?key=ticker:S4993")[1])
    assert list(one["keys"]) == ["ticker:S4993"] and one["total"] == 5000
    assert get(srv, "/api/trends?key=ticker:NOPE")[0] == 404
    for bad in ("0", "101", "x"):
        code, body = get(srv, f"/api/trends?limit={bad}")
        assert code == 400, bad
    assert json.loads(get(srv, "/api/trends?limit=101")[1])["error"] == (
        "limit must be 1..100 (monitor.api_max_keys), got 101"
    )


def test_detectors_of_5000_keys_answer_the_same_keys_and_the_total(five_thousand):
    state, srv = five_thousand
    code, body = get(srv, "/api/detectors")
    d = json.loads(body)
    assert code == 200 and (d["total"], d["limit"]) == (5000, 100)
    assert list(d["keys"]) == list(json.loads(get(srv, "/api/trends")[1])["keys"])
    assert d["keys"]["ticker:HOT"]["active"] is True
    five = state.detectors(limit=5)
    assert list(five["keys"]) == ["all", "ticker:BUSY1", "ticker:BUSY2", "ticker:HOT", "topic:markets"]
    assert list(state.detectors("ticker:S0001")["keys"]) == ["ticker:S0001"]
    with pytest.raises(UnknownKeyError):
        state.detectors("ticker:NOPE")
    with pytest.raises(BadRequestError, match=r"limit must be 1\.\.100"):
        state.detectors(limit=0)
