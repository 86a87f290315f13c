"""Load the committed split files into typed example lists (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsentry.common.paths import SPLITS_DIR

AGREEMENT_SMOOTHING: dict[int, float] = {100: 0.0, 75: 0.1, 66: 0.2, 50: 0.3}
"""Agreement-aware soft targets for FPB: probability mass moved from the gold label to the other two classes.

A crude inverse of the annotator agreement (Malo et al. 2014 report 5-8 annotators a sentence)."""


@dataclass(frozen=True, slots=True)
class Example:
    """One training or evaluation example: a text with exactly one task's label.

    ``task`` is ``"topic"`` or ``"sentiment"``; ``label`` the class id; ``agreement`` the FPB agreement
    percentage (None for tweets); ``source`` the split name.
    """

    text: str
    task: str
    label: int
    source: str
    agreement: int | None = None


def read_split(name: str, splits_dir: Path = SPLITS_DIR) -> pd.DataFrame:
    """Read ``<splits_dir>/<name>.csv``.

    Raises:
        FileNotFoundError: with the command that writes the splits.
    """
    path = splits_dir / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"split file {path} is missing; run `python -m finsentry.model.splits`")
    return pd.read_csv(path, keep_default_na=False)


def load_examples(name: str, limit: int | None = None, splits_dir: Path = SPLITS_DIR) -> list[Example]:
    """Examples of split ``name`` (``fpb_*`` and ``sentiment_*`` -> sentiment task, ``topic_*`` -> topic).

    ``limit`` keeps the first ``limit`` rows (splits are already shuffled by the stratified split).
    """
    frame = read_split(name, splits_dir)
    if limit is not None:
        frame = frame.head(limit)
    task = "topic" if name.startswith("topic") else "sentiment"
    has_agreement = "agreement" in frame.columns
    return [
        Example(
            text=str(row.text),
            task=task,
            label=int(row.label),
            source=name,
            agreement=int(row.agreement) if has_agreement else None,
        )
        for row in frame.itertuples(index=False)
    ]


EVAL_SETS: dict[str, str] = {
    "fpb_test": "FPB >=50% 20% test split (FinBERT protocol)",
    "fpb_test_allagree": "FPB test rows with 100% annotator agreement",
    "topic_valid": "twitter-financial-news-topic official validation (full)",
    "topic_valid_dedup": "topic validation without rows that have a URL-stripped twin in train",
    "sentiment_valid": "twitter-financial-news-sentiment official validation (full)",
    "sentiment_valid_dedup": "sentiment validation without rows that have a URL-stripped twin in train",
}
"""Frozen evaluation sets reported by ``finsentry model eval``; name -> description."""

DEV_SETS: tuple[str, ...] = ("fpb_dev", "topic_dev", "sentiment_dev")
"""Dev sets used for early stopping and tuning (never the evaluation sets)."""


def load_eval_set(name: str, limit: int | None = None) -> list[Example]:
    """Examples of an evaluation set in :data:`EVAL_SETS` (``fpb_test_allagree`` is derived from ``fpb_test``)."""
    if name == "fpb_test_allagree":
        return [e for e in load_examples("fpb_test") if e.agreement == 100][:limit]
    if name not in EVAL_SETS and name not in DEV_SETS:
        raise KeyError(f"unknown evaluation set {name!r}; known: {sorted(EVAL_SETS) + list(DEV_SETS)}")
    return load_examples(name, limit)
