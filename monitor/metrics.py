"""Prometheus metrics of the aggregator (names, labels and help as in docs/contracts.md).

Declared once here, each in its own :class:`~prometheus_client.CollectorRegistry` per service instance (two
aggregators in one process, as in tests, do not collide). Per-key gauges are computed at scrape time from a
:class:`~finsentry.monitor.queries.Snapshot`; ``ticker:*`` keys are exported only for the ``ticker_cap`` most
active tickers (items in the longest window), ``all`` and ``topic:*`` always.

Counters are incremented for live records only (not for records replayed to rebuild state after a restart),
so ``rate()`` over a restart shows no burst; ``finsentry_items_total`` counts each item once, on its
``topic:<slug>`` message, so ``sum()`` across instances is the item count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from finsentry.common.metric_spec import MetricSpec
from finsentry.monitor.queries import Snapshot
from finsentry.monitor.spikes import SpikeEvent

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "finsentry_window_items",
        "gauge",
        ("key", "window"),
        "Items in the rolling window of a key (open buckets too)",
        "items",
    ),
    MetricSpec(
        "finsentry_window_negative_ratio",
        "gauge",
        ("key", "window"),
        "Share of negative items in the rolling window of a key (0..1)",
        "ratio (0..1)",
    ),
    MetricSpec(
        "finsentry_window_mean_sentiment_score",
        "gauge",
        ("key", "window"),
        "Mean sentiment_score (P(pos) - P(neg), -1..1) in the rolling window of a key",
        "score (-1..1)",
    ),
    MetricSpec(
        "finsentry_negative_zscore",
        "gauge",
        ("key",),
        "z-score of the short-window negative share vs its EWMA baseline",
        "standard deviations",
    ),
    MetricSpec(
        "finsentry_negative_volume_zscore",
        "gauge",
        ("key",),
        "z-score of the short-window negative item count vs its EWMA baseline",
        "standard deviations",
    ),
    MetricSpec(
        "finsentry_spike_active", "gauge", ("key",), "1 while a negative spike is open for the key, else 0", "0 or 1"
    ),
    MetricSpec(
        "finsentry_spike_window_items",
        "gauge",
        ("key",),
        "Distinct stories in the window of the detector scale behind the key's current finsentry_negative_zscore"
        " (closed buckets; the shortest scale's window before the detector has spoken)",
        "items",
    ),
    *(
        MetricSpec(
            f"finsentry_spike_{when}_{name}",
            "gauge",
            ("key", "spike_id"),
            f"{text} at the {'start' if when == 'start' else 'peak (highest z so far)'} of the key's open spike"
            f" (spike_id = <key>@<ISO UTC start>; the spike record on sentiment.spikes); absent without one",
            unit,
        )
        for when in ("start", "peak")
        for name, text, unit in (
            ("zscore", "z of the test that scored highest", "standard deviations"),
            ("negative_ratio", "Negative share of that test's window", "ratio (0..1)"),
            ("items", "Distinct stories in that window", "items"),
            ("negative_items", "Negative distinct stories in that window", "items"),
        )
    ),
    MetricSpec(
        "finsentry_spike_start_baseline_ratio",
        "gauge",
        ("key", "spike_id"),
        "Baseline (EWMA) negative share the key's open spike started against (spike_id = <key>@<ISO UTC start>);"
        " absent without one",
        "ratio (0..1)",
    ),
    MetricSpec(
        "finsentry_spike_start_expected_negative_items",
        "gauge",
        ("key", "spike_id"),
        "Negative distinct stories the negative-volume test expected in the window (its baseline) where that test"
        " started the key's open spike; absent when the share test started it, or without a spike",
        "items",
    ),
    MetricSpec(
        "finsentry_items_total",
        "counter",
        ("topic", "sentiment"),
        "Scored items aggregated, by topic slug and sentiment",
        "items",
    ),
    MetricSpec(
        "finsentry_aggregated_messages_total",
        "counter",
        (),
        "sentiment.keyed messages aggregated (not dup, not late)",
        "messages",
    ),
    MetricSpec(
        "finsentry_late_events_total",
        "counter",
        ("key",),
        "sentiment.keyed messages dropped as later than their key's watermark, by key (all, topic:<slug>, or"
        " ticker:* for every ticker key); any increase fires FinsentryLateEventsDropped",
        "messages",
    ),
    MetricSpec(
        "finsentry_aggregator_unreconciled_records",
        "gauge",
        ("partition",),
        "sentiment.keyed records of the partition that this instance neither aggregated nor counted as dropped"
        " (duplicate, late, future, invalid, aggregation failed): offsets skipped since the partition was assigned"
        " plus records handled without an outcome; anything but 0 is a bug and fires FinsentryRecordsUnreconciled",
        "records",
    ),
    MetricSpec(
        "finsentry_aggregator_duplicates_total",
        "counter",
        (),
        "sentiment.keyed messages dropped as (id, key) repeats",
        "messages",
    ),
    MetricSpec(
        "finsentry_aggregator_rejected_messages_total",
        "counter",
        ("reason",),
        "sentiment.keyed messages not aggregated, by reason: a news.dlq reason (invalid, sent to news.dlq),"
        " aggregation_failed or future_event_time (left in the topic)",
        "messages",
    ),
    MetricSpec(
        "finsentry_aggregator_spike_send_failures_total",
        "counter",
        (),
        "Sends of a spike event to sentiment.spikes that failed (raised, e.g. no broker for max_block_ms, or not"
        " delivered); the event is kept and sent again, in order, on a later turn of the consumer loop",
        "sends",
    ),
    MetricSpec(
        "finsentry_aggregator_spike_events_dropped_total",
        "counter",
        (),
        "Spike events never sent to sentiment.spikes: the oldest kept event each time more than 1,000 waited to be"
        " sent again (or one that could not be encoded); the relay has no record of them; fires"
        " FinsentrySpikeEventsUndelivered",
        "events",
    ),
    MetricSpec(
        "finsentry_aggregator_spike_events_pending",
        "gauge",
        (),
        "Spike events of this instance not yet known to be delivered to sentiment.spikes (kept after a failed send,"
        " or sent and not yet acknowledged); above 0 for 10 minutes fires FinsentrySpikeEventsUndelivered",
        "events",
    ),
    MetricSpec(
        "finsentry_event_time_watermark_seconds",
        "gauge",
        (),
        "Instance watermark: min over partitions of max published_at, minus grace (Unix seconds)",
        "Unix seconds",
    ),
    MetricSpec("finsentry_aggregator_keys", "gauge", (), "Aggregate keys held in memory by this instance", "keys"),
    MetricSpec(
        "finsentry_aggregator_evicted_keys_total",
        "counter",
        (),
        "ticker keys dropped, state and baselines with them, to hold at most monitor.max_keys keys: the one idle"
        " the longest without an open spike each time a new key passes the cap (all and topic:* are never evicted)",
        "keys",
    ),
    MetricSpec(
        "finsentry_near_duplicate_ratio",
        "gauge",
        (),
        "Share of the keyed messages this instance aggregated that were near-duplicates of a story already seen"
        " on their key within monitor.spike.novelty_horizon_seconds (counted once in spike statistics)",
        "ratio",
    ),
)
"""Every aggregator metric (the per-key gauges of the scrape-time collector too), for ``docs/metrics.md``."""

_SPEC = {spec.name: spec for spec in METRICS}


def exported_keys(snapshot: Snapshot, ticker_cap: int, longest_window: str) -> list[str]:
    """Keys that get per-key series: ``all``, every ``topic:*``, the ``ticker_cap`` busiest ``ticker:*``, and every
    ticker with an open spike whatever its rank (a quiet ticker turning negative is what the alert is for).

    Busiest = most items in ``longest_window``; ties broken by key so the choice is stable.
    """
    keys = [k for k in snapshot.views if not k.startswith("ticker:")]
    tickers = [k for k in snapshot.views if k.startswith("ticker:")]
    tickers.sort(key=lambda k: (-snapshot.views[k][longest_window]["items"], k))
    chosen = set(tickers[:ticker_cap])
    chosen.update(k for k in tickers if snapshot.detectors.get(k, {}).get("active"))
    return sorted(keys) + sorted(chosen)


class _KeyCollector(Collector):
    """Builds the per-key gauge families from a fresh snapshot at each scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot], ticker_cap: int, windows: dict[str, int]) -> None:
        self._snapshot = snapshot
        self._cap = ticker_cap
        self._windows = list(windows)
        self._longest = max(windows, key=windows.__getitem__) if windows else ""

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no describe: collect() needs the live snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        keys = exported_keys(snap, self._cap, self._longest) if self._windows else []
        fam = {spec.name: spec.family() for spec in METRICS if spec.type == "gauge" and "key" in spec.labels}
        for k in keys:
            for w in self._windows:
                v = snap.views[k][w]
                fam["finsentry_window_items"].add_metric([k, w], v["items"])
                ratio, mean = v["negative_ratio"], v["mean_score"]
                fam["finsentry_window_negative_ratio"].add_metric([k, w], math.nan if ratio is None else ratio)
                fam["finsentry_window_mean_sentiment_score"].add_metric([k, w], math.nan if mean is None else mean)
            d = snap.detectors.get(k)
            if d is None:
                continue
            if d["z"] is not None:
                fam["finsentry_negative_zscore"].add_metric([k], d["z"])
            if d["volume_z"] is not None:
                fam["finsentry_negative_volume_zscore"].add_metric([k], d["volume_z"])
            fam["finsentry_spike_active"].add_metric([k], 1.0 if d["active"] else 0.0)
            fam["finsentry_spike_window_items"].add_metric([k], d["window_items"])
        yield from fam.values()


