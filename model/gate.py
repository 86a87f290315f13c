"""The champion/challenger quality gate (pure numpy; no model loading here).

Rule (issue 8; rule 2 since issue 14): promote the challenger only if

1. on every gated frozen evaluation set its macro-F1 does not drop by more than
   ``max(min_drop_points / 100, half-width of the 95% paired-bootstrap interval of the difference)``; and
2. on the held-out slice of the new labels it is not worse *beyond the noise*: the slice statistic is the mean
   over the slice's tasks of the macro-F1 difference (challenger - champion), its 95% interval comes from a
   paired bootstrap of that statistic itself (every replicate resamples each task's examples, scores both
   models on the same resample and averages the tasks' differences), and the challenger is rejected there only
   when the upper end of that interval is below 0. Skipped, and said so, when no label is held out.

Before issue 14 rule 2 was the point estimate ``mean delta >= 0``, which on a slice of a few hundred items
rejected on noise (docs/retraining.md, worked example: -2.06 points with per-task intervals spanning zero).

Gated sets (:data:`GATED_SETS`): ``topic_valid`` for the topic task, ``fpb_test`` and ``sentiment_valid`` for
sentiment (two sources). The ``*_dedup`` and ``fpb_test_allagree`` views are subsets of these and are reported
in the card, not gated (overlapping tests would only add false rejections).

The paired bootstrap (:func:`finsentry.model.quality.paired_bootstrap_replicates`) resamples examples once per
replicate and scores both models on the same resample, so the interval is that of the *difference*
(Efron & Tibshirani 1993, ch. 13 and 16; Koehn 2004 for its use in comparing two systems). For the slice, one
generator seeded with ``seed`` draws every task's resamples in turn, replicate by replicate index, so the
slice interval and the per-task intervals come from the same resamples.

>>> import numpy as np
>>> gold = np.array([0, 1, 2] * 50)
>>> row = compare_set("fpb_test", "sentiment", gold, gold, gold, 3, n_boot=200)
>>> row["delta"], row["passed"]
(0.0, True)

On the slice (two balanced classes, 300 items; a prediction is right or flipped, so macro-F1 = accuracy): the
champion is wrong on items 0-29 (0.90); a challenger wrong on items 30-65 (0.88) is 2 points worse, within the
noise, and passes; one wrong on items 150-299 (0.50) is worse beyond the interval and is rejected:

>>> gold = np.arange(300) % 2
>>> def flipped(rows): return np.where(np.isin(np.arange(300), rows), 1 - gold, gold)
>>> champion = flipped(range(0, 30))
>>> noise = compare_slice({"sentiment": (gold, champion, flipped(range(30, 66)), 2)}, n_boot=200)
>>> round(noise["delta"], 4), noise["delta_ci95"][0] < 0 <= noise["delta_ci95"][1], noise["passed"]
(-0.02, True, True)
>>> worse = compare_slice({"sentiment": (gold, champion, flipped(range(150, 300)), 2)}, n_boot=200)
>>> round(worse["delta"], 4), worse["delta_ci95"][1] < 0, worse["passed"]
(-0.4, True, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from finsentry.model.quality import macro_f1, paired_bootstrap_delta, paired_bootstrap_replicates, percentile_interval

GATED_SETS: dict[str, tuple[str, ...]] = {"topic": ("topic_valid",), "sentiment": ("fpb_test", "sentiment_valid")}
"""Task -> frozen evaluation sets whose macro-F1 the gate protects."""


def compare_set(
    name: str,
    task: str,
    gold: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    n_classes: int,
    min_drop_points: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare two models' predictions on one frozen set (int arrays ``[N]`` of class ids).

    Returns ``{"set", "task", "n", "champion_macro_f1", "challenger_macro_f1", "delta", "delta_ci95": [lo, hi],
    "half_width", "tolerance", "passed"}``; macro-F1 values in [0, 1] (1 point = 0.01), ``delta`` =
    challenger - champion, ``passed`` = ``delta >= -tolerance``.
    """
    delta, low, high = paired_bootstrap_delta(macro_f1, gold, champion, challenger, n_classes, n_boot, seed)
    half_width = (high - low) / 2
    tolerance = max(min_drop_points / 100, half_width)
    return {
        "set": name,
        "task": task,
        "n": int(len(gold)),
        "champion_macro_f1": macro_f1(gold, champion, n_classes),
        "challenger_macro_f1": macro_f1(gold, challenger, n_classes),
        "delta": float(delta),
        "delta_ci95": [low, high],
        "half_width": float(half_width),
        "tolerance": float(tolerance),
        "passed": bool(delta >= -tolerance),
    }


