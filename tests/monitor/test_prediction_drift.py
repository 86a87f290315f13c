"""Prediction drift: PSI against a direct formula, the streaming tracker against the pandas reference, the metric."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from finsentry.common.paths import SPLITS_DIR
from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.monitor.drift import (
    DriftTracker,
    base_training_counts,
    expected_mix,
    hourly_psi,
    psi,
    register_drift,
)

H0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def test_psi_matches_the_formula_and_is_zero_for_the_same_mix():
    expected = {"negative": 20, "neutral": 60, "positive": 20}
    actual = {"negative": 50, "neutral": 40, "positive": 10}
    direct = sum(
        (a - e) * math.log(a / e) for a, e in ((0.5, 0.2), (0.4, 0.6), (0.1, 0.2))
    )  # Siddiqi's definition on shares
    assert psi(actual, expected, SENTIMENT_LABELS) == pytest.approx(direct)
    assert psi({"negative": 2, "neutral": 6, "positive": 2}, expected, SENTIMENT_LABELS) == pytest.approx(0.0)
    # an empty class stays finite (share floored at 1e-4)
    assert 0 < psi({"neutral": 10}, expected, SENTIMENT_LABELS) < 20


def test_tracker_equals_the_pandas_reference_on_the_same_stream():
    rng = np.random.default_rng(3)
    expected = base_training_counts()
    n = 3000
    times = [H0 + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 5 * 3600, n))]
    # hour 3 drifts: mostly negative Macro news
    topics = ["Macro" if t.hour == 13 and rng.random() < 0.7 else TOPIC_LABELS[int(rng.integers(0, 20))] for t in times]
    sents = [
        "negative" if t.hour == 13 and rng.random() < 0.6 else str(rng.choice(SENTIMENT_LABELS, p=[0.15, 0.6, 0.25]))
        for t in times
    ]
    tracker = DriftTracker(expected, min_items=100)
    closed = []
    for t, topic, sent in zip(times, topics, sents, strict=True):
        tracker.observe(topic, sent, t)
        closed += tracker.advance(t - timedelta(minutes=2))  # a watermark 2 minutes behind the data
    closed += tracker.advance(H0 + timedelta(hours=6))
    reference = hourly_psi(pd.DataFrame({"published_at": times, "topic": topics, "sentiment": sents}), expected)
    assert [h.start for h in closed] == list(reference.index)
    assert [h.items for h in closed] == list(reference["items"])
    np.testing.assert_allclose([h.psi["topic"] for h in closed], reference["psi_topic"], rtol=1e-12)
    np.testing.assert_allclose([h.psi["sentiment"] for h in closed], reference["psi_sentiment"], rtol=1e-12)
    drifted = {h.start.hour: h.psi for h in closed}
    assert drifted[13]["topic"] > 0.25 and drifted[13]["sentiment"] > 0.25
    assert all(drifted[h]["sentiment"] < 0.1 for h in (10, 11, 12, 14))


def test_thin_hours_are_nan_and_late_items_are_dropped():
    tracker = DriftTracker({"topic": {"Earnings": 1}, "sentiment": {"neutral": 1}}, min_items=5)
    for i in range(3):
        tracker.observe("Earnings", "neutral", H0 + timedelta(minutes=i))
    (hour,) = tracker.advance(H0 + timedelta(hours=1))
    assert hour.items == 3 and math.isnan(hour.psi["topic"]) and math.isnan(hour.psi["sentiment"])
    tracker.observe("Earnings", "neutral", H0 + timedelta(minutes=30))  # its hour is closed
    assert tracker.late == 1
    assert tracker.advance(H0 + timedelta(hours=2)) == []


def test_metric_is_exported_per_task():
    registry = CollectorRegistry()
    tracker = DriftTracker({"topic": {"Earnings": 1}, "sentiment": {"neutral": 1, "negative": 1}}, min_items=1)
    register_drift(registry, tracker)
    assert b"finsentry_prediction_drift_psi{" not in generate_latest(registry)  # nothing closed yet
    for _ in range(4):
        tracker.observe("Earnings", "negative", H0)
    tracker.advance(H0 + timedelta(hours=1))
    text = generate_latest(registry).decode()
    assert 'finsentry_prediction_drift_psi{task="topic"} 0.0' in text
    value = float(text.split('finsentry_prediction_drift_psi{task="sentiment"} ')[1].split()[0])
    assert value == pytest.approx(psi({"negative": 1}, {"neutral": 1, "negative": 1}, SENTIMENT_LABELS))


def test_expected_mix_from_card_or_base_splits():
    counts = {"topic": {"Earnings": 3}, "sentiment": {"neutral": 2}}
    assert expected_mix({"training_label_counts": counts}) == counts
    base = expected_mix({"training_config": {"fpb_oversample": 1}})
    twice = base_training_counts(2)
    fpb_rows = sum(twice["sentiment"].values()) - sum(base["sentiment"].values())
    assert fpb_rows == len(pd.read_csv(SPLITS_DIR / "fpb_train.csv"))
    assert sum(base["topic"].values()) == len(pd.read_csv(SPLITS_DIR / "topic_train.csv"))


def test_tracker_for_a_model_folder_and_epoch_watermarks(tmp_path):
    counts = {"topic": {"Earnings": 1}, "sentiment": {"positive": 1}}
    (tmp_path / "card.json").write_text(json.dumps({"training_label_counts": counts}))
    tracker = DriftTracker.for_model(tmp_path, min_items=1)
    assert tracker.expected == counts
    tracker.observe("Earnings", "positive", H0)
    (hour,) = tracker.advance((H0 + timedelta(hours=1)).timestamp())  # the monitor's watermark: epoch seconds
    assert hour.start == H0 and hour.psi == {"topic": 0.0, "sentiment": 0.0}
    assert DriftTracker.for_model(tmp_path / "no-card").expected == expected_mix(None)


def test_the_aggregator_service_exports_the_drift_of_its_model(model_dir):
    from finsentry.monitor.service import AggregatorService
    from finsentry.settings import load_settings

    settings = load_settings(model={"path": str(model_dir)})
    service = AggregatorService(settings.monitor, settings.ingest.kafka, settings.model.path)
    assert service.drift.expected == DriftTracker.for_model(model_dir).expected
    for i in range(100):
        service.drift.observe("Macro", "negative", H0 + timedelta(seconds=i))
    service.drift.advance(H0 + timedelta(hours=1))
    text = generate_latest(service.metrics.registry).decode()
    value = float(text.split('finsentry_prediction_drift_psi{task="sentiment"} ')[1].split()[0])
    assert value == pytest.approx(psi({"negative": 1}, service.drift.expected["sentiment"], SENTIMENT_LABELS))
    assert value > 0.25
