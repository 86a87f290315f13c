"""The default demo's real event, end to end at the default settings, with no injected burst (issue 13).

``finsentry run --with-prometheus`` replays the default demo (``svb``: CNBC's top-news RSS headlines, about 20 a
day, ``data/events/svb2023_cnbc.jsonl``) from its start, 2023-02-27, through 2023-03-10, the day regulators
closed Silicon Valley Bank, at 20,000x. Nothing is added to the stream and no setting is changed except the
speed, the last day and free ports. The tests check that the monitor stays quiet on the eleven days before and
spikes on the market-wide key on 2023-03-10 with SVB headlines as its evidence; that Prometheus fires
``MarketNegativeSpike`` for that spike and the relay's notification reaches the console; that the console line,
the API's spike record, the alert's annotations and the notification quote the same start figures; and that the
console's day lines count every item of every replayed day.

The replay ends on the event day, so the spike is still open (and the alert firing) when the checks run.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from run_testkit import LiveRun, http_json

from finsentry.ingest.demo_streams import DEFAULT_DEMO, DEMOS

pytestmark = [pytest.mark.slow, pytest.mark.broker]

SPEED = 20_000.0
"""Event seconds per wall second: the 12 days in about 52 s."""
LAST_DAY = "2023-03-10"
"""Last replayed day (inclusive): the day regulators closed Silicon Valley Bank."""
QUIET_UNTIL = "2023-03-09"
"""No spike may start on any key before this day (the events benchmark's window opens 2023-03-09)."""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LiveRun]:
    """The default demo run, started once; yields once the MarketNegativeSpike notification is on the console."""
    if not (shutil.which("prometheus") and (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))):
        raise RuntimeError("the live run needs Debian's prometheus and prometheus-alertmanager (.ci/apt-packages.txt)")
    work = tmp_path_factory.mktemp("demo")
    run = LiveRun(
        ["--with-prometheus", "--speed", str(SPEED), "--to", LAST_DAY, "--workdir", str(work / "wd")],
        {"FINSENTRY_MODEL__PATH": str(model_dir)},
        work / "run.log",
    )
    run.start()
    try:
        run.wait_for("the replay to finish", lambda: run.api("/api/pipeline")["replay"]["done"], timeout_s=180)
        run.wait_for(
            "the relay's MarketNegativeSpike notification on the console",
            lambda: re.search(r"^FIRING: Market-wide negative news spike .*\n(?:.*\n)*?-{20,}$", run.output(), re.M),
            timeout_s=90,
        )
        yield run
    finally:
        run.close()


def _started(run: LiveRun) -> list[dict]:
    events = run.api("/api/spikes?state=all&limit=1000")["spikes"]
    return sorted((e for e in events if e["event"] == "started"), key=lambda e: e["spike_id"])


def _replayed_items() -> list[dict]:
    demo = DEMOS[DEFAULT_DEMO]
    rows = [json.loads(line) for line in demo.files[0].read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if demo.time_from.isoformat()[:10] <= r["published_at"][:10] <= LAST_DAY]


def test_quiet_before_then_the_market_key_spikes_on_the_day_svb_is_closed(demo_run: LiveRun) -> None:
    started = _started(demo_run)
    seen = [(e["key"], e["start"]["bucket_end"]) for e in started]
    assert [k for k, _t in seen] == ["all"], f"spikes started: {seen}"
    assert all(t[:10] >= QUIET_UNTIL for _k, t in seen), f"a spike before {QUIET_UNTIL}: {seen}"
    spike = started[0]
    assert spike["start"]["bucket_end"][:10] == LAST_DAY
    assert spike["start"]["z"] >= 3.0 and spike["start"]["items"] >= 20, spike["start"]
    texts = [e["text"] for e in spike["evidence"]]
    about_svb = [t for t in texts if "Silicon Valley Bank" in t or "SVB" in t]
    assert len(about_svb) >= 3, f"evidence: {texts}"
    assert all(len(e["attribution"]) == 3 for e in spike["evidence"]), spike["evidence"]
    scores = [e["sentiment_score"] for e in spike["evidence"]]
    assert scores == sorted(scores) and scores[0] < -0.5, scores


def test_alert_and_notification_quote_the_spike_record(demo_run: LiveRun) -> None:
    spike = _started(demo_run)[0]
    start = spike["start"]
    services = demo_run.api("/api/pipeline")["services"]
    query = urllib.parse.urlencode({"query": 'ALERTS{alertname="MarketNegativeSpike",alertstate="firing"}'})
    alerts = http_json(f"{services['prometheus']}/api/v1/query?{query}")["data"]["result"]
    assert [a["metric"]["spike_id"] for a in alerts] == [spike["spike_id"]], alerts
    out = demo_run.output()
    share, baseline = round(100 * start["share"]), round(100 * start["baseline_mean"])
    figures = f"z={start['z']:.1f}  negative {start['negative']}/{start['items']} ({share}%, baseline {baseline}%)"
    if start["trigger"] == "volume":  # the z is the volume test's: its own baseline is named beside it
        figures = (
            figures[:-1] + f"; volume test: {start['negative']} negative vs {start['volume_baseline']:.1f} expected)"
        )
    console = re.search(r"^SPIKE STARTED\s+all\s+at (\S+ \S+) UTC\s+(.+)$", out, re.M)
    assert console, out[-4000:]
    assert console.group(1) == start["bucket_end"][:16].replace("T", " ") and console.group(2) == figures
    block = re.search(r"^FIRING: Market-wide negative news spike .*\n((?:.*\n)*?)-{20,}$", out, re.M)
    assert block, out[-4000:]
    note = block.group(1)
    assert (
        f"Spike {spike['spike_id']}: all news turned negative at z {start['z']:.1f} (standard deviations above its"
        f" baseline), with {start['negative']} of {start['items']} stories negative ({share}%, baseline {baseline}%"
        + figures[figures.index(f"baseline {baseline}%") + len(f"baseline {baseline}%") :]
    ) in note, note
    assert f"  start {start['bucket_end'][:16].replace('T', ' ')} UTC: {figures}" in note, note
    top = spike["evidence"][0]
    assert f"1. [{top['sentiment_score']:.2f}] {top['text']}" in note, note


def test_day_lines_count_every_replayed_item(demo_run: LiveRun) -> None:
    per_day = Counter(r["published_at"][:10] for r in _replayed_items())
    pipeline = demo_run.api("/api/pipeline")
    assert pipeline["scorer"]["dead_letters_total"] == 0 and pipeline["scorer"]["scored"] == sum(per_day.values())
    printed = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^day (\d{4}-\d\d-\d\d) \(\w{3}\): (\d+) items?,", demo_run.output(), re.M)
    }
    # the last day stays open (its buckets close when later data arrives): every day before it has its line
    expected = {day: n for day, n in per_day.items() if day < LAST_DAY}
    assert printed == expected, f"printed {printed}, in the file {expected}"


def test_sigint_ends_the_demo_cleanly(demo_run: LiveRun) -> None:
    started = time.monotonic()
    assert demo_run.interrupt() == 0, demo_run.output()[-4000:]
    assert time.monotonic() - started < 30
    assert re.search(
        r"^stopped in [\d.]+ s: scored \d+, dead letters 0, spikes started 1, ended 0", demo_run.output(), re.M
    )
