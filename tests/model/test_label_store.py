"""Label store: validation against the label spaces, append-only Parquet by date, conflict resolution, stats, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.model.label_store import (
    InvalidLabel,
    LabelStore,
    label_stats,
    parse_label,
    read_label_file,
    resolve,
    text_id,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
runner = CliRunner()


def label(id_: str, labeler: str, at: datetime, topic: str | None = None, sentiment: str | None = None, text="t"):
    return parse_label(
        {"id": id_, "text": text, "topic": topic, "sentiment": sentiment, "labeler": labeler, "labeled_at": at}
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"topic": "Fed | Central Banks"}, ("Fed | Central Banks", None)),
        ({"topic": "m_a_investments"}, ("M&A | Investments", None)),
        ({"sentiment": "Negative"}, (None, "negative")),
        ({"topic": "Earnings", "sentiment": "positive"}, ("Earnings", "positive")),
    ],
)
def test_valid_labels_are_normalised(fields, expected):
    rec = parse_label({"id": "n1", "text": "x", "labeler": "ann", "labeled_at": "2026-11-02T09:00:00+01:00"} | fields)
    assert (rec.topic, rec.sentiment) == expected
    assert rec.labeled_at == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"topic": "Crypto"}, "topic: 'Crypto' is not one of the 20 topic names"),
        ({"sentiment": "bullish"}, "sentiment: 'bullish' is not one of negative, neutral, positive"),
        ({"sentiment": 2}, "sentiment: 2 is not one of"),
        ({}, "a label needs a topic or a sentiment"),
        ({"sentiment": "neutral", "labeled_at": "2026-11-02T09:00:00"}, "labeled_at: Input should have timezone"),
        ({"sentiment": "neutral", "labeler": None}, "labeler:"),
        ({"sentiment": "neutral", "id": " x1"}, "id: must be non-empty without leading or trailing whitespace"),
        ({"sentiment": "neutral", "text": "   "}, "text: is empty"),
    ],
)
def test_invalid_labels_name_the_field(fields, fragment):
    base = {"id": "x1", "text": "Fed hikes", "labeler": "ann", "labeled_at": "2026-11-02T09:00:00Z"}
    with pytest.raises(InvalidLabel) as err:
        parse_label(base | fields)
    assert fragment in str(err.value)


def test_not_an_object_is_invalid():
    with pytest.raises(InvalidLabel, match="must be a JSON object"):
        parse_label(["id", "text"])


def test_append_writes_date_partitions_and_never_rewrites(tmp_path):
    store = LabelStore(tmp_path)
    first = store.append([label("a", "ann", T0, topic="Dividend")], "file:x.csv:2", ingested_at=T0)
    second = store.append(
        [label("b", "bob", T0, sentiment="positive"), label("c", "bob", T0, sentiment="negative")],
        ["news.labels:0:5", "news.labels:0:6"],
        ingested_at=T0 + timedelta(days=1),
    )
    assert [p.parent.name for p in first + second] == ["date=2026-11-02", "date=2026-11-03"]
    before = first[0].read_bytes()
    store.append([label("a", "cid", T0, topic="Earnings")], "file:y.csv:2", ingested_at=T0 + timedelta(minutes=1))
    assert first[0].read_bytes() == before  # appends add files, never rewrite
    assert len(list(tmp_path.glob("date=2026-11-02/*.parquet"))) == 2
    assert not list(tmp_path.rglob(".*.tmp"))
    raw = store.read()
    assert list(raw["id"]) == ["a", "a", "b", "c"]
    assert list(raw["source"]) == ["file:x.csv:2", "file:y.csv:2", "news.labels:0:5", "news.labels:0:6"]
    assert str(raw["labeled_at"].dt.tz) == "UTC"
    # the files are plain Hive-partitioned Parquet: pandas + pyarrow read the folder as one dataset
    frame = pd.read_parquet(tmp_path)
    assert sorted(frame["date"].astype(str).unique()) == ["2026-11-02", "2026-11-03"]


def test_empty_store_reads_as_empty_frames(tmp_path):
    store = LabelStore(tmp_path / "none")
    assert store.read().empty and store.resolved().empty
    assert label_stats(store.read())["rows"] == 0


def test_conflicts_majority_ties_to_latest_and_all_rows_kept(tmp_path):
    store = LabelStore(tmp_path)
    rows = [
        # item 1: 2 labelers say Earnings, 1 says Dividend (newest) -> majority Earnings
        label("1", "ann", T0, topic="Earnings", sentiment="positive"),
        label("1", "bob", T0 + timedelta(hours=1), topic="Earnings"),
        label("1", "cid", T0 + timedelta(hours=2), topic="Dividend", sentiment="neutral"),
        # item 2: 1 vs 1 -> the tied label with the latest vote (negative)
        label("2", "ann", T0, sentiment="positive"),
        label("2", "bob", T0 + timedelta(hours=3), sentiment="negative"),
        # item 3: one labeler changed their mind: only their latest vote counts
        label("3", "ann", T0, sentiment="negative"),
        label("3", "ann", T0 + timedelta(hours=1), sentiment="positive"),
    ]
    store.append(rows, "test")
    store.append(rows[:1], "test")  # an exact repeat (redelivery) counts once
    items = store.resolved()
    assert items.loc["1", "topic"] == "Earnings" and items.loc["1", "topic_agree"] == 2
    assert items.loc["1", "topic_votes"] == 3
    assert items.loc["1", "sentiment"] == "neutral"  # 1 vs 1: cid's vote is later
    assert items.loc["2", "sentiment"] == "negative" and bool(items.loc["2", "conflict"])
    assert items.loc["2", "topic"] is None
    assert items.loc["3", "sentiment"] == "positive" and items.loc["3", "sentiment_votes"] == 1
    assert not bool(items.loc["3", "conflict"])
    assert len(store.read()) == 8  # every row stays for audit


def test_tie_break_does_not_depend_on_storage_order():
    a = label("9", "ann", T0 + timedelta(hours=5), sentiment="neutral")
    b = label("9", "bob", T0, sentiment="negative")

    def frame(order):
        return pd.DataFrame(
            {
                "id": [r.id for r in order],
                "text": "t",
                "topic": None,
                "sentiment": [r.sentiment for r in order],
                "labeler": [r.labeler for r in order],
                "labeled_at": pd.to_datetime([r.labeled_at for r in order], utc=True),
                "ingested_at": pd.Timestamp(T0),
                "source": "x",
            }
        )

    assert [resolve(frame(o)).loc["9", "sentiment"] for o in ([a, b], [b, a])] == ["neutral", "neutral"]


def test_stats_count_labels_labelers_and_new_rows(tmp_path):
    store = LabelStore(tmp_path)
    store.append([label("1", "ann", T0, topic="Earnings"), label("2", "ann", T0, sentiment="negative")], "a", T0)
    store.append([label("3", "bob", T0, topic="Earnings", sentiment="positive")], "b", T0 + timedelta(days=2))
    stats = label_stats(store.read(), since=T0 + timedelta(days=1))
    assert stats["rows"] == 3 and stats["items"] == 3
    assert stats["per_topic"] == {"Earnings": 2}
    assert stats["per_sentiment"] == {"negative": 1, "positive": 1}
    assert stats["per_labeler"] == {"ann": 2, "bob": 1}
    assert (stats["new_rows"], stats["new_items"]) == (1, 1)


def test_file_import_csv_and_jsonl_keep_rejects(tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "text,topic,sentiment\n"
        "Fed raises rates,Fed | Central Banks,\n"
        "Apple beats,,positive\n"
        "Bad one,Crypto,\n"
        ",Earnings,\n"
    )
    result = read_label_file(csv_file, {"labeler": "ann", "labeled_at": "2026-11-02T09:00:00Z"})
    assert [r.text for r in result.accepted] == ["Fed raises rates", "Apple beats"]
    assert result.accepted[0].id == text_id("Fed raises rates")
    assert [line for line, _, _ in result.rejected] == [4, 5]
    assert result.rejected[0][2].startswith("topic: 'Crypto'")
    assert "text: Field required" in result.rejected[1][2]

    jsonl = tmp_path / "labels.jsonl"
    good = {"id": "j1", "text": "Oil falls", "topic": "energy_oil", "labeler": "bob", "labeled_at": "2026-11-02T10:00Z"}
    jsonl.write_text(json.dumps(good) + "\n{not json\n\n" + json.dumps(good | {"sentiment": "up"}) + "\n")
    result = read_label_file(jsonl)
    assert [r.topic for r in result.accepted] == ["Energy | Oil"]
    assert [(line, msg[:8]) for line, _, msg in result.rejected] == [(2, "not JSON"), (4, "sentimen")]


def test_cli_import_and_stats(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENTRY_MODEL__RETRAIN__LABELS_DIR", str(tmp_path / "labels"))
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(tmp_path / "registry"))
    good = tmp_path / "good.csv"
    good.write_text("id,text,sentiment,labeler,labeled_at\nk1,Profit warning,negative,ann,2026-11-02T09:00:00Z\n")
    result = runner.invoke(app, ["labels", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "stored 1 labels" in result.output

    mixed = tmp_path / "mixed.csv"
    mixed.write_text("text,sentiment\nShares jump,positive\nShares jump again,very good\n")
    result = runner.invoke(app, ["labels", "import", str(mixed), "--labeler", "bob"])
    assert result.exit_code == 1
    assert "mixed.csv:3: invalid_label: sentiment: 'very good' is not one of" in result.output
    kept = list((tmp_path / "labels" / "rejected").glob("*mixed.csv.jsonl"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["row"]["sentiment"] == "very good"

    result = runner.invoke(app, ["labels", "stats", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["per_sentiment"] == {"negative": 1, "positive": 1}
    assert stats["per_labeler"] == {"ann": 1, "bob": 1}
    assert stats["new_rows"] == 2 and stats["new_since"] is None

    result = runner.invoke(app, ["labels", "import", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "not found" in result.output


def test_file_import_drops_a_bom_reads_long_cells_and_upper_case_suffixes(tmp_path):
    bom = tmp_path / "excel.CSV"
    notes = "n" * 200_000  # longer than the csv module's default field limit (131072)
    bom.write_bytes(
        b"\xef\xbb\xbfid,text,sentiment,labeler,notes\n"
        + b"B1,Shares plunge,negative,ann," + notes.encode() + b"\n"
        + b"B2,Profit soars,positive,ann,short\n"
    )  # fmt: skip
    result = read_label_file(bom, {"labeled_at": "2026-11-02T09:00:00Z"})
    assert [(r.id, r.sentiment) for r in result.accepted] == [("B1", "negative"), ("B2", "positive")]
    assert result.rejected == []
    jsonl = tmp_path / "bom.JSONL"
    jsonl.write_bytes(b'\xef\xbb\xbf{"id": "J1", "text": "Oil falls", "topic": "energy_oil", "labeler": "bob"}\n')
    assert [r.id for r in read_label_file(jsonl, {"labeled_at": "2026-11-02T09:00:00Z"}).accepted] == ["J1"]
    with pytest.raises(FileNotFoundError, match="is a directory; give a file"):
        read_label_file(tmp_path)


def test_file_import_rejects_unusable_json_lines_and_keeps_them(tmp_path):
    store = LabelStore(tmp_path / "labels")
    path = tmp_path / "hostile.jsonl"
    good = {"id": "S1", "text": "fine", "sentiment": "negative", "labeler": "a", "labeled_at": "2026-11-02T09:00Z"}
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                '{"id": "S2", "text": "bad \\ud800", "sentiment": "negative", "labeler": "a"}',
                '{"id": "S3", "n": ' + "9" * 5000 + "}",
                "[" * 100_000 + "]" * 100_000,
                json.dumps(good | {"id": "S4"}),
            ]
        )
        + "\n"
    )
    result = read_label_file(path)
    assert [r.id for r in result.accepted] == ["S1", "S4"]
    assert [(line, row, msg) for line, row, msg in result.rejected] == [
        (2, None, "not usable JSON: field 'text' holds a lone surrogate U+D800 (an unpaired \\ud800 escape), which "
                  "is not valid text"),
        (3, None, "not usable JSON: a number with more than 4300 digits"),
        (4, None, "not usable JSON: nested deeper than 64 levels"),
    ]  # fmt: skip
    kept = store.write_rejected(path.name, result.rejected)
    assert [json.loads(line)["line"] for line in kept.read_text(encoding="utf-8").splitlines()] == [2, 3, 4]
    # a row that still holds a lone surrogate (a caller's own rows) is kept escaped, never a crash
    kept = store.write_rejected("x.jsonl", [(1, {"text": "bad \ud800"}, "because")])
    assert "bad \\ud800" in kept.read_text(encoding="utf-8")  # valid UTF-8, the surrogate as a JSON escape
    assert json.loads(kept.read_text(encoding="utf-8"))["row"] == {"text": "bad \ud800"}


def test_cli_import_checks_labeled_at_once_before_reading_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENTRY_MODEL__RETRAIN__LABELS_DIR", str(tmp_path / "labels"))
    good = tmp_path / "good.csv"
    good.write_text("id,text,sentiment,labeler\nL1,Shares plunge,negative,ann\nL2,Profit soars,positive,ann\n")
    result = runner.invoke(app, ["labels", "import", str(good), "--labeled-at", "yesterday"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.output.strip() == (
        "error: --labeled-at 'yesterday' is not an ISO-8601 time with a zone (Input should be a valid datetime or "
        "date, input is too short); write e.g. 2026-11-29T10:00:00Z"
    )
    no_zone = runner.invoke(app, ["labels", "import", str(good), "--labeled-at", "2026-11-02T09:00:00"])
    assert no_zone.exit_code == 2 and "is not an ISO-8601 time with a zone (Input should have timezone info)" in (
        no_zone.output
    )
    assert LabelStore(tmp_path / "labels").read().empty  # nothing stored, nothing rejected
    assert not (tmp_path / "labels" / "rejected").exists()
    ok = runner.invoke(app, ["labels", "import", str(good), "--labeled-at", "2026-11-02T09:00:00+01:00"])
    assert ok.exit_code == 0, ok.output
    assert list(LabelStore(tmp_path / "labels").read()["id"]) == ["L1", "L2"]
    folder = runner.invoke(app, ["labels", "import", str(tmp_path)])
    assert folder.exit_code == 2
    assert folder.output.strip() == f"error: label file {tmp_path} is a directory; give a file"
