"""Event study on StockNet: do the monitor's ticker spikes carry information about the next day's return?

What: every English StockNet tweet (Xu & Cohen, ACL 2018; ``data/stocknet_tweets``, MIT) of ``--from`` ..
``--to`` is scored by the shipped model and replayed through the same aggregation the live monitor runs;
the ``started`` spike events on ``ticker:<SYMBOL>`` keys are mapped to trading days and the ticker's
returns after those days are compared with the returns after every ticker-day without a spike.

How:

1. Scoring: :func:`finsentry.monitor.stocknet.load_tweets` (one record per tweet, ``lang == "en"``) and
   :func:`finsentry.monitor.stocknet.score` with ``Scorer.load(SHIPPED_MODEL_DIR)``. Scored records are cached
   per month under ``runs/event-study-cache/<model_version>-<digest>/`` (digest of ``labels.json`` and of the
   first MiB of ``model.onnx``), so a rerun only aggregates.
2. Spikes: :func:`finsentry.monitor.report.backfill` with ``MonitorSettings(bucket_seconds=3600,
   windows_seconds=[3600, 86400])`` (hourly buckets; the rolling views less 5 min, which hourly buckets cannot
   hold; every detector setting at its default: the multi-scale detector with the 1 h and 1 d scales).
   A spike's time is its ``started`` event's ``bucket_end`` (UTC, the close of the bucket that raised it).
3. Event day: the spike time in US/Eastern; at or before 16:00 on a trading day -> that day, after 16:00 or
   on a non-trading day -> the next trading day (trading days = the dates in the price file). Several spikes
   of one ticker on one event day count once (one spike ticker-day).
4. Returns (adjusted close, so dividends and splits are in; fractions, shown in percent): with ``C(t)`` the
   ticker's adjusted close on trading day ``t``, ``d`` the event day and ``d-1`` the last close before it:
   ``r1 = C(d) / C(d-1) - 1`` (event-day, the brief's "next-day" return: the trading day the news belongs
   to), ``r1_next = C(d+1) / C(d) - 1`` (following day: the first return that starts after every spike of
   ``d`` was known) and ``r5 = C(d+4) / C(d-1) - 1`` (five trading days). Market-adjusted: minus the
   equal-weighted mean of the same return over the other tickers with prices on both days.
5. Controls: A = every ticker-day of the same tickers and event days without a spike; B = those of them with
   at least ``--min-tweets`` tweets (ordinary news days). The comparison is spike minus control for the mean,
   the median and the share of negative returns, with 95% percentile bootstrap intervals (resample the spike
   days and the control days with replacement, ``--resamples`` times, fixed seed, numpy).
6. Timing split: spike days whose first spike was raised at or before 09:30 US/Eastern of the event day
   ("before the open") vs later ("during the session"), with the open-to-close return ``close(d)/open(d) - 1``
   of the event day (unadjusted prices of one day; market-adjusted as above).

Units: returns in percent; shares in percent; CI = 95% percentile bootstrap.

Sources: tweets ``data/stocknet_tweets/monthly``; daily prices
``../shared/data/stocknet_tweets/stocknet_prices_daily_2013-12_2016-03.csv`` (read by path, ``--prices`` to
override; StockNet is MIT, see ``data/stocknet_tweets/LICENSE.stocknet``).

    python benchmarks/event_study.py [--from 2014-01-01] [--to 2015-12-31] [--resamples 10000]
        [--min-tweets 5] [--prices FILE] [--out docs/backtest.md] [--spikes-out FILE] [--score-only]

``--out`` rewrites only the block between the ``event-study`` markers of that Markdown file (the prose around
it is kept); without it the block is printed only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finsentry.common.paths import REPO_ROOT, SHIPPED_MODEL_DIR

CACHE_DIR = REPO_ROOT / "runs" / "event-study-cache"
PRICES = REPO_ROOT.parent / "shared" / "data" / "stocknet_tweets" / "stocknet_prices_daily_2013-12_2016-03.csv"
EASTERN = "America/New_York"
CLOSE_HOUR = 16
SEED = 20240512
WINDOWS = [3600, 86400]
"""Rolling views: the default ``[300, 3600, 86400]`` less 5 min, which hourly buckets cannot hold (views only;
the detector's scales stay at their default 1 h and 1 d)."""

log = logging.getLogger("event_study")


# --------------------------------------------------------------------------------------------- scoring


def model_digest(model_dir: Path = SHIPPED_MODEL_DIR) -> str:
    """``<model_version>-<sha256[:12]>`` of ``labels.json`` and the first MiB of ``model.onnx``."""
    labels = (Path(model_dir) / "labels.json").read_bytes()
    with (Path(model_dir) / "model.onnx").open("rb") as f:
        head = f.read(1 << 20)
    version = str(json.loads(labels).get("model_version", "unknown"))
    return f"{version}-{hashlib.sha256(labels + head).hexdigest()[:12]}"


def scored_month(month: pd.Period, scorer_box: dict[str, Any], cache: Path) -> list[dict[str, Any]]:
    """Scored English StockNet tweets of one calendar month (cached as JSONL)."""
    from finsentry.monitor.stocknet import load_tweets, score

    path = cache / f"stocknet-{month.year:04d}-{month.month:02d}.jsonl"
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if "scorer" not in scorer_box:
        from finsentry.model import Scorer

        scorer_box["scorer"] = Scorer.load(SHIPPED_MODEL_DIR)
    records = load_tweets(month.start_time.date(), month.end_time.date())
    t0 = time.perf_counter()
    out = score(records, scorer_box["scorer"])
    dt = time.perf_counter() - t0
    log.info("scored %s: %d tweets in %.0f s (%.0f texts/s)", month, len(out), dt, len(out) / max(dt, 1e-9))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return out


def scored_tweets(start: date, end: date) -> tuple[list[dict[str, Any]], str]:
    """Scored tweets published on ``start`` .. ``end`` (UTC days, inclusive) and the cache key of the model."""
    key = model_digest()
    cache = CACHE_DIR / key
    cache.mkdir(parents=True, exist_ok=True)
    box: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)
    for month in pd.period_range(start, end, freq="M"):
        for r in scored_month(month, box, cache):
            t = pd.Timestamp(r["published_at"])
            if lo <= t < hi:
                out.append(r)
    return out, key


