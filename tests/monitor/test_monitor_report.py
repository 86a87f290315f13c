"""finsentry report: the offline backfill writes trend CSVs, charts and a summary; bad lines are listed, not lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from finsentry.monitor.report import backfill, report_file, spike_table, weekly_table
from finsentry.monitor.settings import MonitorSettings

T0 = datetime(2015, 8, 24, 13, 0, tzinfo=UTC)


def scored(i: int, minute: float, neg: bool, tickers: list[str]) -> dict:
    return {
        "id": f"n{i}",
        "text": f"headline {i}",
        "published_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "source": "test",
        "url": None,
        "tickers": tickers,
        "lang": "en",
        "topic": "Stock Movement",
        "topic_prob": 0.9,
        "sentiment": "negative" if neg else "neutral",
        "sentiment_probs": [0.9, 0.05, 0.05] if neg else [0.1, 0.8, 0.1],
        "sentiment_score": -0.85 if neg else 0.0,
        "model_version": "v-test",
        "scored_at": "2026-01-01T00:00:00Z",
    }


def stream() -> list[dict]:
    out, i = [], 0
    for minute in range(60):
        for j in range(4):
            i += 1
            burst = 40 <= minute < 44 and j < 3  # ticker:ZZ (and `all`) turn negative for four minutes
            out.append(scored(i, minute + j / 4, burst or j == 0 and minute % 3 == 0, ["ZZ"] if j < 3 else ["YY"]))
    return out


def settings() -> MonitorSettings:
    return MonitorSettings(
        bucket_seconds=60,
        windows_seconds=[300, 3600],
        spike={"window_seconds": 300, "baseline_min_items": 10},
        lookback_seconds=7200,
        dedup_horizon_seconds=7200,
    )


CLI_ENV = {
    "FINSENTRY_MONITOR__BUCKET_SECONDS": "60",
    "FINSENTRY_MONITOR__WINDOWS_SECONDS": "[300, 3600]",
    "FINSENTRY_MONITOR__LOOKBACK_SECONDS": "7200",
    "FINSENTRY_MONITOR__DEDUP_HORIZON_SECONDS": "7200",
    "FINSENTRY_MONITOR__SPIKE__WINDOW_SECONDS": "300",  # one hour of data: the 5-minute single scale
}
"""The :func:`settings` of these tests as environment for ``finsentry report``."""


def test_backfill_counts_every_item_and_finds_the_burst():
    result = backfill(stream(), settings())
    assert result.items == 240 and result.keyed == 240 * 3  # all, topic:stock_movement, one ticker each
    assert result.stats["late"] == 0 and result.stats["duplicates"] == 0
    spikes = spike_table(result.events)
    assert "ticker:ZZ" in set(spikes["key"])
    zz = spikes[spikes["key"] == "ticker:ZZ"].iloc[0]
    assert pd.Timestamp("2015-08-24T13:41:00Z") <= zz["start"] <= pd.Timestamp("2015-08-24T13:43:00Z")
    assert zz["end"] > pd.Timestamp("2015-08-24T13:44:00Z")
    weekly = weekly_table(spikes, result.first, result.last)
    assert list(weekly.columns) == ["2015-08-24"] and weekly.loc["ticker:ZZ", "2015-08-24"] == 1


def test_report_files_and_bad_lines(tmp_path):
    src = tmp_path / "scored.jsonl"
    lines = [json.dumps(r) for r in stream()]
    lines.insert(5, "{not json")
    lines.insert(9, json.dumps({"id": "broken", "text": "x"}))  # no published_at / sentiment
    src.write_text("\n".join(lines) + "\n")
    summary, result = report_file(src, tmp_path / "out", settings(), name="unit", title="unit test")
    assert summary == tmp_path / "out" / "unit.md"
    text = summary.read_text()
    assert "| ticker:ZZ |" in text and "line 6: invalid_json" in text and "broken: missing_field" in text
    assert (tmp_path / "out" / "unit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "unit" / "keys" / "ticker_ZZ.png").is_file()
    trend = pd.read_csv(tmp_path / "out" / "unit" / "trends" / "all.csv", index_col="start")
    assert trend["items"].sum() == 240 and len(trend) == 60
    # the 5-minute view at 13:44 covers 13:40..13:44: 20 items, 3 a minute negative in the burst minutes 40..43
    # (the every-third-minute negative falls on 13:42's first item, already in the burst)
    row = trend.loc["2015-08-24 13:44:00+00:00"]
    assert row["items_5m"] == 20 and row["negative_5m"] == 12 and row["negative_ratio_5m"] == 0.6


def test_since_reports_only_later_spikes(tmp_path):
    summary, _ = report_file(_write(tmp_path), tmp_path / "o", settings(), name="late", since="2015-08-24T13:50:00")
    text = summary.read_text()
    assert "Reported from 2015-08-24T13:50:00Z" in text and "No key spiked." in text
    summary, _ = report_file(_write(tmp_path), tmp_path / "o", settings(), name="early", since="2015-08-24")
    assert "| ticker:ZZ |" in summary.read_text()


def _write(tmp_path):
    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in stream()) + "\n")
    return src


def test_cli_report(tmp_path):
    from finsentry.cli import app

    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in stream()) + "\n")
    env = CLI_ENV
    res = CliRunner().invoke(app, ["report", "--input", str(src), "--out", str(tmp_path / "o")], env=env)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "report.md").is_file()
    # the console counts spikes as the summary does (one per spike id), and says the events are more
    spikes = len((tmp_path / "o" / "report.spikes.jsonl").read_text(encoding="utf-8").splitlines())
    assert spikes >= 1 and f"keys, {spikes} spike" in res.output, (spikes, res.output)
    assert "events: started, updated, ended" in res.output, res.output
    res = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "o")], env=env)
    assert res.exit_code == 2 and "--input" in res.output
    res = CliRunner().invoke(app, ["report", "--input", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "missing.jsonl" in res.output
    assert res.output.strip().endswith("missing.jsonl not found; give a JSONL file of news.scored records"), res.output
    assert "Errno" not in res.output, res.output
    res = CliRunner().invoke(app, ["report", "--input", str(tmp_path), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and f"--input {tmp_path} is a folder" in res.output, res.output


def test_spikes_are_written_as_csv_and_json_lines_with_their_start_figures(tmp_path):
    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in stream()) + "\n")
    summary, result = report_file(src, tmp_path / "out", settings(), name="unit")
    table = spike_table(result.events)
    rows = [json.loads(line) for line in (tmp_path / "out" / "unit.spikes.jsonl").read_text().splitlines()]
    csv = pd.read_csv(tmp_path / "out" / "unit.spikes.csv")
    assert len(rows) == len(csv) == len(table) > 0
    zz = next(r for r in rows if r["key"] == "ticker:ZZ")
    started = next(e for e in result.events if e.key == "ticker:ZZ" and e.event == "started")
    assert zz["start_z"] == started.z and zz["start_negative"] == started.negative
    assert zz["scale"] == "5m" and zz["trigger"] == "share" and zz["start"].endswith("Z")
    assert json.loads(csv.loc[csv["key"] == "ticker:ZZ", "evidence"].iloc[0]) == zz["evidence"]


def test_a_lone_surrogate_in_an_evidence_text_does_not_stop_the_report(tmp_path):
    records = stream()
    for r in records:
        if r["tickers"] == ["ZZ"] and r["sentiment"] == "negative":
            r["text"] = "bad \ud800 text " + r["id"]  # a JSON escape no encoder can write as UTF-8
    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    summary, _ = report_file(src, tmp_path / "out", settings(), name="unit")
    rows = [json.loads(line) for line in (tmp_path / "out" / "unit.spikes.jsonl").read_text().splitlines()]
    assert summary.is_file() and any("bad ? text" in t for r in rows for t in r["evidence"]), rows


def test_offline_scoring_carries_truncated_and_chunks_like_news_scored(model_dir, long_article):
    from finsentry.model import Scorer
    from finsentry.monitor.stocknet import score

    records = [
        {"id": "long", "text": " ".join(long_article), "published_at": T0.isoformat()},
        {"id": "short", "text": "Fed raises interest rates by 25 basis points", "published_at": T0.isoformat()},
    ]
    out = score(records, Scorer.load(model_dir, max_chunks=2))
    assert [(r["id"], r["chunks"], r["truncated"]) for r in out] == [("long", 2, True), ("short", 1, False)]


def test_offline_scoring_goes_through_the_live_scorers_normalization(model_dir):
    """The report scores what the live scorer scores: normalized text, tickers from cashtags and company names."""
    from finsentry.ingest.scored import scored_value
    from finsentry.ingest.validation import validate_news_raw
    from finsentry.model import Scorer
    from finsentry.monitor.stocknet import score

    raw = {
        "id": "stocknet:1",
        "text": "Apple &amp; $MSFT slump after the Fed https://t.co/abc123",
        "published_at": T0.isoformat(),
        "tickers": ["AAPL"],
        "lang": "en",
    }
    empty = {"id": "stocknet:2", "text": "https://t.co/only", "published_at": T0.isoformat()}
    scorer = Scorer.load(model_dir)
    (out,) = score([raw, empty], scorer)  # the link-only record is skipped, as the scorer dead-letters it
    live = validate_news_raw(json.dumps(raw).encode())
    expected = scored_value(live, scorer.predict([live.text])[0], T0)
    assert out["text"] == live.text == "Apple & $MSFT slump after the Fed"
    assert out["tickers"] == list(live.tickers) and "MSFT" in out["tickers"], out["tickers"]
    assert {k: v for k, v in out.items() if k != "scored_at"} == {k: v for k, v in expected.items() if k != "scored_at"}


def test_report_reads_jsonl_with_the_strict_reader(tmp_path):
    """read_scored used plain json.loads: NaN was a number, a repeated key kept its last value (the live scorer
    dead-letters both), a BOM made line 1 unreadable."""
    from finsentry.monitor.report import read_scored

    good = {"id": "a", "text": "Shares fall", "published_at": "2015-08-24T13:00:00Z"}
    path = tmp_path / "scored.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + (json.dumps(good) + "\n").encode()
        + b'{"id": "b", "sentiment_score": NaN}\n'
        + b'{"id": "c", "sentiment": "negative", "sentiment": "positive"}\n'
        + b"[1, 2]\n"
    )
    records, bad = read_scored(path)
    assert records == [good], records
    assert bad == [
        ("line 2", "invalid_json: not JSON (NaN is not a JSON number)"),
        ("line 3", "invalid_json: not JSON (key 'sentiment' appears more than once)"),
        ("line 4", "wrong_type: a JSON list, expected an object"),
    ], bad


def test_an_unusable_input_says_which_fields_are_missing_and_expected(tmp_path):
    """A CSV, or JSON lines with other fields, said only 'no usable news.scored record (2 skipped)'."""
    import pytest

    expected = "expected JSON lines of objects with id, published_at, sentiment, sentiment_score"
    csv = tmp_path / "scored.csv"
    csv.write_text("id,text,published_at,sentiment_score\n1,Shares fall,2015-08-24T13:00:00Z,-0.8\n")
    with pytest.raises(ValueError) as err:
        report_file(csv, tmp_path / "o", settings())
    assert str(err.value) == (
        f"{csv}: no usable news.scored record (2 skipped; first: line 1: invalid_json: not JSON (Expecting value); "
        f"{expected})"
    )
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "a", "headline": "Shares fall", "score": -0.8}) + "\n")
    with pytest.raises(ValueError) as err:
        report_file(other, tmp_path / "o", settings())
    assert str(err.value) == (
        f"{other}: no usable news.scored record (1 skipped; no record has published_at, sentiment, sentiment_score; "
        f"first: a: missing_field: published_at: Field required; {expected})"
    )


def test_scored_records_without_an_event_time_name_published_at_and_the_option_that_writes_it(tmp_path):
    """finsentry score of a file with its time in ts_utc wrote neither published_at nor id, and the report led with
    'no record has id, published_at; first: record 1: missing_field: id': the id the README calls optional."""
    import pytest

    src = tmp_path / "scored.jsonl"
    rows = [
        {"ts_utc": "2023-03-10T18:43:00Z", "title": t, "sentiment": "negative", "sentiment_score": -0.8}
        for t in ("SVB shares fall", "Banks sink")
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError) as err:
        report_file(src, tmp_path / "o", settings())
    assert str(err.value) == (
        f"{src}: no usable news.scored record (2 skipped; no record has published_at, id: finsentry score "
        "--time-column COLUMN (and --assume-utc for times without a zone) writes published_at, the event time in "
        "ISO UTC, and the id a replay derives from it; first: record 1: missing_field: id: Field required; "
        "expected JSON lines of objects with id, published_at, sentiment, sentiment_score)"
    )


def test_report_reads_what_score_writes(model_dir, tmp_path, monkeypatch):
    """`finsentry score --input X --out S` then `finsentry report --input S`: the user's offline path (issue 12's
    words). score writes sentiment_probs as a named mapping, which the report used to refuse on every line."""
    from finsentry.cli import app
    from finsentry.common.paths import REPO_ROOT

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    lines = (REPO_ROOT / "data" / "events" / "svb2023_cnbc.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    src = tmp_path / "news.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    scored_path = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--out", str(scored_path)])
    assert res.exit_code == 0, res.output
    first = json.loads(scored_path.read_text(encoding="utf-8").splitlines()[0])
    assert set(first["sentiment_probs"]) == {"negative", "neutral", "positive"}, first
    res = CliRunner().invoke(app, ["report", "--input", str(scored_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "40 items" in res.output and "skipped" not in res.output, res.output


def test_named_sentiment_probs_read_as_the_wire_tuple():
    from finsentry.ingest.contract import parse_keyed

    value = {
        "id": "1",
        "key": "all",
        "published_at": "2023-03-10T12:00:00Z",
        "sentiment": "negative",
        "sentiment_score": -0.6,
        "sentiment_probs": {"positive": 0.1, "neutral": 0.2, "negative": 0.7},
    }
    assert parse_keyed(json.dumps(value)).sentiment_probs == (0.7, 0.2, 0.1)
    value["sentiment_probs"] = {"negative": 0.7, "neutral": 0.3}  # a label missing: refused, named
    with pytest.raises(ValueError, match="sentiment_probs"):
        parse_keyed(json.dumps(value))


def test_score_gives_rows_without_an_id_the_replay_id_so_report_reads_them(model_dir, tmp_path, monkeypatch):
    """A CSV of text and published_at only: score adds the id a replay of the same row gets (report needs ids to
    count each story once); a row without a readable time gets none and the report skips it by name."""
    from finsentry.cli import app
    from finsentry.ingest.replay_source import derived_id

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "news.csv"
    src.write_text(
        'text,published_at\n"Apple shares plunge after weak sales",2024-01-02T15:00:00Z\n'
        '"Fed holds rates",2024-01-02T16:00:00+00:00\n"no time",\n',
        encoding="utf-8",
    )
    scored_path = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--out", str(scored_path)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in scored_path.read_text(encoding="utf-8").splitlines()]
    assert [r.get("id") for r in rows] == [
        derived_id("2024-01-02T15:00:00Z", "Apple shares plunge after weak sales"),
        derived_id("2024-01-02T16:00:00Z", "Fed holds rates"),
        None,
    ], rows
    res = CliRunner().invoke(app, ["report", "--input", str(scored_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0 and "2 items" in res.output, res.output


def test_cli_report_counts_the_spikes_from_since_like_its_summary(tmp_path):
    """The console said '16 spikes' where the summary listed 6: it counted the warm-up spikes before --since."""
    from finsentry.cli import app

    env = CLI_ENV
    src = _write(tmp_path)
    every = CliRunner().invoke(app, ["report", "--input", str(src), "--out", str(tmp_path / "a")], env=env)
    assert every.exit_code == 0 and " 0 spikes" not in every.output, every.output
    late = ["report", "--input", str(src), "--out", str(tmp_path / "b"), "--since", "2015-08-24T13:50:00"]
    res = CliRunner().invoke(app, late, env=env)
    assert res.exit_code == 0, res.output
    assert "keys, 0 spikes from 2015-08-24T13:50:00 (" in res.output, res.output


def test_a_record_dated_a_year_away_costs_a_few_buckets_and_changes_no_spike():
    s = settings()
    far = scored(9999, 365 * 24 * 60, True, ["ZZ"])
    alone, with_far = backfill(stream(), s), backfill([*stream(), far], s)
    assert [e.to_dict() for e in with_far.events] == [e.to_dict() for e in alone.events]
    assert with_far.items == 241 and with_far.last == far["published_at"].replace("+00:00", "Z")
    rows_all = [c for c in with_far.closed if c.key == "all"]
    # the hour's 60 buckets, the detector's longest window after them (its one scale here: spike.window_seconds,
    # 5 buckets), then only the far record's bucket and the one before it; before: 525,600 more rows
    assert len(rows_all) == 60 + 5 + 2, len(rows_all)
    assert max(c.start for c in rows_all) == T0.timestamp() + 365 * 86_400


def test_closing_long_empty_stretches_at_once_gives_the_spikes_of_closing_them_one_by_one():
    from finsentry.monitor.aggregator import Aggregator
    from finsentry.monitor.records import keyed_from_scored

    day = [
        dict(
            r,
            id=f"d{r['id']}",
            published_at=(datetime.fromisoformat(r["published_at"]) + timedelta(days=3)).isoformat(),
        )
        for r in stream()
    ]
    keyed = sorted((k for r in [*stream(), *day] for k in keyed_from_scored(r)), key=lambda k: (k.published_at, k.id))
    runs = {}
    for listed in (True, False):
        events, closed = [], []
        agg = Aggregator(settings(), on_spike=events.append, on_close=closed.append, list_empty_runs=listed)
        for item in keyed:
            agg.process(item, 0)
        agg.flush()
        runs[listed] = ([e.to_dict() for e in events], len(closed))
    assert runs[True][0] == runs[False][0] and len(runs[True][0]) >= 4, runs
    assert runs[False][1] < runs[True][1], (runs[False][1], runs[True][1])


def test_score_scores_what_the_live_scorer_scores_and_finds_its_tickers(model_dir, tmp_path, monkeypatch):
    """`finsentry score --input`: normalized text (entities decoded, links removed), tickers given then cashtags
    and company names, a link-only row skipped as the live scorer dead-letters it; the probabilities are the live
    scorer's for the same record."""
    from finsentry.cli import app
    from finsentry.ingest.company_tickers import CompanyTickerMap
    from finsentry.ingest.contract import NewsRaw
    from finsentry.ingest.settings import IngestSettings
    from finsentry.ingest.validation import normalize_item
    from finsentry.model import Scorer

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    raw = {"id": "s1", "text": "Apple &amp; $MSFT slump after the Fed https://t.co/abc123", "tickers": "TSLA"}
    rows = [raw, {"id": "s2", "text": "https://t.co/only"}, {"id": "s3", "text": "Quiet day", "tickers": [5]}]
    src = tmp_path / "news.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "skipped 1 rows whose 'text' is only links" in res.output, res.output
    first, third = (json.loads(x) for x in out.read_text(encoding="utf-8").splitlines())
    # the live scorer's normalization with the company table of the default settings (Apple -> AAPL)
    companies = CompanyTickerMap.from_stocknet_table(IngestSettings().company_table)
    live = normalize_item(
        NewsRaw.model_validate(raw | {"tickers": ["TSLA"], "published_at": T0.isoformat()}), companies
    )
    assert first["tickers"] == list(live.tickers) == ["TSLA", "MSFT", "AAPL"], (first["tickers"], live.tickers)
    assert first["text"] == raw["text"]  # the row's own text is kept
    expected = Scorer.load(model_dir).predict([live.text])[0].sentiment_probs
    assert list(first["sentiment_probs"].values()) == pytest.approx(list(expected), abs=1e-6), first
    assert third["tickers"] == [5]  # not readable as tickers: left for the report to name


