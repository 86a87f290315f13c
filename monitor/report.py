"""Offline backfill (``finsentry report``): the live aggregation run over a JSONL file of ``news.scored`` records.

Each record is fanned out to its aggregate keys exactly as the scorer does (``all``, ``topic:<slug>``,
``ticker:<SYMBOL>``), the keyed items are fed in ``published_at`` order to the same
:class:`~finsentry.monitor.aggregator.Aggregator` the service uses (one partition), and every bucket is closed
at the end. Closed buckets go to a :class:`~finsentry.monitor.report_spool.ClosedSpool` (a temporary file)
and only those of the keys the report writes are read back, so memory grows with those keys, not with every
key the input names (at 1-minute buckets a few hundred cashtag keys over weeks used to take tens of GB).
Outputs in ``OUT``:

* ``<name>.md`` summary: input, settings with units, spikes (key, start, end, peak z, evidence), spikes per
  key per ISO week;
* ``<name>.png`` overview: the ``all`` stream's short-window negative share and volume, and a timeline of
  every key's spikes;
* ``<name>/trends/<key>.csv`` for ``all`` and each key with a reported spike, one row per closed bucket:
  counts, rolling views over each window (pandas), short-window share, baseline, z-scores and spike state. A
  stretch with no story for longer than twice the longest window is not listed bucket by bucket: the
  aggregator closes it at once (``Aggregator(list_empty_runs=False)``), so a record dated a year away costs
  seconds, not a row per minute of the year;
* ``<name>/keys/<key>.png`` per key that spiked: share vs baseline band, z-score, spikes shaded.

A line that is not JSON, or a record that lacks a field the aggregation needs, is listed in the summary
and skipped; nothing else is dropped silently (late and duplicate counts are in the summary too).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from finsentry.ingest.contract import KeyedItem, KeyedMessageError, iso_epoch, iso_utc
from finsentry.monitor.aggregator import Aggregator, ClosedBucket, Outcome
from finsentry.monitor.records import keyed_from_scored
from finsentry.monitor.report_spool import ClosedSpool
from finsentry.monitor.rolling import trend_frame
from finsentry.monitor.settings import MonitorSettings, window_name
from finsentry.monitor.spikes import SpikeEvent

log = logging.getLogger(__name__)

MAX_KEY_CHARTS = 24
"""Per-key charts drawn at most (the keys with the highest peak z)."""

MAX_WEEK_COLUMNS = 52
"""Weeks the summary's spikes-per-week table lists in full; over a longer span only weeks with a spike."""


@dataclass
class Backfill:
    """Result of :func:`backfill`: closed buckets, spike events, and what was skipped.

    The closed buckets are in ``closed`` (every key, in memory) unless the backfill was given a ``spool``, which
    then holds them on disk; :meth:`closed_rows` reads either.
    """

    settings: MonitorSettings
    closed: list[ClosedBucket] = field(default_factory=list)
    spool: ClosedSpool | None = None
    events: list[SpikeEvent] = field(default_factory=list)
    items: int = 0
    keyed: int = 0
    key_last: dict[str, datetime] = field(default_factory=dict)
    """Each aggregate key of the items aggregated -> the event time (aware, UTC) of its last item (:attr:`keys`,
    :meth:`keys_from`)."""
    stats: dict[str, Any] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)
    first: str | None = None
    """ISO UTC time of the first item aggregated; ``last`` of the last (not one dropped as dated past the clock)."""
    last: str | None = None

    @property
    def keys(self) -> int:
        """Distinct aggregate keys of the items aggregated (the aggregator's own ``keys`` stat counts only the keys
        it still holds at the end: idle ones are evicted)."""
        return len(self.key_last)

    def keys_from(self, cut: datetime) -> int:
        """Keys with an item aggregated at or after ``cut`` (aware): the keys a report ``--since cut`` covers."""
        return sum(last >= cut for last in self.key_last.values())

    def closed_rows(self, keys: set[str]) -> pd.DataFrame:
        """The closed buckets of ``keys`` as :func:`closed_frame` rows (keys without a closed bucket: no rows)."""
        if self.spool is not None:
            return self.spool.frame(keys)
        return closed_frame([c for c in self.closed if c.key in keys])