# --------------------------------------------------------------------------------------------- spikes


def ticker_spikes(records: list[dict[str, Any]], since: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``started`` events on ``ticker:*`` keys from the live aggregation (hourly buckets, other settings default).

    Returns:
        ``(spikes, info)``: one row per event with ``ticker, time`` (UTC bucket end), ``z, trigger,
        window_seconds, items, negative``; spikes before ``since`` (the warm-up) are dropped. ``info`` holds
        the run's counts and timing.
    """
    from finsentry.monitor.report import backfill
    from finsentry.monitor.settings import MonitorSettings

    settings = MonitorSettings(bucket_seconds=3600, windows_seconds=WINDOWS)
    t0 = time.perf_counter()
    result = backfill(records, settings)
    seconds = time.perf_counter() - t0
    rows = [
        {
            "ticker": e.key.split(":", 1)[1],
            "time": pd.Timestamp(e.bucket_end, unit="s", tz="UTC"),
            "z": e.z,
            "trigger": e.trigger,
            "window_seconds": e.window_seconds,
            "items": e.items,
            "negative": e.negative,
        }
        for e in result.events
        if e.event == "started" and e.key.startswith("ticker:")
    ]
    cols = ["ticker", "time", "z", "trigger", "window_seconds", "items", "negative"]
    spikes = pd.DataFrame(rows, columns=cols)
    spikes = spikes[spikes["time"] >= since].reset_index(drop=True)
    info = {
        "items": result.items,
        "keyed": result.keyed,
        "rejected": len(result.rejected),
        "closed_buckets": len(result.closed),
        "all_started": sum(e.event == "started" for e in result.events),
        "seconds": seconds,
        "settings": settings,
        "model_versions": result.model_versions,
    }
    return spikes, info


# --------------------------------------------------------------------------------------------- prices, days


def load_prices(path: Path = PRICES) -> pd.DataFrame:
    """Adjusted closes, one row per trading day (``DatetimeIndex``, naive dates) and one column per ticker.

    Raises:
        FileNotFoundError: the price file is absent (it lives in the shared data folder, see the docstring).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path} is missing: the StockNet daily prices are read from the shared data folder "
            "(../shared/data/stocknet_tweets/); pass --prices FILE"
        )
    df = pd.read_csv(path, usecols=["date", "ticker", "adj_close"], parse_dates=["date"])
    return df.pivot(index="date", columns="ticker", values="adj_close").sort_index()


