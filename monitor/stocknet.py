"""Real scored data for reports and tests: StockNet tweets (and Financial PhraseBank sentences) scored by the model.

StockNet (Xu & Cohen, ACL 2018; ``data/stocknet_tweets``, MIT) holds timestamped tweets tagged with one of 87
tickers, one row per (tweet, ticker); :func:`load_tweets` groups them back to one item per tweet with all its
tickers, keeps ``lang == "en"`` (what the scorer accepts), and orders them by time. :func:`score` runs the
model (:meth:`finsentry.model.Scorer.predict`) and returns ``news.scored`` records (docs/contracts.md), which
``finsentry report`` aggregates offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from finsentry.common.paths import DATA_DIR, SPLITS_DIR

STOCKNET_DIR = DATA_DIR / "stocknet_tweets" / "monthly"
"""One CSV per month: ``created_at_utc, ticker, tweet_id, is_retweet, lang, text``."""


def load_tweets(start: date, end: date, lang: str | None = "en") -> list[dict[str, Any]]:
    """StockNet tweets published on days ``start`` .. ``end`` (inclusive, UTC) as ``news.raw``-shaped records.

    Returns:
        ``[{id, text, published_at (ISO UTC), source: "stocknet", url, tickers: [..], lang}]`` ordered by
        time then id; ``id`` is ``stocknet:<tweet_id>``.

    Raises:
        FileNotFoundError: a month file in the range is missing. ValueError: ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    months = pd.period_range(start, end, freq="M")
    frames = []
    for m in months:
        path = STOCKNET_DIR / f"stocknet_tweets_{m.year:04d}-{m.month:02d}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (StockNet covers 2013-12 .. 2016-03)")
        frames.append(pd.read_csv(path, dtype={"tweet_id": str, "ticker": str, "text": str, "lang": str}))
    df = pd.concat(frames, ignore_index=True)
    df["t"] = pd.to_datetime(df["created_at_utc"], utc=True)
    lo = pd.Timestamp(start, tz="UTC")
    hi = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)
    df = df[(df["t"] >= lo) & (df["t"] < hi) & df["text"].notna()]
    if lang is not None:
        df = df[df["lang"] == lang]
    grouped = df.groupby("tweet_id", sort=False).agg(
        t=("t", "first"), text=("text", "first"), lang=("lang", "first"), tickers=("ticker", lambda s: sorted(set(s)))
    )
    grouped = grouped.reset_index().sort_values(["t", "tweet_id"])
    return [
        {
            "id": f"stocknet:{row.tweet_id}",
            "text": row.text,
            "published_at": row.t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": "stocknet",
            "url": f"https://twitter.com/i/web/status/{row.tweet_id}",
            "tickers": list(row.tickers),
            "lang": row.lang,
        }
        for row in grouped.itertuples(index=False)
    ]


def fpb_negatives(n: int, split: str = "test") -> list[str]:
    """The first ``n`` Financial PhraseBank sentences labelled negative (label 0) in ``data/splits/fpb_<split>.csv``.

    Raises:
        ValueError: the split has fewer than ``n`` negative sentences.
    """
    df = pd.read_csv(SPLITS_DIR / f"fpb_{split}.csv")
    texts = df.loc[df["label"] == 0, "text"].astype(str).tolist()
    if len(texts) < n:
        raise ValueError(f"fpb_{split}.csv has {len(texts)} negative sentences, {n} asked")
    return texts[:n]


def score(
    records: Sequence[dict[str, Any]],
    scorer,
    batch_size: int = 256,
    progress: bool = False,
    companies: Any = "default",
) -> list[dict]:
    """Score ``news.raw``-shaped records into ``news.scored`` ones exactly as the live scorer service does.

    Each record is validated and normalized like a ``news.raw`` message (:class:`~finsentry.ingest.contract.NewsRaw`,
    :func:`~finsentry.ingest.validation.normalize_item`: entities decoded, links removed, tickers from the record,
    cashtags and company names), scored by ``scorer`` (:class:`finsentry.model.Scorer`) on the normalized text,
    and written by :func:`finsentry.ingest.scored.scored_value`, so the offline report and the live aggregator see
    the same texts, tickers, predictions and fields. Records the scorer would dead-letter (e.g. no text left after
    normalization) are skipped and logged with their count.

    Args:
        records: ``news.raw``-shaped dicts. scorer: a loaded model. batch_size: texts per ``predict`` call.
        progress: show a progress bar. companies: the company-name -> ticker map; ``"default"``: the table of
            ``ingest.company_table``'s default (what ``finsentry scorer`` reads), None: no mapping.
    """
    import logging

    from pydantic import ValidationError
    from tqdm import tqdm

    from finsentry.ingest.contract import NewsRaw
    from finsentry.ingest.dlq import InvalidRecord
    from finsentry.ingest.scored import scored_value
    from finsentry.ingest.validation import normalize_item

    if companies == "default":
        from finsentry.ingest.scorer_service import load_company_table
        from finsentry.ingest.settings import IngestSettings

        companies = load_company_table(IngestSettings().company_table)
    items = []
    skipped = 0
    for rec in records:
        try:
            raw = NewsRaw.model_validate({k: v for k, v in rec.items() if v is not None}, strict=False)
            items.append(normalize_item(raw, companies))
        except (InvalidRecord, ValidationError):
            skipped += 1
    if skipped:
        logging.getLogger(__name__).warning(
            "%d of %d records skipped: the scorer would dead-letter them", skipped, len(records)
        )
    out: list[dict] = []
    now = datetime.now(UTC)
    for i in tqdm(range(0, len(items), batch_size), desc="scoring", unit="batch", disable=not progress):
        chunk = items[i : i + batch_size]
        for item, pred in zip(chunk, scorer.predict([it.text for it in chunk]), strict=True):
            out.append(scored_value(item, pred, now))
    return out


def write_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write one JSON object per line; returns the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n