def read_scored(path: Path) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Read a JSONL file of ``news.scored`` records, each line with the project's strict JSON reader
    (:func:`~finsentry.common.textfiles.strict_json_loads`: no NaN or Infinity, no repeated key, as the live
    aggregator reads its topic); a BOM is dropped. A lone surrogate in a text is kept (written as ``?``).

    Returns:
        ``(records, bad)`` where ``bad`` lists ``("line N", reason)`` for lines that are not JSON objects
        (``invalid_json: not JSON (<why>)`` or ``wrong_type: ...``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    from finsentry.common.textfiles import JsonSyntaxError, json_error_reason, strict_json_loads

    records, bad = [], []
    with Path(path).open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = strict_json_loads(line, unique_keys=True)
            except JsonSyntaxError as exc:
                bad.append((f"line {n}", f"invalid_json: {json_error_reason(exc)}"))
                continue
            if not isinstance(rec, dict):
                bad.append((f"line {n}", f"wrong_type: a JSON {type(rec).__name__}, expected an object"))
                continue
            records.append(rec)
    return records, bad


def backfill(records: list[dict[str, Any]], settings: MonitorSettings, spool: ClosedSpool | None = None) -> Backfill:
    """Aggregate ``news.scored`` records offline with ``settings``; every bucket is closed at the end.

    ``spool``: closed buckets go there (on disk) instead of ``Backfill.closed`` (memory); the aggregation, and so
    every spike event, is the same either way (``on_close`` is set in both, so every bucket closes one by one).
    """
    result = Backfill(settings, spool=spool)
    keyed: list[KeyedItem] = []
    for i, rec in enumerate(records):
        try:
            keyed.extend(keyed_from_scored(rec))
            result.items += 1
        except KeyedMessageError as exc:
            result.rejected.append((str(rec.get("id", f"record {i + 1}")), f"{exc.reason}: {exc}"))
    keyed.sort(key=lambda k: (k.published_at, k.id, k.key))
    agg = Aggregator(
        settings,
        on_spike=result.events.append,
        on_close=result.closed.append if spool is None else spool,
        list_empty_runs=False,
    )
    first = last = None  # the first and last item aggregated (one dated past the wall clock is dropped)
    for item in keyed:
        if agg.process(item, 0) is not Outcome.FUTURE:
            first, last = first or item, item
            result.key_last[item.key] = item.published_at  # in event-time order: the last one stays
    agg.flush()
    result.keyed = len(keyed)
    result.stats = agg.stats()
    result.model_versions = sorted(agg.model_versions)
    if first is not None and last is not None:
        result.first, result.last = iso_utc(first.published_at), iso_utc(last.published_at)
    return result


def closed_frame(closed: list[ClosedBucket]) -> pd.DataFrame:
    """One row per closed bucket and key: counts plus the detector's observation (epoch-second ``start``)."""
    rows = []
    for c in closed:
        o = c.observation
        rows.append(
            {
                "key": c.key,
                "start": c.start,
                "items": c.items,
                "negative": c.negative,
                "neutral": c.neutral,
                "positive": c.positive,
                "score_sum": c.score_sum,
                "window_seconds": o.window_seconds,
                "trigger": o.trigger,
                "window_items": o.items,
                "window_negative": o.negative,
                "window_share": o.share,
                "baseline_mean": o.baseline_mean,
                "baseline_std": o.baseline_std,
                "z": o.z,
                "volume_baseline": o.volume_baseline,
                "volume_z": o.volume_z,
                "spike_active": o.active,
            }
        )
    return pd.DataFrame(rows)


def spike_table(events: list[SpikeEvent]) -> pd.DataFrame:
    """One row per spike, from the spike record its events carry (:class:`SpikeEvent` ``spike_id``, ``start``,
    ``peak``): the same figures as the console, ``/api/spikes``, the alerts and the relay's notification.

    Columns: ``spike_id``, ``key, start, end`` (UTC bucket ends; end NaT if still open), ``buckets`` (the
    detector's evaluations while it was open: its started and updated events, not a duration),
    ``peak_z``, ``peak_share``, ``baseline_mean`` (at start), ``items`` (at peak), ``peak_negative``,
    ``evidence`` (texts of the peak event, most negative first), and the start figures ``start_z, start_share,
    start_negative, start_items``, the detector ``scale`` (``1h``, ``1d``) and ``trigger`` (``share`` /
    ``volume``) of the started event, and ``start_volume_baseline`` (negative stories the volume test expected at
    the start; stories).
    """
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        start, peak = e.start or e.figures(), e.peak or e.figures()
        row = rows.get(e.spike_id)
        if row is None:
            if e.event != "started":
                continue  # a spike whose start lies before the input
            row = rows[e.spike_id] = {
                "spike_id": e.spike_id,
                "key": e.key,
                "start": pd.Timestamp(start.bucket_end, unit="s", tz="UTC"),
                "end": pd.NaT,
                "buckets": 0,
                "evidence": [],
                "scale": window_name(start.window_seconds),
                "trigger": start.trigger,
            }
        row["buckets"] += 1
        if peak.bucket_end == e.bucket_end:
            row["evidence"] = [x["text"] for x in e.evidence]
        row.update(
            peak_z=peak.z,
            peak_share=peak.share,
            baseline_mean=start.baseline_mean,
            items=peak.items,
            peak_negative=peak.negative,
            start_z=start.z,
            start_share=start.share,
            start_negative=start.negative,
            start_items=start.items,
            start_volume_baseline=start.volume_baseline,
        )
        if e.event == "ended":
            row["end"] = pd.Timestamp(e.bucket_end, unit="s", tz="UTC")
            row["buckets"] -= 1  # the bucket that ended it is not part of the spike
    cols = [
        "spike_id",
        "key",
        "start",
        "end",
        "buckets",
        "peak_z",
        "peak_share",
        "baseline_mean",
        "items",
        "peak_negative",
        "evidence",
        "start_z",
        "start_share",
        "start_negative",
        "start_items",
        "scale",
        "trigger",
        "start_volume_baseline",
    ]
    return pd.DataFrame(list(rows.values()), columns=cols).sort_values(["start", "key"]).reset_index(drop=True)


def weekly_table(spikes: pd.DataFrame, first: str | None, last: str | None) -> pd.DataFrame:
    """Spikes started per key (rows) and ISO week (columns, the Monday's date), zeros included."""
    if first is None or last is None:
        return pd.DataFrame()
    weeks = pd.date_range(
        pd.Timestamp(first).tz_convert("UTC").normalize() - pd.Timedelta(days=pd.Timestamp(first).weekday()),
        pd.Timestamp(last).tz_convert("UTC"),
        freq="7D",
    )
    if spikes.empty:
        return pd.DataFrame(columns=[w.date().isoformat() for w in weeks])
    week = spikes["start"].dt.tz_convert("UTC").dt.normalize() - pd.to_timedelta(
        spikes["start"].dt.day_of_week, unit="D"
    )
    table = pd.crosstab(spikes["key"], week.dt.date.astype(str))
    return table.reindex(columns=[w.date().isoformat() for w in weeks], fill_value=0)


def write_spike_files(spikes: pd.DataFrame, stem: Path) -> tuple[Path, Path]:
    """The spike table as machine-readable files: ``<stem>.csv`` and ``<stem>.jsonl`` (times ISO-8601 UTC).

    Returns:
        The two paths. The evidence column is a JSON list of texts in both.
    """
    rows = []
    for r in spikes.to_dict("records"):
        row = {k: (None if v is pd.NaT or (isinstance(v, float) and pd.isna(v)) else v) for k, v in r.items()}
        for k in ("start", "end"):
            row[k] = None if row[k] is None else pd.Timestamp(row[k]).strftime("%Y-%m-%dT%H:%M:%SZ")
        # a lone surrogate (valid in a JSON escape, not in UTF-8) becomes "?" instead of stopping the report
        row["evidence"] = [t.encode("utf-8", "replace").decode("utf-8") for t in row["evidence"]]
        rows.append(row)
    csv_path, jsonl_path = Path(f"{stem}.csv"), Path(f"{stem}.jsonl")
    frame = pd.DataFrame(rows, columns=list(spikes.columns))
    frame["evidence"] = [json.dumps(r["evidence"], ensure_ascii=False) for r in rows]
    frame.to_csv(csv_path, index=False)
    jsonl_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return csv_path, jsonl_path


def trend_keys(spikes: pd.DataFrame) -> set[str]:
    """The keys a report writes trend CSVs for: ``all`` and every key in the :func:`spike_table` ``spikes``."""
    return {"all", *spikes["key"]}


def key_file(key: str) -> str:
    """File-name form of an aggregate key: ``ticker:AAPL`` -> ``ticker_AAPL``."""
    return key.replace(":", "_").replace("/", "_")


def since_timestamp(since: str) -> pd.Timestamp:
    """``--since`` (ISO date or date-time; UTC when it names no zone) as an aware timestamp.

    >>> since_timestamp("2015-08-10")
    Timestamp('2015-08-10 00:00:00+0000', tz='UTC')
    """
    return pd.Timestamp(since, tz="UTC") if pd.Timestamp(since).tzinfo is None else pd.Timestamp(since)


def spikes_since(events: list[SpikeEvent], since: str | None) -> pd.DataFrame:
    """:func:`spike_table` of ``events``, only the spikes starting at or after ``since`` (all when None): the
    spikes a report with ``--since`` lists (earlier ones are the baselines' warm-up)."""
    spikes = spike_table(events)
    if since is None:
        return spikes
    return spikes[spikes["start"] >= since_timestamp(since)].reset_index(drop=True)


def write_report(
    result: Backfill,
    out: Path,
    name: str = "report",
    title: str | None = None,
    source: str | None = None,
    since: str | None = None,
) -> Path:
    """Write the CSVs, charts and Markdown summary of ``result`` to ``out``; returns the summary's path.

    ``since`` (ISO date or date-time, UTC): report spikes starting from then and chart from then; the data
    before it only warms up the baselines (the trend CSVs keep everything).

    Trend CSVs are written for ``all`` and every key with a reported spike (those the charts need), and only
    their closed buckets are read (:meth:`Backfill.closed_rows`).
    """
    from finsentry.monitor import report_charts

    s = result.settings
    out = Path(out)
    sub = out / name
    (sub / "trends").mkdir(parents=True, exist_ok=True)
    spikes = spikes_since(result.events, since)
    first = result.first
    if since is not None:
        cut = since_timestamp(since)
        first = iso_epoch(cut.timestamp())
    weekly = weekly_table(spikes, first, result.last)
    frame = result.closed_rows(trend_keys(spikes))
    trends: dict[str, pd.DataFrame] = {}
    if not frame.empty:
        for key, g in frame.groupby("key", sort=True):
            # no rows made up where the aggregator closed a stretch at once (longer than its longest scale)
            t = trend_frame(g, s.window_names, s.bucket_seconds, gap_seconds=max(s.spike.scales))
            det = g.assign(start=pd.to_datetime(g["start"], unit="s", utc=True)).set_index("start")
            det_cols = [
                "window_seconds",
                "trigger",
                "window_items",
                "window_negative",
                "window_share",
                "baseline_mean",
                "baseline_std",
                "z",
                "volume_baseline",
                "volume_z",
                "spike_active",
            ]
            t = t.join(det[det_cols])
            trends[key] = t
            t.to_csv(sub / "trends" / f"{key_file(key)}.csv", index_label="start")
    shown = trends
    if since is not None:
        shown = {k: t[t.index >= cut] for k, t in trends.items()}
    overview = out / f"{name}.png"
    report_charts.overview(shown, spikes, s, overview, title or name)
    charts = []
    if not spikes.empty:
        (sub / "keys").mkdir(exist_ok=True)
        top = spikes.groupby("key")["peak_z"].max().sort_values(ascending=False).index[:MAX_KEY_CHARTS]
        for key in top:
            path = sub / "keys" / f"{key_file(key)}.png"
            report_charts.key_chart(shown[key], spikes[spikes["key"] == key], s, path, key)
            charts.append((key, path.relative_to(out)))
    write_spike_files(spikes, out / f"{name}.spikes")
    summary = out / f"{name}.md"
    summary.write_text(
        _markdown(result, spikes, weekly, overview.relative_to(out), charts, title or name, source, first, since),
        encoding="utf-8",
        errors="replace",
    )
    return summary


def started_by(r: Any) -> str:
    """What started a spike, from a :func:`spike_table` row: ``z 3.16, volume test over 1d: 10 negative vs 2.2
    expected`` or ``z 4.15, share test over 1h: 14/20 negative vs baseline 25%``.

    >>> from types import SimpleNamespace as Row
    >>> started_by(Row(start_z=3.157, trigger="volume", scale="1d", start_negative=10, start_items=35,
    ...                start_volume_baseline=2.24, start_share=0.286, baseline_mean=0.109))
    'z 3.16, volume test over 1d: 10 negative vs 2.2 expected'
    >>> started_by(Row(start_z=4.15, trigger="share", scale="1h", start_negative=14, start_items=20,
    ...                start_volume_baseline=None, start_share=0.7, baseline_mean=0.25))
    'z 4.15, share test over 1h: 14/20 negative vs baseline 25%'
    """
    head = f"z {_fmt(r.start_z)}, {r.trigger or 'share'} test over {r.scale}"
    expected = r.start_volume_baseline
    if r.trigger == "volume" and isinstance(expected, int | float) and not pd.isna(expected):
        return f"{head}: {r.start_negative} negative vs {expected:.1f} expected"
    base = f" vs baseline {r.baseline_mean:.0%}" if isinstance(r.baseline_mean, int | float) else ""
    return f"{head}: {r.start_negative}/{r.start_items} negative{base}"


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and pd.isna(x)):
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, pd.Timestamp):
        return "" if pd.isna(x) else x.strftime("%Y-%m-%d %H:%M")
    return str(x)