def test_a_stray_1970_record_does_not_stretch_the_weekly_table_and_every_key_is_counted(tmp_path):
    """One record dated 1970-01-01 (an epoch-0 default) made the summary's weekly table 2,400 columns wide; and
    'over N keys' counted only the keys the aggregator still held at the end."""
    records = stream()
    stray = scored(9999, 0, False, ["OLD"])
    stray["published_at"] = "1970-01-01T00:00:00+00:00"
    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [stray, *records]) + "\n")
    summary, result = report_file(src, tmp_path / "out", settings(), name="unit")
    # all, topic:stock_movement, ticker:ZZ, ticker:YY and ticker:OLD; the aggregator evicted the idle ticker:OLD
    assert (result.keys, result.stats["keys"]) == (5, 4), (result.keys, result.stats)
    text = summary.read_text()
    table = [line for line in text.splitlines() if line.startswith("| key | 1") or line.startswith("| key | 2")]
    assert table == ["| key | 2015-08-24 |"], table
    weeks = (pd.Timestamp("2015-08-24") - pd.Timestamp("1969-12-29")).days // 7 + 1
    assert f"over all 5 keys and {weeks} weeks" in text and f"the {weeks - 1} weeks without a spike" in text, text
    assert "keyed messages over 5 keys" in text, text


