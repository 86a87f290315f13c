"""Expected calibration error and temperature scaling (:mod:`finsentry.model.calibration`), hand-checked values."""

from __future__ import annotations

import numpy as np
import pytest

from finsentry.model.calibration import TEMPERATURE_BOUNDS, expected_calibration_error, fit_temperature


def test_ece_of_a_constructed_example_matches_the_hand_computed_value():
    # 10 bins. Confidences 0.95 x4 (3 right), 0.65 x2 (both wrong), 0.35 x1 (right; three classes):
    # bin (0.9, 1]: 4/7 * |0.75 - 0.95| = 0.8/7; bin (0.6, 0.7]: 2/7 * |0 - 0.65| = 1.3/7;
    # bin (0.3, 0.4]: 1/7 * |1 - 0.35| = 0.65/7; total 2.75 / 7.
    probs = np.array(
        [[0.95, 0.03, 0.02]] * 4 + [[0.65, 0.2, 0.15]] * 2 + [[0.35, 0.33, 0.32]],
    )
    labels = np.array([0, 0, 0, 1, 2, 1, 0])
    got = expected_calibration_error(probs, labels, bins=10)
    assert got == pytest.approx(2.75 / 7, abs=1e-12), got


def test_ece_is_zero_when_confidence_equals_accuracy_in_every_bin_and_one_bin_gives_the_global_gap():
    probs = np.array([[0.75, 0.25]] * 4 + [[0.5, 0.5]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 1])  # 3/4 right at 0.75; 1/2 right at 0.5 (argmax 0 on the tie)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    # one bin: |accuracy - mean confidence| = |4/6 - (4 * 0.75 + 2 * 0.5) / 6| = 0
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(0.0, abs=1e-12)
    wrong = np.ones(6, dtype=int)  # every argmax is class 0: nothing right: ECE = mean confidence = 4/6
    assert expected_calibration_error(probs, wrong, bins=1) == pytest.approx(4 / 6, abs=1e-12)


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_sampled_at(t_true):
    rng = np.random.default_rng(14)
    n, k = 20_000, 3
    logits = rng.normal(0.0, 3.0, size=(n, k))
    scaled = logits / t_true
    p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)  # one draw from each row of p
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(t_true, rel=0.05), f"T_true={t_true} fitted={fitted:.4f}"
    assert fit_temperature(logits, labels) == fitted  # deterministic
    # the fitted T calibrates: ECE after is small and no worse than with a wrong T
    probs = np.exp(logits / fitted - (logits / fitted).max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    ece = expected_calibration_error(probs, labels)
    assert ece < 0.02, f"ECE after fitting T={fitted:.3f}: {ece:.4f}"


def test_fit_temperature_hits_the_upper_bound_when_logits_carry_no_information():
    logits = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert fit_temperature(logits, np.array([0, 1])) == pytest.approx(TEMPERATURE_BOUNDS[1], rel=1e-4)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "non-empty"),
        (np.zeros(3), np.zeros(3, dtype=int), "non-empty"),
        (np.zeros((4, 3)), np.zeros(3, dtype=int), "shape"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), "integers"),
        (np.zeros((2, 3)), np.array([0, 3]), "lie in"),
        (np.array([[np.nan, 0.0], [0.0, 0.0]]), np.array([0, 1]), "non-finite"),
    ],
)
def test_bad_input_is_a_clear_value_error(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        fit_temperature(scores, labels)
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(scores, labels)
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0]), bins=0)