def event_days(times: pd.Series, trading: pd.DatetimeIndex) -> pd.Series:
    """Trading day each UTC time belongs to (the rule of step 3): US/Eastern; after 16:00 -> the next day."""
    local = pd.DatetimeIndex(times).tz_convert(EASTERN)
    day = local.tz_localize(None).normalize()
    after_close = (local.hour > CLOSE_HOUR) | ((local.hour == CLOSE_HOUR) & ((local.minute > 0) | (local.second > 0)))
    pos = trading.searchsorted(day, side="left")  # first trading day >= the local date
    same = (pos < len(trading)) & (trading[np.minimum(pos, len(trading) - 1)] == day)
    pos = np.where(same & after_close, pos + 1, pos)
    out = pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns]")
    ok = pos < len(trading)
    out[ok] = trading[pos[ok]]
    return out


def intraday_panel(path: Path = PRICES) -> pd.DataFrame:
    """Long frame ``day, ticker, oc, oc_adj``: the open-to-close return ``close(d) / open(d) - 1`` (unadjusted
    prices of one day) and the same minus the other tickers' equal-weighted mean."""
    df = pd.read_csv(path, usecols=["date", "ticker", "open", "close"], parse_dates=["date"])
    df["oc"] = df["close"] / df["open"] - 1
    wide = df.pivot(index="date", columns="ticker", values="oc").sort_index()
    total, count = wide.sum(axis=1, min_count=1), wide.notna().sum(axis=1)
    adj = wide - wide.rsub(total, axis=0).div(count - 1, axis=0)
    out = pd.concat([wide.stack().rename("oc"), adj.stack().rename("oc_adj")], axis=1)
    out.index.names = ["day", "ticker"]
    return out.reset_index()


def session_of(spikes: pd.DataFrame) -> pd.Series:
    """Per spike ticker-day (index ``ticker, day``): ``before the open`` when its first spike was raised by a
    bucket ending at or before 09:30 US/Eastern of the event day (so after the previous close), else
    ``during the session``."""
    first = spikes.groupby(["ticker", "day"])["time"].min()
    local = pd.DatetimeIndex(first.to_list()).tz_convert(EASTERN).tz_localize(None)
    opens = pd.DatetimeIndex(first.index.get_level_values("day")) + pd.Timedelta(hours=9, minutes=30)
    return pd.Series(np.where(local <= opens, "before the open", "during the session"), index=first.index)


def return_panel(prices: pd.DataFrame) -> pd.DataFrame:
    """Long frame, one row per (ticker, event day ``d``): raw and market-adjusted returns (fractions).

    ``r1 = C(d)/C(d-1) - 1`` (the event day's close-to-close return), ``r1_next = C(d+1)/C(d) - 1`` (the
    trading day after it), ``r5 = C(d+4)/C(d-1) - 1``; ``*_adj`` = minus the equal-weighted mean of the
    other tickers' same return (tickers with prices on both days).
    """
    frames = {
        "r1": prices / prices.shift(1) - 1,
        "r1_next": prices.shift(-1) / prices - 1,
        "r5": prices.shift(-4) / prices.shift(1) - 1,
    }
    long = []
    for name, wide in frames.items():
        total, count = wide.sum(axis=1, min_count=1), wide.notna().sum(axis=1)
        others = wide.rsub(total, axis=0).div(count - 1, axis=0)  # mean of the other tickers
        adj = wide - others
        long.append(wide.stack().rename(name))
        long.append(adj.stack().rename(f"{name}_adj"))
    panel = pd.concat(long, axis=1)
    panel.index.names = ["day", "ticker"]
    return panel.reset_index()


# --------------------------------------------------------------------------------------------- statistics

METRICS: dict[str, str] = {
    "r1_adj": "event-day return d-1 -> d, market-adjusted",
    "r1": "event-day return d-1 -> d, raw",
    "r1_next_adj": "following-day return d -> d+1, market-adjusted",
    "r1_next": "following-day return d -> d+1, raw",
    "r5_adj": "five-day return d-1 -> d+4, market-adjusted",
    "r5": "five-day return d-1 -> d+4, raw",
    "oc_adj": "open-to-close return of d, market-adjusted",
}
"""Return columns of :func:`return_panel` reported, with their table labels."""


@dataclass
class Comparison:
    """Spike vs control for one statistic of one return (returns in fractions, shares in 0..1)."""

    metric: str
    stat: str
    n_spike: int
    n_control: int
    spike: float
    control: float
    diff: float
    spike_ci: tuple[float, float]
    diff_ci: tuple[float, float]