def test_since_counts_the_keys_of_the_reported_span_in_the_weekly_rate(tmp_path):
    """With --since, the spikes and weeks are those from the cut on, and so now are the keys: a ticker seen only in
    the warm-up before it cannot spike in the report, yet 'Keys with a spike: 3 of N' and the per-key-week rate
    counted it (and the 'items' line, which covers every item, still does)."""
    early = [scored(9000 + i, -60 * 24 * 14 + i, False, ["OLD"]) for i in range(3)]  # two weeks before, only OLD
    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [*early, *stream()]) + "\n")
    summary, result = report_file(src, tmp_path / "out", settings(), name="since", since="2015-08-24")
    text = summary.read_text()
    spikes = spike_table(result.events)
    assert list(spikes["key"]) == ["all", "ticker:ZZ", "topic:stock_movement"], spikes
    # all, topic:stock_movement, ticker:ZZ, ticker:YY from the cut on; ticker:OLD only before it
    assert "Keys with a spike: 3 of 4 with an item from 2015-08-24T00:00:00Z on;" in text, text
    assert "over all 4 keys and 1 weeks: 0.750." in text, text
    assert "keyed messages over 5 keys" in text, text
    assert (result.keys, result.keys_from(datetime(2015, 8, 24, tzinfo=UTC))) == (5, 4)
    summary, _ = report_file(src, tmp_path / "out", settings(), name="all")
    assert "Keys with a spike: 3 of 5;" in summary.read_text()


