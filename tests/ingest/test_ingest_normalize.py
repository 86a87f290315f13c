"""Text normalization, cashtags and the StockNet company-name dictionary."""

from __future__ import annotations

import pytest

from finsentry.common.paths import DATA_DIR
from finsentry.ingest.company_tickers import CompanyTickerMap, short_name
from finsentry.ingest.normalize import cashtags, clean_ticker, normalize_text

TABLE = DATA_DIR / "stocknet_tweets" / "StockTable.tsv"


def test_entities_urls_and_whitespace():
    n = normalize_text("AT&amp;T &lt;b&gt; up\t\t5%&nbsp;today\u200b https://t.co/x1. www.example.com/a?b=1 end")
    assert n.text == "AT&T <b> up 5% today end"
    assert n.urls == ("https://t.co/x1", "www.example.com/a?b=1")


def test_direction_controls_are_removed():
    """Issue 15, finding 8: U+202E and the other direction controls passed through to the dashboard."""
    controls = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    assert normalize_text(f"Acme {controls}SGNINRAE\u202c beat").text == "Acme SGNINRAE beat"
    assert normalize_text("&#x202e;gnp.exe").text == "gnp.exe"  # also when an entity spells one
    assert normalize_text("\u202e\u2066").text == ""  # nothing else: an empty text (dead-lettered as empty_text)
    rtl = "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd"  # Arabic and Hebrew words: kept as they are
    assert normalize_text(rtl).text == rtl


def test_url_stops_at_quotes():
    n = normalize_text("\u201c@MarketWatch: list http://t.co/RLXu6HhiCm\u201d")
    assert n.urls == ("http://t.co/RLXu6HhiCm",)
    assert n.text == "\u201c@MarketWatch: list \u201d"


def test_cashtags():
    assert cashtags("$AAPL up, $aapl again, $RDS-B and $BRK.A; $5 off, US$ 3, U$S, $ES_F, end $GOOG.") == [
        "AAPL",
        "RDS-B",
        "BRK.A",
        "GOOG",
    ]
    assert clean_ticker(" $rds-b ") == "RDS-B"


def test_stocknet_table_symbols_lose_the_dollar_and_keep_class_suffixes():
    companies = CompanyTickerMap.from_stocknet_table(TABLE)
    assert companies.names["Royal Dutch Shell"] == "RDS-B"
    assert companies.names["Berkshire Hathaway"] == "BRK-A"
    assert companies.names["Exxon Mobil"] == "XOM"
    assert not any(t.startswith("$") for t in companies.names.values())
    assert len(set(companies.names.values())) == 88  # one per row of the table


def test_company_names_in_text():
    companies = CompanyTickerMap.from_stocknet_table(TABLE)
    text = "Will Shell\u2019s LNG pay off? Apple-based Intelligence; Bank of America and Johnson & Johnson; intel"
    assert companies.find(text) == ["RDS-B", "AAPL", "BAC", "JNJ"]
    assert companies.find("The Southern Company said Visa fees rise") == ["SO"]


def test_short_names():
    assert short_name("The Procter & Gamble") == "Procter & Gamble"
    assert short_name("Pepsico  Inc.") == "Pepsico"
    assert short_name("Alibaba Group Holding") == "Alibaba"
    assert short_name("3M Company") == "3M"


def test_a_company_table_with_a_stray_quote_or_a_huge_cell_is_refused_with_its_line(tmp_path):
    """A quote never closed used to swallow the rest of the table into one company name (59 rows loaded as 4, no
    word said); a cell past csv's field limit raised a bare ``_csv.Error`` (a traceback from score and run)."""
    rows = "".join(f"Tech\t$C{i}\tCompany Number {i}\n" for i in range(50))
    stray = tmp_path / "stray.tsv"
    stray.write_text('Sector\tSymbol\tCompany\nTech\t$BAR\t"Bar Corp\n' + rows, encoding="utf-8")
    with pytest.raises(ValueError, match=r"stray\.tsv:\d+: not a readable tab-separated table"):
        CompanyTickerMap.from_stocknet_table(stray)
    huge = tmp_path / "huge.tsv"
    huge.write_text("Sector\tSymbol\tCompany\nTech\t$AAPL\t" + "A" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"huge\.tsv:2: not a readable tab-separated table \(field larger"):
        CompanyTickerMap.from_stocknet_table(huge)
