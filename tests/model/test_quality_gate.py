"""The gate rule on controlled predictions: tolerance = max(0.5 point, bootstrap half-width); the slice is rejected
only when the paired-bootstrap interval of its mean delta lies below 0 (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

from finsentry.model.gate import compare_set, compare_slice, decide, render_gate_md
from finsentry.model.quality import macro_f1, paired_bootstrap_delta
from finsentry.model.retrain import RetrainResult, describe

RNG = np.random.default_rng(7)


def corrupt(gold: np.ndarray, share: float, n_classes: int, seed: int) -> np.ndarray:
    """``gold`` with ``share`` of the rows moved to another class (deterministic)."""
    rng = np.random.default_rng(seed)
    pred = gold.copy()
    rows = rng.choice(len(gold), int(share * len(gold)), replace=False)
    pred[rows] = (pred[rows] + rng.integers(1, n_classes, len(rows))) % n_classes
    return pred


def test_same_predictions_pass_with_zero_delta():
    gold = RNG.integers(0, 3, 500)
    pred = corrupt(gold, 0.3, 3, 1)
    row = compare_set("fpb_test", "sentiment", gold, pred, pred, 3, n_boot=300)
    assert row["delta"] == 0.0 and row["delta_ci95"] == [0.0, 0.0]
    assert row["tolerance"] == pytest.approx(0.005) and row["passed"]


def test_a_large_drop_is_rejected_and_the_reason_names_the_set():
    gold = RNG.integers(0, 3, 800)
    champion = corrupt(gold, 0.2, 3, 2)
    challenger = corrupt(gold, 0.45, 3, 3)
    row = compare_set("sentiment_valid", "sentiment", gold, champion, challenger, 3, n_boot=300)
    assert row["delta"] == pytest.approx(macro_f1(gold, challenger, 3) - macro_f1(gold, champion, 3))
    assert row["delta"] < -0.15 and not row["passed"]
    gate = decide([row], compare_slice({}))
    assert gate["decision"] == "reject"
    assert gate["reasons"][0].startswith("sentiment_valid (sentiment): macro-F1 ")


def test_tolerance_is_the_larger_of_half_a_point_and_the_half_width():
    gold = RNG.integers(0, 20, 300)
    champion = corrupt(gold, 0.4, 20, 4)
    challenger = corrupt(gold, 0.4, 20, 5)  # a different 40% wrong: noisy difference, wide interval
    row = compare_set("topic_valid", "topic", gold, champion, challenger, 20, n_boot=300)
    lo, hi = row["delta_ci95"]
    assert row["half_width"] == pytest.approx((hi - lo) / 2)
    assert row["half_width"] > 0.005 and row["tolerance"] == row["half_width"]
    assert row["passed"] == (row["delta"] >= -row["half_width"])

    big = RNG.integers(0, 3, 4000)
    champion = corrupt(big, 0.2, 3, 6)
    challenger = champion.copy()
    challenger[np.flatnonzero(challenger == big)[:8]] = (big[np.flatnonzero(challenger == big)[:8]] + 1) % 3
    row = compare_set("fpb_test", "sentiment", big, champion, challenger, 3, n_boot=300)
    assert -0.005 < row["delta"] < 0 and row["half_width"] < 0.005  # tiny, consistent drop: 0.5 point rules
    assert row["tolerance"] == pytest.approx(0.005) and row["passed"]


def test_slice_must_not_get_worse_beyond_the_interval():
    gold = RNG.integers(0, 3, 200)
    better = compare_slice({"sentiment": (gold, corrupt(gold, 0.4, 3, 8), corrupt(gold, 0.2, 3, 9), 3)}, n_boot=200)
    worse = compare_slice({"sentiment": (gold, corrupt(gold, 0.2, 3, 8), corrupt(gold, 0.4, 3, 9), 3)}, n_boot=200)
    assert better["passed"] and better["delta"] > 0
    assert not worse["passed"] and worse["delta"] < 0 and worse["delta_ci95"][1] < 0, worse["delta_ci95"]
    gate = decide([], worse)
    assert gate["decision"] == "reject" and gate["reasons"][0].startswith("held-out new labels: mean macro-F1 delta")
    lo, hi = worse["delta_ci95"]
    assert f"95% paired CI [{100 * lo:+.2f}, {100 * hi:+.2f}]" in gate["reasons"][0]
    empty = compare_slice({"topic": (np.zeros(0, int),) * 3 + (20,)})
    assert empty["passed"] and empty["skipped"] == "no labels held out" and empty["delta_ci95"] is None


BALANCED = np.arange(300) % 2  # two classes, 150 each


def flipped(rows: range) -> np.ndarray:
    """``BALANCED`` with ``rows`` moved to the other class: macro-F1 = accuracy = 1 - len(rows) / 300."""
    pred = BALANCED.copy()
    pred[list(rows)] = 1 - pred[list(rows)]
    return pred


def test_slightly_worse_within_the_noise_passes_the_slice_rule():
    champion, challenger = flipped(range(0, 30)), flipped(range(30, 66))  # 0.90 vs 0.88, different items wrong
    assert macro_f1(BALANCED, champion, 2) == pytest.approx(0.90)
    assert macro_f1(BALANCED, challenger, 2) == pytest.approx(0.88)
    out = compare_slice({"sentiment": (BALANCED, champion, challenger, 2)}, n_boot=1000)
    lo, hi = out["delta_ci95"]
    assert out["delta"] == pytest.approx(-0.02)
    assert lo < -0.02 < 0 <= hi and out["passed"], f"interval [{lo:+.4f}, {hi:+.4f}] should span 0"
    gate = decide([], out)
    assert gate["decision"] == "promote" and gate["reasons"] == []  # the old rule (delta >= 0) rejected this


def test_clearly_worse_is_rejected_on_the_slice():
    champion, challenger = flipped(range(0, 30)), flipped(range(150, 300))  # 0.90 vs 0.50 on 300 items
    assert macro_f1(BALANCED, challenger, 2) == pytest.approx(0.50)
    out = compare_slice({"sentiment": (BALANCED, champion, challenger, 2)}, n_boot=1000)
    lo, hi = out["delta_ci95"]
    assert out["delta"] == pytest.approx(-0.40)
    assert lo <= -0.40 <= hi < 0 and not out["passed"], f"interval [{lo:+.4f}, {hi:+.4f}] should lie below 0"
    assert decide([], out)["decision"] == "reject"


def test_slice_interval_is_a_paired_bootstrap_of_the_mean_over_tasks():
    topic = (BALANCED, flipped(range(0, 30)), flipped(range(30, 66)), 2)
    sentiment = (BALANCED, flipped(range(0, 30)), flipped(range(0, 90)), 2)
    one = compare_slice({"topic": topic}, n_boot=300, seed=3)
    same = paired_bootstrap_delta(macro_f1, *topic, n_boot=300, seed=3)  # one task: the per-task bootstrap itself
    assert one["delta_ci95"] == list(same[1:]) == one["tasks"]["topic"]["delta_ci95"]
    both = compare_slice({"topic": topic, "sentiment": sentiment}, n_boot=300, seed=3)
    assert both["tasks"]["topic"]["delta_ci95"] == one["tasks"]["topic"]["delta_ci95"]  # same seed, same draws
    assert both == compare_slice({"topic": topic, "sentiment": sentiment}, n_boot=300, seed=3)  # deterministic
    lo, hi = both["delta_ci95"]
    assert both["delta"] == pytest.approx((-0.02 - 0.20) / 2) and lo < both["delta"] < hi
    # the mean of two independent resamplings is narrower than the wider task's interval
    widths = [t["delta_ci95"][1] - t["delta_ci95"][0] for t in both["tasks"].values()]
    assert hi - lo < max(widths)


def test_slice_delta_is_the_mean_over_tasks():
    t_gold = RNG.integers(0, 20, 150)
    s_gold = RNG.integers(0, 3, 150)
    out = compare_slice(
        {
            "topic": (t_gold, corrupt(t_gold, 0.3, 20, 1), corrupt(t_gold, 0.2, 20, 2), 20),
            "sentiment": (s_gold, corrupt(s_gold, 0.2, 3, 3), corrupt(s_gold, 0.3, 3, 4), 3),
        },
        n_boot=200,
    )
    assert out["delta"] == pytest.approx((out["tasks"]["topic"]["delta"] + out["tasks"]["sentiment"]["delta"]) / 2)


def test_card_section_lists_every_figure():
    gold = RNG.integers(0, 3, 300)
    rows = [compare_set("fpb_test", "sentiment", gold, corrupt(gold, 0.2, 3, 1), corrupt(gold, 0.5, 3, 2), 3)]
    gate = decide(rows, compare_slice({"sentiment": (gold, gold, gold, 3)}, n_boot=100))
    gate["champion"] = {"version": "v0001", "model_version": "minilm-mt-v1"}
    text = render_gate_md(gate)
    assert "Decision: **reject**" in text and "| fpb_test | sentiment | 300 |" in text
    assert "| NO |" in text
    assert "Mean delta +0.00 points, 95% paired CI [+0.00, +0.00]: not worse beyond the interval." in text


def test_console_summary_prints_the_slice_interval(tmp_path):
    slice_ = compare_slice({"sentiment": (BALANCED, flipped(range(0, 30)), flipped(range(150, 300)), 2)}, n_boot=200)
    gate = decide([], slice_)
    text = describe(RetrainResult("reject", "v0002", False, gate, tmp_path / "card.json"))
    lo, hi = slice_["delta_ci95"]
    assert f"  reason: held-out new labels: mean macro-F1 delta -40.00 points, 95% paired CI [{100 * lo:+.2f}" in text
    assert (
        f"  held-out new labels: mean delta -40.00 pts, 95% paired CI [{100 * lo:+.2f}, {100 * hi:+.2f}]: "
        "WORSE beyond the interval" in text
    )
