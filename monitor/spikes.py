"""Negative-spike detection per aggregate key: an EWMA control chart on the negative share of a short window.

Method (run by the aggregator on every closed bucket of a key, in bucket order):

1. **Short window.** ``n`` = items and ``k`` = negative items in the ``window_seconds`` of event time ending at
   the closed bucket's end (closed buckets only); the negative share is ``x = k / n``.
2. **Baseline of the share.** An exponentially weighted mean ``m`` and variance ``v`` of ``x`` over the past
   closed buckets (:class:`~finsentry.monitor.ewm.EWMeanVar`, half-life ``baseline_half_life_seconds`` of event
   time),
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
   ``mean + baseline_clamp_z * std`` so that a spike cannot inflate its own baseline (a lasting level shift is
   still learnt, a step at a time).
6. **Hysteresis.** A spike *starts* when ``z >= start_z``; while open, every closed bucket emits *updated*;
   it *ends* at the first closed bucket with ``z < end_z``, or with an empty short window.

Parameters: the group ``monitor.spike`` (:class:`~finsentry.monitor.spike_settings.SpikeSettings`), taken as it
is: the short window is its only scale (``window_seconds``, s of event time; the window itself is counted by the
caller), ``baseline_half_life_seconds`` (s, event time, default 7 days), ``min_items`` (items, default 10),
``baseline_min_items`` (items, default 10), ``start_z`` / ``end_z`` (dimensionless, default 3 / 1.5),
``baseline_clamp_z`` (dimensionless, default 3), ``share_std_floor`` (fraction of items, default 0.05),
``volume_std_floor`` (items, default 1).

References: S. W. Roberts, "Control chart tests based on geometric moving averages", Technometrics 1(3),
1959 (the EWMA chart); J. M. Lucas and M. S. Saccucci, "Exponentially weighted moving average control
schemes: properties and enhancements", Technometrics 32(1), 1990 (EWMA limits in std units, start-up and
robustness); D. B. Laney, "Improved control charts for attributes", Quality Engineering 14(4), 2002 (p'-chart).

>>> d = SpikeDetector(SpikeSettings(window_seconds=60, baseline_half_life_seconds=3600, min_items=10,
...                                 baseline_min_items=0, start_z=3, end_z=1.5))
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
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from finsentry.ingest.contract import iso_epoch
from finsentry.monitor.ewm import EWMeanVar
from finsentry.monitor.spike_settings import SpikeSettings

EVIDENCE_ITEMS = 5
"""Items of evidence in a spike event: the most negative by ``sentiment_score`` (docs/contracts.md)."""


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


SPIKE_EVENTS = ("started", "updated", "ended")
"""The transitions a :class:`SpikeEvent` reports."""


class SpikeRecordError(ValueError):
    """A ``sentiment.spikes`` record is not a spike event of docs/contracts.md; the message says which field."""


def spike_id(key: str, start_bucket_end: float) -> str:
    """The id of the spike of ``key`` that started at the close of the bucket ending at ``start_bucket_end``
    (epoch s): ``<key>@<ISO UTC>``. The aggregator is deterministic, so a rebuild by replay gives the same id.

    >>> spike_id("ticker:AAPL", 1440432000.0)
    'ticker:AAPL@2015-08-24T16:00:00Z'
    """
    return f"{key}@{iso_epoch(start_bucket_end)}"


@dataclass(frozen=True, slots=True)
class SpikeFigures:
    """The detector's figures of a spike at one closed bucket (its start, its peak or now).

    ``bucket_end``: epoch seconds (ISO-8601 UTC in :meth:`to_dict`); ``window_seconds``: the scale (s) whose test
    gave ``z``; ``trigger``: ``share`` or ``volume``; ``z`` / ``share_z``: standard deviations; ``share`` /
    ``baseline_mean`` / ``baseline_std``: negative share of that window and its baseline (fractions, 0..1);
    ``items`` / ``negative``: distinct stories in that window; ``volume_baseline`` (stories) and ``volume_z``:
    the negative-count test.
    """

    bucket_end: float
    window_seconds: int
    trigger: str | None
    z: float | None
    share_z: float | None
    share: float | None
    baseline_mean: float | None
    baseline_std: float | None
    items: int
    negative: int
    volume_baseline: float | None
    volume_z: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``bucket_end`` as ISO-8601 UTC)."""
        return asdict(self) | {"bucket_end": iso_epoch(self.bucket_end)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "figures") -> SpikeFigures:
        """The figures of a :meth:`to_dict` dict.

        Raises:
            SpikeRecordError: a field is missing or of the wrong type (the message names it, prefixed ``where``).
        """
        if not isinstance(d, dict):
            raise SpikeRecordError(f"{where} must be an object, got {type(d).__name__}")
        return cls(
            bucket_end=_time(d, "bucket_end", where),
            window_seconds=_int(d, "window_seconds", where),
            trigger=_opt_str(d, "trigger", where),
            z=_opt_num(d, "z", where),
            share_z=_opt_num(d, "share_z", where),
            share=_opt_num(d, "share", where),
            baseline_mean=_opt_num(d, "baseline_mean", where),
            baseline_std=_opt_num(d, "baseline_std", where),
            items=_int(d, "items", where),
            negative=_int(d, "negative", where),
            volume_baseline=_opt_num(d, "volume_baseline", where),
            volume_z=_opt_num(d, "volume_z", where),
        )


