"""Reading replay files (CSV or JSONL) into ``news.raw`` items ordered by event time.

Columns map onto contract fields with :class:`ColumnMap` (default: the field names themselves). StockNet's
monthly CSVs (``created_at_utc, ticker, tweet_id, is_retweet, lang, text``; one row per (tweet, ticker)) are
recognized by their header: the rows of one ``tweet_id`` merge into one item whose ``tickers`` are all of its
rows' tickers, ``id`` = ``tweet_id`` and ``lang`` is passed through. Rows whose event time cannot be read
(or lacks a zone, unless ``assume_utc``) are skipped and counted. This is the one place StockNet rows become
items: :func:`stocknet_items` (the offline report's tweets of a date range) reads them with :func:`load_items`
too, so an offline report and a live replay of the same tweets quote the same ids.

Files are read as UTF-8 with a leading byte-order mark dropped (a spreadsheet's CSV keeps its ``id`` column),
CSV cells of any length (:mod:`finsentry.common.textfiles`). An item without an id (no id column, an empty cell, a
JSON null) gets :func:`derived_id`: ``auto-`` + 16 hex digits of ``sha256(published_at + "\n" + text)``, so a
replay of the same file sends the same ids. Rows the scorer would dead-letter for a reason visible here are
*refused* (not sent; listed in :attr:`LoadedItems.refused` with ``file:line`` and counted in ``skipped``):
a JSONL line that is not a usable JSON object (``bad_line``: not UTF-8, not JSON, not an object, nested too
deeply, a number of more than 4300 digits, a lone surrogate), an id that is not text or a whole number, is
longer than 256 characters or holds whitespace or control characters (``invalid_id``), and a ``text``,
``source``, ``url``, ``lang`` or ``tickers`` of the wrong JSON type (``wrong_type``). Everything else (empty
text, language, URL form, ...) is left to the scorer's validation, which dead-letters what it rejects.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from finsentry.common.paths import DATA_DIR
from finsentry.common.textfiles import (
    BadLine,
    JsonSyntaxError,
    iter_csv_rows,
    iter_json_lines,
    kind_of,
    strict_json_loads,
)
from finsentry.ingest.contract import MAX_ID_CHARS, iso_utc

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
"""File suffix -> format."""

STOCKNET_DIR = DATA_DIR / "stocknet_tweets" / "monthly"
"""StockNet's monthly CSVs, ``stocknet_tweets_<YYYY>-<MM>.csv`` (2013-12 .. 2016-03)."""

STOCKNET_HEADER = frozenset({"created_at_utc", "ticker", "tweet_id", "lang", "text"})
"""Columns that identify a StockNet tweet CSV."""

