"""Parsing sentiment.keyed values, fan-out of news.scored records, and settings validation."""

from __future__ import annotations

import json

import pytest

from finsentry.ingest.contract import KeyedMessageError, aggregate_keys, parse_keyed
from finsentry.monitor import buckets, settings
from finsentry.monitor.records import keyed_from_scored

GOOD = {
    "id": "n1",
    "key": "ticker:AAPL",
    "published_at": "2015-08-24T13:30:00Z",
    "sentiment": "negative",
    "sentiment_probs": [0.8, 0.15, 0.05],
    "sentiment_score": -0.75,
    "topic": "Stock Movement",
    "tickers": ["AAPL"],
    "text": "Apple falls",
    "url": None,
    "model_version": "v1",
}


def test_a_valid_message_parses():
    it = parse_keyed(json.dumps(GOOD).encode(), b"ticker:AAPL")
    assert it.key == "ticker:AAPL" and it.published_at.timestamp() == 1440423000.0 and it.sentiment_score == -0.75


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "id"}).encode(), "missing_field"),
        (json.dumps(GOOD | {"published_at": "2015-08-24T13:30:00"}).encode(), "missing_timezone"),
        (json.dumps(GOOD | {"published_at": "yesterday"}).encode(), "bad_timestamp"),
        (json.dumps(GOOD | {"sentiment": "bearish"}).encode(), "invalid_value"),
        (json.dumps(GOOD | {"sentiment_score": 3}).encode(), "invalid_value"),
        (json.dumps(GOOD | {"sentiment_score": "low"}).encode(), "wrong_type"),
        (json.dumps(GOOD | {"key": "ticker:$aapl"}).encode(), "invalid_key"),
    ],
)
def test_bad_values_raise_with_a_reason(value, reason):
    with pytest.raises(KeyedMessageError) as err:
        parse_keyed(value)
    assert err.value.reason == reason


def test_kafka_key_must_match_the_value_key():
    with pytest.raises(KeyedMessageError) as err:
        parse_keyed(json.dumps(GOOD).encode(), b"all")
    assert err.value.reason == "invalid_value" and "differs" in str(err.value)


def test_fan_out_matches_the_scorer():
    from finsentry.ingest import contract, scored

    assert aggregate_keys is contract.aggregate_keys and not hasattr(scored, "aggregate_keys")  # one copy
    rec = {k: v for k, v in GOOD.items() if k != "key"} | {"tickers": ["AAPL", "MSFT"]}
    assert [k.key for k in keyed_from_scored(rec)] == ["all", "topic:stock_movement", "ticker:AAPL", "ticker:MSFT"]


def test_settings_reject_bad_combinations_naming_the_key():
    from finsentry.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="bucket_seconds=7 must divide 86400"):
        load_settings(monitor={"bucket_seconds": 7})
    with pytest.raises(SettingsError, match="multiples of bucket_seconds"):
        load_settings(monitor={"windows_seconds": [90]})
    with pytest.raises(SettingsError, match="end_z"):
        load_settings(monitor={"spike": {"start_z": 2, "end_z": 2}})
    with pytest.raises(SettingsError, match="lookback_seconds"):
        load_settings(monitor={"lookback_seconds": 600})
    ok = settings.preset("stocknet")
    assert ok.bucket_seconds == 3600 and ok.window_names == {"1d": 86400, "7d": 604800}
    with pytest.raises(KeyError, match="presets"):
        settings.preset("nope")


def test_truncated_is_parsed_false_when_absent_and_shown_in_evidence_items():
    """``truncated`` (the model did not score all of an item's text) reaches the monitor from sentiment.keyed and
    news.scored records; records written before the field parse as ``False``."""
    assert "truncated" not in GOOD and parse_keyed(json.dumps(GOOD)).truncated is False
    long_text = "Apple falls after a very long report"  # another story: evidence lists a story's text once
    long = parse_keyed(json.dumps(GOOD | {"id": "long", "sentiment_score": -0.9, "truncated": True, "text": long_text}))
    assert long.truncated is True
    scored = {k: v for k, v in GOOD.items() if k != "key"} | {"truncated": True, "chunks": 16}
    assert [(i.key, i.truncated) for i in keyed_from_scored(scored)] == [
        ("all", True),
        ("topic:stock_movement", True),
        ("ticker:AAPL", True),
    ]
    bucket = buckets.Bucket()
    short = parse_keyed(json.dumps(GOOD))
    bucket.add(long, long.sentiment_score)
    bucket.add(short, short.sentiment_score)
    assert [(e["id"], e["sentiment_score"], e["truncated"]) for e in buckets.evidence([bucket])] == [
        ("long", -0.9, True),
        ("n1", -0.75, False),
    ]


