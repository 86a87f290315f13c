"""One item names at most ``ingest.scorer.max_tickers_per_item`` tickers, cashtags and company names included, and
every key the scorer fans out to is one the aggregators accept (issue 15, finding 7: an item with 1,600 cashtags
created 1,600 keys; the contract's 64-ticker cap covered only the given ``tickers``)."""

from __future__ import annotations

import itertools
import json
import string

import pytest
from ingest_testkit import TopicReader, obj, produce_items, scorer_settings, wait_for

from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.contract import MAX_TICKERS, key_problem
from finsentry.ingest.normalize import MAX_TICKER_CHARS, TICKER_RE
from finsentry.ingest.scored import keyed_values, scored_value
from finsentry.ingest.validation import validate_news_raw
from finsentry.model.scorer import Prediction
from finsentry.settings import SettingsError, load_settings

PRED = Prediction("Stock Movement", 0.9, "negative", (0.8, 0.15, 0.05), -0.75, "v-test")


def symbols(n: int) -> list[str]:
    """``n`` distinct three-character symbols (a letter and two letters or digits): ``A00``, ``A01``, ..."""
    alnum = string.digits + string.ascii_uppercase
    return ["".join(p) for p in itertools.islice(itertools.product(string.ascii_uppercase, alnum, alnum), n)]


def test_1600_cashtags_give_the_first_64_tickers_and_count_the_rest():
    tags = symbols(1600)
    text = " ".join(f"${t}" for t in tags)  # 8,000 characters, inside the contract's 10,000
    item = validate_news_raw(obj(text=text))
    assert item.tickers == tuple(tags[:MAX_TICKERS]) and item.tickers_dropped == 1600 - 64
    keys = [k for k, _ in keyed_values(item, PRED)]
    assert len(keys) == 2 + 64 and keys[:3] == ["all", "topic:stock_movement", "ticker:A00"]
    scored = scored_value(item, PRED, item.published_at)
    assert (len(scored["tickers"]), scored["tickers_dropped"]) == (64, 1536)


def test_the_cap_keeps_given_tickers_then_cashtags_then_companies_in_text_order():
    companies = CompanyTickerMap({"Apple Inc.": "AAPL", "Exxon Mobil Corporation": "XOM"})
    value = obj(text="Exxon and $MSFT, then $IBM, Apple and $msft again", tickers=["ge", "$F"])
    full = validate_news_raw(value, companies=companies)
    assert (full.tickers, full.tickers_dropped) == (("GE", "F", "MSFT", "IBM", "XOM", "AAPL"), 0)
    capped = validate_news_raw(value, companies=companies, max_tickers=3)
    assert (capped.tickers, capped.tickers_dropped) == (("GE", "F", "MSFT"), 3)
    one = validate_news_raw(obj(text="$IBM and $MSFT"), max_tickers=1)
    assert (one.tickers, one.tickers_dropped) == (("IBM",), 1)


def test_max_tickers_per_item_setting_is_bounded_and_named(monkeypatch):
    assert load_settings().ingest.scorer.max_tickers_per_item == MAX_TICKERS
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_TICKERS_PER_ITEM", "8")
    assert load_settings().ingest.scorer.max_tickers_per_item == 8
    for bad in ("0", "65"):
        monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_TICKERS_PER_ITEM", bad)
        with pytest.raises(SettingsError, match=r"ingest\.scorer\.max_tickers_per_item"):
            load_settings()


@pytest.mark.parametrize(
    "text",
    [
        "$ABCDEFGHIJ.AB $aapl $brk.a $RDS-B $A1 $Z9Z9Z9Z9Z9 $X-Y",  # the longest cashtags, classes, digits
        "$ABCDEFGHIJK $A_B $5 U$S $AAPLx $.A $-",  # not cashtags: none becomes a key
    ],
)
def test_every_key_the_scorer_produces_is_one_the_aggregator_accepts(text):
    item = validate_news_raw(obj(text=text, tickers=["$abcdefghij.abcd", "brk-b"]))
    keys = [k for k, _ in keyed_values(item, PRED)]
    assert keys[2:4] == ["ticker:ABCDEFGHIJ.ABCD", "ticker:BRK-B"]
    assert [(k, key_problem(k)) for k in keys if key_problem(k)] == []


def test_a_company_table_with_a_symbol_that_is_no_ticker_is_refused(tmp_path):
    assert len("ABCDEFGHIJ.ABCD") == MAX_TICKER_CHARS and TICKER_RE.match("ABCDEFGHIJ.ABCD")
    with pytest.raises(ValueError, match=r"ticker 'AAPL INC' of 'Apple Inc\.' is not an upper-case symbol"):
        CompanyTickerMap({"Apple Inc.": "AAPL INC"})
    table = tmp_path / "StockTable.tsv"
    table.write_text("Sector\tSymbol\tCompany\nTech\t$AAPL\tApple Inc.\nTech\t$" + "X" * 40 + "\tLong Corp\n")
    with pytest.raises(ValueError, match=rf"^{tmp_path}/StockTable.tsv: ticker 'XXXX"):
        CompanyTickerMap.from_stocknet_table(table)


@pytest.mark.broker
def test_the_scorer_service_caps_an_item_of_1600_cashtags_and_counts_the_rest(fresh_broker, scorer):
    from finsentry.ingest.scorer_service import ScorerService
    from finsentry.ingest.topics import NEWS_SCORED, SENTIMENT_KEYED

    tags = symbols(1600)
    items = [
        {"id": "flood", "text": " ".join(f"${t}" for t in tags), "published_at": "2026-11-02T10:00:00Z"},
        {"id": "plain", "text": "$AAPL falls after earnings", "published_at": "2026-11-02T10:00:01Z"},
    ]
    settings = scorer_settings(fresh_broker, "ticker-cap", max_tickers_per_item=10)
    produce_items(settings.kafka, items)
    service = ScorerService(scorer, settings, companies=None, serve_metrics=False)
    service.start_thread()
    reader = TopicReader(settings.kafka, NEWS_SCORED, SENTIMENT_KEYED)
    try:
        reader.read_until(
            lambda r: len(r.records[NEWS_SCORED]) >= 2 and len(r.records[SENTIMENT_KEYED]) >= 12 + 3, 120, "2 items"
        )
        wait_for(lambda: service.stats.scored == 2, 30, "stats to settle")
    finally:
        service.stop_and_join()
        reader.close()
    assert service.error is None
    scored = {v["id"]: v for v in (json.loads(r.value) for r in reader.records[NEWS_SCORED])}
    assert scored["flood"]["tickers"] == tags[:10] and scored["flood"]["tickers_dropped"] == 1590
    assert (scored["plain"]["tickers"], scored["plain"]["tickers_dropped"]) == (["AAPL"], 0)
    keyed = [r.key.decode() for r in reader.records[SENTIMENT_KEYED]]
    assert len(keyed) == 12 + 3 and sum(k.startswith("ticker:") for k in keyed) == 11
    assert service.metrics.registry.get_sample_value("finsentry_scorer_tickers_dropped_total") == 1590
    assert service.stats.tickers_dropped == 1590