_TICKER_SPLIT = re.compile(r"[,;\s|]+")


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Source column of each ``news.raw`` field (``None``: the field is not in the file)."""

    id: str = "id"
    text: str = "text"
    published_at: str = "published_at"
    source: str | None = "source"
    url: str | None = "url"
    tickers: str | None = "tickers"
    lang: str | None = "lang"

    @classmethod
    def parse(cls, pairs: Iterable[str], base: ColumnMap | None = None) -> ColumnMap:
        """``["id=tweet_id", "published_at=created_at_utc"]`` applied on top of ``base`` (default mapping).

        Raises:
            ValueError: a pair is not ``field=column`` or names no contract field (the message says which).
        """
        names = {f.name for f in fields(cls)}
        values = {f.name: getattr(base or cls(), f.name) for f in fields(cls)}
        for pair in pairs:
            key, sep, column = pair.partition("=")
            if not sep or key.strip() not in names or not column.strip():
                raise ValueError(f"bad column mapping {pair!r}: use FIELD=COLUMN with FIELD one of {sorted(names)}")
            values[key.strip()] = column.strip()
        return cls(**values)


STOCKNET_COLUMNS = ColumnMap(
    id="tweet_id", text="text", published_at="created_at_utc", source=None, url=None, tickers="ticker", lang="lang"
)
"""How StockNet's columns map onto the contract."""


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One item to send: ``event_time`` (aware UTC ``datetime``) and the ``news.raw`` JSON object ``value``."""

    event_time: datetime
    value: dict[str, Any]

    @property
    def id(self) -> str:
        """The item id (the Kafka key)."""
        return str(self.value["id"])


@dataclass
class LoadedItems:
    """Items in event-time order, plus counts: ``rows`` read, ``merged_rows`` folded into an earlier row of the
    same tweet id (StockNet), ``skipped`` rows by reason."""

    items: list[ReplayItem]
    rows: int = 0
    merged_rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    stocknet: bool = False
    columns: list[str] = field(default_factory=list)
    """Columns seen (the keys of each file's first row, in order), for messages."""
    column_maps: list[ColumnMap] = field(default_factory=list)
    """The distinct column mappings used (one per kind of file)."""
    first_event: datetime | None = None
    last_event: datetime | None = None
    """Earliest and latest readable event time of the rows read, in or out of the time range."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """``(file:line, reason)`` of every row refused (not sent: the scorer would dead-letter it; see the
    module doc), in file order. Also counted in ``skipped`` by kind."""
    missing_columns: list[str] = field(default_factory=list)
    """Per file whose first row has no event-time column of the default mapping (none was named with an
    override), so no row of it is kept: which of the required columns it lacks, the columns it has and the ones
    expected (see :func:`missing_columns`)."""


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files of ``paths``: a folder contributes its ``*.csv`` / ``*.jsonl`` files, sorted by name.

    Raises:
        FileNotFoundError: a path does not exist or a folder holds no such file.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in FORMATS)
            if not found:
                raise FileNotFoundError(f"{p} holds no {', '.join(FORMATS)} files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return out


def read_numbered_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    """``(line, row)`` of one CSV (header row; every value a str; ``line`` where the record starts) or JSONL
    file (one object per line; blank lines skipped). A JSONL line that is not a usable JSON object comes as a
    :class:`~finsentry.common.textfiles.BadLine` with the reason, so the other lines can still be read.

    Raises:
        ValueError: unknown format, or a CSV file that is not UTF-8 or not readable CSV (the message names the
            file and line).
    """
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt == "csv":
        yield from iter_csv_rows(path)
    elif fmt == "jsonl":
        for n, value in iter_json_lines(path):
            if not isinstance(value, dict | BadLine):
                value = BadLine(f"expected a JSON object per line, got {kind_of(value, 'a string')}")
            yield n, value
    else:
        raise ValueError(f"{path}: unknown format (use .csv or .jsonl, or pass the format explicitly)")


def read_rows(path: Path, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of one CSV or JSONL file (see :func:`read_numbered_rows`).

    Raises:
        ValueError: unknown format, an unreadable CSV, or a JSONL line that is not a usable JSON object (the
            message names the file and line).
    """
    for n, row in read_numbered_rows(path, fmt):
        if isinstance(row, BadLine):
            raise ValueError(f"{path}:{n}: {row.reason}")
        yield row


def derived_id(published_at: str, text: Any) -> str:
    """The id of an item without one: ``auto-`` + 16 hex digits of ``sha256(published_at + "\\n" + text)``
    (``published_at`` as sent, ISO UTC; a text that is not a string counts as empty). Stable across replays.

    >>> derived_id("2015-08-24T10:00:00Z", "Shares plunge")
    'auto-0eef8a2cd7886177'
    """
    body = text if isinstance(text, str) else ""
    return "auto-" + hashlib.sha256(f"{published_at}\n{body}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be sent as an item id (the scorer would dead-letter it as ``invalid_id`` /
    ``wrong_type``), or None. Text and whole numbers are ids; an absent id is derived, not judged here.

    >>> id_problem("418169902613008384"), id_problem(7), id_problem("a b"), id_problem({"a": 1})
    (None, None, "id 'a b' holds whitespace or control characters", 'id must be text or a whole number, got an object')
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"id must be text or a whole number, got {kind_of(value)}"
    text = str(value)
    if len(text) > MAX_ID_CHARS:
        return f"id is {len(text)} characters long; at most {MAX_ID_CHARS}"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return f"id {text[:40]!r} holds whitespace or control characters"
    return None


def parse_event_time(value: Any, assume_utc: bool = False) -> datetime | None:
    """ISO-8601 text -> aware UTC ``datetime``; None if unreadable or (unless ``assume_utc``) without a zone."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if ts.tzinfo is None:
        if not assume_utc:
            return None
        ts = ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        return None


def tickers_from_cell(value: Any) -> list[str]:
    """The tickers of one CSV cell or JSON field: a list as is, a JSON list text parsed (strictly:
    :func:`~finsentry.common.textfiles.strict_json_loads`), other text split at commas, semicolons, bars and
    blanks. JSON ``null``, ``true`` and ``false`` carry no ticker, as the value or as a list member (they would
    become the symbols ``NONE``, ``TRUE``, ``FALSE``); a number in a list stays, as its text; blank members are
    dropped. One function for every reader of a tickers cell: replay, ``finsentry score`` and the report's
    fan-out of a scored record.

    >>> tickers_from_cell("AAPL, MSFT;TSLA")
    ['AAPL', 'MSFT', 'TSLA']
    >>> tickers_from_cell([None, "AAPL", False, 7]), tickers_from_cell('[null, "AAPL", true]'), tickers_from_cell(False)
    (['AAPL', '7'], ['AAPL'], [])
    """
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, list):
        return _list_tickers(value)
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = strict_json_loads(text)
        except JsonSyntaxError:  # also a cell of 100k '[': not a list, so split below
            parsed = None
        if isinstance(parsed, list):
            return _list_tickers(parsed)
    return [t for t in _TICKER_SPLIT.split(text) if t]


def _list_tickers(values: list[Any]) -> list[str]:
    """The members of a tickers list as text, without ``None``, booleans and blank ones."""
    return [str(v) for v in values if v is not None and not isinstance(v, bool) and str(v).strip()]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value == "")


def load_items(
    paths: Sequence[str | Path],
    columns: ColumnMap | None = None,
    *,
    overrides: Sequence[str] = (),
    stocknet: bool | None = None,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    limit_rows: int | None = None,
    source: str | None = None,
    assume_utc: bool = False,
    fmt: str | None = None,
) -> LoadedItems:
    """Read ``paths`` into items ordered by event time (stable: ties keep file order).

    Args:
        paths: files or folders (see :func:`expand_paths`). columns: field -> column (default: StockNet's for
            StockNet files, else identity). overrides: ``FIELD=COLUMN`` pairs applied on top of ``columns``
            (see :meth:`ColumnMap.parse`). stocknet: merge rows per ``tweet_id`` (None = detect from the header).
        time_from, time_to: keep event times in ``[time_from, time_to)`` (aware datetimes; None = open).
        limit_rows: stop after this many rows read (before merging and filtering). source: set ``source`` on
        every item (unless the file has a source column). assume_utc: read zone-less times as UTC.
        fmt: ``csv`` or ``jsonl`` for every file (default: from each suffix).

    Raises:
        FileNotFoundError, ValueError: see :func:`expand_paths`, :func:`read_rows`, :meth:`ColumnMap.parse`.
    """
    result = LoadedItems(items=[])
    merged: dict[str, ReplayItem] = {}
    items: list[ReplayItem] = []
    for path in expand_paths(paths):
        rows = read_numbered_rows(path, fmt)
        first = next(rows, None)
        while first is not None and isinstance(first[1], BadLine):  # the columns come from the first good row
            if limit_rows is not None and result.rows >= limit_rows:
                break
            result.rows += 1
            _refuse(result, path, first[0], "bad_line", first[1].reason)
            first = next(rows, None)
        if first is None or isinstance(first[1], BadLine):
            continue
        head = first[1]
        is_stocknet = set(head) >= STOCKNET_HEADER if stocknet is None else stocknet
        result.stocknet |= is_stocknet
        base = columns or (STOCKNET_COLUMNS if is_stocknet else ColumnMap())
        cols = ColumnMap.parse(overrides, base)
        result.columns.extend(str(c) for c in head if str(c) not in result.columns)
        if cols not in result.column_maps:
            result.column_maps.append(cols)
        if cols.published_at not in head and cols.published_at == base.published_at:  # one named: see why_nothing
            result.missing_columns.append(missing_columns(path, [str(c) for c in head], cols))
        for line, row in _chain(first, rows):
            if limit_rows is not None and result.rows >= limit_rows:
                break
            result.rows += 1
            if isinstance(row, BadLine):
                _refuse(result, path, line, "bad_line", row.reason)
                continue
            event_time = parse_event_time(row.get(cols.published_at), assume_utc)
            if event_time is None:
                result.skipped["unreadable_event_time"] += 1
                continue
            result.first_event = min(result.first_event or event_time, event_time)
            result.last_event = max(result.last_event or event_time, event_time)
            if (time_from and event_time < time_from) or (time_to and event_time >= time_to):
                result.skipped["outside_time_range"] += 1
                continue
            published_at = iso_utc(event_time)
            raw_id, text = row.get(cols.id), row.get(cols.text)
            problem = id_problem(raw_id) if _present(raw_id) else None
            if problem is not None:
                _refuse(result, path, line, "invalid_id", problem)
                continue
            value: dict[str, Any] = {
                "id": str(raw_id) if _present(raw_id) else derived_id(published_at, text),
                "text": text,
                "published_at": published_at,
            }
            for name in ("source", "url", "lang"):
                column = getattr(cols, name)
                if column and _present(row.get(column)):
                    value[name] = row[column]
            wrong = _wrong_type(value, row.get(cols.tickers) if cols.tickers else None)
            if wrong is not None:
                _refuse(result, path, line, "wrong_type", wrong)
                continue
            if source is not None and "source" not in value:
                value["source"] = source
            tickers = tickers_from_cell(row.get(cols.tickers)) if cols.tickers else []
            if tickers:
                value["tickers"] = tickers
            item = ReplayItem(event_time, value)
            if is_stocknet and isinstance(value["id"], str):
                seen = merged.get(value["id"])
                if seen is not None:
                    known = seen.value.setdefault("tickers", [])
                    known.extend(t for t in tickers if t not in known)
                    result.merged_rows += 1
                    continue
                merged[value["id"]] = item
            items.append(item)
        if limit_rows is not None and result.rows >= limit_rows:
            break
    result.items = sorted(items, key=lambda i: i.event_time)
    return result


def missing_columns(path: Path, have: Sequence[str], cols: ColumnMap) -> str:
    """The one-line complaint about a file whose columns ``have`` lack required ones of ``cols``.

    >>> missing_columns(Path("news.csv"), ["a", "b"], ColumnMap())  # doctest: +ELLIPSIS
    'news.csv: missing columns text, published_at (it has a, b; expected text, published_at and optionally id, ...)'
    """
    required = [cols.text, cols.published_at]
    optional = [c for c in (cols.id, cols.source, cols.url, cols.tickers, cols.lang) if c]
    missing = [c for c in required if c not in have]
    return (
        f"{path}: missing columns {', '.join(missing)} (it has {', '.join(have) or 'none'}; expected "
        f"{', '.join(required)} and optionally {', '.join(optional)})"
    )


def stocknet_months(time_from: datetime | None, time_to: datetime | None) -> list[Path]:
    """StockNet monthly CSVs that overlap ``[time_from, time_to)`` (all of them for an open bound).

    Raises:
        FileNotFoundError: no StockNet file overlaps (the message names the folder).
    """
    chosen = []
    for path in sorted(STOCKNET_DIR.glob("stocknet_tweets_*.csv")):
        year, month = (int(x) for x in path.stem.rsplit("_", 1)[1].split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        if (time_to is None or start < time_to) and (time_from is None or end > time_from):
            chosen.append(path)
    if not chosen:
        raise FileNotFoundError(f"no StockNet month in {STOCKNET_DIR} overlaps {time_from} .. {time_to}")
    return chosen


def stocknet_items(start: date, end: date, lang: str | None = "en") -> list[ReplayItem]:
    """StockNet tweets published on days ``start`` .. ``end`` (inclusive, UTC), read from the month files of
    :data:`STOCKNET_DIR` by :func:`load_items` exactly as a live replay of those files sends them (``id`` = the
    tweet id, one item per tweet with all its tickers, event-time order), keeping those with a text and, unless
    ``lang`` is None, that language (the scorer dead-letters the others).

    Raises:
        FileNotFoundError: a month file in the range is missing. ValueError: ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    paths = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        path = STOCKNET_DIR / f"stocknet_tweets_{year:04d}-{month:02d}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (StockNet covers 2013-12 .. 2016-03)")
        paths.append(path)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    time_from = datetime(start.year, start.month, start.day, tzinfo=UTC)
    time_to = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    loaded = load_items(paths, time_from=time_from, time_to=time_to)
    return [
        item
        for item in loaded.items
        if _present(item.value.get("text")) and (lang is None or item.value.get("lang") == lang)
    ]