def test_a_tickers_cell_of_a_scored_csv_fans_out_like_a_replayed_one():
    """``finsentry score --input news.csv`` passes a ``tickers`` column through as text ("AAPL, MSFT", or "" for
    none); the report reads it as a replay of the same CSV would (split at commas, semicolons, bars, blanks).
    Before, every such row was skipped ("tickers: Input should be a valid list"), and a cell iterated as a string
    would have made one key per character (ticker:A, ticker:P, ...)."""
    base = {k: v for k, v in GOOD.items() if k != "key"}
    rec = base | {"tickers": "AAPL, msft;$TSLA"}
    items = keyed_from_scored(rec)
    assert [k.key for k in items] == ["all", "topic:stock_movement", "ticker:AAPL", "ticker:MSFT", "ticker:TSLA"]
    assert [k.key for k in keyed_from_scored(base | {"tickers": ""})] == ["all", "topic:stock_movement"]
    assert [k.key for k in keyed_from_scored(base | {"tickers": '["AAPL"]'})][-1] == "ticker:AAPL"


@pytest.mark.parametrize(
    ("probs", "said"),
    [
        ({"negative": 0.7, "neutral": 0.2, "positive": 0.1, "mixed": 0.0}, "(unknown mixed)"),
        ({"Negative": 0.7, "Neutral": 0.2, "Positive": 0.1}, "missing negative, neutral, positive"),
        ({"negative": 0.7, "neutral": 0.3}, "missing positive"),
    ],
)
def test_named_sentiment_probs_with_other_keys_say_which(probs, said):
    """The named form of ``sentiment_probs`` (what ``finsentry score`` writes) with a key too many, too few or
    capitalized: the one line names the keys expected and the wrong ones (it said 'Input should be a valid
    tuple', which a reader of a mapping cannot act on)."""
    with pytest.raises(KeyedMessageError) as err:
        parse_keyed(json.dumps(GOOD | {"sentiment_probs": probs}))
    assert err.value.reason == "wrong_type"
    assert str(err.value).startswith("sentiment_probs: a mapping needs exactly the keys negative, neutral, positive")
    assert said in str(err.value), str(err.value)


@pytest.mark.parametrize("tickers", [[1, "AAPL"], 5, [None], [["AAPL"]]])
def test_a_scored_record_with_tickers_of_a_wrong_type_is_skipped_with_a_reason(tickers):
    """finsentry score passes a JSONL row's tickers through as they are; a ticker that is not text made the fan-out
    raise AttributeError / TypeError, and finsentry report ended in a traceback instead of skipping the record."""
    rec = {k: v for k, v in GOOD.items() if k != "key"} | {"tickers": tickers}
    with pytest.raises(KeyedMessageError) as err:
        keyed_from_scored(rec)
    assert err.value.reason == "wrong_type" and str(err.value).startswith("tickers"), str(err.value)


@pytest.mark.parametrize("published_at", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z"])
def test_a_scored_record_dated_before_1970_is_skipped_as_news_raw_refuses_it(published_at):
    """A placeholder date (0001-01-01, .NET's DateTime.MinValue) in a scored file made finsentry report close every
    60 s bucket from year 1 to the next item (~10^9 of them: it ran for hours); news.raw refuses such a date, so
    no live item has one. The report skips the record, as bad_timestamp."""
    rec = {k: v for k, v in GOOD.items() if k != "key"} | {"published_at": published_at}
    with pytest.raises(KeyedMessageError) as err:
        keyed_from_scored(rec)
    assert err.value.reason == "bad_timestamp" and "before 1970" in str(err.value), str(err.value)
    assert keyed_from_scored(rec | {"published_at": "1970-01-01T00:00:00Z"})[0].published_at.year == 1970
    with pytest.raises(KeyedMessageError, match="out of range") as err:  # year 10000 in UTC: an OverflowError
        keyed_from_scored(rec | {"published_at": "9999-12-31T23:59:59-14:00"})
    assert err.value.reason == "bad_timestamp"


@pytest.mark.parametrize("published_at", [12345, 1678406400.5, True, ["2023-03-10T00:00:00Z"]])
def test_a_scored_record_whose_published_at_is_not_a_string_is_skipped(published_at):
    """A number was read as seconds since 1970 (12345 became 1970-01-01T03:25:45Z) and, beside real dates, made the
    report build a bucket per minute since 1970 (gigabytes); news.raw wants ISO-8601 text, and so does the report."""
    rec = {k: v for k, v in GOOD.items() if k != "key"} | {"published_at": published_at}
    with pytest.raises(KeyedMessageError) as err:
        keyed_from_scored(rec)
    assert err.value.reason == "wrong_type" and str(err.value).startswith("published_at"), str(err.value)