def _stat(x: np.ndarray, stat: str, axis: int | None = None) -> Any:
    if stat == "mean":
        return x.mean(axis=axis)
    if stat == "median":
        return np.median(x, axis=axis)
    if stat == "negative":
        return (x < 0).mean(axis=axis)
    raise ValueError(stat)


def bootstrap(
    x: np.ndarray, stats: tuple[str, ...], resamples: int, rng: np.random.Generator, chunk: int = 4_000_000
) -> dict[str, np.ndarray]:
    """``resamples`` values of each of ``stats`` over the same resamples of ``x`` with replacement (chunked)."""
    out = {stat: np.empty(resamples) for stat in stats}
    step = max(1, chunk // max(len(x), 1))
    for i in range(0, resamples, step):
        k = min(step, resamples - i)
        sample = x[rng.integers(0, len(x), size=(k, len(x)))]
        for stat in stats:
            out[stat][i : i + k] = _stat(sample, stat, axis=1)
    return out


def compare(
    spike: np.ndarray, control: np.ndarray, metric: str, stats: tuple[str, ...], resamples: int, seed: int = SEED
) -> list[Comparison]:
    """Each of ``stats`` for spike and control returns, their difference and 95% percentile bootstrap intervals."""
    rng = np.random.default_rng(seed)
    bs = bootstrap(spike, stats, resamples, rng)
    bc = bootstrap(control, stats, resamples, rng)
    q = (2.5, 97.5)
    out = []
    for stat in stats:
        s, c = float(_stat(spike, stat)), float(_stat(control, stat))
        out.append(
            Comparison(
                metric,
                stat,
                len(spike),
                len(control),
                s,
                c,
                s - c,
                tuple(float(v) for v in np.percentile(bs[stat], q)),
                tuple(float(v) for v in np.percentile(bs[stat] - bc[stat], q)),
            )
        )
    return out


def study_frame(
    panel: pd.DataFrame, spikes: pd.DataFrame, tweets: pd.DataFrame, days: pd.DatetimeIndex
) -> pd.DataFrame:
    """The panel restricted to the study's event days, with ``spike`` (bool) and ``tweets`` (count) per ticker-day."""
    frame = panel[panel["day"].isin(days)].copy()
    hit = spikes.groupby(["ticker", "day"]).size().rename("spikes")
    frame = frame.join(hit, on=["ticker", "day"])
    frame = frame.join(tweets.groupby(["ticker", "day"]).size().rename("tweets"), on=["ticker", "day"])
    frame["spikes"] = frame["spikes"].fillna(0).astype(int)
    frame["tweets"] = frame["tweets"].fillna(0).astype(int)
    frame["spike"] = frame["spikes"] > 0
    return frame


def tweet_days(records: list[dict[str, Any]], trading: pd.DatetimeIndex) -> pd.DataFrame:
    """One row per (tweet, ticker) with the trading ``day`` the tweet belongs to (same rule as the spikes)."""
    rows = [(t, r["published_at"]) for r in records for t in r.get("tickers") or []]
    df = pd.DataFrame(rows, columns=["ticker", "time"])
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df["day"] = event_days(df["time"], trading)
    return df


# --------------------------------------------------------------------------------------------- report

BEGIN, END = "<!-- event-study:begin -->", "<!-- event-study:end -->"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:+.{digits}f}"


def _ci(ci: tuple[float, float], digits: int = 2) -> str:
    return f"[{_pct(ci[0], digits)}, {_pct(ci[1], digits)}]"


