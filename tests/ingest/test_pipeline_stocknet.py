"""End to end on a real broker: replay 5,000 StockNet rows, score them, account for every tweet id."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict

import pytest
from ingest_testkit import STOCKNET_MONTHLY, TopicReader, headers, scorer_settings

from finsentry.ingest.replay import replay
from finsentry.ingest.replay_source import load_items
from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.topics import NEWS_DLQ, NEWS_SCORED, SENTIMENT_KEYED
from finsentry.model.labels import slugify

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROWS = 5000

HAND_CHECKED = {
    # 14 StockNet rows (one per ticker) + 5 more cashtags in the text ($AXP $IBM $DD $TRV $GS)
    "418169902613008384": {"CAT", "CSCO", "DIS", "GE", "HD", "INTC", "JPM", "KO", "MMM", "MRK", "MSFT", "UNH",
                           "UTX", "V", "AXP", "IBM", "DD", "TRV", "GS"},
    # "$AEP Top Analyst Upgrades and Downgrades: Apple, Intel, Sprint, ...": company names -> AAPL, INTC
    "418760619995561985": {"AEP", "AAPL", "INTC"},
    # "$BHP - Will Shell's Ambitious Floating LNG Project Pay Off?": Shell -> RDS-B
    "418791376823005185": {"BHP", "RDS-B"},
}  # fmt: skip


def test_every_replayed_tweet_ends_scored_or_dead_lettered_exactly_once(broker, scorer):
    loaded = load_items([STOCKNET_MONTHLY], limit_rows=ROWS)
    langs = {i.id: i.value.get("lang") for i in loaded.items}
    # English, plus the few rows with an empty lang cell: without `lang` an item is scored (never guessed)
    english = {i for i, lang in langs.items() if lang in ("en", None)}
    assert loaded.rows == ROWS and len(langs) == len(loaded.items)
    assert 0 < len(langs) - len(english) < len(english)
    assert set(HAND_CHECKED) <= english

    settings = scorer_settings(broker, "pipeline")
    service = ScorerService(scorer, settings, serve_metrics=False)
    service.start_thread()
    reports = []
    producer_thread = threading.Thread(
        target=lambda: reports.append(
            replay([STOCKNET_MONTHLY], settings.kafka, limit_rows=ROWS, rate=2000, progress=False)
        )
    )
    producer_thread.start()
    reader = TopicReader(settings.kafka, NEWS_SCORED, NEWS_DLQ, SENTIMENT_KEYED)
    try:
        reader.read_until(
            lambda r: len(r.records[NEWS_SCORED]) + len(r.records[NEWS_DLQ]) >= len(langs),
            timeout_s=900,  # an upper bound for a loaded machine; ~1 min on an idle 2-core one
            what=f"{len(langs)} tweets scored or dead-lettered",
        )
        producer_thread.join(30)
    finally:
        service.stop_and_join()
    while reader.poll(300):
        pass
    reader.close()

    report = reports[0]
    assert (report.rows, report.items, report.sent, report.failed) == (ROWS, len(langs), len(langs), 0)
    scored_ids = reader.ids(NEWS_SCORED)
    dlq = [(json.loads(r.value)["id"], headers(r)["reason"]) for r in reader.records[NEWS_DLQ]]
    dlq_ids = [i for i, _ in dlq]
    assert len(scored_ids) == len(set(scored_ids)), "no crash here, so no id may be scored twice"
    assert len(dlq_ids) == len(set(dlq_ids))
    assert set(scored_ids) == english
    assert set(dlq_ids) == set(langs) - english
    assert {reason for _, reason in dlq} == {"unsupported_language"}
    assert service.stats.scored == len(english) and service.stats.duplicates == 0

    keyed = defaultdict(list)
    for r in reader.records[SENTIMENT_KEYED]:
        value = json.loads(r.value)
        assert value["key"] == r.key.decode()
        keyed[value["id"]].append(value["key"])
    scored = {json.loads(r.value)["id"]: json.loads(r.value) for r in reader.records[NEWS_SCORED]}
    for item_id, tickers in HAND_CHECKED.items():
        topic_key = f"topic:{slugify(scored[item_id]['topic'])}"
        assert sorted(keyed[item_id]) == sorted(["all", topic_key, *(f"ticker:{t}" for t in tickers)]), item_id
        assert set(scored[item_id]["tickers"]) == tickers
    assert Counter(k for keys in keyed.values() for k in keys)["all"] == len(english)
    assert set(keyed) == english
