"""Charts of ``finsentry report`` (matplotlib, Agg backend; PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from finsentry.monitor.settings import MonitorSettings, window_name  # noqa: E402

SPIKE_COLOR = "#d62728"


def _spans(spikes: pd.DataFrame, end: pd.Timestamp, bucket_seconds: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Spike spans on the bucket-start axis of the trend frames (a spike's start/end are closed buckets' ends)."""
    b = pd.Timedelta(seconds=bucket_seconds)
    return [(r.start - b, (r.end if not pd.isna(r.end) else end + b) - b) for r in spikes.itertuples(index=False)]


def _time_axis(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def overview(trends: dict[str, pd.DataFrame], spikes: pd.DataFrame, s: MonitorSettings, path: Path, title: str) -> None:
    """Top: items per bucket and the short-window negative share of ``all``; bottom: every key's spikes in time."""
    keys = sorted(spikes["key"].unique(), key=lambda k: (k != "all", k)) if not spikes.empty else []
    height = 4.5 + 0.22 * max(len(keys), 1)
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(12, height), sharex=True, gridspec_kw={"height_ratios": [3, max(1.5, 0.22 * len(keys))]}
    )
    sw = "/".join(window_name(w) for w in s.spike.scales)
    t = trends.get("all")
    if t is not None and not t.empty:
        # one filled step per bucket (from its start), one artist: a bar per bucket took minutes past ~40,000
        ax1.fill_between(t.index, t["items"], step="post", color="#c7c7c7", lw=0, label="items per bucket")
        ax1.set_ylim(bottom=0)
        ax1.set_ylabel("items per bucket")
        axr = ax1.twinx()
        share = t["window_share"].where(t["window_items"] >= s.spike.min_items)  # thin windows: not drawn
        axr.plot(t.index, share, color="black", lw=1, label=f"negative share, last {sw} (>= {s.spike.min_items} items)")
        if "baseline_mean" in t:
            axr.plot(t.index, t["baseline_mean"], color="#1f77b4", lw=1, ls="--", label="EWMA baseline")
        axr.set_ylabel("negative share")
        axr.set_ylim(0, 1)
        end = t.index.max()
        for a, b in _spans(spikes[spikes["key"] == "all"], end, s.bucket_seconds) if not spikes.empty else []:
            ax1.axvspan(a, b, color=SPIKE_COLOR, alpha=0.2)
        h1, l1 = ax1.get_legend_handles_labels()
        h2, l2 = axr.get_legend_handles_labels()
        ax1.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    ax1.set_title(f"{title}\nthe whole stream (key 'all'); red: spikes", fontsize=10)
    if keys:
        end = max(tr.index.max() for tr in trends.values() if not tr.empty)
        for i, k in enumerate(keys):
            for a, b in _spans(spikes[spikes["key"] == k], end, s.bucket_seconds):
                width = max((b - a) / pd.Timedelta(days=1), s.bucket_seconds / 86400)
                ax2.barh(i, width, left=mdates.date2num(a), height=0.6, color=SPIKE_COLOR)
        ax2.set_yticks(range(len(keys)), keys, fontsize=7)
        ax2.invert_yaxis()
    else:
        ax2.text(0.5, 0.5, "no spikes", transform=ax2.transAxes, ha="center")
        ax2.set_yticks([])
    ax2.set_title("spikes per key (start to end)", fontsize=9)
    _time_axis(ax2)
    ax2.set_xlabel("UTC")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def key_chart(trend: pd.DataFrame, spikes: pd.DataFrame, s: MonitorSettings, path: Path, key: str) -> None:
    """Short-window negative share with the baseline band (mean +- start_z std), and the z-score; spikes shaded."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
    sw = "/".join(window_name(w) for w in s.spike.scales)
    share = trend["window_share"].where(trend["window_items"] >= s.spike.min_items)
    ax1.plot(trend.index, share, color="black", lw=1, label=f"negative share, last {sw} (>= {s.spike.min_items} items)")
    m, sd = trend["baseline_mean"], trend["baseline_std"].clip(lower=s.spike.share_std_floor)
    ax1.plot(trend.index, m, color="#1f77b4", lw=1, ls="--", label="EWMA baseline")
    ax1.fill_between(
        trend.index,
        m - s.spike.start_z * sd,
        m + s.spike.start_z * sd,
        color="#1f77b4",
        alpha=0.12,
        label=f"baseline +- {s.spike.start_z:g} std",
    )
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("share")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title(f"{key}: negative share and z-score per closed bucket; red: spikes")
    ax2.plot(trend.index, trend["z"], color="black", lw=1, marker=".", ms=2)
    ax2.axhline(s.spike.start_z, color=SPIKE_COLOR, lw=0.8, ls=":")
    ax2.axhline(s.spike.end_z, color="#ff7f0e", lw=0.8, ls=":")
    ax2.set_ylabel("z")
    end = trend.index.max()
    for a, b in _spans(spikes, end, s.bucket_seconds):
        for ax in (ax1, ax2):
            ax.axvspan(a, b, color=SPIKE_COLOR, alpha=0.2)
    _time_axis(ax2)
    ax2.set_xlabel("UTC")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