def settings_rows(s: MonitorSettings) -> list[tuple[str, str, str]]:
    """``(setting, value, unit)`` rows of the settings that shape a report."""
    return [
        ("bucket_seconds", str(s.bucket_seconds), "s (tumbling buckets, UTC-aligned)"),
        ("windows_seconds", ", ".join(f"{w} ({window_name(w)})" for w in s.windows_seconds), "s (rolling views)"),
        ("spike.scales", ", ".join(f"{w} ({window_name(w)})" for w in s.spike.scales), "s (detector time scales)"),
        ("spike.warmup_windows", f"{s.spike.warmup_windows:g}", "windows of each scale before it may alarm"),
        ("spike.baseline_half_life_seconds", f"{s.spike.baseline_half_life_seconds:g}", "s (EWMA baselines)"),
        ("spike.min_items", str(s.spike.min_items), "distinct stories in a scale's window"),
        ("spike.baseline_min_items", str(s.spike.baseline_min_items), "items before the longest scale's window"),
        ("spike.start_z / spike.end_z", f"{s.spike.start_z:g} / {s.spike.end_z:g}", "z (hysteresis)"),
        ("spike.baseline_clamp_z", f"{s.spike.baseline_clamp_z:g}", "std (cap on what the baselines learn)"),
        ("spike.share_std_floor", f"{s.spike.share_std_floor:g}", "fraction"),
        ("spike.volume_std_floor", f"{s.spike.volume_std_floor:g}", "items"),
        ("grace_seconds", str(s.grace_seconds), "s"),
    ]


