"""The news.raw contract: the schema file, strict parsing, UTC conversion, ticker cleaning."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest
from ingest_testkit import obj

from finsentry.ingest.contract import SCHEMA_PATH, NewsRaw, news_raw_schema, render_schema
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.validation import parse_news_raw


def test_schema_file_equals_the_model_schema():
    assert SCHEMA_PATH.read_text() == render_schema()
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["required"] == ["id", "text", "published_at"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"id", "text", "published_at", "source", "url", "tickers", "lang"}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_and_model_agree_on_good_and_structurally_bad_values():
    validator = jsonschema.Draft202012Validator(news_raw_schema())
    good = {
        "id": "418169902613008384",
        "text": "Dow #Stocks Trend $AXP $UTX",
        "published_at": "2014-01-01T00:00:48Z",
        "source": "stocknet",
        "url": "https://t.co/TvzJfd0RGT",
        "tickers": ["AXP", "UTX"],
        "lang": "en",
    }
    assert list(validator.iter_errors(good)) == []
    assert parse_news_raw(json.dumps(good).encode()).id == good["id"]
    for bad in ({**good, "extra": 1}, {k: v for k, v in good.items() if k != "text"}, {**good, "id": 7}):
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(InvalidRecord):
            parse_news_raw(json.dumps(bad).encode())


def test_published_at_is_converted_to_utc():
    item = parse_news_raw(obj(published_at="2014-01-02T17:04:05+02:00"))
    assert item.published_at == datetime(2014, 1, 2, 15, 4, 5, tzinfo=UTC)
    assert item.published_at.tzinfo is UTC
    assert parse_news_raw(obj(published_at="2014-01-02T15:04:05.250Z")).published_at.microsecond == 250_000


def test_tickers_are_cleaned_and_deduplicated():
    item = parse_news_raw(obj(tickers=["$aapl", "AAPL", " rds-b ", "BRK.A"]))
    assert item.tickers == ["AAPL", "RDS-B", "BRK.A"]


def test_optional_fields_may_be_null_or_absent():
    item = parse_news_raw(obj(source=None, url=None, tickers=None, lang=None))
    assert (item.source, item.url, item.tickers, item.lang) == (None, None, None, None)


def test_model_is_strict_about_types():
    with pytest.raises(InvalidRecord) as err:
        parse_news_raw(obj(id=12))
    assert err.value.reason is DlqReason.WRONG_TYPE
    assert "id" in err.value.message
    assert NewsRaw.model_config["strict"] is True
