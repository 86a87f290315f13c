"""``finsentry run`` end to end on a short real replay, in one live subprocess (started once for the module).

The run replays real StockNet tweets plus a burst of real negative FPB sentences on one ticker (see
``run_testkit``) through the embedded broker, the scorer, the aggregator, the relay, Prometheus and Alertmanager.
The tests check, in this order: items scored and dead-lettered as the scorer's own validation predicts, trends,
the spike with its evidence on the console and in the API; the live dashboard in headless Chromium against the
JSON API (and a screenshot); the Grafana dashboard's PromQL against the live ``/metrics`` and the run's
Prometheus; and last, SIGINT: a clean exit and no process left of the run's process group.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
from browser_testkit import chromium
from run_testkit import (
    FPB_SOURCE,
    SPIKE_TICKER,
    children_of,
    exported_names,
    group_alive,
    http_json,
    http_text,
    promql_metric_names,
)

from finsentry.common.paths import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.broker]

SPIKE_KEY = f"ticker:{SPIKE_TICKER}"
GRAFANA_DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "finsentry.json"
GRAFANA_DATASOURCE = REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROMETHEUS_GENERATED = {"ALERTS"}
"""Series Prometheus itself makes (firing alerts), allowed in the dashboard besides the exported metrics."""


def _expected_outcome(items: list[dict]) -> tuple[int, dict[str, int]]:
    """Scored count and dead letters by reason, as the scorer's own validation decides for these items."""
    from collections import Counter

    from finsentry.ingest.company_tickers import CompanyTickerMap
    from finsentry.ingest.dlq import InvalidRecord
    from finsentry.ingest.validation import validate_news_raw
    from finsentry.settings import load_settings

    settings = load_settings().ingest
    companies = CompanyTickerMap.from_stocknet_table(settings.company_table)
    dead: Counter[str] = Counter()
    scored = 0
    for value in items:
        try:
            validate_news_raw(json.dumps(value).encode(), companies=companies)
            scored += 1
        except InvalidRecord as exc:
            dead[exc.reason.value] += 1
    return scored, dict(dead)


# ---------------------------------------------------------------- pipeline end to end
def test_every_item_is_scored_or_dead_lettered_as_validation_predicts(live_run, replay_file) -> None:
    pipeline = live_run.api("/api/pipeline")
    scored, dead = _expected_outcome(replay_file.items)
    assert pipeline["replay"]["sent"] == len(replay_file.items)
    assert pipeline["scorer"]["scored"] == scored
    assert pipeline["scorer"]["dead_letters"] == dead
    assert dead.get("unsupported_language", 0) > 0  # StockNet holds non-English tweets
    health = live_run.api("/api/health")
    assert health["late"] == 0  # one news.raw partition: nothing arrives out of event-time order
    assert health["model_versions"] == [pipeline["scorer"]["model_version"]]


def test_trends_hold_the_replayed_items(live_run, replay_file) -> None:
    trends = live_run.api("/api/trends")
    assert trends["windows"] == ["1d", "7d"]  # the stocknet preset
    keys = trends["keys"]
    assert SPIKE_KEY in keys and any(k.startswith("topic:") for k in keys)
    week = keys["all"]["7d"]
    buckets = live_run.api("/api/keys/all/buckets")["buckets"]
    assert week["items"] == sum(b["items"] for b in buckets) > 0
    assert week["negative"] + week["neutral"] + week["positive"] == week["items"]
    assert -1 <= week["mean_score"] <= 1 and 0 <= week["negative_ratio"] <= 1


def test_the_burst_makes_a_spike_with_its_headlines_on_the_console_and_in_the_api(live_run, replay_file) -> None:
    events = live_run.api(f"/api/spikes?key={urllib.parse.quote(SPIKE_KEY)}&limit=1000")["spikes"]
    started = [e for e in events if e["event"] == "started"]
    assert started, f"no spike on {SPIKE_KEY}: {events}"
    first = started[-1]  # newest first
    assert first["z"] >= 3.0 and first["items"] >= 10
    evidence_ids = {e["id"] for e in first["evidence"]}
    assert evidence_ids & replay_file.burst_ids, "the burst's sentences are the most negative evidence"
    burst_texts = {v["id"]: v["text"] for v in replay_file.items if v.get("source") == FPB_SOURCE}
    for e in first["evidence"]:
        if e["id"] in burst_texts:
            assert e["text"] == burst_texts[e["id"]]
    out = live_run.output()
    block = re.search(rf"SPIKE STARTED\s+{re.escape(SPIKE_KEY)}\s+at (.+)\n((?:    .+\n)+)", out)
    assert block, f"no started line for {SPIKE_KEY} in the console:\n{out[-4000:]}"
    printed = block.group(2).splitlines()
    top = first["evidence"][0]["text"]
    assert " ".join(top.split())[:60] in printed[0]
    assert re.search(r"^day 2015-08-17 \(Mon\): \d+ items", out, re.M)


