"""finsentry report keeps closed buckets on disk (monitor/report_spool.py) and writes trends only for the keys it
reports, with the same spikes and the same trend files as the in-memory backfill. Real data: StockNet tweets of
2015-08-13 .. 2015-08-19 scored by the shipped model (479 tweets naming 420 keys)."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from finsentry.monitor import settings as monitor_settings
from finsentry.monitor.report import backfill, closed_frame, report_file, spike_table, write_report
from finsentry.monitor.report_spool import ClosedSpool
from finsentry.monitor.stocknet import load_tweets, score

SPIKE_IDS = ["topic:stock_commentary@2015-08-17T17:00:00Z", "ticker:WMT@2015-08-18T12:00:00Z"]
"""The spikes of the week at the stocknet preset (hourly buckets: a unit test cannot afford 1-minute buckets of
420 keys; the spool does not depend on the bucket size)."""


@pytest.fixture(scope="module")
def week(model_dir, tmp_path_factory):
    """``(scored records, their JSONL file, settings)``."""
    from finsentry.model import Scorer

    records = score(load_tweets(date(2015, 8, 13), date(2015, 8, 19)), Scorer.load(model_dir))
    path = tmp_path_factory.mktemp("week") / "week.scored.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records, path, monitor_settings.preset("stocknet", monitor_settings.MonitorSettings())


def test_the_spool_gives_back_every_closed_bucket_as_held_in_memory(week):
    records, _, s = week
    memory = backfill(records, s)
    with ClosedSpool(chunk_rows=1000) as spool:  # 17,541 closed buckets: 18 chunks
        spooled = backfill(records, s, spool)
        # (29,243 before the report stopped listing a key's empty stretches longer than two days, bucket by bucket)
        assert spool.rows == len(memory.closed) == 17541 and spooled.closed == []
        frame = spool.frame(spool.keys)
        assert len(spool.keys) == spooled.stats["keys"] == 420
        wmt = spool.frame(["ticker:WMT", "ticker:NOT_THERE"])
    pd.testing.assert_frame_equal(frame, closed_frame(memory.closed))
    assert set(wmt["key"]) == {"ticker:WMT"} and len(wmt) == (memory.closed_rows({"ticker:WMT"}).shape[0])
    assert [e.to_dict() for e in spooled.events] == [e.to_dict() for e in memory.events]


def test_report_finds_the_same_spikes_and_writes_trends_only_for_all_and_the_keys_that_spiked(week, tmp_path):
    records, path, s = week
    summary, result = report_file(path, tmp_path / "spool", s, name="wk", since="2015-08-17")
    memory = backfill(records, s)
    assert [e.to_dict() for e in result.events] == [e.to_dict() for e in memory.events]
    assert list(spike_table(result.events)["spike_id"]) == SPIKE_IDS
    assert result.stats["keys"] == 420 and result.spool is None  # the temporary file is gone

    trends = tmp_path / "spool" / "wk" / "trends"
    assert sorted(p.name for p in trends.iterdir()) == ["all.csv", "ticker_WMT.csv", "topic_stock_commentary.csv"]
    text = summary.read_text(encoding="utf-8")
    assert "trend CSVs in `wk/trends/`: 3 (`all` and each key with a spike)" in text
    # the in-memory path writes the very same files
    write_report(memory, tmp_path / "memory", name="wk", since="2015-08-17")
    for name in ("all.csv", "ticker_WMT.csv", "topic_stock_commentary.csv"):
        assert (trends / name).read_bytes() == (tmp_path / "memory" / "wk" / "trends" / name).read_bytes(), name
    for suffix in (".md", ".spikes.jsonl", ".spikes.csv"):
        assert (tmp_path / "spool" / f"wk{suffix}").read_bytes() == (tmp_path / "memory" / f"wk{suffix}").read_bytes()
    # real values: every tweet naming WMT is counted once in its trend, and the spike bucket is active
    wmt = pd.read_csv(trends / "ticker_WMT.csv", index_col="start")
    naming = sum(1 for r in records if "WMT" in r["tickers"])
    assert wmt["items"].sum() == naming > 0
    assert bool(wmt.loc["2015-08-18 11:00:00+00:00", "spike_active"])  # the bucket 11:00-12:00 started it
    assert pd.read_csv(trends / "all.csv")["items"].sum() == result.items == len(records) == 479