def why_nothing(
    loaded: LoadedItems,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    limit_rows: int | None = None,
) -> str | None:
    """Why ``loaded`` (from :func:`load_items` with these options) has nothing worth sending, or None if it has.

    Nothing is worth sending when there is no item, or when no item has a text (the text column is missing).
    The message names the cause: no rows, the event-time column (and the columns there are), or the time range
    (and the range of event times the files hold).

    >>> why_nothing(LoadedItems(items=[]))
    'the files hold no rows'
    """
    if loaded.items and any(_present(i.value.get("text")) for i in loaded.items):
        return None
    seen = f"columns: {', '.join(loaded.columns)}" if loaded.columns else "no columns"
    maps = loaded.column_maps or [ColumnMap()]
    if loaded.items:
        text_cols = " / ".join(repr(m.text) for m in maps)
        return (
            f"no item has a text: none of the {len(loaded.items)} items has a value in text column {text_cols} "
            f"({seen}); map it with --map text=COLUMN"
        )
    if loaded.rows == 0:
        return "the files hold no rows"
    why = []
    unreadable = loaded.skipped.get("unreadable_event_time", 0)
    outside = loaded.skipped.get("outside_time_range", 0)
    if unreadable and loaded.missing_columns:
        why.append("; ".join(loaded.missing_columns) + "; map them with --map FIELD=COLUMN")
    elif unreadable:
        time_cols = " / ".join(repr(m.published_at) for m in maps)
        why.append(
            f"{unreadable} rows have no readable event time in column {time_cols} ({seen}; map it with "
            "--map published_at=COLUMN or --time-column, and add --assume-utc for times without a zone)"
        )
    if outside:
        span = (
            f"; the event times read run from {iso_utc(loaded.first_event)} to {iso_utc(loaded.last_event)}"
            if loaded.first_event and loaded.last_event
            else ""
        )
        start = iso_utc(time_from) if time_from else "(open)"
        end = iso_utc(time_to) if time_to else "(open)"
        why.append(f"{outside} rows fall outside the time range {start} .. {end} of --from/--to (end exclusive){span}")
    if loaded.refused:
        where, reason = loaded.refused[0]
        why.append(f"{len(loaded.refused)} rows were refused (first: {where}: {reason})")
    limited = f" (read only the first {limit_rows} rows: --limit-rows)" if limit_rows == loaded.rows else ""
    return f"no item matched: of {loaded.rows} rows read{limited}, " + ("; ".join(why) or "none was kept")


def _refuse(result: LoadedItems, path: Path, line: int, kind: str, reason: str) -> None:
    result.skipped[kind] += 1
    result.refused.append((f"{path}:{line}", reason))


def _wrong_type(value: dict[str, Any], tickers: Any) -> str | None:
    """Why a field of ``value`` (or the raw ``tickers``) has a JSON type the contract refuses, or None."""
    for name in ("text", "source", "url", "lang"):
        if value.get(name) is not None and not isinstance(value[name], str):
            return f"{name} must be text, got {kind_of(value[name])}"
    if isinstance(tickers, list) and not all(isinstance(t, str) for t in tickers):
        bad = next(t for t in tickers if not isinstance(t, str))
        return f"tickers must be a list of text, got an element that is {kind_of(bad)}"
    if tickers is not None and not isinstance(tickers, str | list):
        return f"tickers must be text or a list of text, got {kind_of(tickers)}"
    return None


def _chain(first: tuple[int, Any], rest: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    yield first
    yield from rest
