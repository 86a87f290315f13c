"""The offline report's StockNet tweets (monitor/stocknet.py) are the items a live replay sends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from finsentry.ingest.replay_source import STOCKNET_DIR, load_items
from finsentry.monitor.stocknet import load_tweets


def test_offline_tweets_are_the_live_replays_items_with_the_same_ids() -> None:
    """``finsentry report --stocknet`` and ``finsentry run`` read the same tweets as the same items: same ids
    (the tweet id, no ``stocknet:`` prefix), fields and order, so live and offline spikes quote the same evidence
    ids. The live side is what ``finsentry run --from 2015-08-24 --to 2015-08-26`` loads: the month's file read by
    :func:`~finsentry.ingest.replay_source.load_items` over that time range."""
    t0 = datetime(2015, 8, 24, tzinfo=UTC)
    t1 = t0 + timedelta(days=2)
    live = load_items([STOCKNET_DIR / "stocknet_tweets_2015-08.csv"], time_from=t0, time_to=t1).items
    offline = load_tweets(date(2015, 8, 24), date(2015, 8, 25))
    assert offline == [i.value for i in live if i.value.get("lang") == "en"]
    assert len(offline) == 250
    assert offline[0] == {
        "id": "635604874336448512",
        "text": "The easiest way to tell if stocks are bottoming is to look at insider buying for blue chips. "
        "Not there yet $SPY $AAPL",
        "published_at": "2015-08-24T00:09:45Z",
        "lang": "en",
        "tickers": ["AAPL"],
    }
    assert not any(t["id"].startswith("stocknet:") for t in offline)


def test_a_range_without_month_files_or_backwards_fails() -> None:
    with pytest.raises(FileNotFoundError, match="StockNet covers"):
        load_tweets(date(2020, 1, 1), date(2020, 1, 2))
    with pytest.raises(ValueError, match="before start"):
        load_tweets(date(2015, 8, 2), date(2015, 8, 1))