SPIKE_GAUGES: tuple[str, ...] = tuple(
    spec.name for spec in METRICS if spec.name.startswith(("finsentry_spike_start_", "finsentry_spike_peak_"))
)
"""The gauges of the open spikes' start and peak figures (one series per open spike)."""


def _spike_values(event: SpikeEvent) -> dict[str, float | None]:
    start, peak = event.start or event.figures(), event.peak or event.figures()
    values: dict[str, float | None] = {}
    for when, fig in (("start", start), ("peak", peak)):
        values[f"finsentry_spike_{when}_zscore"] = fig.z
        values[f"finsentry_spike_{when}_negative_ratio"] = fig.share
        values[f"finsentry_spike_{when}_items"] = float(fig.items)
        values[f"finsentry_spike_{when}_negative_items"] = float(fig.negative)
    values["finsentry_spike_start_baseline_ratio"] = start.baseline_mean
    volume = start.trigger == "volume"
    values["finsentry_spike_start_expected_negative_items"] = start.volume_baseline if volume else None
    return values


class _SpikeCollector(Collector):
    """The start and peak figures of every open spike, labelled with its key and spike id, at each scrape."""

    def __init__(self, active_spikes: Callable[[], list[SpikeEvent]]) -> None:
        self._active = active_spikes

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        fam = {name: _SPEC[name].family() for name in SPIKE_GAUGES}
        for event in sorted(self._active(), key=lambda e: e.key):
            for name, value in _spike_values(event).items():
                if value is not None:
                    fam[name].add_metric([event.key, event.spike_id], value)
        yield from fam.values()


