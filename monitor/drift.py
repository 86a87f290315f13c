"""Prediction drift: the population stability index (PSI) of the predicted topic and sentiment mix against the
mix the model was trained on, per event-time hour, exported as ``finsentry_prediction_drift_psi{task}``.

PSI of an observed distribution ``a`` against an expected ``e`` over the same classes (Siddiqi 2006, *Credit
Risk Scorecards*, ch. 8; Yurdakul 2018 for its statistical properties)::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)          (shares floored at PSI_EPSILON so empty classes stay finite)

Rule of thumb: < 0.1 no real change, 0.1-0.25 moderate, > 0.25 a significant shift. The alert
``PredictionDrift`` (``alerts/drift_rules.yml``) fires above 0.25 for two consecutive hours; its runbook
points to retraining.

Windows are tumbling event-time hours ``[h, h + 1 h)`` (UTC). An hour closes when the watermark passes its
end; items for a closed hour are counted as late and dropped. An hour with fewer than ``min_items`` items
exports NaN (not enough data to say; Prometheus comparisons with NaN are false, so no alert).

The expected mix is the training label mix from the model card (``training_label_counts``, written by
``finsentry model retrain``) or, for a card without it, the base training splits of the recipe (topic train;
tweet-sentiment train + ``fpb_oversample`` x FPB train).

>>> round(psi({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}, ["a", "b"]), 6)
0.0
>>> round(psi({"a": 0.9, "b": 0.1}, {"a": 0.5, "b": 0.5}, ["a", "b"]), 4)
0.8789
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from finsentry.common.metric_spec import MetricSpec
from finsentry.model.labels import SENTIMENT_LABELS, TASKS, TOPIC_LABELS

PSI_EPSILON = 1e-4
"""Floor on a class share (expected and observed) before the logarithm."""

HOUR_SECONDS = 3600
"""Window length, seconds of event time."""

LABELS: dict[str, tuple[str, ...]] = {"topic": TOPIC_LABELS, "sentiment": SENTIMENT_LABELS}

PREDICTION_DRIFT_PSI = MetricSpec(
    "finsentry_prediction_drift_psi",
    "gauge",
    ("task",),
    "population stability index of the predicted mix vs the training label mix, per task, over the latest"
    " closed event-time hour (NaN: fewer items than the minimum)",
    "PSI (unitless)",
)
METRICS: tuple[MetricSpec, ...] = (PREDICTION_DRIFT_PSI,)
"""The metric of :class:`DriftCollector`, for ``docs/metrics.md``."""

METRIC = PREDICTION_DRIFT_PSI.name


def shares(counts: Mapping[str, float], labels: Sequence[str]) -> list[float]:
    """Counts -> shares in ``labels`` order (all zero if there are no counts); unknown names are ignored."""
    total = float(sum(counts.get(label, 0) for label in labels))
    return [counts.get(label, 0) / total if total else 0.0 for label in labels]


def psi(actual: Mapping[str, float], expected: Mapping[str, float], labels: Sequence[str]) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts or shares per label name), >= 0."""
    a = [max(x, PSI_EPSILON) for x in shares(actual, labels)]
    e = [max(x, PSI_EPSILON) for x in shares(expected, labels)]
    return float(sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True)))


def base_training_counts(fpb_oversample: int = 2) -> dict[str, dict[str, int]]:
    """Label counts of the base training mix (topic train; tweet sentiment train + FPB train x ``fpb_oversample``)."""
    from finsentry.model.datasets import read_split

    topic = read_split("topic_train")["label"].value_counts()
    sent = (
        read_split("sentiment_train")["label"]
        .value_counts()
        .add(read_split("fpb_train")["label"].value_counts() * fpb_oversample, fill_value=0)
    )
    return {
        "topic": {TOPIC_LABELS[int(i)]: int(n) for i, n in topic.items()},
        "sentiment": {SENTIMENT_LABELS[int(i)]: int(n) for i, n in sent.items()},
    }


