"""The dashboard in headless Chromium (issue 13, item 4 and the dashboard side of item 2): the URL hash selects a
key and follows the selection; windows that start before the monitor's history are marked partial; x-axis labels
do not overlap; evidence headlines mark their attribution words as text (never as HTML); the spike rows quote the
spike record's id, start and peak figures; no "1 items", no "-0.00", no 0% rows among the top negative tickers.

The aggregator is real (a 40-minute stream of 1-minute buckets with a burst of negatives on ``all``); the
attribution words ride on the spike events the real API serves, rebuilt with :meth:`SpikeEvent.from_dict` from
the aggregator's own records (the backend that computes them is another change)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser_testkit import chromium

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.http_api import MonitorHTTPServer
from finsentry.monitor.metrics import AggregatorMetrics
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.settings import MonitorSettings
from finsentry.monitor.spikes import SpikeEvent

T0 = datetime(2015, 8, 24, 13, 0, tzinfo=UTC)
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1"> Fraud probe: shares plunge'
ATTRIBUTION = [{"word": "plunge", "delta": 0.42}, {"word": "fraud", "delta": 0.31}, {"word": "<img", "delta": 0.2}]


def _attributed(event: SpikeEvent) -> SpikeEvent:
    """The event as its record would come with attribution words on each evidence item (the last one none)."""
    d = event.to_dict()
    last = len(d["evidence"]) - 1
    d["evidence"] = [e if n == last else e | {"attribution": ATTRIBUTION} for n, e in enumerate(d["evidence"])]
    return SpikeEvent.from_dict(d)


@pytest.fixture(scope="module")
def server() -> Iterator[MonitorHTTPServer]:
    # windows 5m / 1h / 1d over 40 minutes of news: the 5m window is full from the fifth bucket on, 1h and 1d never
    s = MonitorSettings(http_port=0, spike={"window_seconds": 300})
    agg = Aggregator(s)
    n = 0

    def add(key: str, minute: float, neg: bool, score: float | None = None, text: str | None = None) -> None:
        nonlocal n
        n += 1
        agg.process(
            KeyedItem(
                id=f"n{n:03d}",
                key=key,
                published_at=T0 + timedelta(minutes=minute),
                sentiment="negative" if neg else "neutral",
                sentiment_score=score if score is not None else (-0.9 if neg else 0.1),
                text=text or (f"Shares plunge {n} as the fraud probe widens" if neg else f"headline {n}"),
                url=f"https://example.test/{n}",
            )
        )

    for minute in range(40):  # `all`: 5 items a minute, one negative; a burst of negatives at minutes 30..33
        for j in range(5):
            burst = 30 <= minute < 34
            hostile = burst and j == 4 and minute == 31
            add("all", minute + j / 5, neg=j == 0 or burst, score=-0.99 if hostile else None,
                text=HOSTILE if hostile else None)  # fmt: skip
        add("ticker:AAPL", minute + 0.5, neg=False)  # 40 items, none negative: no row among the negative tickers
        if minute < 6:  # 6 items, 3 negative: the one negative ticker
            add("ticker:BAD", minute + 0.3, neg=minute % 2 == 0)
        if minute == 20:  # one item whose mean score rounds to -0.00
            add("topic:markets", minute + 0.1, neg=False, score=-0.004)
    assert agg.late == 0
    agg.spikes = type(agg.spikes)((_attributed(e) for e in agg.spikes), maxlen=agg.spikes.maxlen)
    agg.active_spikes = {k: _attributed(e) for k, e in agg.active_spikes.items()}
    state = MonitorState(agg)
    metrics = AggregatorMetrics(state.snapshot, lambda: agg.watermark.value, lambda: agg.key_count, 50, s.window_names)
    srv = MonitorHTTPServer("127.0.0.1", 0, state, metrics.registry).start()
    yield srv
    srv.stop()


def _api(base: str, path: str):
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as r:
        return json.loads(r.read())


def _settle(driver, polls: int) -> None:
    """Wait for `polls` polls in all, then pause the page so the checks read one render."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return Number(document.body.dataset.polls || 0) >= arguments[0]", polls)
    )


