"""The champion/challenger quality gate (pure numpy; no model loading here).

Rule (issue 8): promote the challenger only if

1. on every gated frozen evaluation set its macro-F1 does not drop by more than
   ``max(min_drop_points / 100, half-width of the 95% paired-bootstrap interval of the difference)``; and
2. on the held-out slice of the new labels it does not get worse: the mean over the slice's tasks of the
   macro-F1 difference is >= 0 (skipped, and said so, when no label is held out).

Gated sets (:data:`GATED_SETS`): ``topic_valid`` for the topic task, ``fpb_test`` and ``sentiment_valid`` for
sentiment (two sources). The ``*_dedup`` and ``fpb_test_allagree`` views are subsets of these and are reported
in the card, not gated (overlapping tests would only add false rejections).

The paired bootstrap (:func:`finsentry.model.metrics.paired_bootstrap_delta`) resamples examples once per
replicate and scores both models on the same resample, so the interval is that of the *difference*
(Efron & Tibshirani 1993, ch. 16; Koehn 2004 for its use in comparing two systems).

>>> import numpy as np
>>> gold = np.array([0, 1, 2] * 50)
>>> row = compare_set("fpb_test", "sentiment", gold, gold, gold, 3, n_boot=200)
>>> row["delta"], row["passed"]
(0.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from finsentry.model.metrics import macro_f1, paired_bootstrap_delta

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
    """Compare the models on the held-out new labels.

    Args:
        per_task: task -> ``(gold [N], champion [N], challenger [N], n_classes)``; tasks with no rows are left out.

    Returns ``{"tasks": {task: {"n", "champion_macro_f1", "challenger_macro_f1", "delta", "delta_ci95"}},
    "delta": mean of the tasks' deltas (None if no rows), "passed": delta >= 0 (True, with ``skipped``, when
    nothing is held out)}``.
    """
    tasks: dict[str, dict[str, Any]] = {}
    for task, (gold, champ, chall, n_classes) in per_task.items():
        if len(gold) == 0:
            continue
        delta, low, high = paired_bootstrap_delta(macro_f1, gold, champ, chall, n_classes, n_boot, seed)
        tasks[task] = {
            "n": int(len(gold)),
            "champion_macro_f1": macro_f1(gold, champ, n_classes),
            "challenger_macro_f1": macro_f1(gold, chall, n_classes),
            "delta": float(delta),
            "delta_ci95": [low, high],
        }
    if not tasks:
        return {"tasks": {}, "delta": None, "passed": True, "skipped": "no labels held out"}
    delta = float(np.mean([t["delta"] for t in tasks.values()]))
    return {"tasks": tasks, "delta": delta, "passed": bool(delta >= 0)}


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
        delta = 100 * new_slice["delta"]
        reasons.append(f"held-out new labels: mean macro-F1 delta {delta:+.2f} points (must be >= 0)")
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
        lines += ["", f"Mean delta {100 * s['delta']:+.2f} points: {'not worse' if s['passed'] else 'WORSE'}.", ""]
    return "\n".join(lines) + "\n"


__all__ = ["GATED_SETS", "compare_set", "compare_slice", "decide", "render_gate_md"]
