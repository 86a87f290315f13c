"""The label store: analysts' topic / sentiment labels, validated, kept append-only as Parquet.

A label is one analyst's verdict on one item (``id``, ``text``, optional ``topic``, optional ``sentiment``,
``labeler``, ``labeled_at``); at least one of the two labels is needed. Topics are the 20 names of
:data:`~finsentry.model.labels.TOPIC_LABELS` verbatim or their slugs; sentiments are ``negative`` /
``neutral`` / ``positive`` (any case). Anything else raises :class:`InvalidLabel`.

Layout on disk (Hive-style partitions by the UTC date the labels *arrived*)::

    <labels_dir>/date=2026-11-29/20261129T171502-1f3a9c0e.parquet
    <labels_dir>/rejected/20261129T171502-file.jsonl   (rows a file import could not accept, with the reason)

Every :meth:`LabelStore.append` writes new files (``.<name>.tmp`` then an atomic rename, so a reader never sees
a half-written file); nothing is ever rewritten or deleted. Conflicting labels for one item are resolved on
read by :func:`resolve`; every row stays on disk for audit.

>>> parse_label({"id": "1", "text": "Fed hikes", "topic": "fed_central_banks", "labeler": "ann",
...              "labeled_at": "2026-11-29T10:00:00Z"}).topic
'Fed | Central Banks'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finsentry.model.labels import SENTIMENT_LABELS, TASKS, TOPIC_BY_SLUG, TOPIC_LABELS

MAX_ID_CHARS = 256
"""Longest item id accepted (the same limit as ``news.raw`` ids)."""

MAX_TEXT_CHARS = 10_000
"""Longest text accepted (the same limit as ``news.raw`` texts)."""

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("topic", pa.string()),
        ("sentiment", pa.string()),
        ("labeler", pa.string()),
        ("labeled_at", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
    ]
)
"""Columns of every Parquet file (the ``date`` partition column comes from the folder name)."""

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)

_SENTIMENT_BY_NAME = {s: s for s in SENTIMENT_LABELS}
_WS = re.compile(r"\s+")


class InvalidLabel(ValueError):
    """A label record is malformed or names no known topic / sentiment; the message says which field and why."""


class LabelRecord(BaseModel):
    """One validated label. Extra fields in the input are ignored; ``topic`` is normalised to the verbatim name.

    Attributes:
        id: item id (1-256 characters, no surrounding whitespace). text: the labelled text (non-empty).
        topic / sentiment: a verbatim label name or None (at least one is set).
        labeler: who labelled it (non-empty). labeled_at: when, timezone-aware (stored as UTC).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    topic: str | None = None
    sentiment: str | None = None
    labeler: str = Field(min_length=1, max_length=200)
    labeled_at: AwareDatetime

    @field_validator("id", "labeler")
    @classmethod
    def _no_padding(cls, value: str) -> str:
        if value != value.strip() or not value.strip():
            raise ValueError("must be non-empty without leading or trailing whitespace")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty or whitespace only")
        return value

    @field_validator("topic", mode="before")
    @classmethod
    def _topic(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError(f"must be a topic name, got {type(value).__name__}")
        if value in TOPIC_LABELS:
            return value
        if value.strip().lower() in TOPIC_BY_SLUG:
            return TOPIC_BY_SLUG[value.strip().lower()]
        raise ValueError(f"{value!r} is not one of the 20 topic names (or their slugs, e.g. 'fed_central_banks')")

    @field_validator("sentiment", mode="before")
    @classmethod
    def _sentiment(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or value.strip().lower() not in _SENTIMENT_BY_NAME:
            raise ValueError(f"{value!r} is not one of {', '.join(SENTIMENT_LABELS)}")
        return value.strip().lower()

    @field_validator("labeled_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _one_label(self) -> LabelRecord:
        if self.topic is None and self.sentiment is None:
            raise ValueError("a label needs a topic or a sentiment (or both)")
        return self


def text_id(text: str) -> str:
    """A stable item id for a text without one: ``text-`` + 16 hex digits of sha256 of the whitespace-collapsed text.

    >>> text_id("Apple  beats ") == text_id("Apple beats")
    True
    """
    return "text-" + hashlib.sha256(_WS.sub(" ", text).strip().encode("utf-8")).hexdigest()[:16]


def parse_label(obj: Any, defaults: Mapping[str, Any] | None = None) -> LabelRecord:
    """Validate one label (a mapping, e.g. a parsed JSON object or a CSV row).

    ``defaults`` fill fields that are absent or empty (file imports: ``labeler``, ``labeled_at``); a missing
    ``id`` is derived from the text with :func:`text_id` only when ``defaults`` has ``derive_id=True``.

    Raises:
        InvalidLabel: not a mapping, a required field missing, a wrong type, or an unknown label (the message
            names every bad field).
    """
    if not isinstance(obj, Mapping):
        raise InvalidLabel(f"a label must be a JSON object / row, got {type(obj).__name__}")
    data = {k: v for k, v in obj.items() if not (isinstance(v, str) and v == "")}
    options = dict(defaults or {})
    derive_id = bool(options.pop("derive_id", False))
    for key, value in options.items():
        data.setdefault(key, value)
    if derive_id and "id" not in data and isinstance(data.get("text"), str):
        data["id"] = text_id(data["text"])
    try:
        return LabelRecord.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'label'}: {_msg(e)}" for e in exc.errors())
        raise InvalidLabel(problems) from exc


def _msg(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


@dataclass
class FileImport:
    """Result of reading a label file: the accepted records and the rejected rows ``(line, row, message)``."""

    accepted: list[LabelRecord] = field(default_factory=list)
    rejected: list[tuple[int, Any, str]] = field(default_factory=list)


def read_label_file(path: Path, defaults: Mapping[str, Any] | None = None) -> FileImport:
    """Read and validate a ``.csv`` (header row; columns as the label fields) or ``.jsonl`` file of labels.

    Suffixes are matched case-insensitively and a UTF-8 byte-order mark is dropped (so the first CSV column
    stays ``id``). Line numbers count from 1 and include the CSV header (a record spanning several lines
    has the number of its first). Rows without an ``id`` get :func:`text_id`. A JSONL line that is not JSON,
    holds a number of more than 4300 digits, nests too deeply or holds a lone surrogate escape is rejected
    with that reason (:func:`finsentry.common.textfiles.parse_json_line`); the other lines are read.

    Raises:
        FileNotFoundError: ``path`` does not exist or is a directory. ValueError: the suffix is neither
            ``.csv`` nor ``.jsonl``, or the CSV is not readable (the message names the file and line).
    """
    from finsentry.common.textfiles import describe_path_problem

    path = Path(path)
    problem = describe_path_problem(path, "label file")
    if problem is not None:
        raise FileNotFoundError(problem)
    opts = {"derive_id": True, **(defaults or {})}
    out = FileImport()
    for line, row in _rows(path):
        if isinstance(row, InvalidLabel):
            out.rejected.append((line, None, str(row)))
            continue
        try:
            out.accepted.append(parse_label(row, opts))
        except InvalidLabel as exc:
            out.rejected.append((line, row, str(exc)))
    return out


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    from finsentry.common.textfiles import BadLine, iter_csv_rows, iter_json_lines

    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for n, value in iter_json_lines(path, errors="replace"):
            yield n, InvalidLabel(value.reason) if isinstance(value, BadLine) else value
        return
    if suffix == ".csv":
        yield from iter_csv_rows(path, errors="replace")
        return
    raise ValueError(f"{path}: expected a .csv or .jsonl label file")


class LabelStore:
    """Append-only Parquet store of labels under ``root`` (see the module docstring for the layout).

    Safe for several writers at once (each append writes its own uniquely named files) and for readers during
    writes (files appear by atomic rename).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def append(
        self, records: Sequence[LabelRecord], sources: Sequence[str] | str, ingested_at: datetime | None = None
    ) -> list[Path]:
        """Store ``records``; ``sources`` says where each came from (``news.labels:<partition>:<offset>``,
        ``file:<name>:<line>``; one string = the same for all). Returns the files written (one per date).

        Raises:
            ValueError: ``sources`` and ``records`` differ in length, or ``ingested_at`` has no time zone.
        """
        if not records:
            return []
        if isinstance(sources, str):
            sources = [sources] * len(records)
        if len(sources) != len(records):
            raise ValueError(f"{len(records)} records but {len(sources)} sources")
        now = (ingested_at or datetime.now(UTC)).astimezone(UTC)
        frame = pd.DataFrame(
            {
                "id": [r.id for r in records],
                "text": [r.text for r in records],
                "topic": [r.topic for r in records],
                "sentiment": [r.sentiment for r in records],
                "labeler": [r.labeler for r in records],
                "labeled_at": pd.to_datetime([r.labeled_at for r in records], utc=True),
                "ingested_at": pd.to_datetime([now] * len(records), utc=True),
                "source": list(sources),
            }
        )
        folder = self.root / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False), tmp)
        os.replace(tmp, folder / name)
        return [folder / name]

    def write_rejected(self, name: str, rows: Sequence[tuple[int, Any, str]]) -> Path | None:
        """Keep rows a file import refused (``(line, row, message)``) as JSONL under ``rejected/``; None if none."""
        if not rows:
            return None
        folder = self.root / "rejected"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}-{Path(name).name}.jsonl"
        with path.open("w", encoding="utf-8", errors="backslashreplace") as f:  # no row may stop the others
            for line, row, message in rows:
                entry = {"line": line, "reason": "invalid_label", "message": message, "row": row}
                f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        return path

    def read(self) -> pd.DataFrame:
        """Every stored row (the audit log), columns :data:`COLUMNS`, ordered by ``ingested_at`` then ``labeled_at``."""
        files = sorted(self.root.glob("date=*/*.parquet"))
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in COLUMNS})
        table = ds.dataset([str(f) for f in files], format="parquet", schema=SCHEMA).to_table()
        frame = table.to_pandas()
        return frame.sort_values(["ingested_at", "labeled_at"], kind="stable").reset_index(drop=True)

    def resolved(self) -> pd.DataFrame:
        """One row per item after conflict resolution (:func:`resolve`)."""
        return resolve(self.read())


def _dtype(column: str) -> str:
    return "datetime64[us, UTC]" if column.endswith("_at") else "object"


def resolve(raw: pd.DataFrame) -> pd.DataFrame:
    """Resolve conflicting labels per item and task.

    Rules, per task (topic, sentiment) separately:

    1. Exact repeats (same id, labels, labeler and ``labeled_at``: a redelivered Kafka record, a file imported
       twice) count once.
    2. A labeler's latest label of an item replaces that labeler's earlier ones (they changed their mind).
    3. The label with most labelers wins; a tie goes to the tied label whose newest vote is the latest.

    Returns a frame indexed by ``id`` with columns ``text`` (the latest text), ``topic``, ``sentiment`` (None
    where no one labelled that task), ``topic_votes`` / ``sentiment_votes`` (labelers who voted),
    ``topic_agree`` / ``sentiment_agree`` (votes for the winner), ``conflict`` (some task had disagreeing
    votes), ``last_labeled_at`` and ``last_ingested_at`` (UTC timestamps).
    """
    cols = ["text", *TASKS, "topic_votes", "topic_agree", "sentiment_votes", "sentiment_agree", "conflict"]
    cols += ["last_labeled_at", "last_ingested_at"]
    if raw.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="id"))
    raw = raw.drop_duplicates(["id", "topic", "sentiment", "labeler", "labeled_at"])
    latest = raw.sort_values(["labeled_at", "ingested_at"], kind="stable").groupby("id")
    out = pd.DataFrame(
        {
            "text": latest["text"].last(),
            "last_labeled_at": latest["labeled_at"].max(),
            "last_ingested_at": latest["ingested_at"].max(),
        }
    )
    conflict = pd.Series(False, index=out.index)
    for task in TASKS:
        votes = raw[raw[task].notna()].sort_values("labeled_at", kind="stable")
        votes = votes.drop_duplicates(["id", "labeler"], keep="last")
        counts = votes.groupby(["id", task]).agg(n=("labeler", "size"), newest=("labeled_at", "max")).reset_index()
        winners = counts.sort_values(["id", "n", "newest"], ascending=[True, False, False], kind="stable")
        winners = winners.drop_duplicates("id").set_index("id")
        totals = counts.groupby("id")["n"].sum()
        distinct = counts.groupby("id")[task].size()
        out[task] = winners[task].reindex(out.index)
        out[f"{task}_votes"] = totals.reindex(out.index).fillna(0).astype(int)
        out[f"{task}_agree"] = winners["n"].reindex(out.index).fillna(0).astype(int)
        conflict |= distinct.reindex(out.index).fillna(0) > 1
    out["conflict"] = conflict
    out = out.astype({t: object for t in TASKS})
    out[list(TASKS)] = out[list(TASKS)].where(out[list(TASKS)].notna(), None)
    out.index.name = "id"
    return out[cols]


def label_stats(raw: pd.DataFrame, since: datetime | None = None) -> dict[str, Any]:
    """Counts for ``finsentry labels stats``: JSON-ready.

    Returns ``{"rows", "items", "conflicts", "per_topic": {name: items}, "per_sentiment": {...},
    "per_labeler": {labeler: rows}, "new_since": ISO or None, "new_rows", "new_items"}``; label counts are of
    resolved items, labeler counts of stored rows; ``new_*`` count rows ingested after ``since`` (all rows when
    ``since`` is None: nothing has been trained on yet).
    """
    items = resolve(raw)
    new = raw if since is None else raw[raw["ingested_at"] > pd.Timestamp(since).tz_convert(UTC)]
    return {
        "rows": int(len(raw)),
        "items": int(len(items)),
        "conflicts": int(items["conflict"].sum()) if len(items) else 0,
        "per_topic": {t: int(n) for t, n in items["topic"].value_counts().items()},
        "per_sentiment": {s: int(n) for s, n in items["sentiment"].value_counts().items()},
        "per_labeler": {str(k): int(n) for k, n in raw["labeler"].value_counts().items()},
        "new_since": since.astimezone(UTC).isoformat() if since is not None else None,
        "new_rows": int(len(new)),
        "new_items": int(new["id"].nunique()),
    }


__all__ = [
    "COLUMNS",
    "FileImport",
    "InvalidLabel",
    "LabelRecord",
    "LabelStore",
    "label_stats",
    "parse_label",
    "read_label_file",
    "resolve",
    "text_id",
]
