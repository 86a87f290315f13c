"""The shipped model gives a text the same probabilities whatever its batch, position and padding (issue 14).

Static INT8 fixes activation scales at calibration; the dynamic INT8 model it replaced computed them per batch
and moved probabilities by up to ~0.04 between batchings of the same texts.
"""

from __future__ import annotations

import json

import numpy as np

from finsentry.common.paths import SHIPPED_MODEL_DIR
from finsentry.model.datasets import load_examples
from finsentry.model.scorer import Scorer

TOLERANCE = 1e-4


def _probabilities(scorer: Scorer, texts: list[str], order: list[int], batch: int) -> np.ndarray:
    """Sentiment probabilities and the top topic's probability of ``texts`` scored in ``order``, ``batch``
    texts per predict call, returned in the texts' own order: ``[n, 4]``."""
    out = np.zeros((len(texts), 4))
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        for i, p in zip(idx, scorer.predict([texts[i] for i in idx]), strict=True):
            out[i] = [*p.sentiment_probs, p.topic_prob]
    return out


def test_shipped_model_is_static_int8() -> None:
    labels = json.loads((SHIPPED_MODEL_DIR / "labels.json").read_text())
    assert labels.get("quantization") == "static", labels


def test_same_text_same_probabilities_in_three_batchings() -> None:
    # 500 real texts: FPB test sentences and tweets of the sentiment validation set, of every length
    texts = [e.text for e in load_examples("fpb_test", 250)] + [e.text for e in load_examples("sentiment_valid", 250)]
    assert len(texts) == 500
    scorer = Scorer.load(SHIPPED_MODEL_DIR)
    n = len(texts)
    whole = _probabilities(scorer, texts, list(range(n)), n)  # one call: length-sorted batches of the scorer
    sevens = _probabilities(scorer, texts, list(range(n)), 7)  # arrival order, 7 at a time
    rng = np.random.default_rng(14)
    shuffled = _probabilities(scorer, texts, [int(i) for i in rng.permutation(n)], 64)  # other neighbours
    ones = _probabilities(scorer, texts, list(range(n))[:100], 1)[:100]  # alone: no padding at all
    for name, other in (("batches of 7", sevens), ("shuffled batches of 64", shuffled)):
        diff = np.abs(whole - other)
        worst = int(diff.max(axis=1).argmax())
        assert diff.max() <= TOLERANCE, f"{name}: max |dp| {diff.max():.2e} on text {worst}: {texts[worst]!r}"
    diff = np.abs(whole[:100] - ones)
    assert diff.max() <= TOLERANCE, f"one text per call: max |dp| {diff.max():.2e}"
