"""Classification quality of a model: accuracy, macro-F1, confusion matrices, with bootstrap confidence
intervals (numpy only). Named ``quality``, not ``metrics``: in this project "metrics" are the Prometheus series
the services serve (``monitor/metrics.py``, ``common/metric_spec.py``, docs/metrics.md).

Macro-F1 is the unweighted mean of per-class F1 (classes absent from both gold and prediction are skipped).
Confidence intervals are percentile bootstrap intervals (Efron & Tibshirani 1993, ch. 13) over resampled
examples, 1,000 resamples, fixed seed.

>>> round(macro_f1(np.array([0, 1, 1]), np.array([0, 1, 0]), 2), 3)
0.667
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

QualityScore = Callable[[np.ndarray, np.ndarray, int], float]
"""A score of predictions against gold labels: ``(gold [N] int, pred [N] int, n_classes) -> float``."""


def accuracy(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Share of ``pred == gold``; both int arrays ``[N]``. ``n_classes`` is unused (same signature as F1)."""
    return float(np.mean(gold == pred)) if len(gold) else float("nan")


def confusion(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix ``[n_classes, n_classes]`` int64; rows = gold, columns = predicted."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (gold, pred), 1)
    return m


def per_class(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support (float arrays ``[n_classes]``; 0 where undefined)."""
    m = confusion(gold, pred, n_classes)
    tp = np.diag(m).astype(float)
    predicted = m.sum(axis=0).astype(float)
    support = m.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_f1(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over classes present in gold or prediction."""
    stats = per_class(gold, pred, n_classes)
    present = (stats["support"] > 0) | (confusion(gold, pred, n_classes).sum(axis=0) > 0)
    return float(stats["f1"][present].mean()) if present.any() else float("nan")


def bootstrap_ci(
    metric: QualityScore, gold: np.ndarray, pred: np.ndarray, n_classes: int, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap interval ``(low, high)`` of ``metric`` over resampled examples."""
    idx = resample_indices(len(gold), n_boot, seed)
    return percentile_interval(np.array([metric(gold[i], pred[i], n_classes) for i in idx]))


def resample_indices(n: int, n_boot: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``n_boot`` bootstrap resamples of ``n`` examples: int ``[n_boot, n]`` row indices drawn with replacement
    (``seed``: an int for a fresh generator, or a :class:`numpy.random.Generator` to draw from)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def paired_bootstrap_replicates(
    metric: QualityScore,
    gold: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_classes: int,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """``metric(b) - metric(a)`` on each of ``n_boot`` resamples of the examples, both models on the same one.

    ``seed`` is an int (a fresh generator) or a :class:`numpy.random.Generator` to draw from, so several
    statistics (e.g. one per task of a slice) can be resampled within the same replicates from one seed.
    Returns float ``[n_boot]``.
    """
    idx = resample_indices(len(gold), n_boot, seed)
    return np.array([metric(gold[i], pred_b[i], n_classes) - metric(gold[i], pred_a[i], n_classes) for i in idx])


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval ``(low, high)`` of bootstrap replicates."""
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap_delta(
    metric: QualityScore,
    gold: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_classes: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Paired bootstrap of ``metric(b) - metric(a)`` on the same resampled examples: ``(delta, low, high)``."""
    deltas = paired_bootstrap_replicates(metric, gold, pred_a, pred_b, n_classes, n_boot, seed)
    low, high = percentile_interval(deltas)
    return metric(gold, pred_b, n_classes) - metric(gold, pred_a, n_classes), low, high


def summarize(gold: np.ndarray, pred: np.ndarray, n_classes: int, labels: tuple[str, ...]) -> dict:
    """Accuracy and macro-F1 with 95% bootstrap CIs, per-class P/R/F1 and the confusion matrix, JSON-ready."""
    stats = per_class(gold, pred, n_classes)
    return {
        "n": int(len(gold)),
        "accuracy": accuracy(gold, pred, n_classes),
        "accuracy_ci95": bootstrap_ci(accuracy, gold, pred, n_classes),
        "macro_f1": macro_f1(gold, pred, n_classes),
        "macro_f1_ci95": bootstrap_ci(macro_f1, gold, pred, n_classes),
        "per_class": {
            name: {k: float(stats[k][i]) for k in ("precision", "recall", "f1", "support")}
            for i, name in enumerate(labels)
        },
        "confusion": confusion(gold, pred, n_classes).tolist(),
    }