def test_cli_report_line_counts_every_key_as_the_summary_does(tmp_path):
    """The console line said '241 items, 4 keys' where the summary said 'over 5 keys': it still read the
    aggregator's keys held at the end (the idle ticker:OLD evicted), which d32cf6d replaced in the summary only."""
    from finsentry.cli import app

    stray = scored(9999, 0, False, ["OLD"])
    stray["published_at"] = "1970-01-01T00:00:00+00:00"
    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [stray, *stream()]) + "\n")
    res = CliRunner().invoke(app, ["report", "--input", str(src), "--out", str(tmp_path / "o")], env=CLI_ENV)
    assert res.exit_code == 0, res.output
    assert "keyed messages over 5 keys" in (tmp_path / "o" / "report.md").read_text()
    assert "241 items, 5 keys, " in res.stderr, res.stderr


def test_the_spike_table_says_what_started_each_spike_and_how_long_it_lasted(tmp_path):
    """The summary's 'buckets' column counted the detector's evaluations (345 for a 30-hour spike), read as a
    duration; and what started the spike (z, test, window, that test's own figures) was only in the CSV."""
    src = tmp_path / "scored.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in stream()) + "\n")
    summary, result = report_file(src, tmp_path / "out", settings(), name="unit")
    zz = spike_table(result.events).query("key == 'ticker:ZZ'").iloc[0]
    hours = (zz["end"] - zz["start"]) / pd.Timedelta(hours=1)
    row = next(line for line in summary.read_text().splitlines() if line.startswith("| ticker:ZZ |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == f"{hours:.1f}", cells
    assert cells[4] == (
        f"z {zz['start_z']:.2f}, share test over 5m: {zz['start_negative']}/{zz['start_items']} negative vs baseline"
        f" {zz['baseline_mean']:.0%}"
    ), cells