def test_dashboard_hash_partial_windows_evidence_and_numbers(server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base = f"http://127.0.0.1:{server.port}"
    buckets = _api(base, "/api/keys/ticker:AAPL/buckets")
    assert buckets["history_start"] == "2015-08-24T13:00:00Z"  # the first bucket of `all`
    spikes = _api(base, "/api/spikes?state=all&limit=1000")["spikes"]
    assert spikes and all(e["spike_id"] for e in spikes)
    driver = chromium(tmp_path / "chromium-profile")
    try:
        # --- the URL hash selects the key
        driver.get(f"{base}/#ticker:AAPL")
        _settle(driver, 2)
        assert driver.find_element(By.ID, "trend-key").text == "$AAPL"
        assert driver.find_element(By.ID, "key-select").get_attribute("value") == "ticker:AAPL"
        assert driver.find_element(By.ID, "now-items").get_attribute("data-value") == "5"  # 5m: one a minute

        # --- partial windows: 5m is full from its fifth bucket, 1h and 1d never (40 minutes of history)
        def path(window: str, measure: str = "negative_ratio"):
            return driver.find_element(
                By.CSS_SELECTOR, f'#trend-chart path[data-window="{window}"][data-measure="{measure}"]'
            )

        first = int(datetime(2015, 8, 24, 13, 0, tzinfo=UTC).timestamp())
        assert path("5m").get_attribute("data-full-from") == str(first + 4 * 60)
        assert path("1h").get_attribute("data-full-from") == ""
        assert path("1d", "mean_score").get_attribute("data-full-from") == ""
        partial = {
            (p.get_attribute("data-partial-window"), p.get_attribute("data-partial-measure")): int(
                p.get_attribute("data-rows")
            )
            for p in driver.find_elements(By.CSS_SELECTOR, "#trend-chart path.partial")
        }
        measures = ("negative_ratio", "mean_score")
        assert partial == {(w, m): r for w, r in (("5m", 4), ("1h", 40), ("1d", 40)) for m in measures}
        stroke = driver.execute_script(
            "return getComputedStyle(document.querySelector('#trend-chart path.partial')).strokeDasharray"
        )
        assert stroke not in ("", "none")
        legend = driver.find_element(By.ID, "partial-legend")
        assert legend.get_attribute("data-windows") == "5m,1h,1d" and "partial window" in legend.text
        # the chosen window (5m, the first) is full now; every line still carries every point
        assert driver.find_elements(By.ID, "now-partial") == []
        assert len(json.loads(path("1d").get_attribute("data-series"))) == 40

        # --- x-axis labels: a 40-minute history gets a few labels, none overlapping
        boxes = driver.execute_script(
            "return [...document.querySelectorAll('#trend-chart text.tick[data-t]')]"
            ".map((t) => { const b = t.getBBox(); return [b.x, b.x + b.width]; })"
        )
        assert 2 <= len(boxes) <= 8
        assert all(a[1] < b[0] for a, b in zip(boxes, boxes[1:], strict=False)), boxes

        # --- selecting a key writes the hash; editing the hash selects the key
        Select(driver.find_element(By.ID, "key-select")).select_by_value("all")
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return location.hash") == "#all")
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "trend-key").text == "all news")
        driver.execute_script("location.hash = '#topic:markets&window=1d'")
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "trend-key").text == "Markets")
        assert driver.find_element(By.ID, "window-select").get_attribute("value") == "1d"
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "now-partial"))
        assert "partial window" in driver.find_element(By.ID, "now-partial").text
        driver.execute_script("location.hash = '#$BAD'")
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "trend-key").text == "$BAD")
        assert driver.execute_script("return location.hash") == "#ticker:BAD&window=1d"

        # --- evidence: attribution words marked, as text; the hostile headline stays text
        driver.execute_script("location.hash = '#all'")
        _settle(driver, int(driver.execute_script("return document.body.dataset.polls")) + 1)
        driver.find_element(By.ID, "pause-toggle").click()
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.body.dataset.paused + document.body.dataset.busy") == "10"
        )
        row = driver.find_element(By.CSS_SELECTOR, '#spikes-table tbody tr[data-key="all"]')
        items = row.find_elements(By.CSS_SELECTOR, ".evidence li")
        assert len(items) == 5
        assert items[-1].find_elements(By.CSS_SELECTOR, "mark") == []  # the last item carries no attribution
        hostile = [li for li in items if "onerror" in li.text]  # the most negative: the first
        assert len(hostile) == 1 and hostile[0].find_elements(By.TAG_NAME, "img") == []
        assert driver.execute_script("return document.body.dataset.pwned") is None
        marks = [(m.text, m.get_attribute("data-delta")) for m in hostile[0].find_elements(By.CSS_SELECTOR, "mark")]
        assert marks == [("<img", "0.2"), ("Fraud", "0.31"), ("plunge", "0.42")]
        other = [m.text for m in items[1].find_elements(By.CSS_SELECTOR, "mark")]
        assert other == ["plunge", "fraud"]  # "Shares plunge 57 as the fraud probe widens": whole words only

        # --- the spike row quotes the record: id, start and peak figures
        latest = next(e for e in spikes if e["key"] == "all")
        assert row.get_attribute("data-spike-id") == latest["spike_id"]
        assert latest["spike_id"] in row.text
        for what in ("start", "peak"):
            cell = row.find_element(By.CSS_SELECTOR, f'td[data-fig="{what}"]')
            fig = latest[what]
            assert float(cell.get_attribute("data-z")) == pytest.approx(fig["z"])
            assert float(cell.get_attribute("data-share")) == pytest.approx(fig["share"])
            assert (cell.get_attribute("data-negative"), cell.get_attribute("data-items")) == (
                str(fig["negative"]),
                str(fig["items"]),
            )
            assert f"z {fig['z']:.1f}" in cell.text and f"{fig['negative']} / {fig['items']} items" in cell.text
            volume = f"volume test: {fig['negative']} negative vs {fig['volume_baseline'] or 0:.1f} expected"
            assert (volume in cell.text) == (fig["trigger"] == "volume"), (fig, cell.text)  # the z's own test
            assert cell.get_attribute("data-trigger") == (fig["trigger"] or "")

        # --- numbers: no "1 items", no "-0.00", only real rows among the top negative tickers
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "1 items" not in text and "-0.00" not in text and "-0.0 " not in text
        markets = driver.find_element(By.CSS_SELECTOR, '#topics .topic[data-key="topic:markets"] .nums').text
        assert markets.startswith("1 item ·") and markets.endswith("0.00")
        rows = driver.find_elements(By.CSS_SELECTOR, "#tickers-table tbody tr")
        assert [r.get_attribute("data-key") for r in rows] == ["ticker:BAD"]
        assert [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#tickers-table td.neg")] == ["50%"]

        logs = driver.get_log("browser")  # /api/pipeline answers 404 on a bare aggregator: expected
        severe = [e for e in logs if e["level"] == "SEVERE" and "/api/pipeline " not in e["message"]]
        assert not severe, severe
    finally:
        driver.quit()


def test_an_unknown_key_in_the_hash_falls_back_to_all_and_says_so(server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium(tmp_path / "chromium-profile")
    try:
        driver.get(f"http://127.0.0.1:{server.port}/#ticker:NOPE")
        _settle(driver, 2)
        assert driver.find_element(By.ID, "trend-key").text == "all news"
        assert "ticker:NOPE is not held" in driver.find_element(By.ID, "trend-hint").text
    finally:
        driver.quit()


def test_a_spike_whose_started_event_left_the_history_still_shows_its_start(tmp_path: Path) -> None:
    """``monitor.spikes_history`` events are kept for /api/spikes; an open spike adds one a minute, so after ~16 h
    at the default its "started" event is gone. The row's start comes from the record every event carries."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    s = MonitorSettings(http_port=0, spike={"window_seconds": 300}, spikes_history=2)
    agg = Aggregator(s)
    for minute in range(40):  # as the module's stream: one negative in five, a burst of negatives at 30..33
        for j in range(5):
            agg.process(
                KeyedItem(
                    id=f"h{minute:02d}{j}",
                    key="all",
                    published_at=T0 + timedelta(minutes=minute + j / 5),
                    sentiment="negative" if j == 0 or 30 <= minute < 34 else "neutral",
                    sentiment_score=-0.9 if j == 0 or 30 <= minute < 34 else 0.1,
                    text=f"headline {minute} {j}",
                )
            )
    kept = list(agg.spikes)
    assert len(kept) == 2 and all(e.event != "started" for e in kept), [e.event for e in kept]
    start = kept[-1].to_dict()["start"]["bucket_end"]  # ISO UTC
    state = MonitorState(agg)
    metrics = AggregatorMetrics(state.snapshot, lambda: agg.watermark.value, lambda: agg.key_count, 50, s.window_names)
    srv = MonitorHTTPServer("127.0.0.1", 0, state, metrics.registry).start()
    driver = chromium(tmp_path / "chromium-profile")
    try:
        driver.get(f"http://127.0.0.1:{srv.port}/#all")
        WebDriverWait(driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '#spikes-table tbody tr[data-key="all"] td.started')
        )
        cell = driver.find_element(By.CSS_SELECTOR, '#spikes-table tbody tr[data-key="all"] td.started')
        assert cell.text == start.replace("T", " ")[:16] + " UTC", (cell.text, start)
        # the chart's band starts there too (it used to start at the newest event kept)
        band = driver.find_element(By.CSS_SELECTOR, 'rect.spike-band[data-key="all"]')
        began = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() - s.bucket_seconds
        assert float(band.get_attribute("data-start")) == began, (band.get_attribute("data-start"), start)
    finally:
        driver.quit()
        srv.stop()