# ---------------------------------------------------------------- the live dashboard in Chromium
def _trend_reference(buckets: dict, windows: list[str]) -> pd.DataFrame:
    """The monitor's own rolling trend (``monitor.rolling.trend_frame``) of a key's bucket history."""
    from finsentry.monitor.rolling import trend_frame
    from finsentry.monitor.settings import DAY_SECONDS

    seconds = {"1d": DAY_SECONDS, "7d": 7 * DAY_SECONDS}
    frame = pd.DataFrame(buckets["buckets"])
    frame["start"] = pd.to_datetime(frame["start"]).map(lambda t: t.timestamp())
    return trend_frame(frame, {w: seconds[w] for w in windows}, buckets["bucket_seconds"])


def test_dashboard_in_headless_chromium_matches_the_api(live_run, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(tmp_path / "chromium-profile")
    try:
        driver.get(f"{live_run.base}/#key=all&window=1d")
        pipeline = live_run.api("/api/pipeline")
        scored = str(pipeline["scorer"]["scored"])
        WebDriverWait(driver, 30).until(
            lambda d: (
                d.find_element(By.ID, "m-scored").get_attribute("data-value") == scored
                and int(d.find_element(By.TAG_NAME, "body").get_attribute("data-polls") or 0) >= 2
            )
        )
        # freeze the view: the page re-renders every poll (2 s), which would make elements stale mid-read
        driver.find_element(By.ID, "pause-toggle").click()
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.body.dataset.paused + document.body.dataset.busy") == "10"
        )
        polls_when_paused = driver.execute_script("return document.body.dataset.polls")
        assert driver.find_element(By.ID, "pause-toggle").text == "resume"
        health, trends = live_run.api("/api/health"), live_run.api("/api/trends")
        spikes = live_run.api("/api/spikes?state=all&limit=1000")["spikes"]
        active = live_run.api("/api/spikes?state=active")["spikes"]

        def value(element_id: str) -> str:
            return driver.find_element(By.ID, element_id).get_attribute("data-value")

        # numbers
        dead = pipeline["scorer"]["dead_letters_total"] + sum(pipeline["aggregator"]["rejected"].values())
        assert value("m-dlq") == str(dead)
        assert value("m-accepted") == str(health["accepted"])
        assert value("m-keys") == str(health["keys"])
        assert value("m-active") == str(len(active))
        assert value("model-version") == pipeline["scorer"]["model_version"]
        assert value("watermark") == health["watermark"]
        view = trends["keys"]["all"]["1d"]
        assert value("now-items") == str(view["items"])
        assert float(value("now-negative-ratio")) == pytest.approx(view["negative_ratio"], abs=1e-12)
        assert float(value("now-mean-score")) == pytest.approx(view["mean_score"], abs=1e-12)

        # the trend chart: every point of every line equals the monitor's rolling trend of the same buckets
        reference = _trend_reference(live_run.api("/api/keys/all/buckets"), ["1d", "7d"])
        for window in ("1d", "7d"):
            for measure in ("negative_ratio", "mean_score"):
                path = driver.find_element(
                    By.CSS_SELECTOR, f'#trend-chart path[data-window="{window}"][data-measure="{measure}"]'
                )
                drawn = json.loads(path.get_attribute("data-series"))
                expected = reference[f"{measure}_{window}"]
                assert [t for t, _v in drawn] == [int(ts.timestamp()) for ts in expected.index]
                for (_t, got), want in zip(drawn, expected, strict=True):
                    assert (got is None) == pd.isna(want)
                    if got is not None:
                        assert got == pytest.approx(want, abs=1e-9)
                assert path.get_attribute("d").startswith("M")
        volume = driver.find_element(By.CSS_SELECTOR, "#volume-chart g[data-series]")
        bars = json.loads(volume.get_attribute("data-series"))
        assert [(n, neg) for _t, n, neg in bars] == list(zip(reference["items"], reference["negative"], strict=True))
        # the last point of the 1d line is the API's 1d view of `all` (its buckets end at the latest event)
        last = json.loads(
            driver.find_element(
                By.CSS_SELECTOR, '#trend-chart path[data-window="1d"][data-measure="negative_ratio"]'
            ).get_attribute("data-series")
        )[-1][1]
        assert last == pytest.approx(view["negative_ratio"], abs=1e-12)

        # the spike table: one row per spike episode, active ones as in the API, evidence from the API's events
        rows = driver.find_elements(By.CSS_SELECTOR, "#spikes-table tbody tr")
        started = [e for e in spikes if e["event"] == "started"]
        assert len(rows) == min(len(started), 30)
        assert {r.get_attribute("data-key") for r in rows if r.get_attribute("data-state") == "active"} == {
            e["key"] for e in active
        }
        spike_rows = [r for r in rows if r.get_attribute("data-key") == SPIKE_KEY]
        assert spike_rows
        shown = {li.get_attribute("data-id") for li in spike_rows[0].find_elements(By.CSS_SELECTOR, ".evidence li")}
        api_ids = {ev["id"] for e in spikes if e["key"] == SPIKE_KEY for ev in e["evidence"]}
        assert shown and shown <= api_ids

        # the top negative tickers: ranked by the API's 1d negative share
        ticker_rows = driver.find_elements(By.CSS_SELECTOR, "#tickers-table tbody tr")
        ratios = [trends["keys"][r.get_attribute("data-key")]["1d"]["negative_ratio"] for r in ticker_rows]
        assert ratios and ratios == sorted(ratios, reverse=True)

        # paused means paused: no poll ran while the checks above read the page (they take seconds)
        time.sleep(2.5)
        assert driver.execute_script("return document.body.dataset.polls") == polls_when_paused
        driver.find_element(By.ID, "pause-toggle").click()
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.body.dataset.polls") != polls_when_paused
        )

        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 20_000
        if os.environ.get("FINSENTRY_SCREENSHOT"):
            driver.save_screenshot(os.environ["FINSENTRY_SCREENSHOT"])
    finally:
        driver.quit()