def compare_slice(
    per_task: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Compare the models on the held-out new labels (rule 2 of the module docstring).

    Args:
        per_task: task -> ``(gold [N], champion [N], challenger [N], n_classes)``; tasks with no rows are left out.

    Returns ``{"tasks": {task: {"n", "champion_macro_f1", "challenger_macro_f1", "delta", "delta_ci95"}},
    "delta": mean of the tasks' deltas (None if no rows), "delta_ci95": [lo, hi] of that mean (paired bootstrap,
    the tasks resampled within each replicate), "passed": hi >= 0, i.e. not worse beyond the interval (True,
    with ``skipped``, when nothing is held out)}``.
    """
    rng = np.random.default_rng(seed)
    tasks: dict[str, dict[str, Any]] = {}
    replicates = []
    for task, (gold, champ, chall, n_classes) in per_task.items():
        if len(gold) == 0:
            continue
        task_reps = paired_bootstrap_replicates(macro_f1, gold, champ, chall, n_classes, n_boot, rng)
        replicates.append(task_reps)
        champion_f1, challenger_f1 = macro_f1(gold, champ, n_classes), macro_f1(gold, chall, n_classes)
        tasks[task] = {
            "n": int(len(gold)),
            "champion_macro_f1": champion_f1,
            "challenger_macro_f1": challenger_f1,
            "delta": float(challenger_f1 - champion_f1),
            "delta_ci95": list(percentile_interval(task_reps)),
        }
    if not tasks:
        return {"tasks": {}, "delta": None, "delta_ci95": None, "passed": True, "skipped": "no labels held out"}
    delta = float(np.mean([t["delta"] for t in tasks.values()]))
    low, high = percentile_interval(np.mean(replicates, axis=0))
    return {"tasks": tasks, "delta": delta, "delta_ci95": [low, high], "passed": bool(high >= 0)}


def decide(frozen: list[dict[str, Any]], new_slice: dict[str, Any]) -> dict[str, Any]:
    """The gate's decision from :func:`compare_set` rows and :func:`compare_slice`'s result.

    Returns ``{"decision": "promote" | "reject", "reasons": [str], "frozen": frozen, "new_label_slice":
    new_slice}``; every reason names the set, the figures and the tolerance.
    """
    reasons = [
        f"{r['set']} ({r['task']}): macro-F1 {r['champion_macro_f1']:.4f} -> {r['challenger_macro_f1']:.4f} "
        f"(delta {100 * r['delta']:+.2f} points, allowed drop {100 * r['tolerance']:.2f})"
        for r in frozen
        if not r["passed"]
    ]
    if not new_slice["passed"]:
        delta, (low, high) = 100 * new_slice["delta"], new_slice["delta_ci95"]
        reasons.append(
            f"held-out new labels: mean macro-F1 delta {delta:+.2f} points, 95% paired CI "
            f"[{100 * low:+.2f}, {100 * high:+.2f}] (worse beyond the interval: its upper end must be >= 0)"
        )
    return {
        "decision": "reject" if reasons else "promote",
        "reasons": reasons,
        "frozen": frozen,
        "new_label_slice": new_slice,
    }


def render_gate_md(gate: dict[str, Any]) -> str:
    """The gate section of ``card.md``: decision, reasons and every figure (Markdown)."""
    lines = ["## Quality gate (champion/challenger)", ""]
    champion = gate.get("champion", {})
    lines += [
        f"Champion: {champion.get('version')} ({champion.get('model_version')}). "
        f"Decision: **{gate['decision']}**" + (f" ({gate['promoted']})" if gate.get("promoted") else ""),
        "",
    ]
    lines += [f"- {r}" for r in gate["reasons"]] + ([""] if gate["reasons"] else [])
    lines += [
        "| frozen set | task | n | champion macro-F1 | challenger | delta (points) | 95% CI | allowed drop | ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in gate["frozen"]:
        lo, hi = r["delta_ci95"]
        lines.append(
            f"| {r['set']} | {r['task']} | {r['n']} | {r['champion_macro_f1']:.4f} | {r['challenger_macro_f1']:.4f} "
            f"| {100 * r['delta']:+.2f} | [{100 * lo:+.2f}, {100 * hi:+.2f}] | {100 * r['tolerance']:.2f} "
            f"| {'yes' if r['passed'] else 'NO'} |"
        )
    s = gate["new_label_slice"]
    lines += ["", "Held-out new labels:" + (f" skipped ({s['skipped']})" if s.get("skipped") else ""), ""]
    if s["tasks"]:
        lines += ["| task | n | champion macro-F1 | challenger | delta (points) | 95% CI |"]
        lines += ["|---|---|---|---|---|---|"]
        for task, t in s["tasks"].items():
            lo, hi = t["delta_ci95"]
            lines.append(
                f"| {task} | {t['n']} | {t['champion_macro_f1']:.4f} | {t['challenger_macro_f1']:.4f} "
                f"| {100 * t['delta']:+.2f} | [{100 * lo:+.2f}, {100 * hi:+.2f}] |"
            )
        lo, hi = s["delta_ci95"]
        verdict = "not worse beyond the interval" if s["passed"] else "WORSE beyond the interval"
        ci = f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"
        lines += ["", f"Mean delta {100 * s['delta']:+.2f} points, 95% paired CI {ci}: {verdict}.", ""]

    return "\n".join(lines) + "\n"


__all__ = ["GATED_SETS", "compare_set", "compare_slice", "decide", "render_gate_md"]
