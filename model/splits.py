"""Build the fixed train / dev / test splits that every model figure is computed on.

Run once (``python -m finsentry.model.splits``); the output CSVs in ``data/splits/`` are committed so
every figure can be reproduced. Protocol:

* Financial PhraseBank (FPB): the >=50% agreement set, minus the rows flagged ``label_conflict`` (the
  sentences that carry two labels), deduplicated by sentence -> 4,836 rows. Stratified 20% test
  (968 rows; FinBERT's protocol, Araci 2019), then 10% of the rest as dev. No test sentence in train.
* Topic and tweet sentiment: the official validation split is the test set. From the official train split
  10% is reserved as ``future_labels`` (the shipped model never trains on it; the retraining issue uses it
  as newly labelled data) and 10% of the rest is dev (early stopping, tuning).
* Deduplicated validation view: validation rows whose URL-stripped, whitespace-normalised, lower-cased
  text has a twin in the official train split are dropped (``*_valid_dedup.csv``).

Every split file has the columns ``text,label`` where ``label`` is our class id (see ``labels.py``);
FPB files add ``agreement`` (50, 66, 75, 100).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from finsentry.model.labels import FPB_SENTIMENT_TO_ID, TWEET_SENTIMENT_TO_ID

SEED = 20261129
"""Seed of every split; changing it changes every committed split file."""

_URL = re.compile(r"https?://\S+")
_WS = re.compile(r"\s+")


def canonical_text(text: str) -> str:
    """Text with URLs removed, whitespace collapsed and lower-cased: the key used for twin detection."""
    return _WS.sub(" ", _URL.sub(" ", text)).strip().lower()


def make_fpb_splits(combined_csv: Path) -> dict[str, pd.DataFrame]:
    """Split FPB into ``fpb_train`` / ``fpb_dev`` / ``fpb_test`` (see module docstring for the protocol)."""
    df = pd.read_csv(combined_csv)
    df = df[df["label_conflict"] == 0].drop_duplicates("sentence")
    df = df.rename(columns={"sentence": "text"})
    df["label"] = df["label"].map(FPB_SENTIMENT_TO_ID)
    df = df[["text", "label", "agreement"]].reset_index(drop=True)
    rest, test = train_test_split(df, test_size=0.2, random_state=SEED, stratify=df["label"])
    train, dev = train_test_split(rest, test_size=0.1, random_state=SEED, stratify=rest["label"])
    return {"fpb_train": train, "fpb_dev": dev, "fpb_test": test}


def make_tweet_splits(
    train_csv: Path, valid_csv: Path, prefix: str, label_map: dict[int, int] | None
) -> dict[str, pd.DataFrame]:
    """Split an official train/validation tweet set into train / dev / future_labels / valid / valid_dedup."""
    train_full = pd.read_csv(train_csv)
    valid = pd.read_csv(valid_csv)
    if label_map is not None:
        train_full["label"] = train_full["label"].map(label_map)
        valid["label"] = valid["label"].map(label_map)
    rest, future = train_test_split(train_full, test_size=0.1, random_state=SEED, stratify=train_full["label"])
    train, dev = train_test_split(rest, test_size=0.1, random_state=SEED, stratify=rest["label"])
    train_keys = set(train_full["text"].map(canonical_text))
    dedup = valid[~valid["text"].map(canonical_text).isin(train_keys)]
    return {
        f"{prefix}_train": train,
        f"{prefix}_dev": dev,
        f"{prefix}_future_labels": future,
        f"{prefix}_valid": valid,
        f"{prefix}_valid_dedup": dedup,
    }


def build_all(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Build every split from the copied source datasets under ``data_dir``; returns name -> frame."""
    splits: dict[str, pd.DataFrame] = {}
    splits.update(make_fpb_splits(data_dir / "financial_phrasebank" / "financial_phrasebank_combined.csv"))
    topic = data_dir / "twitter_financial_news_topic"
    splits.update(make_tweet_splits(topic / "topic_train.csv", topic / "topic_valid.csv", "topic", None))
    sent = data_dir / "twitter_financial_news_sentiment"
    splits.update(
        make_tweet_splits(sent / "sent_train.csv", sent / "sent_valid.csv", "sentiment", TWEET_SENTIMENT_TO_ID)
    )
    return splits


def main() -> None:
    """Write ``data/splits/*.csv`` and print the row counts."""
    from finsentry.common.paths import DATA_DIR

    out = DATA_DIR / "splits"
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in build_all(DATA_DIR).items():
        frame.to_csv(out / f"{name}.csv", index=False)
        print(f"{name}: {len(frame)}")


if __name__ == "__main__":
    main()