def _markdown(
    result: Backfill,
    spikes: pd.DataFrame,
    weekly: pd.DataFrame,
    overview: Path,
    charts: list[tuple[str, Path]],
    title: str,
    source: str | None,
    first: str | None,
    since: str | None,
) -> str:
    st = result.stats
    lines = [f"# {title}", ""]
    if source:
        lines += [source, ""]
    if since is not None:
        lines += [
            f"Reported from {first}: spikes, the weekly table and the charts start there; the items before it "
            "only warm up the baselines (as a running aggregator would have them).",
            "",
        ]
    lines += [
        f"- items: {result.items} (fanned out to {result.keyed} keyed messages over {result.keys} keys), "
        + (
            f"published {result.first} .. {result.last}"
            if result.first
            else "none aggregated (all dated past the clock)"
        ),
        f"- model version(s): {', '.join(result.model_versions) or 'n/a'}",
        f"- late events dropped: {st.get('late', 0)}; duplicates dropped: {st.get('duplicates', 0)}; "
        f"records skipped as invalid: {len(result.rejected)}"
        + (
            f"; records dated beyond the wall clock + monitor.max_future_seconds dropped: {st['future']}"
            if st.get("future")
            else ""
        ),
        f"- spikes: {len(spikes)} on {spikes['key'].nunique() if not spikes.empty else 0} keys",
        f"- trend CSVs in `{overview.stem}/trends/`: {len(trend_keys(spikes))} (`all` and each key with a spike); "
        "the other keys are counted above but not written",
        "",
        "## Settings",
        "",
        "| setting | value | unit |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in settings_rows(result.settings)],
        "",
        f"![overview]({overview.as_posix()})",
        "",
        "## Spikes",
        "",
    ]
    if spikes.empty:
        lines.append("No key spiked.")
    else:
        lines += [
            "Start and end are the UTC ends of the closed buckets where the spike started and ended (empty: still "
            "open at the end of the data); hours between them. Started by: the z at the start, the detector test "
            "and window behind it, and that test's own figures (the share against its baseline, or the negative "
            "count against the count the volume test expected). Peak: the evaluation with the highest z; evidence: "
            "its most negative items.",
            "",
            "| key | start | end | hours | started by | peak z | share at peak | baseline at start | items at peak | "
            "most negative item at peak |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in spikes.itertuples(index=False):
            ev = (r.evidence[0] if r.evidence else "").replace("|", "/").replace("\n", " ")[:140]
            hours = "" if pd.isna(r.end) else f"{(r.end - r.start) / pd.Timedelta(hours=1):.1f}"
            lines.append(
                f"| {r.key} | {_fmt(r.start)} | {_fmt(r.end)} | {hours} | {started_by(r)} | {_fmt(r.peak_z)} | "
                f"{_fmt(r.peak_share)} | {_fmt(r.baseline_mean)} | {r.items} | {ev} |"
            )
    lines += ["", "## Spikes per key per week", ""]
    if weekly.empty or weekly.shape[0] == 0:
        lines.append("No spikes.")
    else:
        per_week = weekly.to_numpy()
        # with --since, the keys that had an item in the reported span (not those only in the warm-up before it)
        n_keys = result.keys if since is None else result.keys_from(since_timestamp(since).to_pydatetime())
        scope = "" if since is None else f" with an item from {first} on"
        rate = per_week.sum() / max(n_keys * per_week.shape[1], 1)
        shown = weekly
        if weekly.shape[1] > MAX_WEEK_COLUMNS:  # a long span (or one stray old record): only weeks with a spike
            shown = weekly.loc[:, weekly.sum(axis=0) > 0]
        left_out = weekly.shape[1] - shown.shape[1]
        lines += [
            f"Weeks start on Monday (UTC). Keys with a spike: {weekly.shape[0]} of {n_keys}{scope}; most spikes of "
            f"one key in one week: {int(per_week.max())}; key-weeks with more than one spike: "
            f"{int((per_week > 1).sum())}; "
            f"spikes per key per week over all {n_keys} keys and {weekly.shape[1]} weeks: {rate:.3f}."
            " Only keys with a spike are listed"
            + (f"; the {left_out} weeks without a spike are left out." if left_out else "."),
            "",
            "| key | " + " | ".join(shown.columns) + " |",
            "|---|" + "---|" * len(shown.columns),
        ]
        for key, row in shown.iterrows():
            lines.append(f"| {key} | " + " | ".join(str(int(v)) for v in row) + " |")
    if charts:
        lines += ["", "## Keys that spiked", ""]
        lines += [f"- [{k}]({p.as_posix()})" for k, p in charts]
    if result.rejected:
        lines += ["", "## Skipped records", ""]
        lines += [f"- {who}: {why}" for who, why in result.rejected[:50]]
        if len(result.rejected) > 50:
            lines.append(f"- ... and {len(result.rejected) - 50} more")
    return "\n".join(lines) + "\n"


def _why_unusable(records: list[dict[str, Any]], rejected: list[tuple[str, str]]) -> str:
    """Why none of ``records`` (the JSON objects read) was usable, for the one-line error: how many were skipped,
    the fields no record has, the first reason, the fields expected (a CSV, or records with other fields, said
    only '2 skipped').

    >>> _why_unusable([], [("line 1", "invalid_json: Expecting value: line 1 column 1 (char 0)")])
    ... # doctest: +ELLIPSIS
    '1 skipped; first: line 1: invalid_json: ...; expected JSON lines of objects with id, published_at, sentiment, ...'
    >>> _why_unusable([{"id": "a", "text": "x"}], [("a", "missing_field: published_at: Field required")])
    ... # doctest: +ELLIPSIS
    '1 skipped; no record has published_at, sentiment, sentiment_score; first: a: missing_field: ...'

    Scored records without ``published_at`` or ``id`` (``finsentry score`` of a file whose time column it was not
    told) name ``published_at`` first, the field to act on (score derives the id from it), and the option that
    writes both:

    >>> _why_unusable([{"text": "x", "sentiment": "neutral", "sentiment_score": 0.1}], [("record 1", "...")])
    ... # doctest: +ELLIPSIS
    '1 skipped; no record has published_at, id: finsentry score --time-column COLUMN (and --assume-utc for ...'
    """
    required = [name for name, f in KeyedItem.model_fields.items() if f.is_required() and name != "key"]
    absent = [name for name in required if not any(name in r for r in records)] if records else []
    absent.sort(key=lambda name: name != "published_at")  # stable: the event time first, the others in order
    lacking = f"; no record has {', '.join(absent)}" if absent else ""
    if absent and {"published_at", "id"} & set(absent) and not {"sentiment", "sentiment_score"} & set(absent):
        lacking += (
            ": finsentry score --time-column COLUMN (and --assume-utc for times without a zone) writes published_at, "
            "the event time in ISO UTC, and the id a replay derives from it"
        )
    first = f"; first: {rejected[0][0]}: {rejected[0][1]}" if rejected else ""
    return f"{len(rejected)} skipped{lacking}{first}; expected JSON lines of objects with {', '.join(required)}"


def report_file(
    input_path: Path,
    out: Path,
    settings: MonitorSettings,
    name: str = "report",
    title: str | None = None,
    source: str | None = None,
    since: str | None = None,
) -> tuple[Path, Backfill]:
    """Read ``input_path`` (JSONL of ``news.scored``), backfill with ``settings``, write the report to ``out``.

    ``since``: see :func:`write_report`.

    Returns:
        ``(summary path, backfill result)``.

    Raises:
        FileNotFoundError: the input does not exist. ValueError: it holds no usable record.
    """
    records, bad = read_scored(input_path)
    with ClosedSpool() as spool:
        result = backfill(records, settings, spool)
        result.rejected = bad + result.rejected
        if result.items == 0:
            raise ValueError(f"{input_path}: no usable news.scored record ({_why_unusable(records, result.rejected)})")
        del records
        for who, why in result.rejected[:10]:
            log.warning("skipped %s: %s", who, why)
        summary = write_report(result, out, name, title, source, since)
    result.spool = None  # closed and deleted: the report has read what it writes
    return summary, result
