"""Settings of the monitor room (section ``monitor``; env ``FINSENTRY_MONITOR__<KEY>``).

Every duration is in seconds of event time (``published_at``, UTC) unless the description says wall clock.
Lists are given in the environment as JSON, e.g. ``FINSENTRY_MONITOR__WINDOWS_SECONDS='[300, 3600]'``. The spike
detector's settings are the group ``monitor.spike`` (:class:`~finsentry.monitor.spike_settings.SpikeSettings`, env
``FINSENTRY_MONITOR__SPIKE__<KEY>``); a flat key of the old layout (``spike_start_z``) stops with the new name
(:data:`RENAMED_KEYS`). Presets for streams unlike a busy news wire are named constructors
(:meth:`MonitorSettings.stocknet`), looked up by name with :func:`preset`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from finsentry.common.mappings import deep_merge
from finsentry.monitor.spike_settings import DAY_SECONDS, SpikeSettings

RENAMED_KEYS: dict[str, str] = {
    "spike_scales_seconds": "spike.scales_seconds",
    "spike_window_seconds": "spike.window_seconds",
    "spike_warmup_windows": "spike.warmup_windows",
    "baseline_half_life_seconds": "spike.baseline_half_life_seconds",
    "spike_min_items": "spike.min_items",
    "baseline_min_items": "spike.baseline_min_items",
    "spike_start_z": "spike.start_z",
    "spike_end_z": "spike.end_z",
    "share_std_floor": "spike.share_std_floor",
    "volume_std_floor": "spike.volume_std_floor",
    "novelty_horizon_seconds": "spike.novelty_horizon_seconds",
}
"""Flat ``monitor`` keys of the old layout -> their key now, below ``monitor``. Setting an old key (YAML, env or
Python) fails validation with the error type ``renamed_setting`` naming the new key; it is never ignored or
aliased."""

RENAME_NOTES: dict[str, str] = {
    "spike_start_z": "the baseline clamp that used to follow it is now monitor.spike.baseline_clamp_z (default 3)",
}
"""What else a renamed key's user must know (shown after the new name)."""


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
        description="seconds of wall clock (Kafka record timestamps) re-read from sentiment.keyed to rebuild state"
        " on partition assignment; must cover the longest window and the longest spike scale",
    )
    dedup_horizon_seconds: int = Field(
        14 * DAY_SECONDS,
        gt=0,
        description="seconds of event time an (id, key) is remembered per key so a second copy (a redelivery, a"
        " replay) is counted as a duplicate and dropped; must cover the longest window and the longest spike scale",
    )
    spike: SpikeSettings = Field(
        default_factory=SpikeSettings,
        description="the spike detector (monitor/spike_settings.py), passed to it as it is",
    )
    key_idle_seconds: int | None = Field(
        None,
        gt=0,
        description="seconds of event time a key may go without news before its state, baselines included, is"
        " dropped; default: twice spike.baseline_half_life_seconds (at least the longest window), so a quiet topic"
        " keeps the baseline it is judged by; with the deprecated spike.window_seconds set, the longest window",
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

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_keys(cls, data: Any) -> Any:
        """Stop on a flat key of the old layout (:data:`RENAMED_KEYS`), naming its new key."""
        if isinstance(data, dict):
            old = [k for k in data if isinstance(k, str) and k in RENAMED_KEYS]
            if old:
                raise PydanticCustomError(
                    "renamed_setting",
                    "{text}",
                    {"text": "; ".join(renamed_text(k) for k in old), "renamed": [[k, RENAMED_KEYS[k]] for k in old]},
                )
        return data

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
        bad = [w for w in self.spike.scales if w <= 0 or w % b]
        if bad:
            raise ValueError(
                f"spike.{self.spike.scales_setting} {bad} must be positive multiples of bucket_seconds={b}"
            )
        if self.lookback_seconds < self.retention_seconds:
            raise ValueError(
                f"lookback_seconds={self.lookback_seconds} must cover the longest window ({self.retention_seconds} s)"
            )
        if self.dedup_horizon_seconds < self.retention_seconds:
            raise ValueError(
                f"dedup_horizon_seconds={self.dedup_horizon_seconds} must cover the longest window"
                f" ({self.retention_seconds} s); it is its own setting, no longer lookback_seconds"
            )
        return self

    @classmethod
    def stocknet(cls, base: MonitorSettings | None = None, **overrides: Any) -> MonitorSettings:
        """For the StockNet tweet sample and streams like it: about 200 items a day over 87 tickers (a busy ticker
        a few dozen, most a handful). Hourly buckets, one 1-day spike scale, a 1-week baseline half-life, 1-day and
        7-day views (keys then survive a quiet weekend), grace 1 h, 20 items of history before a key is judged.

        ``base`` (default: the defaults) with these applied, then ``overrides`` (keyword per ``monitor`` key; a
        ``spike`` dict is merged into the group), validated.

        >>> s = MonitorSettings.stocknet(spike={"start_z": 3.5})
        >>> s.bucket_seconds, s.window_names, s.spike.scales, s.spike.baseline_min_items, s.spike.start_z
        (3600, {'1d': 86400, '7d': 604800}, (86400,), 20, 3.5)

        Raises:
            pydantic.ValidationError: a bad combination (with ``base`` or ``overrides``).
        """
        return cls._with(
            base,
            {
                "bucket_seconds": 3600,
                "windows_seconds": [DAY_SECONDS, 7 * DAY_SECONDS],
                "grace_seconds": 3600,
                "lookback_seconds": 14 * DAY_SECONDS,
                "dedup_horizon_seconds": 14 * DAY_SECONDS,
                "spike": {
                    "scales_seconds": [DAY_SECONDS],
                    "baseline_half_life_seconds": 7 * DAY_SECONDS,
                    "min_items": 10,
                    "baseline_min_items": 20,
                },
            },
            overrides,
        )

    @classmethod
    def _with(cls, base: MonitorSettings | None, *changes: dict[str, Any]) -> MonitorSettings:
        """``base`` (default: the defaults) dumped, each of ``changes`` merged in (groups key by key), validated."""
        return cls(**deep_merge((base or cls()).model_dump(), *changes))

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
        """Longest of the rolling windows and the spike scales, s: buckets and idle keys expire after it."""
        return max([*self.windows_seconds, *self.spike.scales])

    @property
    def key_idle_limit_seconds(self) -> int:
        """Effective :attr:`key_idle_seconds` (see its description), seconds of event time."""
        if self.key_idle_seconds is not None:
            return max(self.key_idle_seconds, self.retention_seconds)
        if self.spike.window_seconds is not None:
            return self.retention_seconds
        return max(self.retention_seconds, int(min(2 * self.spike.baseline_half_life_seconds, 1e12)))

    @property
    def window_names(self) -> dict[str, int]:
        """Window name -> length in seconds, in the configured order."""
        return {window_name(w): w for w in self.windows_seconds}


def renamed_text(old: str) -> str:
    """One line naming the new key of the old flat ``monitor`` key ``old`` (a key of :data:`RENAMED_KEYS`).

    >>> renamed_text("spike_end_z")
    'monitor.spike_end_z is now monitor.spike.end_z (env FINSENTRY_MONITOR__SPIKE__END_Z)'
    """
    new = RENAMED_KEYS[old]
    env = "FINSENTRY_MONITOR__" + "__".join(part.upper() for part in new.split("."))
    note = RENAME_NOTES.get(old)
    return f"monitor.{old} is now monitor.{new} (env {env})" + (f"; {note}" if note else "")


PRESETS: dict[str, Callable[..., MonitorSettings]] = {"stocknet": MonitorSettings.stocknet}
"""The presets by name (the CLI's ``--preset NAME``): each a named constructor of :class:`MonitorSettings` taking
``(base=None, **overrides)``; its docstring says which stream it suits."""


def preset(name: str, base: MonitorSettings | None = None, **overrides: Any) -> MonitorSettings:
    """``base`` (default: the defaults) with preset ``name`` (:data:`PRESETS`) and then ``overrides`` applied.

    >>> preset("stocknet").bucket_seconds
    3600

    Raises:
        KeyError: no preset of that name (the message lists them). pydantic.ValidationError: a bad combination.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown monitor preset {name!r}; presets: {sorted(PRESETS)}")
    return PRESETS[name](base, **overrides)
