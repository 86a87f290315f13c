"""Replay input: StockNet merging on real rows, column mapping, time range, ordering, pacing offsets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from ingest_testkit import STOCKNET_MONTHLY

from finsentry.ingest.replay import send_offsets
from finsentry.ingest.replay_source import ColumnMap, ReplayItem, load_items

JAN = STOCKNET_MONTHLY / "stocknet_tweets_2014-01.csv"


def test_stocknet_rows_of_one_tweet_merge_into_one_item():
    loaded = load_items([JAN], limit_rows=400)
    assert loaded.stocknet and loaded.rows == 400
    assert loaded.merged_rows + len(loaded.items) == 400
    by_id = {i.id: i for i in loaded.items}
    dow = by_id["418169902613008384"].value
    assert dow["tickers"] == [
        "CAT",
        "CSCO",
        "DIS",
        "GE",
        "HD",
        "INTC",
        "JPM",
        "KO",
        "MMM",
        "MRK",
        "MSFT",
        "UNH",
        "UTX",
        "V",
    ]
    assert dow["published_at"] == "2014-01-01T00:00:48Z"
    assert dow["lang"] == "en"
    assert set(dow) == {"id", "text", "published_at", "lang", "tickers"}
    assert len(by_id) == len(loaded.items)  # one item per tweet id


def test_language_is_passed_through():
    loaded = load_items([JAN], limit_rows=2000)
    langs = {i.value["lang"] for i in loaded.items}
    assert "en" in langs and len(langs) > 3


def test_items_are_ordered_by_event_time_and_filtered_by_range(tmp_path):
    rows = [
        {"id": "c", "text": "third", "published_at": "2014-01-01T12:00:00+02:00"},  # 10:00Z
        {"id": "a", "text": "first", "published_at": "2014-01-01T09:00:00Z"},
        {"id": "b", "text": "second", "published_at": "2014-01-01T09:30:00Z", "tickers": "AAPL;MSFT"},
        {"id": "x", "text": "no zone", "published_at": "2014-01-01T09:45:00"},
        {"id": "d", "text": "late", "published_at": "2014-01-01T11:00:00Z"},
    ]
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    loaded = load_items([path])
    assert [i.id for i in loaded.items] == ["a", "b", "c", "d"]
    assert loaded.skipped == {"unreadable_event_time": 1}
    assert loaded.items[1].value["tickers"] == ["AAPL", "MSFT"]
    assert loaded.items[2].value["published_at"] == "2014-01-01T10:00:00Z"
    window = load_items(
        [path], time_from=datetime(2014, 1, 1, 9, 30, tzinfo=UTC), time_to=datetime(2014, 1, 1, 11, tzinfo=UTC)
    )
    assert [i.id for i in window.items] == ["b", "c"]
    assert window.skipped["outside_time_range"] == 2
    assert [i.id for i in load_items([path], assume_utc=True).items] == ["a", "b", "x", "c", "d"]


def test_column_mapping_for_a_generic_csv(tmp_path):
    path = tmp_path / "headlines.csv"
    path.write_text("uid,headline,when,symbols,link\n7,Fed holds rates,2020-03-01T10:00:00Z,,https://x.com/7\n")
    loaded = load_items(
        [path], overrides=["id=uid", "text=headline", "published_at=when", "tickers=symbols", "url=link"], source="wire"
    )
    assert [i.value for i in loaded.items] == [
        {"id": "7", "text": "Fed holds rates", "published_at": "2020-03-01T10:00:00Z", "url": "https://x.com/7",
         "source": "wire"}
    ]  # fmt: skip
    with pytest.raises(ValueError, match="bad column mapping"):
        ColumnMap.parse(["sentiment=col"])


def test_send_offsets():
    t0 = datetime(2014, 1, 1, tzinfo=UTC)
    items = [ReplayItem(t0 + timedelta(seconds=s), {}) for s in (0, 30, 30, 120)]
    assert send_offsets(items, speedup=60) == [0.0, 0.5, 0.5, 2.0]
    assert send_offsets(items, rate=4) == [0.0, 0.25, 0.5, 0.75]
    assert send_offsets(items) == [0.0] * 4
    with pytest.raises(ValueError):
        send_offsets(items, speedup=2, rate=2)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_items([tmp_path / "nope.csv"])


def test_why_nothing_names_the_time_range_and_the_event_times_held(tmp_path):
    from finsentry.ingest.replay_source import why_nothing

    path = tmp_path / "news.csv"
    path.write_text("id,text,published_at\n1,a,2014-01-01T09:00:00Z\n2,b,2014-01-02T09:00:00Z\n")
    start, end = datetime(2015, 1, 1, tzinfo=UTC), datetime(2015, 2, 1, tzinfo=UTC)
    loaded = load_items([path], time_from=start, time_to=end)
    assert loaded.items == [] and loaded.skipped == {"outside_time_range": 2}
    assert why_nothing(loaded, start, end) == (
        "no item matched: of 2 rows read, 2 rows fall outside the time range 2015-01-01T00:00:00Z .. "
        "2015-02-01T00:00:00Z of --from/--to (end exclusive); the event times read run from 2014-01-01T09:00:00Z "
        "to 2014-01-02T09:00:00Z"
    )
    assert why_nothing(load_items([path]), None, None) is None


def test_why_nothing_names_the_mapped_columns_and_the_columns_there_are(tmp_path):
    from finsentry.ingest.replay_source import why_nothing

    path = tmp_path / "news.csv"
    path.write_text("uid,headline,when\n7,Fed holds rates,2020-03-01T10:00:00\n")
    no_zone = load_items([path], overrides=["id=uid", "text=headline", "published_at=when"])
    assert why_nothing(no_zone) == (
        "no item matched: of 1 rows read, 1 rows have no readable event time in column 'when' (columns: uid, "
        "headline, when; map it with --map published_at=COLUMN or --time-column, and add --assume-utc for times "
        "without a zone)"
    )
    no_text = load_items([path], overrides=["id=uid", "text=title", "published_at=when"], assume_utc=True)
    assert len(no_text.items) == 1 and no_text.items[0].value["text"] is None
    assert why_nothing(no_text) == (
        "no item has a text: none of the 1 items has a value in text column 'title' (columns: uid, headline, "
        "when); map it with --map text=COLUMN"
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert why_nothing(load_items([empty])) == "the files hold no rows"


def test_replay_of_nothing_raises_before_connecting_to_kafka(tmp_path):
    from finsentry.ingest.broker import free_port
    from finsentry.ingest.replay import NothingToReplay, replay
    from finsentry.ingest.settings import KafkaSettings

    path = tmp_path / "news.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "x", "published_at": "2014-01-01T09:00:00Z"}) + "\n")
    nobody = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")  # would fail with NoBrokersAvailable
    with pytest.raises(NothingToReplay, match=r"^nothing to replay from .*news\.jsonl: no item matched: of 1 rows"):
        replay([path], nobody, time_to=datetime(2014, 1, 1, tzinfo=UTC), progress=False)
