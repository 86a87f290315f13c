"""The dashboard in headless Chromium against an aggregator holding more keys than ``/api/trends`` lists
(``monitor.api_max_keys``; issue 15, finding 7): the page still draws, and a key outside the busiest ones, chosen
by link, is fetched by name and charted."""

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

T0 = datetime(2015, 8, 24, 13, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[MonitorHTTPServer]:
    """``all`` and 12 tickers (``ticker:BUSY<i>`` with 2 + i items, one negative; ``ticker:QUIET`` with one): 5 keys
    listed, ``all`` and the 4 busiest tickers."""
    s = MonitorSettings(http_port=0, api_max_keys=5)
    agg = Aggregator(s)
    n = 0

    def add(key: str, negative: bool = False) -> None:
        nonlocal n
        n += 1
        agg.process(
            KeyedItem(
                id=f"n{n}",
                key=key,
                published_at=T0 + timedelta(seconds=n),
                sentiment="negative" if negative else "neutral",
                sentiment_score=-0.9 if negative else 0.1,
                text=f"headline {n}",
            )
        )

    add("ticker:QUIET", negative=True)
    for i in range(11):
        for j in range(2 + i):
            add(f"ticker:BUSY{i:02d}", negative=j == 0)  # one negative each: 1 / (2 + i)
            add("all")
    state = MonitorState(agg)
    metrics = AggregatorMetrics(state.snapshot, lambda: agg.watermark.value, lambda: agg.key_count, 50, s.window_names)
    srv = MonitorHTTPServer("127.0.0.1", 0, state, metrics.registry).start()
    yield srv
    srv.stop()


def test_a_key_outside_the_listed_ones_is_fetched_by_name_and_charted(server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(f"{base}/api/trends", timeout=10) as r:
        trends = json.loads(r.read())
    assert (len(trends["keys"]), trends["total"]) == (5, 13) and "ticker:QUIET" not in trends["keys"]
    driver = chromium(tmp_path / "chromium-profile")
    try:
        driver.get(f"{base}/#key=ticker%3AQUIET&window=1d")
        WebDriverWait(driver, 30).until(
            lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-polls") or 0) >= 2
        )
        driver.find_element(By.ID, "pause-toggle").click()
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.body.dataset.paused + document.body.dataset.busy") == "10"
        )
        assert driver.find_element(By.ID, "trend-key").text == "$QUIET"
        assert driver.find_element(By.ID, "now-items").get_attribute("data-value") == "1"
        assert driver.find_element(By.ID, "now-negative-ratio").get_attribute("data-value") == "1"
        options = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#key-select option")]
        assert sorted(options) == sorted([*trends["keys"], "ticker:QUIET"])
        assert driver.find_element(By.ID, "key-select").get_attribute("value") == "ticker:QUIET"
        rows = driver.find_elements(By.CSS_SELECTOR, "#tickers-table tbody tr")
        # the listed tickers with at least 5 items, by negative share: 1/9, 1/10, 1/11, 1/12
        assert [r.get_attribute("data-key") for r in rows] == [f"ticker:BUSY{i:02d}" for i in (7, 8, 9, 10)]
        assert driver.find_element(By.ID, "m-keys").get_attribute("data-value") == "13"
        logs = driver.get_log("browser")  # /api/pipeline answers 404 on a bare aggregator: expected
        severe = [e for e in logs if e["level"] == "SEVERE" and "/api/pipeline " not in e["message"]]
        assert not severe, severe
    finally:
        driver.quit()
