"""Settings of the monitor room (section ``monitor``; env ``FINSENTRY_MONITOR__<KEY>``).

Every duration is in seconds of event time (``published_at``, UTC) unless the description says wall clock.
Lists are given in the environment as JSON, e.g. ``FINSENTRY_MONITOR__WINDOWS_SECONDS='[300, 3600]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY_SECONDS = 86_400


def window_name(seconds: int) -> str:
    """Short name of a window length: the largest unit (d, h, m, s) that divides it.

    >>> [window_name(s) for s in (300, 3600, 86400, 5400, 45, 604800)]
    ['5m', '1h', '1d', '90m', '45s', '7d']
    """
    for unit, size in (("d", DAY_SECONDS), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class MonitorSettings(BaseModel):
    """Aggregator windows, spike detection and the monitor HTTP service."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    http_host: str = Field("127.0.0.1", description="bind address of /metrics, the JSON API and the dashboard")
    http_port: int = Field(8600, ge=0, le=65535, description="port of the monitor HTTP service (0 = any free port)")

    group_id: str = Field("finsentry-aggregator", description="Kafka consumer group of the aggregators")
    bucket_seconds: int = Field(
        60,
        gt=0,
        description="tumbling bucket size, seconds of event time; must divide 86400 so buckets align to UTC days",
    )
    windows_seconds: list[int] = Field(
        default_factory=lambda: [300, 3600, DAY_SECONDS],
        min_length=1,
        description="rolling views, seconds of event time, each a multiple of bucket_seconds (named 5m, 1h, 1d...)",
    )
    grace_seconds: int = Field(
        120, ge=0, description="grace period, seconds of event time: the watermark trails the data by this much"
    )
    lookback_seconds: int = Field(
        14 * DAY_SECONDS,
        gt=0,
        description="seconds of wall clock re-read from sentiment.keyed to rebuild state on assignment, and the "
        "dedup horizon (event time); must cover the longest window and the short spike window",
    )
    spike_scales_seconds: list[int] = Field(
        default_factory=lambda: [3600, DAY_SECONDS],
        min_length=1,
        description="time scales of the spike detector, seconds of event time (multiples of bucket_seconds): every"
        " key is watched over each at once, one spike state per key; a scale speaks once its window holds"
        " spike_min_items items, so a busy key is judged by the hour and a quiet one by the day",
    )
    spike_window_seconds: int | None = Field(
        None,
        gt=0,
        description="deprecated: one detector window, seconds of event time; when set it replaces"
        " spike_scales_seconds with this single scale",
    )
    spike_warmup_windows: float = Field(
        3.0,
        ge=0,
        description="windows of event time each scale's baselines must have seen before the scale can raise a"
        " spike (3: three days for the day scale)",
    )
    baseline_half_life_seconds: float = Field(
        7 * DAY_SECONDS, gt=0, description="half-life of the EWMA baselines, seconds of event time"
    )
    spike_min_items: int = Field(
        10, ge=1, description="distinct stories a scale's window needs before its share z-score is computed"
    )
    baseline_min_items: int = Field(
        10, ge=0, description="items a key needs in closed buckets before the short window before z is computed"
    )
    spike_start_z: float = Field(3.0, gt=0, description="z-score (dimensionless) at or above which a spike starts")
    spike_end_z: float = Field(1.5, description="z-score (dimensionless) below which an active spike ends")
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
    key_idle_seconds: int | None = Field(
        None,
        gt=0,
        description="seconds of event time a key may go without news before its state, baselines included, is"
        " dropped; default: twice baseline_half_life_seconds (at least the longest window), so a quiet topic keeps"
        " the baseline it is judged by; with the deprecated spike_window_seconds set, the longest window",
    )
    ticker_metrics_cap: int = Field(
        50, ge=0, description="ticker keys exported in Prometheus key labels: the N most active in the longest window"
    )
    spikes_history: int = Field(1000, ge=1, description="spike events kept in memory for GET /api/spikes")
    max_keys: int = Field(
        50_000,
        ge=1,
        le=10_000_000,
        description="aggregate keys one aggregator instance holds, count (about 10 KB of memory each): beyond it the"
        " ticker key idle the longest (event time) without an open spike is dropped, state and baselines with it,"
        " and counted in finsentry_aggregator_evicted_keys_total; all, topic:* and keys with an open spike are never"
        " evicted, so they may hold a few keys more",
    )
    api_max_keys: int = Field(
        500,
        ge=1,
        le=100_000,
        description="keys in one GET /api/trends or /api/detectors answer, count: the default and the largest"
        " ?limit= (the busiest keys by items in the longest window; all, topic:* and keys with an open spike are"
        " always included), so an answer stays small however many keys are held",
    )
    attribution_model: str = Field(
        "model",
        description="model whose leave-one-word-out (occlusion) attribution names, for each evidence item of a spike"
        " event, the words that drove its negative score (field attribution, docs/contracts.md): model = the"
        " scorer's artifact folder (model.path, the shipped model by default), a path = that artifact folder, off"
        " or empty = no attribution; loaded at the first spike event (onnxruntime, one thread); if it cannot be"
        " loaded the aggregator logs one warning and publishes evidence without attribution",
    )
    max_future_seconds: int = Field(
        600,
        ge=0,
        description="how far a sentiment.keyed record's published_at may lie ahead of the aggregator's wall clock,"
        " seconds: the clock skew tolerated between the sources and the aggregator (default 600 s); a record"
        " further ahead is not aggregated (counted as future_event_time, left in the topic), so it cannot raise"
        " its partition's watermark and make the partition's real items late",
    )

    @field_validator("bucket_seconds")
    @classmethod
    def _divides_a_day(cls, b: int) -> int:
        if DAY_SECONDS % b:
            raise ValueError(f"bucket_seconds={b} must divide 86400 so buckets align to UTC days")
        return b

    @model_validator(mode="after")
    def _check(self) -> MonitorSettings:
        b = self.bucket_seconds
        bad = [w for w in self.windows_seconds if w <= 0 or w % b]
        if bad:
            raise ValueError(f"windows_seconds {bad} must be positive multiples of bucket_seconds={b}")
        if len({window_name(w) for w in self.windows_seconds}) != len(self.windows_seconds):
            raise ValueError(f"windows_seconds {self.windows_seconds} has duplicates")
        if self.spike_window_seconds is not None and "spike_scales_seconds" in self.model_fields_set:
            raise ValueError(
                "set spike_scales_seconds or the deprecated spike_window_seconds, not both (the single window would"
                " silently replace the scales)"
            )
        if len(set(self.spike_scales_seconds)) != len(self.spike_scales_seconds):
            raise ValueError(f"spike_scales_seconds {self.spike_scales_seconds} has duplicates")
        name = "spike_window_seconds" if self.spike_window_seconds is not None else "spike_scales_seconds"
        bad = [w for w in self.spike_scales if w <= 0 or w % b]
        if bad:
            raise ValueError(f"{name} {bad} must be positive multiples of bucket_seconds={b}")
        if self.spike_end_z >= self.spike_start_z:
            raise ValueError(f"spike_end_z={self.spike_end_z} must be below spike_start_z={self.spike_start_z}")
        if self.lookback_seconds < self.retention_seconds:
            raise ValueError(
                f"lookback_seconds={self.lookback_seconds} must cover the longest window ({self.retention_seconds} s)"
            )
        return self

    def attribution_folder(self, model_path: Path) -> Path | None:
        """The artifact folder of :attr:`attribution_model` (``model_path``: the scorer's ``model.path``), or None
        when attribution is off.

        >>> s = MonitorSettings()
        >>> s.attribution_folder(Path("m")), MonitorSettings(attribution_model="OFF ").attribution_folder(Path("m"))
        (PosixPath('m'), None)
        """
        value = self.attribution_model.strip()
        if value.lower() in ("", "off"):
            return None
        return model_path if value == "model" else Path(value)

    @property
    def retention_seconds(self) -> int:
        """Longest of the rolling windows and the short spike window: buckets and idle keys expire after it."""
        return max([*self.windows_seconds, *self.spike_scales])

    @property
    def key_idle_limit_seconds(self) -> int:
        """Effective :attr:`key_idle_seconds` (see its description), seconds of event time."""
        if self.key_idle_seconds is not None:
            return max(self.key_idle_seconds, self.retention_seconds)
        if self.spike_window_seconds is not None:
            return self.retention_seconds
        return max(self.retention_seconds, int(min(2 * self.baseline_half_life_seconds, 1e12)))

    @property
    def spike_scales(self) -> list[int]:
        """The detector's time scales (s, ascending): ``[spike_window_seconds]`` if set, else
        ``spike_scales_seconds``."""
        if self.spike_window_seconds is not None:
            return [self.spike_window_seconds]
        return sorted(set(self.spike_scales_seconds))

    @property
    def window_names(self) -> dict[str, int]:
        """Window name -> length in seconds, in the configured order."""
        return {window_name(w): w for w in self.windows_seconds}


