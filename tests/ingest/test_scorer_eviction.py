"""Issue 15, finding 10: a batch slower than ``max_poll_interval_ms`` gets the scorer evicted from its group and
the batch read again. The settings now refuse such an interval (tests/ingest/test_ingest_settings.py); this test
builds one unchecked to show that an eviction, should one happen anyway, is counted."""

from __future__ import annotations

import time

import pytest
from ingest_testkit import good_items, produce_items, scorer_settings, wait_for

from finsentry.ingest.scorer_service import ScorerService
from finsentry.model.labels import TOPIC_LABELS
from finsentry.model.scorer import Prediction

pytestmark = pytest.mark.broker


class SlowScorer:
    """Scores every text neutral, ``seconds`` after being asked: a model slower than the poll interval."""

    model_version = "slow-test"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, texts: list[str]) -> list[Prediction]:
        time.sleep(self.seconds)
        return [Prediction(TOPIC_LABELS[0], 1.0, "neutral", (0.0, 1.0, 0.0), 0.0, self.model_version) for _ in texts]


def test_a_batch_slower_than_the_poll_interval_is_counted_as_an_eviction(fresh_broker):
    base = scorer_settings(fresh_broker, "evict")
    # model_copy does not validate: the settings check would refuse 1000 ms (1 item x 100 ms + 30 s is the floor)
    settings = base.model_copy(update={"scorer": base.scorer.model_copy(update={"max_poll_interval_ms": 1000})})
    produce_items(settings.kafka, good_items(1, prefix="e"))
    service = ScorerService(SlowScorer(3.0), settings, companies=None, serve_metrics=False)
    registry = service.metrics.registry

    def revoked(reason: str) -> float:
        value = registry.get_sample_value("finsentry_scorer_partition_revocations_total", {"reason": reason})
        return value or 0.0

    assert revoked("evicted") == 0.0 and revoked("rebalance") == 0.0
    service.start_thread()
    try:
        wait_for(lambda: revoked("evicted") >= 6, 90, "the 6 news.raw partitions counted as evicted")
    finally:
        service.stop_and_join(60)
    assert revoked("evicted") % 6 == 0  # whole assignments: one scorer holds all 6 partitions