def comparison_table(rows: list[Comparison], stat_label: str) -> list[str]:
    """Markdown table of comparisons (percent)."""
    lines = [
        f"| return ({stat_label}, %) | spike days | spike (95% CI) | control days | control "
        "| spike - control (95% CI) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in rows:
        lines.append(
            f"| {METRICS.get(c.metric, c.metric)} | {c.n_spike} | {_pct(c.spike)} {_ci(c.spike_ci)} | {c.n_control} | "
            f"{_pct(c.control)} | **{_pct(c.diff)}** {_ci(c.diff_ci)} |"
        )
    return lines


def run_study(frame: pd.DataFrame, control_mask: pd.Series, resamples: int) -> dict[str, list[Comparison]]:
    """Mean, median and share-negative comparisons of every metric, spike days vs ``control_mask`` days."""
    out: dict[str, list[Comparison]] = {"mean": [], "median": [], "negative": []}
    for metric in METRICS:
        s = frame.loc[frame["spike"], metric].dropna().to_numpy()
        c = frame.loc[control_mask, metric].dropna().to_numpy()
        stats = ("mean", "median", "negative") if metric.startswith("r1") else ("mean", "median")
        for comp in compare(s, c, metric, stats, resamples):
            out[comp.stat].append(comp)
    return out


def session_study(frame: pd.DataFrame, resamples: int) -> list[tuple[str, Comparison]]:
    """Mean market-adjusted returns of spike days split by when the first spike was raised, vs control A."""
    control = ~frame["spike"]
    out = []
    for session in ("before the open", "during the session"):
        group = frame["spike"] & (frame["session"] == session)
        for metric in ("r1_adj", "oc_adj", "r1_next_adj"):
            s = frame.loc[group, metric].dropna().to_numpy()
            c = frame.loc[control, metric].dropna().to_numpy()
            if len(s):
                out.append((session, compare(s, c, metric, ("mean",), resamples)[0]))
    return out


def render(
    args: argparse.Namespace,
    frame: pd.DataFrame,
    spikes: pd.DataFrame,
    info: dict[str, Any],
    results: dict[str, dict[str, list[Comparison]]],
    timing: list[tuple[str, Comparison]],
    model_key: str,
    elapsed: float,
) -> str:
    """The generated block of docs/backtest.md (between the markers)."""
    s = frame[frame["spike"]]
    by_trigger = spikes.groupby(["trigger", "window_seconds"]).size()
    lines = [
        BEGIN,
        "<!-- generated by benchmarks/event_study.py: edit the prose outside these markers only -->",
        "",
        f"Run: tweets {args.date_from} .. {args.date_to} (UTC), model `{model_key}`, {args.resamples:,} bootstrap "
        f"resamples (seed {SEED}), {cpu_name()} ({os.cpu_count()} cores, {platform.system()}), "
        f"Python {platform.python_version()}; aggregation {info['seconds']:.0f} s, whole run {elapsed:.0f} s.",
        "",
        "| count | value |",
        "|---|---:|",
        f"| English tweets scored and aggregated | {info['items']:,} |",
        f"| keyed items (tweet x aggregate key) | {info['keyed']:,} |",
        f"| records rejected by the aggregation | {info['rejected']} |",
        f"| spikes started, all keys | {info['all_started']} |",
        f"| spikes started on `ticker:*` keys | {len(spikes)} |",
        f"| ... on tickers with prices | {int(spikes['has_prices'].sum())} |",
        f"| spike ticker-days (several spikes of one ticker on one day count once) | {len(s)} |",
        f"| tickers with at least one spike day | {s['ticker'].nunique()} of {frame['ticker'].nunique()} |",
        f"| event days (trading days) | {frame['day'].nunique()} |",
        f"| ticker-days in the panel (with an event-day return) | {int(frame['r1'].notna().sum()):,} |",
        f"| control A: ticker-days without a spike | {int((~frame['spike'] & frame['r1'].notna()).sum()):,} |",
        f"| control B: ticker-days without a spike, >= {args.min_tweets} tweets | "
        f"{int((~frame['spike'] & (frame['tweets'] >= args.min_tweets) & frame['r1'].notna()).sum()):,} |",
        "",
        "Spikes by the test and scale that raised them: "
        + ", ".join(f"{t} {w // 3600} h: {n}" for (t, w), n in by_trigger.items())
        + ".",
        "",
    ]
    for name, res in results.items():
        lines += [f"#### Spike ticker-days vs {name}", ""]
        lines += comparison_table(res["mean"], "mean") + [""]
        lines += comparison_table(res["median"], "median") + [""]
        lines += [
            "| share of days with a negative return | spike days | spike (95% CI) | control days | control "
            "| spike - control (95% CI) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for c in res["negative"]:
            lines.append(
                f"| {METRICS[c.metric]} | {c.n_spike} | {100 * c.spike:.1f}% [{100 * c.spike_ci[0]:.1f}, "
                f"{100 * c.spike_ci[1]:.1f}] | {c.n_control} | {100 * c.control:.1f}% | "
                f"**{100 * c.diff:+.1f} pp** [{100 * c.diff_ci[0]:+.1f}, {100 * c.diff_ci[1]:+.1f}] |"
            )
        lines.append("")
    lines += [
        "#### When was the spike raised? (spike ticker-days vs control A, mean, market-adjusted)",
        "",
        "| first spike of the day | return (%) | spike days | spike (95% CI) | control | spike - control (95% CI) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for session, c in timing:
        lines.append(
            f"| {session} | {METRICS.get(c.metric, c.metric)} | {c.n_spike} | {_pct(c.spike)} {_ci(c.spike_ci)} | "
            f"{_pct(c.control)} | **{_pct(c.diff)}** {_ci(c.diff_ci)} |"
        )
    lines.append("")
    top = s.sort_values("r1_adj").loc[:, ["day", "ticker", "session", "spikes", "tweets", "r1", "r1_adj", "r5_adj"]]
    lines += [
        "#### Every spike ticker-day",
        "",
        "| event day | ticker | first spike | spikes | tweets that day | event-day return % | adjusted % "
        "| 5-day adjusted % |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in top.sort_values(["day", "ticker"]).itertuples(index=False):
        lines.append(
            f"| {r.day.date()} | {r.ticker} | {r.session} | {r.spikes} | {r.tweets} | {_pct(r.r1)} | "
            f"{_pct(r.r1_adj)} | "
            f"{'' if pd.isna(r.r5_adj) else _pct(r.r5_adj)} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def write_doc(out: Path, block: str) -> None:
    """Replace the generated block of ``out`` (or write a stub holding only the block)."""
    if out.is_file():
        text = out.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            out.write_text(head + block + tail, encoding="utf-8")
            return
        out.write_text(text.rstrip() + "\n\n" + block + "\n", encoding="utf-8")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Event study on StockNet\n\n{block}\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Score, aggregate, map spikes to trading days, compare returns, print and write the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="date_from", type=date.fromisoformat, default=date(2014, 1, 1))
    ap.add_argument("--to", dest="date_to", type=date.fromisoformat, default=date(2015, 12, 31))
    ap.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    ap.add_argument("--min-tweets", type=int, default=5, help="tweets a control-B ticker-day needs (default 5)")
    ap.add_argument("--prices", type=Path, default=PRICES, help="StockNet daily price CSV")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file whose generated block is (re)written")
    ap.add_argument("--spikes-out", type=Path, default=None, help="CSV of the spike ticker-days and returns")
    ap.add_argument("--score-only", action="store_true", help="only fill the scoring cache")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    prices = None if args.score_only else load_prices(args.prices)  # fail early when absent
    records, model_key = scored_tweets(args.date_from, args.date_to)
    log.info("%d scored tweets (%s)", len(records), model_key)
    if args.score_only:
        return 0
    assert prices is not None
    trading = pd.DatetimeIndex(prices.index)
    spikes, info = ticker_spikes(records, pd.Timestamp(args.date_from, tz="UTC"))
    log.info("backfill: %d ticker spikes, %.0f s", len(spikes), info["seconds"])
    spikes["day"] = event_days(spikes["time"], trading)
    spikes["has_prices"] = spikes["ticker"].isin(prices.columns)
    tweets = tweet_days(records, trading)
    lo = event_days(pd.Series([pd.Timestamp(args.date_from, tz="UTC")]), trading).iloc[0]
    hi = event_days(pd.Series([pd.Timestamp(args.date_to, tz="UTC") + pd.Timedelta(hours=23, minutes=59)]), trading)
    days = trading[(trading >= lo) & (trading <= hi.iloc[0])]
    panel = return_panel(prices).merge(intraday_panel(args.prices), on=["day", "ticker"], how="left")
    frame = study_frame(panel, spikes, tweets, days)
    frame = frame.join(session_of(spikes).rename("session"), on=["ticker", "day"])
    frame = frame[frame["r1"].notna()]
    controls = {
        "control A (every ticker-day without a spike)": ~frame["spike"],
        f"control B (ticker-days without a spike with >= {args.min_tweets} tweets)": ~frame["spike"]
        & (frame["tweets"] >= args.min_tweets),
    }
    results = {name: run_study(frame, mask, args.resamples) for name, mask in controls.items()}
    timing = session_study(frame, args.resamples)
    block = render(args, frame, spikes, info, results, timing, model_key, time.perf_counter() - t0)
    print(block)
    if args.out is not None:
        write_doc(args.out, block)
    if args.spikes_out is not None:
        frame[frame["spike"]].to_csv(args.spikes_out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
