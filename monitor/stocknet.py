"""Real scored data for reports and tests: StockNet tweets (and Financial PhraseBank sentences) scored by the model.

StockNet (Xu & Cohen, ACL 2018; ``data/stocknet_tweets``, MIT) holds timestamped tweets tagged with one of 87
tickers, one row per (tweet, ticker); :func:`load_tweets` groups them back to one item per tweet with all its
tickers, keeps ``lang == "en"`` (what the scorer accepts), and orders them by time, reading the rows as the live
replay does (:func:`finsentry.ingest.replay_source.stocknet_items`). :func:`score` runs the
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

from finsentry.common.paths import SPLITS_DIR
from finsentry.ingest.replay_source import stocknet_items


def load_tweets(start: date, end: date, lang: str | None = "en") -> list[dict[str, Any]]:
    """StockNet tweets published on days ``start`` .. ``end`` (inclusive, UTC) as ``news.raw`` records, exactly
    the values a live replay of those month files sends (:func:`finsentry.ingest.replay_source.stocknet_items`).

    Returns:
        ``[{id, text, published_at (ISO UTC), tickers: [..], lang}]`` in event-time order; ``id`` is the tweet
        id, as in ``finsentry run`` and ``finsentry ingest replay``, so live and offline spikes quote the same
        evidence ids.

    Raises:
        FileNotFoundError: a month file in the range is missing. ValueError: ``end`` is before ``start``.
    """
    return [item.value for item in stocknet_items(start, end, lang)]


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