class AggregatorMetrics:
    """The aggregator's counters and gauges in their own registry.

    Args:
        snapshot: returns the current :class:`Snapshot` (called at each scrape).
        watermark: returns the instance watermark (Unix s) or None. key_count: returns the number of keys held.
        ticker_cap: ``ticker:*`` keys exported per key. windows: window name -> seconds.
        active_spikes: returns the open spikes' latest events (their start / peak gauges); None: not exported.
        spike_events_pending: returns the spike events not yet delivered (None: NaN).
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        watermark: Callable[[], float | None],
        key_count: Callable[[], int],
        ticker_cap: int,
        windows: dict[str, int],
        near_duplicate_ratio: Callable[[], float] | None = None,
        active_spikes: Callable[[], list[SpikeEvent]] | None = None,
        spike_events_pending: Callable[[], int] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.items = _SPEC["finsentry_items_total"].counter(r)
        self.messages = _SPEC["finsentry_aggregated_messages_total"].counter(r)
        self.late = _SPEC["finsentry_late_events_total"].counter(r)
        self.late.labels("all")  # exported at 0 from the start, so increase() sees the first late event
        self.duplicates = _SPEC["finsentry_aggregator_duplicates_total"].counter(r)
        self.rejected = _SPEC["finsentry_aggregator_rejected_messages_total"].counter(r)
        self.unreconciled = _SPEC["finsentry_aggregator_unreconciled_records"].gauge(r)
        self.evicted_keys = _SPEC["finsentry_aggregator_evicted_keys_total"].counter(r)
        self.spike_send_failures = _SPEC["finsentry_aggregator_spike_send_failures_total"].counter(r)
        self.spike_events_dropped = _SPEC["finsentry_aggregator_spike_events_dropped_total"].counter(r)
        pending = _SPEC["finsentry_aggregator_spike_events_pending"].gauge(r)
        pending.set_function(lambda: math.nan if spike_events_pending is None else float(spike_events_pending()))
        wm = _SPEC["finsentry_event_time_watermark_seconds"].gauge(r)
        wm.set_function(lambda: math.nan if (v := watermark()) is None else v)
        keys = _SPEC["finsentry_aggregator_keys"].gauge(r)
        keys.set_function(lambda: float(key_count()))
        _SPEC["finsentry_near_duplicate_ratio"].gauge(r).set_function(near_duplicate_ratio or (lambda: math.nan))
        r.register(_KeyCollector(snapshot, ticker_cap, windows))
        r.register(_SpikeCollector(active_spikes or list))
