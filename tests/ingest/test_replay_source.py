"""Replay input: StockNet merging on real rows, column mapping, time range, ordering, pacing offsets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from ingest_testkit import STOCKNET_MONTHLY

from finsentry.ingest.replay import send_offsets
from finsentry.ingest.replay_source import ColumnMap, ReplayItem, load_items, tickers_from_cell

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


def test_a_csv_with_a_bom_keeps_its_id_column_and_rows_without_an_id_get_a_stable_one(tmp_path):
    from finsentry.ingest.replay_source import derived_id

    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,text,published_at\nbom1,Shares plunge,2015-08-24T10:00:00Z\n")
    assert [i.value for i in load_items([bom]).items] == [
        {"id": "bom1", "text": "Shares plunge", "published_at": "2015-08-24T10:00:00Z"}
    ]
    noid = tmp_path / "noid.csv"
    noid.write_text("text,published_at\nNoid shares plunge,2015-08-24T12:00:00+02:00\n")
    jsonl = tmp_path / "noid.jsonl"
    jsonl.write_text(
        json.dumps({"id": None, "text": "Noid shares plunge", "published_at": "2015-08-24T10:00:00Z"})
        + "\n"
        + json.dumps({"id": "", "text": "Other", "published_at": "2015-08-24T10:00:00Z"})
        + "\n"
    )
    first, again = load_items([noid]), load_items([noid])
    (item,) = first.items
    assert item.id == derived_id("2015-08-24T10:00:00Z", "Noid shares plunge") == again.items[0].id
    assert item.id.startswith("auto-") and len(item.id) == 5 + 16
    assert [i.id for i in load_items([jsonl]).items] == [item.id, derived_id("2015-08-24T10:00:00Z", "Other")]
    assert first.refused == [] and first.skipped == {}


def test_rows_the_scorer_would_dead_letter_are_refused_with_file_and_line(tmp_path):
    at = "2015-08-24T10:00:00Z"
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"id": "ok1", "text": "fine", "published_at": at, "tickers": "AAPL"}),
        json.dumps({"id": "l5", "text": "ok", "published_at": at, "lang": 5}),
        json.dumps({"id": {"a": 1}, "text": "ok", "published_at": at}),
        json.dumps({"id": "a b", "text": "ok", "published_at": at}),
        json.dumps({"id": "i" * 300, "text": "ok", "published_at": at}),
        json.dumps({"id": True, "text": "ok", "published_at": at}),
        json.dumps({"id": "t5", "text": 5, "published_at": at}),
        json.dumps({"id": "k2", "text": "ok", "published_at": at, "tickers": [["A"], 5]}),
        '{"id": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"id": "big", "n": ' + "9" * 5000 + "}",
        '{"id": "su", "text": "bad \\ud800", "published_at": "' + at + '"}',
        "[1, 2]",
        json.dumps({"id": 42, "text": "a number id", "published_at": at}),
    ]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_items([path])
    assert [i.value for i in loaded.items] == [
        {"id": "ok1", "text": "fine", "published_at": at, "tickers": ["AAPL"]},
        {"id": "42", "text": "a number id", "published_at": at},
    ]
    assert loaded.refused == [
        (f"{path}:2", "lang must be text, got a number"),
        (f"{path}:3", "id must be text or a whole number, got an object"),
        (f"{path}:4", "id 'a b' holds whitespace or control characters"),
        (f"{path}:5", "id is 300 characters long; at most 256"),
        (f"{path}:6", "id must be text or a whole number, got a boolean"),
        (f"{path}:7", "text must be text, got a number"),
        (f"{path}:8", "tickers must be a list of text, got an element that is a list"),
        (f"{path}:9", "not usable JSON: nested deeper than 64 levels"),
        (f"{path}:10", "not usable JSON: a number with more than 4300 digits"),
        (f"{path}:11", "not usable JSON: field 'text' holds a lone surrogate U+D800 (an unpaired \\ud800 escape), "
                       "which is not valid text"),
        (f"{path}:12", "expected a JSON object per line, got a list"),
    ]  # fmt: skip
    assert loaded.skipped == {"wrong_type": 3, "invalid_id": 4, "bad_line": 4}
    assert loaded.rows == 13


def test_json_null_and_booleans_carry_no_ticker(tmp_path):
    """A tickers cell holding a JSON list with null / true / false became the symbols NONE, TRUE and FALSE (they
    pass the contract's ticker syntax, so the scorer keyed the item under ticker:NONE). They carry no ticker,
    as a value or a list member; a number in a list stays, as its text."""
    assert tickers_from_cell(None) == tickers_from_cell(False) == tickers_from_cell(True) == []
    assert tickers_from_cell([None, "AAPL", False, True, 5, 2.5, " "]) == ["AAPL", "5", "2.5"]
    assert tickers_from_cell('[null, "AAPL", true, 7]') == ["AAPL", "7"]
    assert tickers_from_cell("[null]") == tickers_from_cell("[false, true]") == []
    assert tickers_from_cell("TRUE, AAPL") == ["TRUE", "AAPL"]  # text is text: TRUE is TrueCar's symbol
    # a cell of nested brackets is not a JSON list the interpreter can read (it raised RecursionError): split
    assert tickers_from_cell("[" * 100_000) == ["[" * 100_000]
    at = "2015-08-24T10:00:00Z"
    csv_path = tmp_path / "news.csv"
    csv_path.write_text(
        f'id,text,published_at,tickers\nc1,Apple up,{at},"[null, ""AAPL"", true, 5]"\nc2,x,{at},[null]\n'
    )
    assert [i.value.get("tickers") for i in load_items([csv_path]).items] == [["AAPL", "5"], None]
    jsonl = tmp_path / "news.jsonl"
    jsonl.write_text(json.dumps({"id": "j1", "text": "x", "published_at": at, "tickers": '[null, "MSFT"]'}) + "\n")
    assert load_items([jsonl]).items[0].value["tickers"] == ["MSFT"]


def test_a_csv_cell_longer_than_the_csv_module_default_is_replayed(tmp_path):
    import csv

    path = tmp_path / "long.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["id", "text", "published_at"],
                ["long", "crash " * 30_000, "2015-08-24T10:00:00Z"],
                ["s", "x", "2015-01-01T00:00:00"],
            ]
        )
    limit = csv.field_size_limit()
    loaded = load_items([path], assume_utc=True)
    assert [(i.id, len(i.value["text"])) for i in loaded.items] == [("s", 1), ("long", 180_000)]
    assert csv.field_size_limit() == limit


def test_a_file_of_refused_rows_is_nothing_to_replay_and_says_why(tmp_path):
    from finsentry.ingest.broker import free_port
    from finsentry.ingest.replay import NothingToReplay, replay
    from finsentry.ingest.settings import KafkaSettings

    path = tmp_path / "all-bad.jsonl"
    path.write_text('{"id": [1], "text": "x", "published_at": "2015-08-24T10:00:00Z"}\n{bad\n')
    nobody = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(NothingToReplay) as err:
        replay([path], nobody, progress=False)
    assert str(err.value) == (
        f"nothing to replay from {path}: no item matched: of 2 rows read, 2 rows were refused (first: {path}:1: id "
        "must be text or a whole number, got a list)"
    )
    assert err.value.refused == [
        (f"{path}:1", "id must be text or a whole number, got a list"),
        (f"{path}:2", "not JSON (Expecting property name enclosed in double quotes)"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"speedup": 1e-300}, "speedup must be a finite number from 0.001 to 1e+09, got 1e-300"),
        ({"speedup": float("nan")}, "speedup must be a finite number from 0.001 to 1e+09, got nan"),
        ({"speedup": float("inf")}, "speedup must be a finite number from 0.001 to 1e+09, got inf"),
        ({"rate": float("nan")}, "rate must be a finite number from 0.001 to 1e+07, got nan"),
        ({"rate": float("inf")}, "rate must be a finite number from 0.001 to 1e+07, got inf"),
        ({"rate": 0}, "rate must be a finite number from 0.001 to 1e+07, got 0"),
    ],
)
def test_pacing_must_be_finite_and_in_range(kwargs, message):
    from finsentry.ingest.replay import check_pacing

    with pytest.raises(ValueError) as err:
        send_offsets([ReplayItem(datetime(2014, 1, 1, tzinfo=UTC), {})], **kwargs)
    assert str(err.value) == message
    with pytest.raises(ValueError):
        check_pacing(**kwargs)


def test_a_gap_of_years_at_the_slowest_speedup_waits_in_pieces_and_stops_on_request():
    import threading

    from finsentry.ingest.replay import send_items

    class Producer:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def send(self, topic, key, value):
            self.sent.append(key)

            class Future:
                def add_errback(self, fn):
                    return self

            return Future()

        def flush(self, timeout=None):
            return None

    t0 = datetime(2014, 1, 1, tzinfo=UTC)
    items = [ReplayItem(t0, {"id": "a"}), ReplayItem(t0 + timedelta(days=3650), {"id": "b"})]
    producer, stop = Producer(), threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    report = send_items(items, producer, speedup=0.001, stop=stop, progress=False)  # b is due in 10**4 years
    timer.join()
    assert producer.sent == [b"a"] and report.stopped and report.sent == 1


def test_why_nothing_names_the_missing_columns_not_the_event_time(tmp_path):
    """A CSV whose columns are not the contract's was blamed on its event times ('1 rows have no readable event
    time in column 'published_at''), not on the columns it lacks."""
    from finsentry.ingest.replay_source import why_nothing

    path = tmp_path / "news.csv"
    path.write_text("headline,when\nFed holds rates,2020-03-01T10:00:00Z\n")
    loaded = load_items([path])
    assert loaded.items == [] and loaded.skipped == {"unreadable_event_time": 1}
    assert why_nothing(loaded) == (
        f"no item matched: of 1 rows read, {path}: missing columns text, published_at (it has headline, when; "
        "expected text, published_at and optionally id, source, url, tickers, lang); map them with --map "
        "FIELD=COLUMN"
    )
    mapped = load_items([path], overrides=["published_at=when"])
    assert mapped.missing_columns == [] and len(mapped.items) == 1
