"""Label maps, slugs and the metric functions against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from finsentry.model.labels import (
    SENTIMENT_LABELS,
    TOPIC_LABELS,
    TOPIC_SLUGS,
    TWEET_SENTIMENT_TO_ID,
    slugify,
)
from finsentry.model.quality import accuracy, bootstrap_ci, confusion, macro_f1, paired_bootstrap_delta


def test_label_spaces_match_the_dataset_files(tmp_path):
    import pandas as pd

    from finsentry.common.paths import DATA_DIR

    topics = pd.read_csv(DATA_DIR / "twitter_financial_news_topic" / "topic_labels.csv")
    assert tuple(topics.sort_values("label")["label_name"]) == TOPIC_LABELS
    sent = pd.read_csv(DATA_DIR / "twitter_financial_news_sentiment" / "sent_labels.csv")
    names = dict(zip(sent["label"], sent["label_name"], strict=True))
    mapped = {names[k]: SENTIMENT_LABELS[v] for k, v in TWEET_SENTIMENT_TO_ID.items()}
    assert mapped == {"Bearish": "negative", "Bullish": "positive", "Neutral": "neutral"}


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Fed | Central Banks", "fed_central_banks"),
        ("M&A | Investments", "m_a_investments"),
        ("IPO", "ipo"),
        ("Gold | Metals | Materials", "gold_metals_materials"),
    ],
)
def test_slugs(name, slug):
    assert slugify(name) == slug


def test_slugs_are_unique_and_empty_slug_is_an_error():
    assert len(set(TOPIC_SLUGS)) == 20
    with pytest.raises(ValueError, match="no alphanumeric"):
        slugify(" | ")


def test_metrics_match_hand_values_and_sklearn():
    gold = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0, 2])
    assert accuracy(gold, pred, 3) == pytest.approx(5 / 7)
    # class 0: p=1/2 r=1/2 f=0.5; class 1: p=2/3 r=1 f=0.8; class 2: p=1 r=2/3 f=0.8
    assert macro_f1(gold, pred, 3) == pytest.approx((0.5 + 0.8 + 0.8) / 3)
    assert macro_f1(gold, pred, 3) == pytest.approx(f1_score(gold, pred, average="macro"))
    assert accuracy(gold, pred, 3) == pytest.approx(accuracy_score(gold, pred))
    assert confusion(gold, pred, 3).tolist() == confusion_matrix(gold, pred).tolist()


def test_bootstrap_interval_brackets_the_estimate_and_paired_delta_of_identical_is_zero():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 400)
    pred = np.where(rng.random(400) < 0.8, gold, rng.integers(0, 3, 400))
    lo, hi = bootstrap_ci(accuracy, gold, pred, 3)
    assert lo < accuracy(gold, pred, 3) < hi
    assert 0.02 < hi - lo < 0.15
    delta, dlo, dhi = paired_bootstrap_delta(macro_f1, gold, pred, pred, 3)
    assert (delta, dlo, dhi) == (0.0, 0.0, 0.0)