def expected_mix(card: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """The training label counts of a model card (``training_label_counts``), else :func:`base_training_counts`."""
    card = card or {}
    if card.get("training_label_counts"):
        return {task: dict(card["training_label_counts"][task]) for task in TASKS}
    oversample = int((card.get("training_config") or {}).get("fpb_oversample", 2))
    return base_training_counts(oversample)


@dataclass(frozen=True, slots=True)
class HourDrift:
    """PSI of one closed hour: ``start`` (UTC), ``items``, ``psi`` per task (NaN when items < min_items)."""

    start: datetime
    items: int
    psi: dict[str, float]


class DriftTracker:
    """Hourly PSI of the predicted topic / sentiment mix against ``expected`` (task -> label -> count or share).

    Feed it one prediction per item (:meth:`observe`; from the aggregate key ``all`` so each item counts once)
    and the event-time watermark (:meth:`advance`). :meth:`get` gives the latest closed hour's PSI per task.

    >>> t = DriftTracker({"topic": {"Earnings": 1}, "sentiment": {"neutral": 1}}, min_items=1)
    >>> t.observe("Earnings", "neutral", datetime(2026, 1, 1, 10, 5, tzinfo=UTC))
    >>> [round(h.psi["sentiment"], 6) for h in t.advance(datetime(2026, 1, 1, 11, 0, tzinfo=UTC))]
    [0.0]
    """

    def __init__(self, expected: Mapping[str, Mapping[str, float]], min_items: int = 100) -> None:
        self.expected = {task: dict(expected[task]) for task in TASKS}
        self.min_items = min_items
        self.late = 0
        self.history: list[HourDrift] = []
        self._open: dict[datetime, dict[str, Counter[str]]] = {}
        self._closed_until: datetime | None = None

    @staticmethod
    def hour_of(t: datetime) -> datetime:
        """Start of the UTC hour holding ``t``."""
        t = t.astimezone(UTC)
        return t.replace(minute=0, second=0, microsecond=0)

    def observe(self, topic: str | None, sentiment: str | None, published_at: datetime) -> None:
        """Count one prediction in its event-time hour (a closed hour counts it as late and drops it)."""
        hour = self.hour_of(published_at)
        if self._closed_until is not None and hour < self._closed_until:
            self.late += 1
            return
        counts = self._open.setdefault(hour, {task: Counter() for task in TASKS})
        if topic is not None:
            counts["topic"][topic] += 1
        if sentiment is not None:
            counts["sentiment"][sentiment] += 1

    @classmethod
    def for_model(cls, folder: Path, min_items: int = 100) -> DriftTracker:
        """A tracker against the training mix of the model artifact in ``folder`` (its ``card.json``)."""
        try:
            card = json.loads((Path(folder) / "card.json").read_text())
        except (OSError, ValueError):
            card = {}
        return cls(expected_mix(card), min_items)

    def advance(self, watermark: datetime | float | None) -> list[HourDrift]:
        """Close every open hour that ends at or before ``watermark`` (a datetime, or epoch seconds UTC as the
        monitor's watermark); returns them, oldest first."""
        if watermark is None:
            return []
        if not isinstance(watermark, datetime):
            watermark = datetime.fromtimestamp(watermark, UTC)
        closed = []
        for hour in sorted(h for h in self._open if h + timedelta(seconds=HOUR_SECONDS) <= watermark):
            counts = self._open.pop(hour)
            items = max(sum(counts["topic"].values()), sum(counts["sentiment"].values()))
            values = {
                task: psi(counts[task], self.expected[task], LABELS[task]) if items >= self.min_items else math.nan
                for task in TASKS
            }
            closed.append(HourDrift(hour, items, values))
        if closed:
            self.history = (self.history + closed)[-48:]
        end = self.hour_of(watermark)
        if self._closed_until is None or end > self._closed_until:
            self._closed_until = end
        return closed

    def get(self) -> dict[str, float] | None:
        """PSI per task of the latest closed hour (None before the first hour closes)."""
        return dict(self.history[-1].psi) if self.history else None


class DriftCollector(Collector):
    """Exports ``finsentry_prediction_drift_psi{task}`` from a :class:`DriftTracker` at scrape time."""

    def __init__(self, tracker: DriftTracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterator[Metric]:
        family = PREDICTION_DRIFT_PSI.family()
        latest = self.tracker.get()
        if latest is not None:
            for task in TASKS:
                family.add_metric([task], latest[task])
        yield family


def register_drift(registry: CollectorRegistry, tracker: DriftTracker) -> DriftCollector:
    """Register the drift gauge of ``tracker`` on ``registry`` (e.g. the aggregator's); returns the collector."""
    collector = DriftCollector(tracker)
    registry.register(collector)
    return collector


def hourly_psi(frame: pd.DataFrame, expected: Mapping[str, Mapping[str, float]], min_items: int = 100) -> pd.DataFrame:
    """Offline hourly PSI (reports, backtests) of a frame with ``published_at`` (tz-aware), ``topic``, ``sentiment``.

    Returns one row per event-time hour that has items: index ``hour`` (UTC), columns ``items``,
    ``psi_topic``, ``psi_sentiment`` (NaN where items < ``min_items``). Same numbers as :class:`DriftTracker`.
    """
    hours = pd.to_datetime(frame["published_at"], utc=True).dt.floor("h")
    out = pd.DataFrame({"items": frame.groupby(hours).size()})
    out.index.name = "hour"
    for task in TASKS:
        table = pd.crosstab(hours, frame[task])
        out[f"psi_{task}"] = [
            psi(row.to_dict(), expected[task], LABELS[task]) if out.loc[hour, "items"] >= min_items else math.nan
            for hour, row in table.iterrows()
        ]
    return out


__all__ = [
    "DriftCollector",
    "DriftTracker",
    "HourDrift",
    "PSI_EPSILON",
    "base_training_counts",
    "expected_mix",
    "hourly_psi",
    "psi",
    "register_drift",
]
