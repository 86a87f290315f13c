"""Rolling views over the buckets (pandas): per key and window, counts, negative ratio and mean score.

A view of window ``w`` (seconds) for a key covers the ``w / bucket_seconds`` buckets ending with the bucket that
holds the latest event time seen on the key's partition, the open buckets included. Each view is
``{items, negative, neutral, positive, negative_ratio, mean_score}`` with ``negative_ratio = negative / items``
and ``mean_score = score_sum / items`` (both None when ``items`` is 0), as in ``GET /api/trends``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

COUNT_COLUMNS = ["items", "negative", "neutral", "positive", "score_sum"]
ROW_COLUMNS = ["key", "bucket", "ref", *COUNT_COLUMNS]
"""Columns of the rows from :meth:`finsentry.monitor.aggregator.Aggregator.bucket_rows`."""


def _view(items: int, negative: int, neutral: int, positive: int, score_sum: float) -> dict[str, Any]:
    return {
        "items": int(items),
        "negative": int(negative),
        "neutral": int(neutral),
        "positive": int(positive),
        "negative_ratio": negative / items if items else None,
        "mean_score": score_sum / items if items else None,
    }


def rolling_views(
    rows: Iterable[tuple], windows: dict[str, int], bucket_seconds: int, keys: Iterable[str] = ()
) -> dict[str, dict[str, dict[str, Any]]]:
    """Views of every key and window from bucket rows.

    Args:
        rows: ``(key, bucket_index, ref_bucket_index, items, negative, neutral, positive, score_sum)``.
        windows: window name -> seconds (multiples of ``bucket_seconds``). keys: keys to report even if empty.

    Returns:
        ``{key: {window_name: view}}``; a key with no bucket in a window gets a zero view.
    """
    df = pd.DataFrame(list(rows), columns=ROW_COLUMNS)
    all_keys = sorted(set(df["key"]).union(keys))
    out: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in all_keys}
    for name, seconds in windows.items():
        n = seconds // bucket_seconds
        sums = df.loc[df["bucket"] > df["ref"] - n].groupby("key")[COUNT_COLUMNS].sum()
        found = {k: tuple(v) for k, v in zip(sums.index, sums.itertuples(index=False, name=None), strict=True)}
        for k in all_keys:
            out[k][name] = _view(*found.get(k, (0, 0, 0, 0, 0.0)))
    return out


def trend_frame(
    buckets: pd.DataFrame, windows: dict[str, int], bucket_seconds: int, gap_seconds: int | None = None
) -> pd.DataFrame:
    """Per-bucket trend of one key on a regular UTC grid, with rolling views over each window.

    Args:
        buckets: one row per closed bucket with a ``start`` column (epoch seconds) and :data:`COUNT_COLUMNS`;
            missing buckets count as empty.
        windows: window name -> seconds.

    Returns:
        A frame indexed by bucket start (``DatetimeIndex``, UTC) with the bucket counts, ``mean_score``,
        ``negative_ratio`` and, per window ``W``, ``items_W``, ``negative_W``, ``negative_ratio_W``,
        ``mean_score_W`` (the window ending with that bucket). The grid is regular between rows at most
        ``gap_seconds`` apart (default: the longest window); a longer gap between two rows (a stretch the
        aggregator closed at once: ``finsentry report`` passes the detector's longest scale, beyond which it
        does) gets no rows, so memory follows the buckets given, not the time they span. The windows are
        time-based, so a window longer than a gap still counts the rows before it.

    >>> rows = pd.DataFrame({"start": [0, 120, 86_400 * 365], "items": [2, 1, 4], "negative": [1, 1, 0],
    ...                      "neutral": [1, 0, 4], "positive": [0, 0, 0], "score_sum": [-0.5, -0.9, 0.2]})
    >>> t = trend_frame(rows, {"1h": 3600}, 60)
    >>> len(t), list(t["items_1h"])   # 00:00, 00:01 (empty), 00:02, then a year later
    (4, [2, 2, 3, 4])
    """
    if buckets.empty:
        return pd.DataFrame(columns=COUNT_COLUMNS)
    start = pd.to_datetime(buckets["start"], unit="s", utc=True)
    frame = buckets.assign(start=start).set_index("start")[COUNT_COLUMNS].sort_index()
    gap = max(windows.values(), default=bucket_seconds) if gap_seconds is None else gap_seconds
    frame = frame.reindex(_grid(frame.index, bucket_seconds, gap), fill_value=0)
    frame.index.name = "start"
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["negative_ratio"] = (frame["negative"] / frame["items"]).where(frame["items"] > 0)
        frame["mean_score"] = (frame["score_sum"] / frame["items"]).where(frame["items"] > 0)
        for name, seconds in windows.items():
            roll = frame[COUNT_COLUMNS].rolling(pd.Timedelta(seconds=seconds), min_periods=1).sum()
            frame[f"items_{name}"] = roll["items"].astype(int)
            frame[f"negative_{name}"] = roll["negative"].astype(int)
            frame[f"negative_ratio_{name}"] = (roll["negative"] / roll["items"]).where(roll["items"] > 0)
            frame[f"mean_score_{name}"] = (roll["score_sum"] / roll["items"]).where(roll["items"] > 0)
    return frame


def _grid(index: pd.DatetimeIndex, bucket_seconds: int, gap_seconds: int) -> pd.DatetimeIndex:
    """Bucket starts from the first to the last of ``index`` (sorted, unique), every ``bucket_seconds``, except
    inside gaps between rows longer than ``gap_seconds``."""
    step = pd.Timedelta(seconds=bucket_seconds)
    gaps = np.flatnonzero(index[1:] - index[:-1] > pd.Timedelta(seconds=gap_seconds))
    bounds = zip([0, *(gaps + 1)], [*gaps, len(index) - 1], strict=True)
    parts = [pd.date_range(index[a], index[b], freq=step) for a, b in bounds]
    return parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]
