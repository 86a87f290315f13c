"""Negative-spike detection per aggregate key: an EWMA control chart on the negative share of a short window.

Method (run by the aggregator on every closed bucket of a key, in bucket order):

1. **Short window.** ``n`` = items and ``k`` = negative items in the ``window_seconds`` of event time ending at
   the closed bucket's end (closed buckets only); the negative share is ``x = k / n``.
2. **Baseline of the share.** An exponentially weighted mean ``m`` and variance ``v`` of ``x`` over the past
   closed buckets (:class:`~finsentry.monitor.ewm.EWMeanVar`, half-life ``half_life_seconds`` of event time),
   each observation weighted by its ``n`` so a window of one item counts for little. The variance of a share
   scales as ``1 / n``, so the baseline std *for the current window* is ``s = sqrt(v * n_bar / n)``, where
   ``n_bar`` is the decayed average window size of the baseline (this keeps a key whose baseline was learnt
   from one-item windows comparable with a burst of forty items; it is the variable-sample-size p-chart,
   with the per-item variance estimated from the data as in Laney's p'-chart).
3. **z-score** ``z = (x - m) / s_eff`` against the baseline *before* this bucket, where
   ``s_eff = max(s, sqrt(m * (1 - m) / n), share_std_floor)``: the std never goes below the binomial std of a
   share of ``n`` items at the baseline rate (the variation a window of that size shows by chance alone,
   Shewhart's p-chart limits), nor below a constant floor (for a baseline near 0 or 1). ``s_eff`` is what
   events report as ``baseline_std``. z is undefined (None) when the key has fewer than ``baseline_min_items``
   items in closed buckets before the short window, and, for a key without an open spike, when
   ``n < min_items``: thin keys cannot start a spike. An open spike keeps being scored on a thinner window.
4. **Negative volume** ``k`` against its own EWMA mean and std (unit weight per closed bucket, zeros
   included): ``volume_z = (k - mean) / max(std, volume_std_floor)``. Reported and exported; it does not
   drive the spike state.
5. **Update.** The observation is then added to the baselines, winsorized from above at
   ``mean + start_z * std`` so that a spike cannot inflate its own baseline (a lasting level shift is still
   learnt, a step at a time).
6. **Hysteresis.** A spike *starts* when ``z >= start_z``; while open, every closed bucket emits *updated*;
   it *ends* at the first closed bucket with ``z < end_z``, or with an empty short window.

Parameters (all from :class:`~finsentry.monitor.settings.MonitorSettings`): ``window_seconds`` (s, event time,
default 300), ``half_life_seconds`` (s, event time, default 86400), ``min_items`` (items, default 10),
``baseline_min_items`` (items, default 10), ``start_z`` / ``end_z`` (dimensionless, default 3 / 1.5),
``share_std_floor`` (fraction of items, default 0.05), ``volume_std_floor`` (items, default 1).

References: S. W. Roberts, "Control chart tests based on geometric moving averages", Technometrics 1(3),
1959 (the EWMA chart); J. M. Lucas and M. S. Saccucci, "Exponentially weighted moving average control
schemes: properties and enhancements", Technometrics 32(1), 1990 (EWMA limits in std units, start-up and
robustness); D. B. Laney, "Improved control charts for attributes", Quality Engineering 14(4), 2002 (p'-chart).

>>> d = SpikeDetector(DetectorParams(window_seconds=60, half_life_seconds=3600, min_items=10,
...                                  baseline_min_items=0, start_z=3, end_z=1.5))
>>> for i in range(30):                      # quiet: 2 of 10 items negative every minute
...     _ = d.observe(60.0 * (i + 1), items=10, negative=2, history_items=100)
>>> obs, transition = d.observe(1860.0, items=10, negative=9, history_items=100)
>>> transition, round(obs.z, 2)             # (0.9 - 0.2) / max(0, binomial sqrt(0.2 * 0.8 / 10), 0.05)
('started', 5.53)
>>> d.observe(1920.0, items=10, negative=2, history_items=100)[1]
'ended'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from finsentry.monitor.ewm import EWMeanVar
from finsentry.monitor.records import iso
from finsentry.monitor.settings import MonitorSettings

EVIDENCE_ITEMS = 5
"""Items of evidence in a spike event: the most negative by ``sentiment_score`` (docs/contracts.md)."""


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Parameters of :class:`SpikeDetector`; units as in the module docstring."""

    window_seconds: int = 300
    half_life_seconds: float = 86_400.0
    min_items: int = 10
    baseline_min_items: int = 10
    start_z: float = 3.0
    end_z: float = 1.5
    share_std_floor: float = 0.05
    volume_std_floor: float = 1.0
    scales: tuple[int, ...] = ()
    """Window lengths (s) of :class:`~finsentry.monitor.multiscale.MultiScaleDetector`; empty: ``(window_seconds,)``."""
    warmup_windows: float = 0.0
    """Windows of event time a scale of the multi-scale detector must have seen before it speaks."""

    def __post_init__(self) -> None:
        if self.end_z >= self.start_z:
            raise ValueError(f"end_z={self.end_z} must be below start_z={self.start_z}")
        if self.window_seconds <= 0 or self.half_life_seconds <= 0:
            raise ValueError("window_seconds and half_life_seconds must be > 0")
        if not self.scales:
            object.__setattr__(self, "scales", (self.window_seconds,))
        if any(w <= 0 for w in self.scales) or list(self.scales) != sorted(set(self.scales)):
            raise ValueError(f"scales={self.scales} must be positive, distinct and ascending (seconds)")
        if self.warmup_windows < 0:
            raise ValueError(f"warmup_windows={self.warmup_windows} must be >= 0")

    @classmethod
    def from_settings(cls, s: MonitorSettings) -> DetectorParams:
        """The detector parameters of a :class:`MonitorSettings`."""
        return cls(
            window_seconds=s.spike_scales[0],
            half_life_seconds=s.baseline_half_life_seconds,
            min_items=s.spike_min_items,
            baseline_min_items=s.baseline_min_items,
            start_z=s.spike_start_z,
            end_z=s.spike_end_z,
            share_std_floor=s.share_std_floor,
            volume_std_floor=s.volume_std_floor,
            scales=tuple(s.spike_scales),
            warmup_windows=s.spike_warmup_windows,
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """What the detector saw at one closed bucket (``bucket_end``, epoch seconds) of one key.

    ``items`` / ``negative``: counts in the short window; ``share``: ``negative / items`` (None if empty);
    ``baseline_mean`` / ``baseline_std``: of the share, before this bucket, std scaled to ``items``;
    ``z``: share z-score (None when undefined); ``volume_*``: the same for the negative count;
    ``active``: spike state after this bucket; ``window_seconds``: the scale these figures are of (multi-scale
    detector; 0 for the single-window one); ``trigger``: ``share`` or ``volume``, the test that gave ``z``;
    ``share_z``: the share test's z of that scale.
    """

    bucket_end: float
    items: int
    negative: int
    share: float | None
    baseline_mean: float | None
    baseline_std: float | None
    z: float | None
    volume_baseline: float | None
    volume_std: float | None
    volume_z: float | None
    active: bool
    window_seconds: int = 0
    trigger: str | None = None
    share_z: float | None = None


@dataclass(frozen=True, slots=True)
class SpikeEvent:
    """A spike transition (``started`` / ``updated`` / ``ended``) of one key; JSON shape in docs/contracts.md.

    Times are epoch seconds here and ISO-8601 UTC in :meth:`to_dict`.
    """

    event: str
    key: str
    bucket_start: float
    bucket_end: float
    window_seconds: int
    share: float | None
    baseline_mean: float | None
    baseline_std: float | None
    z: float | None
    volume: int
    volume_baseline: float | None
    volume_z: float | None
    items: int
    negative: int
    evidence: list[dict[str, Any]] = field(default_factory=list)
    trigger: str | None = None
    """``share`` or ``volume``: the test whose z this is (see :mod:`finsentry.monitor.multiscale`)."""
    share_z: float | None = None
    """The share test's z at this scale (equal to ``z`` when ``trigger`` is ``share``)."""

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON-ready dict (times as ISO-8601 UTC strings)."""
        d = asdict(self)
        d["bucket_start"] = iso(self.bucket_start)
        d["bucket_end"] = iso(self.bucket_end)
        return d


def hysteresis(active: bool, z: float | None, start_z: float, end_z: float) -> tuple[bool, str | None]:
    """The spike state after a bucket scored ``z``: ``(active, transition)``.

    Starts at ``z >= start_z``; an open spike is ``updated`` while ``z >= end_z`` and ``ended`` at the first
    ``z < end_z`` or undefined ``z`` (None).

    >>> hysteresis(False, 3.2, 3.0, 1.5), hysteresis(True, 2.0, 3.0, 1.5), hysteresis(True, None, 3.0, 1.5)
    ((True, 'started'), (True, 'updated'), (False, 'ended'))
    >>> hysteresis(False, 2.0, 3.0, 1.5)
    (False, None)
    """
    if not active:
        return (True, "started") if z is not None and z >= start_z else (False, None)
    if z is None or z < end_z:
        return False, "ended"
    return True, "updated"


def share_std(baseline: EWMeanVar, items: int, floor: float) -> float:
    """Std of a window's negative share of ``items`` items under ``baseline`` (an :class:`EWMeanVar` with weight).

    ``max(sqrt(var * n_bar / items), sqrt(m (1 - m) / items), floor)``: Laney's p'-chart std scaled to the
    window, never below the binomial std at the baseline mean (Shewhart's p-chart) nor ``floor``.

    >>> b = EWMeanVar(60.0).update(0.2, t=0.0, w=10)
    >>> round(share_std(b, 10, 0.05), 6)   # variance 0: the binomial sqrt(0.2 * 0.8 / 10)
    0.126491
    """
    m = baseline.mean
    return max(math.sqrt(baseline.var * baseline.mean_weight / items), math.sqrt(m * (1 - m) / items), floor)


class SpikeDetector:
    """Per-key detector state: two EWMA baselines and the hysteresis flag. Not thread-safe.

    Args:
        params: :class:`DetectorParams`.
    """

    __slots__ = ("params", "share", "volume", "active", "last")

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self.share = EWMeanVar(params.half_life_seconds)
        self.volume = EWMeanVar(params.half_life_seconds)
        self.active = False
        self.last: Observation | None = None

    def observe(
        self, bucket_end: float, items: int, negative: int, history_items: int
    ) -> tuple[Observation, str | None]:
        """Feed one closed bucket: short-window counts at ``bucket_end`` (epoch s) and the key's older item count.

        Returns:
            ``(observation, transition)`` with transition ``started`` / ``updated`` / ``ended`` or None.
        """
        p = self.params
        c = p.start_z
        # negative volume against its own baseline (every closed bucket, zeros included)
        vol = self.volume
        vm, vz, vs = None, None, None
        if vol.weight > 0:
            vm = vol.mean
            vs = max(vol.std, p.volume_std_floor)
            vz = (negative - vm) / vs
            vol.update(min(negative, vm + c * vs), bucket_end)
        else:
            vol.update(negative, bucket_end)

        share = z = m = s = None
        if items > 0:
            share = negative / items
            sh = self.share
            if sh.weight > 0:
                m = sh.mean
                s = share_std(sh, items, p.share_std_floor)
                if (items >= p.min_items or self.active) and history_items >= p.baseline_min_items:
                    z = (share - m) / s
                sh.update(min(share, m + c * s), bucket_end, w=items)
            else:
                sh.update(share, bucket_end, w=items)

        self.active, transition = hysteresis(self.active, z, p.start_z, p.end_z)
        obs = Observation(bucket_end, items, negative, share, m, s, z, vm, vs, vz, self.active)
        self.last = obs
        return obs, transition

    def skip_empty(self, first_end: float, step: float, k: int) -> None:
        """Feed ``k`` closed buckets with an empty short window at ``first_end, first_end + step, ...`` in O(1).

        Same state, up to rounding, as ``k`` calls of :meth:`observe` with ``items=0``: the share baseline is
        untouched, the volume baseline gets ``k`` zeros (never winsorized: zero is below its mean). Only for a
        detector without an active spike (an empty window would end it).
        """
        if self.active:
            raise ValueError("skip_empty() needs an inactive detector: an empty window ends a spike")
        self.volume.update_many(0.0, first_end, step, k)
        self.last = None

    def state(self) -> dict[str, Any]:
        """Baselines, last observation and spike flag as a JSON-ready dict (for the API and the restart test)."""
        return {
            "active": self.active,
            "share_baseline": self.share.get(),
            "volume_baseline": self.volume.get(),
            "last": None if self.last is None else asdict(self.last) | {"bucket_end": iso(self.last.bucket_end)},
        }
