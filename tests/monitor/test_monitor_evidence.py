"""Spike evidence lists distinct stories of the spike's own key (monitor/buckets.py, monitor/aggregator.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.buckets import Bucket, evidence
from finsentry.monitor.settings import MonitorSettings

T0 = datetime(2024, 3, 4, 12, tzinfo=UTC)


def item(id_: str, key: str, text: str, score: float, tickers=("AAPL",), topic="Stock Movement", minute=0):
    return KeyedItem(
        id=id_,
        key=key,
        published_at=T0 + timedelta(minutes=minute),
        sentiment="negative" if score < 0 else "neutral",
        sentiment_score=score,
        text=text,
        tickers=list(tickers),
        topic=topic,
    )


def test_a_story_is_listed_once_as_its_most_negative_copy_and_only_items_of_the_key():
    agg = Aggregator(MonitorSettings(), clock=lambda: 2e9)
    fed = [
        item("a1", "ticker:AAPL", "Apple slumps on weak iPhone sales", -0.5),
        item("a2", "ticker:AAPL", "RT @desk: Apple slumps on weak iPhone sales!", -0.9),  # a copy, more negative
        item("a3", "ticker:AAPL", "Apple slumps on weak iPhone sales", -0.7),  # a copy, less negative
        item("n1", "ticker:AAPL", "Netflix subscribers fall", -0.95, tickers=("NFLX",)),  # not an AAPL item
        item("b1", "ticker:AAPL", "Apple faces an EU antitrust fine", -0.3),
        item("t1", "topic:stock_movement", "Apple faces an EU antitrust fine", -0.3),
        item("t2", "topic:stock_movement", "Fed holds rates", -0.8, topic="Fed | Central Banks"),  # other topic
    ]
    for it in fed:
        agg.process(it)
    for key, want in [("ticker:AAPL", [("a2", -0.9), ("b1", -0.3)]), ("topic:stock_movement", [("t1", -0.3)])]:
        got = [(e["id"], e["sentiment_score"]) for e in evidence(list(agg.key_state(key).buckets.values()))]
        assert got == want, (key, got)


def test_the_same_text_in_two_buckets_beyond_the_novelty_horizon_is_listed_once():
    b1, b2 = Bucket(), Bucket()
    b1.add(item("x1", "all", "Lender halts withdrawals", -0.6), -0.6, cluster="x1")
    b2.add(item("x2", "all", "lender HALTS withdrawals.", -0.8, minute=90), -0.8, cluster="x2")
    b2.add(item("y1", "all", "Regulator seizes the lender", -0.7, minute=91), -0.7, cluster="y1")
    got = [(e["id"], e["sentiment_score"]) for e in evidence([b1, b2])]
    assert got == [("x2", -0.8), ("y1", -0.7)], got


def test_copies_do_not_crowd_other_stories_out_of_a_full_bucket():
    b = Bucket()
    for i in range(8):
        b.add(item(f"c{i}", "all", "Bank run", -0.9 - i / 100), -0.9 - i / 100, keep=3, cluster="c0")
    for i, s in enumerate((-0.5, -0.4, -0.3)):
        b.add(item(f"s{i}", "all", f"story {i}", s), s, keep=3, cluster=f"s{i}")
    got = [(e["id"], e["sentiment_score"]) for e in evidence([b], 3)]
    assert got == [("c7", -0.97), ("s0", -0.5), ("s1", -0.4)], got
