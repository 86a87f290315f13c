"""Two scorers in one consumer group split news.raw's partitions; when one leaves the other takes over."""

from __future__ import annotations

import pytest
from ingest_testkit import TopicReader, good_items, produce_items, scorer_settings, wait_for

from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.topics import DEFAULT_PARTITIONS, NEWS_RAW, NEWS_SCORED

pytestmark = pytest.mark.broker

ITEMS = 300


def test_two_scorers_split_partitions_and_the_survivor_takes_over(broker, scorer):
    settings = scorer_settings(broker, "pair", max_batch_items=16)
    partitions = set(range(DEFAULT_PARTITIONS[NEWS_RAW]))
    a = ScorerService(scorer, settings, serve_metrics=False)
    b = ScorerService(scorer, settings, serve_metrics=False)
    a.start_thread()
    wait_for(lambda: a.assigned_partitions() == partitions, 60, "the first scorer to own every partition")
    b.start_thread()
    reader = TopicReader(settings.kafka, NEWS_SCORED)
    try:
        wait_for(
            lambda: a.assigned_partitions() and b.assigned_partitions()
            and a.assigned_partitions() | b.assigned_partitions() == partitions,
            30,
            "the group to rebalance over two members",
        )  # fmt: skip
        split = (a.assigned_partitions(), b.assigned_partitions())
        assert not split[0] & split[1]
        assert len(split[0]) == len(split[1]) == 3

        items = good_items(ITEMS, prefix="p")
        produce_items(settings.kafka, items)
        wait_for(lambda: b.stats.scored >= 16, 180, "the second scorer to score a batch")
        b.stop_and_join()  # leaves the group; its partitions move to a
        wait_for(lambda: a.assigned_partitions() == partitions, 60, "the survivor to take every partition")
        reader.read_until(lambda r: set(r.ids()) >= {i["id"] for i in items}, 400, f"all {ITEMS} ids scored")
    finally:
        a.stop_and_join()
        b.stop_and_join()
    while reader.poll(300):
        pass
    reader.close()

    ids = reader.ids()
    assert set(ids) == {i["id"] for i in items}
    assert a.stats.scored > 0 and b.stats.scored > 0
    assert a.stats.scored + b.stats.scored == len(ids)  # every produced message came from one of the two
    assert b.stats.partitions_seen == split[1]
    print(f"split {sorted(split[0])} / {sorted(split[1])}; scored a={a.stats.scored} b={b.stats.scored}, "
          f"duplicates on handover: {len(ids) - len(set(ids))}")  # fmt: skip
