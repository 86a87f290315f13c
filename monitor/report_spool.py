"""Closed buckets of an offline backfill spooled to disk, read back for the few keys a report writes.

``finsentry report`` needs every closed bucket of a key only to write that key's trend CSV and chart, and it
writes them for ``all`` and the keys that spiked. Held in memory as :class:`ClosedBucket` objects, every
bucket of every key took about 1 KB each: at 1-minute buckets, 91 keys over 8 weeks peaked at 6.9 GB and 741
keys ran out of 24 GB. :class:`ClosedSpool` is the aggregator's ``on_close`` instead: it packs each closed
bucket into a fixed-size binary row (:data:`ROW`, 99 bytes) and appends it, :data:`CHUNK_ROWS` rows at a time,
to an anonymous temporary file (deleted when the spool is closed, or by the OS if the process dies); at the
end :meth:`ClosedSpool.frame` reads the file back one chunk at a time and keeps only the rows of the keys
asked for. Memory is one chunk plus the rows returned; disk is 99 bytes per closed bucket (30 M buckets:
about 3 GB).

Values round-trip exactly: float64 stays float64 and a missing (None) detector figure is NaN, as it is in
:func:`~finsentry.monitor.report.closed_frame` wherever the column has a value at all (a trend CSV writes both
as an empty cell).

>>> from finsentry.monitor.spikes import Observation
>>> obs = Observation(60.0, 3, 1, 1 / 3, 0.1, 0.05, None, None, None, None, False, 3600, "share")
>>> with ClosedSpool(chunk_rows=2) as spool:
...     for key, start in [("all", 0.0), ("ticker:A", 0.0), ("all", 60.0)]:
...         spool(ClosedBucket(key, start, 3, 1, 2, 0, -0.9, obs))
...     frame = spool.frame(["all"])
>>> frame[["key", "start", "items", "window_share", "trigger"]].to_dict("records")[1]
{'key': 'all', 'start': 60.0, 'items': 3, 'window_share': 0.3333333333333333, 'trigger': 'share'}
>>> spool.rows, len(frame), bool(frame["z"].isna().all())
(3, 2, True)
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd

from finsentry.monitor.aggregator import ClosedBucket

NAN = float("nan")

FLOAT_COLUMNS = ("window_share", "baseline_mean", "baseline_std", "z", "volume_baseline", "volume_z")
"""Detector figures that may be None (NaN in the file)."""

ROW = np.dtype(
    [
        ("key", "<i4"),  # index into the spool's key names
        ("start", "<f8"),  # bucket start, epoch s (UTC)
        ("items", "<i4"),
        ("negative", "<i4"),
        ("neutral", "<i4"),
        ("positive", "<i4"),
        ("score_sum", "<f8"),
        ("window_seconds", "<i4"),  # s
        ("trigger", "<i2"),  # index into the spool's trigger names; -1: None
        ("window_items", "<i4"),
        ("window_negative", "<i4"),
        *[(c, "<f8") for c in FLOAT_COLUMNS],
        ("spike_active", "?"),
    ]
)
"""One closed bucket on disk (packed, little-endian)."""

COLUMNS = [
    "key",
    "start",
    "items",
    "negative",
    "neutral",
    "positive",
    "score_sum",
    "window_seconds",
    "trigger",
    "window_items",
    "window_negative",
    *FLOAT_COLUMNS,
    "spike_active",
]
"""Columns of :meth:`ClosedSpool.frame`, in the order of :func:`~finsentry.monitor.report.closed_frame`."""

CHUNK_ROWS = 200_000
"""Rows buffered in memory before they are written (about 20 MB packed; more as Python tuples)."""


class ClosedSpool:
    """An ``on_close`` sink for :class:`~finsentry.monitor.aggregator.Aggregator` that keeps closed buckets on
    disk. Use it as a context manager (or call :meth:`close`) so the temporary file goes at once.

    Args:
        directory: where the temporary file lives (default: the system's temporary folder, ``TMPDIR``).
        chunk_rows: rows buffered in memory before a write, and rows read back at a time.

    Raises:
        OSError: the temporary file cannot be created or written (e.g. the disk is full).
    """

    def __init__(self, directory: Path | None = None, chunk_rows: int = CHUNK_ROWS) -> None:
        # the spool is the context manager that closes it (close / __exit__)
        self._file = tempfile.TemporaryFile(prefix="finsentry-closed-", suffix=".bin", dir=directory)  # noqa: SIM115
        self.chunk_rows = chunk_rows
        self._keys: dict[str, int] = {}
        self._triggers: dict[str, int] = {}
        self._buffer: list[tuple] = []
        self.rows = 0
        """Closed buckets received so far."""

    def __call__(self, c: ClosedBucket) -> None:
        """Append closed bucket ``c`` (the aggregator's ``on_close``)."""
        o = c.observation
        key = self._keys.setdefault(c.key, len(self._keys))
        trigger = -1 if o.trigger is None else self._triggers.setdefault(o.trigger, len(self._triggers))
        self._buffer.append(
            (
                key,
                c.start,
                c.items,
                c.negative,
                c.neutral,
                c.positive,
                c.score_sum,
                o.window_seconds,
                trigger,
                o.items,
                o.negative,
                NAN if o.share is None else o.share,
                NAN if o.baseline_mean is None else o.baseline_mean,
                NAN if o.baseline_std is None else o.baseline_std,
                NAN if o.z is None else o.z,
                NAN if o.volume_baseline is None else o.volume_baseline,
                NAN if o.volume_z is None else o.volume_z,
                o.active,
            )
        )
        self.rows += 1
        if len(self._buffer) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._file.write(np.array(self._buffer, dtype=ROW).tobytes())
            self._buffer.clear()

    @property
    def keys(self) -> list[str]:
        """Keys with at least one closed bucket, in order of their first one."""
        return list(self._keys)

    def frame(self, keys: Iterable[str]) -> pd.DataFrame:
        """The closed buckets of ``keys`` (keys never closed are left out), in the order they closed: one row
        per bucket with :data:`COLUMNS` (``start`` epoch s; ``key`` and ``trigger`` as strings, None for no
        trigger; a missing detector figure is NaN)."""
        self._flush()
        codes = np.array(sorted(self._keys[k] for k in set(keys) if k in self._keys), dtype="<i4")
        parts = []
        self._file.seek(0)
        while codes.size:
            data = self._file.read(self.chunk_rows * ROW.itemsize)
            if not data:
                break
            chunk = np.frombuffer(data, dtype=ROW)
            parts.append(chunk[np.isin(chunk["key"], codes)])
        self._file.seek(0, 2)  # later rows append at the end
        rows = np.concatenate(parts) if parts else np.empty(0, dtype=ROW)
        names = np.array(list(self._keys), dtype=object)
        triggers = np.array([*self._triggers, None], dtype=object)  # code -1 reads the last one: None
        out = {c: rows[c] for c in COLUMNS}
        out["key"] = names[rows["key"]] if rows.size else np.empty(0, dtype=object)
        out["trigger"] = triggers[rows["trigger"]] if rows.size else np.empty(0, dtype=object)
        out["spike_active"] = rows["spike_active"].astype(bool)
        for c in ("items", "negative", "neutral", "positive", "window_seconds", "window_items", "window_negative"):
            out[c] = rows[c].astype(np.int64)
        return pd.DataFrame(out, columns=COLUMNS)

    def close(self) -> None:
        """Delete the temporary file (idempotent)."""
        self._buffer.clear()
        self._file.close()

    def __enter__(self) -> ClosedSpool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