@dataclass(frozen=True, slots=True)
class SpikeEvent:
    """A spike transition (``started`` / ``updated`` / ``ended``) of one key; JSON shape in docs/contracts.md.

    The flat fields (``share`` ... ``negative``, ``trigger``, ``share_z``) are the figures *now*, at the closed
    bucket that produced the event; ``start`` and ``peak`` are the figures at the bucket that started the spike
    and at its highest ``z`` so far; ``spike_id`` (:func:`spike_id`) names the spike in every event, metric
    label, alert and notification that quotes it. Times are epoch seconds here and ISO-8601 UTC in
    :meth:`to_dict`.
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
    spike_id: str = ""
    """``<key>@<start bucket_end ISO UTC>``; empty only on an event not yet linked by :func:`continue_spike`."""
    start: SpikeFigures | None = None
    """The figures at the bucket that started the spike (equal to the flat fields on a ``started`` event)."""
    peak: SpikeFigures | None = None
    """The figures at the spike's highest ``z`` so far (the start, or a later ``updated`` bucket)."""

    def figures(self) -> SpikeFigures:
        """The figures of this event's own bucket (*now*)."""
        return SpikeFigures(
            self.bucket_end,
            self.window_seconds,
            self.trigger,
            self.z,
            self.share_z,
            self.share,
            self.baseline_mean,
            self.baseline_std,
            self.items,
            self.negative,
            self.volume_baseline,
            self.volume_z,
        )

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON-ready dict (times as ISO-8601 UTC strings)."""
        d = asdict(self)
        d["bucket_start"] = iso_epoch(self.bucket_start)
        d["bucket_end"] = iso_epoch(self.bucket_end)
        d["start"] = None if self.start is None else self.start.to_dict()
        d["peak"] = None if self.peak is None else self.peak.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any) -> SpikeEvent:
        """The event of a :meth:`to_dict` dict (a ``sentiment.spikes`` record's JSON value).

        Raises:
            SpikeRecordError: not an object, a field missing or of the wrong type, an unknown ``event``; one line
                naming the field.
        """
        if not isinstance(d, dict):
            raise SpikeRecordError(f"a spike event must be a JSON object, got {type(d).__name__}")
        event = d.get("event")
        if event not in SPIKE_EVENTS:
            raise SpikeRecordError(f"event must be one of {', '.join(SPIKE_EVENTS)}, got {event!r}")
        key = d.get("key")
        if not isinstance(key, str) or not key:
            raise SpikeRecordError(f"key must be a non-empty string, got {key!r}")
        evidence = d.get("evidence") or []
        if not isinstance(evidence, list) or not all(isinstance(e, dict) for e in evidence):
            raise SpikeRecordError("evidence must be a list of objects")
        now = SpikeFigures.from_dict(d, "event")
        start = None if d.get("start") is None else SpikeFigures.from_dict(d["start"], "start")
        peak = None if d.get("peak") is None else SpikeFigures.from_dict(d["peak"], "peak")
        sid = d.get("spike_id", "")
        if not isinstance(sid, str):
            raise SpikeRecordError(f"spike_id must be a string, got {sid!r}")
        return cls(
            event=event,
            key=key,
            bucket_start=_time(d, "bucket_start", "event"),
            bucket_end=now.bucket_end,
            window_seconds=now.window_seconds,
            share=now.share,
            baseline_mean=now.baseline_mean,
            baseline_std=now.baseline_std,
            z=now.z,
            volume=_int(d, "volume", "event"),
            volume_baseline=now.volume_baseline,
            volume_z=now.volume_z,
            items=now.items,
            negative=now.negative,
            evidence=[dict(e) for e in evidence],
            trigger=now.trigger,
            share_z=now.share_z,
            spike_id=sid,
            start=start,
            peak=peak,
        )


def figures_text(fig: dict[str, Any], baseline: bool = True) -> str:
    """``z=4.2  negative 25/40 (62%, baseline 18%)`` of a spike's figures (the event itself, or its ``start`` /
    ``peak``; ``docs/contracts.md``): z to one decimal, shares as whole percents, counts of distinct stories.

    Where the negative-volume test gave ``z`` (``trigger`` ``volume``), its own baseline follows, so the z is not
    read against the share baseline beside it: ``...; volume test: 10 negative vs 2.2 expected``.

    >>> figures_text({"z": 4.21, "share": 0.625, "baseline_mean": 0.18, "items": 40, "negative": 25})
    'z=4.2  negative 25/40 (62%, baseline 18%)'
    >>> figures_text({"z": 3.16, "share": 0.286, "baseline_mean": 0.109, "items": 35, "negative": 10,
    ...               "trigger": "volume", "volume_baseline": 2.24})
    'z=3.2  negative 10/35 (29%, baseline 11%; volume test: 10 negative vs 2.2 expected)'
    """
    z = fig.get("z")
    share, base = fig.get("share"), fig.get("baseline_mean")
    text = f"z={z:.1f}" if isinstance(z, int | float) else "z=n/a"
    text += f"  negative {fig.get('negative')}/{fig.get('items')}"
    text += f" ({share:.0%}" if isinstance(share, int | float) else " (n/a"
    if baseline and isinstance(base, int | float):
        text += f", baseline {base:.0%}"
    expected = fig.get("volume_baseline")
    if fig.get("trigger") == "volume" and isinstance(expected, int | float):
        text += f"; volume test: {fig.get('negative')} negative vs {expected:.1f} expected"
    return text + ")"


def continue_spike(event: SpikeEvent, previous: SpikeEvent | None) -> SpikeEvent:
    """``event`` with its spike's id, start and peak: a ``started`` event starts them; a later event of the same
    spike (``previous``: the key's last event, still open) carries the start on and raises the peak when its ``z``
    is higher.

    >>> e = SpikeEvent("started", "all", 0.0, 60.0, 60, 0.5, 0.1, 0.1, 4.0, 5, None, None, 10, 5)
    >>> u = continue_spike(SpikeEvent("updated", "all", 60.0, 120.0, 60, 0.7, 0.1, 0.1, 6.0, 7, None, None,
    ...                                10, 7), continue_spike(e, None))
    >>> u.spike_id, u.start.z, u.peak.z, u.z
    ('all@1970-01-01T00:01:00Z', 4.0, 6.0, 6.0)
    """
    now = event.figures()
    if event.event == "started" or previous is None or previous.start is None:
        start = peak = now
    else:
        start, peak = previous.start, previous.peak or previous.start
        if now.z is not None and (peak.z is None or now.z > peak.z):
            peak = now
    return replace(event, spike_id=spike_id(event.key, start.bucket_end), start=start, peak=peak)


def _field(d: dict[str, Any], name: str, where: str) -> Any:
    if name not in d:
        raise SpikeRecordError(f"{where}: missing field {name}")
    return d[name]


def _time(d: dict[str, Any], name: str, where: str) -> float:
    v = _field(d, name, where)
    try:
        t = datetime.fromisoformat(v) if isinstance(v, str) else None
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise SpikeRecordError(f"{where}: {name} must be an ISO-8601 time with a zone, got {v!r}")
    return t.timestamp()


def _int(d: dict[str, Any], name: str, where: str) -> int:
    v = _field(d, name, where)
    if isinstance(v, bool) or not isinstance(v, int):
        raise SpikeRecordError(f"{where}: {name} must be an integer, got {v!r}")
    return v


def _opt_num(d: dict[str, Any], name: str, where: str) -> float | None:
    v = d.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpikeRecordError(f"{where}: {name} must be a finite number or null, got {v!r}")
    return float(v)


def _opt_str(d: dict[str, Any], name: str, where: str) -> str | None:
    v = d.get(name)
    if v is not None and not isinstance(v, str):
        raise SpikeRecordError(f"{where}: {name} must be a string or null, got {v!r}")
    return v


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


def share_against_baseline(
    baseline: EWMeanVar, items: int, negative: int, floor: float
) -> tuple[float | None, float | None, float | None]:
    """``(share, mean, std)`` of a window of ``items`` items, ``negative`` of them negative, against ``baseline``:
    the share (None for an empty window), the baseline's mean and :func:`share_std` (both None for an empty window
    or a baseline that has seen nothing).

    >>> b = EWMeanVar(60.0).update(0.2, t=0.0, w=10)
    >>> [round(x, 6) for x in share_against_baseline(b, 10, 5, 0.05)]
    [0.5, 0.2, 0.126491]
    >>> share_against_baseline(EWMeanVar(60.0), 10, 5, 0.05)
    (0.5, None, None)
    """
    if items <= 0:
        return None, None, None
    if baseline.weight <= 0:
        return negative / items, None, None
    return negative / items, baseline.mean, share_std(baseline, items, floor)


class SpikeDetector:
    """Per-key detector state: two EWMA baselines and the hysteresis flag. Not thread-safe.

    Args:
        params: the spike settings (``monitor.spike``), taken as they are.
    """

    __slots__ = ("params", "share", "volume", "active", "last")

    def __init__(self, params: SpikeSettings) -> None:
        self.params = params
        self.share = EWMeanVar(params.baseline_half_life_seconds)
        self.volume = EWMeanVar(params.baseline_half_life_seconds)
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
        c = p.baseline_clamp_z
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

        z = None
        share, m, s = share_against_baseline(self.share, items, negative, p.share_std_floor)
        if share is not None and m is not None and s is not None:
            if (items >= p.min_items or self.active) and history_items >= p.baseline_min_items:
                z = (share - m) / s
            self.share.update(min(share, m + c * s), bucket_end, w=items)
        elif share is not None:
            self.share.update(share, bucket_end, w=items)

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
            "last": None if self.last is None else asdict(self.last) | {"bucket_end": iso_epoch(self.last.bucket_end)},
        }
