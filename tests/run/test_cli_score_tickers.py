"""``finsentry score`` gives a row the tickers the live scorer gives the same item (cleaned given symbols first)."""

from __future__ import annotations

from finsentry.ingest.contract import NewsRaw
from finsentry.ingest.validation import normalize_item
from finsentry.score_rows import as_live as _as_live


def test_given_tickers_are_cleaned_and_deduplicated_as_the_live_scorer_cleans_them():
    row = {"id": "c1", "text": "Apple &amp; $msft slump", "tickers": ["$aapl", "AAPL", " msft "]}
    live = normalize_item(NewsRaw.model_validate(row | {"published_at": "2015-08-24T10:00:00Z"}))
    got = _as_live(row, "text", None, 64)
    assert got is not None
    got, scored_text = got
    assert scored_text == live.text == "Apple & $msft slump"
    assert got["tickers"] == list(live.tickers) == ["AAPL", "MSFT"], got["tickers"]
    # a CSV cell: split, then cleaned; the cap counts distinct symbols, as the live scorer's does
    cell = _as_live({"text": "$tsla up", "tickers": "$aapl;aapl, AAPL"}, "text", None, 2)
    assert cell is not None and cell[0]["tickers"] == ["AAPL", "TSLA"], cell
    # _as_live leaves a symbol the contract refuses as given; score skips such a row before it (_check_live), as
    # the live scorer dead-letters it (test_cli_score_dead_letters)
    bad = _as_live({"text": "x", "tickers": ["!!!"]}, "text", None, 64)
    assert bad is not None and bad[0]["tickers"] == ["!!!"], bad