# ---------------------------------------------------------------- the Grafana dashboard
def _dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    """``(where, expr)`` of every PromQL expression: panel targets, annotations, template variable queries."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for ann in dashboard["annotations"]["list"]:
        if ann.get("expr"):
            out.append((f"annotation {ann['name']!r}", ann["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", var["query"]["query"])
            assert match, f"variable {var['name']}: unexpected query {var['query']}"
            out.append((f"variable {var['name']!r}", match.group(1)))
    return out


def _substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in expr.replace('"$1"', ""), f"unsubstituted variable in {expr}"
    return expr


def test_grafana_dashboard_queries_name_exported_metrics_and_prometheus_accepts_them(live_run) -> None:
    import yaml

    dashboard = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    uid = yaml.safe_load(GRAFANA_DATASOURCE.read_text())["datasources"][0]["uid"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
    assert any(a.get("expr", "").startswith("ALERTS") for a in dashboard["annotations"]["list"])

    pipeline = live_run.api("/api/pipeline")
    services = pipeline["services"]
    exported: set[str] = set()
    for url in (services["monitor_metrics"], services["scorer_metrics"], services["relay_metrics"]):
        exported |= exported_names(http_text(url))
    trends = live_run.api("/api/trends")
    variables = {
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": "1h",
        "window": trends["windows"][0],
        "key": "all",
    }
    prometheus = services["prometheus"]
    exprs = _dashboard_exprs(dashboard)
    assert len(exprs) >= 25
    for where, raw in exprs:
        expr = _substitute(raw, variables)
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr}"
        unknown = names - exported - PROMETHEUS_GENERATED
        assert not unknown, f"{where}: {sorted(unknown)} not exported by the running services"
        answer = http_json(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        assert answer["status"] == "success", f"{where}: {answer}"
    # the dashboard's core series have data in the run's Prometheus
    for expr in ('finsentry_window_negative_ratio{key="all"}', "finsentry_model_info", "finsentry_items_total"):
        result = http_json(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")["data"]["result"]
        assert result, expr


# ---------------------------------------------------------------- shutdown (last: it ends the run)
def test_sigint_stops_everything_and_leaves_no_process(live_run) -> None:
    pipeline = live_run.api("/api/pipeline")
    children = {c["name"]: c["pid"] for c in pipeline["processes"]}
    assert set(children) == {"broker", "alertmanager", "prometheus"}
    assert all(group_alive(pid) for pid in children.values())
    run_pid = live_run.proc.pid
    started = time.monotonic()
    code = live_run.interrupt()
    assert code == 0, live_run.output()[-4000:]
    assert time.monotonic() - started < 30
    out = live_run.output()
    assert re.search(r"^stopped in [\d.]+ s: scored \d+", out, re.M), out[-2000:]
    assert "killed" not in out.splitlines()[-1]
    for name, pid in children.items():
        assert not group_alive(pid), f"{name} (process group {pid}) survived"
    assert not group_alive(run_pid), "a process of the run's own process group survived"
    assert children_of(run_pid) == []
    workdir = next(iter(re.findall(r"logs in (\S+)", out)))
    assert Path(workdir).is_dir()  # --workdir is kept
