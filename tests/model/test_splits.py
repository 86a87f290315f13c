"""The committed split files: fixed counts, no overlap, rebuilt identically from the source data."""

from __future__ import annotations

import pandas as pd
import pytest

from finsentry.common.paths import DATA_DIR, SPLITS_DIR
from finsentry.model.splits import build_all, canonical_text

EXPECTED_ROWS = {
    "fpb_train": 3481,
    "fpb_dev": 387,
    "fpb_test": 968,
    "topic_train": 13761,
    "topic_dev": 1530,
    "topic_future_labels": 1699,
    "topic_valid": 4117,
    "topic_valid_dedup": 3439,
    "sentiment_train": 7729,
    "sentiment_dev": 859,
    "sentiment_future_labels": 955,
    "sentiment_valid": 2388,
    "sentiment_valid_dedup": 2349,
}


def split(name: str) -> pd.DataFrame:
    return pd.read_csv(SPLITS_DIR / f"{name}.csv", keep_default_na=False)


@pytest.mark.parametrize(("name", "rows"), sorted(EXPECTED_ROWS.items()))
def test_split_row_counts(name, rows):
    assert len(split(name)) == rows


def test_fpb_protocol():
    parts = {n: split(f"fpb_{n}") for n in ("train", "dev", "test")}
    assert sum(len(p) for p in parts.values()) == 4836
    texts = {n: set(p["text"]) for n, p in parts.items()}
    assert not texts["test"] & texts["train"]
    assert not texts["test"] & texts["dev"]
    assert not texts["dev"] & texts["train"]
    test = parts["test"]
    assert 420 <= int((test["agreement"] == 100).sum()) <= 460  # ~441 all-agree in FinBERT's split
    # stratified: class shares of test within 1 point of the whole set
    whole = pd.concat(parts.values())["label"].value_counts(normalize=True)
    assert (test["label"].value_counts(normalize=True) - whole).abs().max() < 0.01


@pytest.mark.parametrize("prefix", ["topic", "sentiment"])
def test_tweet_splits_are_disjoint_and_future_labels_never_in_train(prefix):
    train, dev, future = (split(f"{prefix}_{n}") for n in ("train", "dev", "future_labels"))
    official = pd.read_csv(
        DATA_DIR
        / {
            "topic": "twitter_financial_news_topic/topic_train.csv",
            "sentiment": "twitter_financial_news_sentiment/sent_train.csv",
        }[prefix]
    )
    assert len(train) + len(dev) + len(future) == len(official)
    # row identity: (text, label) multisets add up to the official train split
    combined = pd.concat([train, dev, future])[["text"]].sort_values("text").reset_index(drop=True)
    assert combined["text"].tolist() == sorted(official["text"].tolist())


def test_dedup_view_has_no_train_twin():
    train_keys = {
        canonical_text(t) for t in pd.read_csv(DATA_DIR / "twitter_financial_news_topic/topic_train.csv")["text"]
    }
    dedup = split("topic_valid_dedup")
    assert not any(canonical_text(t) in train_keys for t in dedup["text"])


def test_committed_splits_rebuild_identically():
    for name, frame in build_all(DATA_DIR).items():
        committed = split(name)
        assert committed["text"].tolist() == frame["text"].astype(str).tolist(), name
        assert committed["label"].tolist() == frame["label"].tolist(), name
