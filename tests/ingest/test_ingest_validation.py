"""Validation maps every malformed kind to its reason; good items come out normalized."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from ingest_testkit import MALFORMED, obj

from finsentry.common.paths import DATA_DIR
from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.validation import language_allowed, validate_news_raw

COMPANIES = CompanyTickerMap.from_stocknet_table(DATA_DIR / "stocknet_tweets" / "StockTable.tsv")


@pytest.mark.parametrize(("kind", "value", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_value_gets_its_reason(kind, value, reason):
    with pytest.raises(InvalidRecord) as err:
        validate_news_raw(value, companies=COMPANIES)
    assert err.value.reason is reason, err.value.message
    assert err.value.message


def test_good_item_is_normalized_and_tickers_merged():
    value = {
        "id": "418760619995561985",
        "text": "$AEP Top Analyst Upgrades &amp; Downgrades:\n Apple,  Intel\u00a0... http://t.co/nxV8robvqq",
        "published_at": "2014-01-02T15:08:06Z",
        "tickers": ["aep", "$XOM"],
        "lang": "en-US",
    }
    item = validate_news_raw(json.dumps(value).encode(), companies=COMPANIES)
    assert item.text == "$AEP Top Analyst Upgrades & Downgrades: Apple, Intel ..."
    assert item.tickers == ("AEP", "XOM", "AAPL", "INTC")
    assert item.url == "http://t.co/nxV8robvqq"
    assert item.published_at == datetime(2014, 1, 2, 15, 8, 6, tzinfo=UTC)
    assert item.to_dict()["published_at"] == "2014-01-02T15:08:06Z"


def test_given_url_wins_over_links_in_the_text():
    item = validate_news_raw(obj(text="see https://t.co/a", url="https://example.com/a"))
    assert (item.url, item.text) == ("https://example.com/a", "see")


def test_c1_controls_from_real_mojibake_are_removed_not_rejected():
    item = validate_news_raw(obj(text="vote (F\u008eRH\u008fT I$ \u00f8BE$T)\u007f"))
    assert item.text == "vote (FRHT I$ \u00f8BE$T)"


def test_message_size_limit_is_a_setting():
    value = obj(text="a" * 500)
    assert validate_news_raw(value, max_message_bytes=len(value)).id == "m1"
    with pytest.raises(InvalidRecord) as err:
        validate_news_raw(value, max_message_bytes=len(value) - 1)
    assert err.value.reason is DlqReason.MESSAGE_TOO_LARGE


def test_language_is_judged_only_by_the_lang_field():
    assert language_allowed(None, ["en"])
    assert language_allowed("EN", ["en"]) and language_allowed("en_GB", ["en"])
    assert not language_allowed("es", ["en"])
    assert language_allowed("es", ["en", "es"])
    # a Spanish text without lang is scored: the language is never guessed
    assert validate_news_raw(obj(text="Apple supera las estimaciones")).lang is None
    with pytest.raises(InvalidRecord) as err:
        validate_news_raw(obj(text="Apple beats estimates", lang="de"))
    assert err.value.reason is DlqReason.UNSUPPORTED_LANGUAGE
