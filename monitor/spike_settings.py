"""Settings of the spike detector (group ``monitor.spike``; env ``FINSENTRY_MONITOR__SPIKE__<KEY>``).

The detectors (:class:`~finsentry.monitor.multiscale.MultiScaleDetector`, the aggregator's, and the single-window
:class:`~finsentry.monitor.spikes.SpikeDetector`) take this group as it is: the names below are the names the
detector code reads, and the checks below are the only ones. Every duration is in seconds of event time
(``published_at``, UTC). What the detector does with each: ``docs/monitor.md`` ("Spike detection") and the
module docstring of :mod:`finsentry.monitor.multiscale`.

Whether each scale is a multiple of ``monitor.bucket_seconds`` is checked by
:class:`~finsentry.monitor.settings.MonitorSettings`, which holds the bucket size.

>>> s = SpikeSettings()
>>> s.scales, s.start_z, s.end_z, s.baseline_clamp_z
((3600, 86400), 3.0, 1.5, 3.0)
>>> SpikeSettings(window_seconds=300).scales
(300,)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY_SECONDS = 86_400


class SpikeSettings(BaseModel):
    """Negative-spike detection: time scales, baselines, thresholds and floors (group ``monitor.spike``).

    Raises (on construction, ``pydantic.ValidationError``): a value out of range, ``end_z >= start_z``, duplicate
    scales, or both ``scales_seconds`` and the deprecated ``window_seconds`` set.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    scales_seconds: list[int] = Field(
        default_factory=lambda: [3600, DAY_SECONDS],
        min_length=1,
        description="time scales of the spike detector, seconds of event time (multiples of monitor.bucket_seconds):"
        " every key is watched over each at once, one spike state per key; a scale speaks once its window holds"
        " min_items items, so a busy key is judged by the hour and a quiet one by the day",
    )
    window_seconds: int | None = Field(
        None,
        gt=0,
        description="deprecated: one detector window, seconds of event time; when set it replaces scales_seconds"
        " with this single scale",
    )
    warmup_windows: float = Field(
        3.0,
        ge=0,
        description="windows of event time each scale's baselines must have seen before the scale can raise a"
        " spike (3: three days for the day scale)",
    )
    baseline_half_life_seconds: float = Field(
        7 * DAY_SECONDS, gt=0, description="half-life of the EWMA baselines, seconds of event time"
    )
    min_items: int = Field(
        10, ge=1, description="distinct stories a scale's window needs before its share z-score is computed"
    )
    baseline_min_items: int = Field(
        10, ge=0, description="items a key needs in closed buckets before the short window before z is computed"
    )
    start_z: float = Field(3.0, gt=0, description="z-score (dimensionless) at or above which a spike starts")
    end_z: float = Field(1.5, description="z-score (dimensionless) below which an active spike ends; below start_z")
    baseline_clamp_z: float = Field(
        3.0,
        gt=0,
        description="winsorizing cap of the baselines, in std (dimensionless): each window is learnt at most at"
        " baseline mean + baseline_clamp_z * std, so a surge that has not yet crossed start_z cannot raise the bar"
        " it is judged by (a lasting level shift is still learnt, a step at a time); independent of start_z",
    )
    share_std_floor: float = Field(
        0.05,
        gt=0,
        le=1,
        description="floor on the baseline std of the negative share (a fraction in 0..1), on top of the binomial "
        "std of the window's share at the baseline mean",
    )
    volume_std_floor: float = Field(
        1.0,
        gt=0,
        description="floor on the baseline std of the negative volume, items per window; used only by the"
        " single-window SpikeDetector (monitor/spikes.py): the multi-scale detector's exact count test has its own"
        " floor (half a negative story per window, monitor/multiscale.py)",
    )
    novelty_horizon_seconds: int = Field(
        DAY_SECONDS,
        gt=0,
        description="seconds of event time within which a near-duplicate of a story already seen on a key (the"
        " same story syndicated or retweeted) counts once in the spike statistics and the evidence",
    )

    @model_validator(mode="after")
    def _check(self) -> SpikeSettings:
        if self.window_seconds is not None and "scales_seconds" in self.model_fields_set:
            raise ValueError(
                "set scales_seconds or the deprecated window_seconds, not both (the single window would silently"
                " replace the scales)"
            )
        if len(set(self.scales_seconds)) != len(self.scales_seconds):
            raise ValueError(f"scales_seconds {self.scales_seconds} has duplicates")
        if self.end_z >= self.start_z:
            raise ValueError(f"end_z={self.end_z} must be below start_z={self.start_z}")
        return self

    @property
    def scales(self) -> tuple[int, ...]:
        """The detector's time scales (s, ascending): ``(window_seconds,)`` if set, else ``scales_seconds``."""
        if self.window_seconds is not None:
            return (self.window_seconds,)
        return tuple(sorted(self.scales_seconds))

    @property
    def scales_setting(self) -> str:
        """The name of the setting :attr:`scales` comes from (for error messages)."""
        return "window_seconds" if self.window_seconds is not None else "scales_seconds"
