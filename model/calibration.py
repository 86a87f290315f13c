"""Probability calibration: expected calibration error and temperature scaling (numpy + scipy, no torch).

Guo, Pleiss, Sun and Weinberger 2017, "On Calibration of Modern Neural Networks" (ICML), sections 2 and 4.2:
a classifier is calibrated when, among the inputs it gives confidence ``p``, a share ``p`` is right.
:func:`expected_calibration_error` measures the gap on equal-width confidence bins (their eq. 3);
:func:`fit_temperature` fits the one scalar ``T > 0`` of temperature scaling, ``softmax(logits / T)``, by
minimizing the negative log-likelihood on held-out (dev) data. Dividing every logit by the same ``T`` leaves
the argmax, hence accuracy, unchanged.
"""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15
"""Equal-width confidence bins of :func:`expected_calibration_error` (Guo et al. report 15)."""

TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)
"""Search interval of :func:`fit_temperature`; an optimum outside it returns the nearer bound."""


def _check(scores: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as float64 ``[n, k]`` and ``labels`` as int64 ``[n]``, or a ValueError saying what is wrong."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < 2:
        raise ValueError(f"{what} must be a non-empty [n, k] array with k >= 2; got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels must have shape ({scores.shape[0]},) to match {what}; got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}); got {labels.min()}..{labels.max()}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{what} contain non-finite values")
    return scores, labels.astype(np.int64)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error (Guo et al. 2017, eq. 3) on ``bins`` equal-width confidence bins.

    Each example's confidence is its largest probability and its prediction the argmax (first on ties). Bin
    ``m`` (1-based) holds the confidences in ``((m - 1) / bins, m / bins]``;
    ``ECE = sum_m |B_m| / n * |accuracy(B_m) - mean confidence(B_m)|``, 0 for a perfectly calibrated model.

    Args:
        probs: ``[n, k]`` float, one probability row per example (rows are not renormalized).
        labels: ``[n]`` int, gold class ids in ``[0, k)``.
        bins: number of equal-width bins over ``[0, 1]`` (>= 1).

    Returns:
        ECE as a Python float in ``[0, 1]``.

    Raises:
        ValueError: empty input, shapes that do not match, labels outside ``[0, k)``, non-finite
            probabilities or ``bins < 1``.

    Four examples, five bins: confidences 0.9 (right), 0.7 (wrong), 0.7 (right), 0.55 (wrong) fall in
    bins (0.8, 1], (0.6, 0.8] twice and (0.4, 0.6]: ``1/4 * |1 - 0.9| + 2/4 * |0.5 - 0.7| + 1/4 * |0 - 0.55|
    = 0.025 + 0.1 + 0.1375 = 0.2625``.

    >>> probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.45, 0.55]])
    >>> round(expected_calibration_error(probs, np.array([0, 1, 1, 0]), bins=5), 6)
    0.2625
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1; got {bins}")
    probs, labels = _check(probs, labels, "probs")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    which = np.searchsorted(inner_edges, confidence, side="left")  # bin m holds (edge[m], edge[m + 1]]
    # per bin: |sum of correct - sum of confidence| = |B_m| * |accuracy(B_m) - confidence(B_m)|
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))
    return float(gap.sum() / len(labels))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` of ``[n, k]`` logits as float64 ``[n, k]`` probabilities.

    >>> softmax(np.array([[0.0, np.log(3.0)]]), temperature=1.0).round(6).tolist()
    [[0.25, 0.75]]
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nll(scaled: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(scaled)`` (``scaled`` ``[n, k]`` float64)."""
    top = scaled.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T > 0`` minimizing the mean NLL of ``softmax(logits / T)`` (Guo et al. 2017, 4.2).

    A bounded 1-D search (``scipy.optimize.minimize_scalar``, method ``bounded``: Brent's golden-section
    with parabolic steps) over ``log T`` in :data:`TEMPERATURE_BOUNDS`, to ``1e-6`` in ``log T``;
    deterministic (same input, same ``T``). ``T > 1`` softens over-confident probabilities, ``T < 1``
    sharpens under-confident ones.

    Args:
        logits: ``[n, k]`` float raw logits (before softmax) of held-out examples, k >= 2.
        labels: ``[n]`` int gold class ids in ``[0, k)``.

    Returns:
        ``T`` as a Python float in :data:`TEMPERATURE_BOUNDS` (a bound when the optimum lies beyond it, e.g.
        the upper one for logits that carry no information about the labels).

    Raises:
        ValueError: empty input, shapes that do not match, labels outside ``[0, k)`` or non-finite logits.

    Four examples with logit margin 2 for the predicted class, three of them right: the NLL is least where
    ``sigmoid(2 / T) = 3/4``, i.e. ``T = 2 / ln 3 = 1.8205``.

    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])
    >>> round(fit_temperature(logits, np.array([0, 1, 0, 1])), 4)
    1.8205
    """
    from scipy.optimize import minimize_scalar

    logits, labels = _check(logits, labels, "logits")
    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: _nll(logits / math.exp(log_t), labels),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))
