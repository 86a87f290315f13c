"""``finsentry score --input FILE --text-column COL --time-column COL`` then ``finsentry report``: the README's
"your own data" path on files shaped like the real event streams (``ts_utc`` / ``title`` / ``link``, or a ``date``
column of dates only). score reads the event time as ``finsentry replay`` does, writes ``published_at`` (ISO UTC),
the replay's id and the scored text under ``text``, so the report reads every row and quotes the headlines; a row
whose time it cannot read is skipped with its reason."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry.common.paths import REPO_ROOT
from finsentry.ingest.replay_source import derived_id

CNBC = REPO_ROOT / "data" / "events" / "svb2023_cnbc.jsonl"
"""512 real CNBC headlines of the SVB week (id, text, published_at, url, ...)."""


@pytest.fixture(autouse=True)
def _shipped_model(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))


def _headlines(n: int | None = None) -> list[dict]:
    lines = CNBC.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _run(*args: str):
    from finsentry.cli import app

    return CliRunner().invoke(app, list(args))


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_a_feed_csv_with_ts_utc_and_title_scores_into_a_report_that_quotes_its_headlines(tmp_path: Path) -> None:
    """The user's path: the scored rows had no published_at, id or text, so the report refused all of them,
    naming id; with --time-column they carry all three and the spike's evidence quotes the headlines."""
    items = _headlines()
    src = _csv(
        tmp_path / "feed.csv",
        ["ts_utc", "title", "link"],
        [[i["published_at"], i["text"], i["url"]] for i in items],
    )
    scored = tmp_path / "scored.jsonl"
    res = _run("score", "--input", str(src), "--text-column", "title", "--time-column", "ts_utc", "--out", str(scored))
    assert res.exit_code == 0, res.output
    rows = _read(scored)
    assert len(rows) == len(items) == 512
    first = rows[0]
    assert (first["published_at"], first["ts_utc"]) == ("2023-02-27T01:07:47Z", "2023-02-27T01:07:47Z"), first
    # the id a replay of the row gets (replay --map text=title --time-column ts_utc); the title kept, and under text
    assert first["id"] == derived_id("2023-02-27T01:07:47Z", items[0]["text"]) == "auto-" + first["id"][5:]
    assert first["title"] == first["text"] == items[0]["text"]
    assert [r["text"] for r in rows] == [i["text"] for i in items]
    assert "published_at" not in res.stderr and "skipped 0 rows without a non-empty 'title'" in res.stderr

    out = tmp_path / "report"
    res = _run("report", "--input", str(scored), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "512 items" in res.output and "1 spike" in res.output, res.output
    (spike,) = _read(out / "report.spikes.jsonl")
    assert spike["key"] == "all" and spike["start"] == "2023-03-10T18:43:00Z", spike
    assert len(spike["evidence"]) == 5 and all(spike["evidence"]), spike["evidence"]
    assert "European banking stocks sink as Silicon Valley Bank jitters spread" in spike["evidence"]
    table = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| all | 2023-03-10")]
    assert len(table) == 1 and table[0].rstrip(" |").endswith(spike["evidence"][0]), table


def test_dates_without_a_zone_are_refused_by_name_or_read_as_utc_with_assume_utc(tmp_path: Path) -> None:
    """A date-only column (the Reuters / Guardian streams) is read as replay reads it: not at all without a zone
    (exit 2 before scoring, naming the zone and --assume-utc), as midnight UTC with --assume-utc."""
    items = _headlines(30)
    src = _csv(tmp_path / "dated.csv", ["date", "text"], [[i["published_at"][:10], i["text"]] for i in items])
    scored = tmp_path / "scored.jsonl"
    res = _run("score", "--input", str(src), "--time-column", "date", "--out", str(scored))
    assert res.exit_code == 2 and not scored.exists(), res.output
    assert res.stderr.splitlines()[-1] == (
        f"error: {src}: no row has a readable event time in 'date' (first: line 2: 'date' '2023-02-27' has no time "
        "zone: add --assume-utc to read such times as UTC (as finsentry replay does)); nothing was scored"
    )
    res = _run("score", "--input", str(src), "--time-column", "date", "--assume-utc", "--out", str(scored))
    assert res.exit_code == 0, res.output
    rows = _read(scored)
    assert [r["published_at"] for r in rows] == [i["published_at"][:10] + "T00:00:00Z" for i in items]
    assert [r["id"] for r in rows] == [derived_id(r["published_at"], r["text"]) for r in rows]
    assert [r["date"] for r in rows] == [i["published_at"][:10] for i in items]  # the column itself is kept
    res = _run("report", "--input", str(scored), "--out", str(tmp_path / "report"))
    assert res.exit_code == 0 and "30 items" in res.output, res.output


def test_a_row_whose_time_cannot_be_read_is_skipped_with_its_reason(tmp_path: Path) -> None:
    """Each unreadable time is named in the summary and in --rejects (replay's name for it, unreadable_event_time);
    the other rows are scored, each zone converted to UTC."""
    text = [i["text"] for i in _headlines(5)]
    src = _csv(
        tmp_path / "mixed.csv",
        ["when", "headline"],
        [
            ["2023-03-10T13:43:00-05:00", text[0]],
            ["2023-03-10", text[1]],
            ["yesterday", text[2]],
            ["", text[3]],
            ["2023-03-10T18:50:00Z", text[4]],
        ],
    )
    out, rejects = tmp_path / "scored.jsonl", tmp_path / "rejects.jsonl"
    args = ["--text-column", "headline", "--time-column", "when", "--out", str(out), "--rejects", str(rejects)]
    res = _run("score", "--input", str(src), *args)
    assert res.exit_code == 0, res.output
    rows = _read(out)
    assert [(r["published_at"], r["text"]) for r in rows] == [
        ("2023-03-10T18:43:00Z", text[0]),
        ("2023-03-10T18:50:00Z", text[4]),
    ]
    assert (
        "skipped 3 rows without a readable event time in 'when' (finsentry replay skips them too; lines 3, 4, 5; "
        "first: 'when' '2023-03-10' has no time zone: add --assume-utc to read such times as UTC (as finsentry "
        "replay does))"
    ) in res.stderr.splitlines(), res.stderr
    assert [(r["line"], r["reason"], r["message"], r["row"]["headline"]) for r in _read(rejects)] == [
        (3, "unreadable_event_time", "'when' '2023-03-10' has no time zone: add --assume-utc to read such times as "
         "UTC (as finsentry replay does)", text[1]),
        (4, "unreadable_event_time", "'when' 'yesterday' is not an ISO-8601 time (such as 2023-03-10T18:43:00Z)",
         text[2]),
        (5, "unreadable_event_time", "no value in 'when'", text[3]),
    ]  # fmt: skip
    res = _run("score", "--input", str(src), "--text-column", "headline", "--time-column", "ts", "--out", str(out))
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines()[-1] == (
        f"error: {src}: no column 'ts' in the header (columns: when, headline); name the event-time column with "
        "--time-column"
    )


def test_without_a_time_column_score_says_what_the_report_will_lack(tmp_path: Path) -> None:
    """No --time-column: rows are scored as before; stderr says that the report needs published_at (none here) or
    cannot read the one a row has, instead of leaving it to the report's refusal."""
    text = [i["text"] for i in _headlines(2)]
    out = tmp_path / "scored.jsonl"
    plain = _csv(tmp_path / "plain.csv", ["ts_utc", "text"], [["2023-03-10T18:43:00Z", t] for t in text])
    res = _run("score", "--input", str(plain), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert [r.get("published_at") for r in _read(out)] == [None, None]
    assert res.stderr.splitlines()[-1] == (
        "note: no scored row has a published_at, which finsentry report needs: name the input's event-time column "
        "with --time-column COLUMN (and add --assume-utc for times without a zone) to write it"
    )
    dated = _csv(tmp_path / "dated.csv", ["published_at", "text"], [["2023-03-10", text[0]], ["", text[1]]])
    res = _run("score", "--input", str(dated), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert [(r["published_at"], "id" in r) for r in _read(out)] == [("2023-03-10", False), ("", False)]
    assert res.stderr.splitlines()[-1] == (
        "warning: 1 scored rows have a published_at that finsentry report cannot read: it skips them (first: line 2: "
        "'published_at' '2023-03-10' has no time zone: add --assume-utc to read such times as UTC (as finsentry "
        "replay does))"
    )
    res = _run("score", "--input", str(dated), "--assume-utc", "--out", str(out))
    assert res.exit_code == 0 and [r["published_at"] for r in _read(out)] == ["2023-03-10T00:00:00Z"], res.output
    assert "skipped 1 rows without a readable event time in 'published_at'" in res.stderr


def test_time_options_go_with_a_file_only() -> None:
    res = _run("score", "Shares plunge", "--time-column", "ts")
    assert res.exit_code == 2
    assert (
        res.stderr.splitlines()[-1] == "error: --time-column and --assume-utc go with --input FILE, not with one TEXT"
    )