PRESETS: dict[str, dict[str, Any]] = {
    "stocknet": {
        "bucket_seconds": 3600,
        "windows_seconds": [DAY_SECONDS, 7 * DAY_SECONDS],
        "spike_scales_seconds": [DAY_SECONDS],
        "baseline_half_life_seconds": 7 * DAY_SECONDS,
        "grace_seconds": 3600,
        "lookback_seconds": 14 * DAY_SECONDS,
        "spike_min_items": 10,
        "baseline_min_items": 20,
    },
}
"""Named setting overrides for streams unlike a busy news wire. ``stocknet``: the StockNet tweet sample has about
200 items a day over 87 tickers (a busy ticker a few dozen, most a handful), so hourly buckets, a one-day short
window, a one-week baseline half-life, and 1-day / 7-day views (keys then survive a quiet weekend)."""


def preset(name: str, base: MonitorSettings | None = None, **overrides: Any) -> MonitorSettings:
    """``base`` (default: the defaults) with preset ``name`` and then ``overrides`` applied, validated.

    Raises:
        KeyError: no preset of that name (the message lists them). pydantic.ValidationError: a bad combination.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown monitor preset {name!r}; presets: {sorted(PRESETS)}")
    data = (base or MonitorSettings()).model_dump() | PRESETS[name] | overrides
    return MonitorSettings(**data)
