"""``finsentry model retrain``: train a challenger on the base data plus the analysts' labels, gate it, register it.

Steps (all under the registry's retrain lock, so two runs never overlap):

1. Champion = the registry's ``current`` version. An empty registry first imports ``model.path`` (the shipped
   artifact) as ``v0001`` and points ``current`` at it.
2. New labels = label-store rows ingested after the newest ``labels_ingested_until`` of any registered version
   (promoted or rejected). Fewer than ``model.retrain.min_new_labels`` -> :class:`NothingNew` (exit non-zero).
3. Training labels = every stored label resolved per item (:func:`finsentry.model.label_store.resolve`), minus
   items whose text is also in an evaluation or dev set (no leakage into the gate), minus the held-out slice:
   items whose ``sha256("holdout:" + id)`` falls in the first ``holdout_percent`` of 100 buckets. The slice is
   fixed by the id, so an item held out once is held out in every later retrain.
4. Recipe = the file of setting ``model.retrain.recipe`` when set, else the champion's own recipe (its card's
   ``training_config``; seed included);
   training starts from the base encoder (all-MiniLM-L6-v2), on the base training mix + the labels
   (labels newer than ``recent_days`` before the newest one count ``recent_copies`` times when set).
5. Export into a new registry version (``vNNNN``, ``model_version`` ``minilm-mt-vNNNN``), re-quantized to static
   INT8 with fitted temperatures (``model.retrain.static_int8``, :func:`static_int8_in_place`); evaluate champion and
   challenger (the served INT8 ``model.onnx`` of both) on the gated frozen sets and the held-out slice; decide
   (:mod:`finsentry.model.gate`); write the challenger's card with every figure and the decision.
6. ``passed`` -> promote (unless ``promote=False``); ``rejected`` -> kept in the registry, not served.

Needs the ``train`` extra (torch). Timings on the 2-core CPU of this project: the full recipe ~45-55 min.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finsentry.model.build import export_artifact, write_evaluated_card
from finsentry.model.datasets import DEV_SETS, EVAL_SETS, Example, load_eval_set
from finsentry.model.gate import GATED_SETS, compare_set, compare_slice, decide, render_gate_md
from finsentry.model.label_store import LabelStore, resolve
from finsentry.model.labels import SENTIMENT_LABELS, TASKS, TOPIC_LABELS
from finsentry.model.registry import ModelVersion, Registry
from finsentry.model.settings import ModelSettings
from finsentry.model.train_config import SHIPPED_RECIPE, TrainConfig

log = logging.getLogger(__name__)

MODEL_VERSION_PREFIX = "minilm-mt-"
"""``model_version`` of a registered challenger = prefix + version folder name (``minilm-mt-v0002``)."""

EXIT_PROMOTED = 0
EXIT_PASSED_NOT_PROMOTED = 0
EXIT_ERROR = 1
EXIT_NOTHING_NEW = 3
EXIT_REJECTED = 4
EXIT_BUSY = 5
"""Exit codes of ``finsentry model retrain`` (documented in docs/retraining.md)."""

LABEL_IDS: dict[str, dict[str, int]] = {
    "topic": {name: i for i, name in enumerate(TOPIC_LABELS)},
    "sentiment": {name: i for i, name in enumerate(SENTIMENT_LABELS)},
}


class NothingNew(RuntimeError):
    """No (or too few) labels arrived since the last retrain; the message gives the counts and the cut-off."""


@dataclass
class RetrainResult:
    """Outcome of :func:`retrain`: ``decision`` (``promote`` / ``reject``), the challenger ``version`` name,
    ``promoted`` (the pointer moved), ``events`` (registry events to publish on ``models.events``, in order),
    ``gate`` (the decision with every figure) and ``card`` (path of the challenger's card.json)."""

    decision: str
    version: str
    promoted: bool
    gate: dict[str, Any]
    card: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_PROMOTED` / :data:`EXIT_PASSED_NOT_PROMOTED` / :data:`EXIT_REJECTED`."""
        if self.decision == "reject":
            return EXIT_REJECTED
        return EXIT_PROMOTED if self.promoted else EXIT_PASSED_NOT_PROMOTED


def in_holdout(item_id: str, percent: int) -> bool:
    """True if item ``item_id`` belongs to the fixed held-out slice (``percent`` of 100 hash buckets).

    >>> sum(in_holdout(str(i), 20) for i in range(10_000))  # about 20% of 10,000 ids
    2016
    """
    digest = hashlib.sha256(f"holdout:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def _canonical(text: str) -> str:
    from finsentry.model.splits import canonical_text

    return canonical_text(text)


def evaluation_texts() -> set[str]:
    """Canonical texts (:func:`finsentry.model.splits.canonical_text`) of every evaluation and dev set."""
    texts: set[str] = set()
    for name in [*EVAL_SETS, *DEV_SETS]:
        texts |= {_canonical(e.text) for e in load_eval_set(name)}
    return texts


@dataclass
class LabelSplit:
    """Resolved labels split for a retrain: ``train`` and ``holdout`` frames (as :func:`resolve`) and the number
    of items ``dropped_overlap`` because their text is in an evaluation / dev set."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    dropped_overlap: int


def split_labels(resolved: pd.DataFrame, holdout_percent: int, exclude_texts: set[str] | None = None) -> LabelSplit:
    """Drop items whose canonical text is in ``exclude_texts``; split the rest into train / held-out by id."""
    if exclude_texts:
        overlap = resolved["text"].map(_canonical).isin(exclude_texts)
    else:
        overlap = pd.Series(False, index=resolved.index)
    kept = resolved[~overlap]
    held = pd.Series([in_holdout(str(i), holdout_percent) for i in kept.index], index=kept.index, dtype=bool)
    return LabelSplit(kept[~held], kept[held], int(overlap.sum()))


def label_examples(frame: pd.DataFrame, recent_days: float | None = None, recent_copies: int = 1) -> list[Example]:
    """Training examples from resolved labels: one :class:`Example` per item and labelled task (source ``labels``).

    With ``recent_days``, items whose ``last_labeled_at`` is within ``recent_days`` of the newest label appear
    ``recent_copies`` times (the recency weight).
    """
    examples: list[Example] = []
    newest = frame["last_labeled_at"].max() if len(frame) else None
    for row in frame.itertuples():
        copies = 1
        if recent_days is not None and newest is not None and row.last_labeled_at >= newest - timedelta(recent_days):
            copies = recent_copies
        for task in TASKS:
            label = getattr(row, task)
            if label is not None and not (isinstance(label, float) and np.isnan(label)):
                examples += [Example(str(row.text), task, LABEL_IDS[task][label], "labels")] * copies
    return examples


def label_counts(examples: Sequence[Example]) -> dict[str, dict[str, int]]:
    """Examples per task and label name: ``{"topic": {name: n}, "sentiment": {name: n}}`` (the training mix)."""
    names = {"topic": TOPIC_LABELS, "sentiment": SENTIMENT_LABELS}
    counts = Counter((e.task, e.label) for e in examples)
    return {task: {names[task][i]: counts.get((task, i), 0) for i in range(len(names[task]))} for task in TASKS}


def read_card(folder: Path) -> dict[str, Any]:
    """``card.json`` of an artifact folder, ``{}`` if absent or unreadable."""
    try:
        return json.loads((Path(folder) / "card.json").read_text())
    except (OSError, ValueError):
        return {}


DECIDED = frozenset({"passed", "rejected"})
"""Statuses of versions whose labels count as used (a ``candidate`` or ``failed`` run decided nothing)."""


def labels_cutoff(registry: Registry) -> datetime | None:
    """The newest ``labels_ingested_until`` over the decided versions (None: no label was ever used)."""
    stamps = [v.info.get("labels_ingested_until") for v in registry.versions() if v.status in DECIDED]
    stamps = [datetime.fromisoformat(s) for s in stamps if s]
    return max(stamps) if stamps else None


def champion_recipe(champion: ModelVersion, fallback: Path) -> TrainConfig:
    """The champion's recipe from its card (``training_config``), else the YAML file ``fallback``.

    Raises:
        ValueError: the recipe is invalid (the message names the key).
    """
    config = read_card(champion.path).get("training_config")
    if config:
        return TrainConfig(**config)
    return TrainConfig.from_yaml(fallback)


def challenger_recipe(champion: ModelVersion, recipe_file: Path | None) -> TrainConfig:
    """The challenger's recipe: the YAML file ``recipe_file`` (setting ``model.retrain.recipe``) when given, else
    :func:`champion_recipe` (the champion's own, else ``model/configs/shipped.yaml``).

    Raises:
        ValueError: the recipe is invalid (the message names the key). OSError: ``recipe_file`` cannot be read.
    """
    if recipe_file is not None:
        return TrainConfig.from_yaml(recipe_file)
    return champion_recipe(champion, SHIPPED_RECIPE)


def predictions(folder: Path, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Argmax class ids ``(topic [N], sentiment [N])`` of the artifact's served CPU model (``model.onnx``)."""
    from finsentry.model.scorer import Scorer

    if not texts:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    topic, sent, _ = Scorer.load(folder, verify=False).logits(list(texts))  # the gate runs before the card exists
    return topic.argmax(axis=1), sent.argmax(axis=1)


def gate_sets(limit: int | None = None, seed: int = 0) -> dict[str, list[Example]]:
    """The gated frozen sets (:data:`~finsentry.model.gate.GATED_SETS`), whole, or with ``limit`` a fixed random
    sample of that many rows each, in file order (the official validation files are sorted by label, so their
    first rows are no sample: the first 300 of topic_valid hold 3 of the 20 topics)."""
    sets = {name: load_eval_set(name) for names in GATED_SETS.values() for name in names}
    if limit is None:
        return sets
    rng = np.random.default_rng(seed)
    return {
        name: [examples[i] for i in sorted(rng.permutation(len(examples))[:limit])] for name, examples in sets.items()
    }


def run_gate(
    champion: Path,
    challenger: Path,
    holdout: pd.DataFrame,
    min_drop_points: float,
    n_boot: int,
    eval_limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate both artifacts on the gated frozen sets and the held-out labels; returns :func:`decide`'s dict."""
    sets = gate_sets(eval_limit)
    texts = sorted({e.text for examples in sets.values() for e in examples} | set(holdout["text"]))
    index = {t: i for i, t in enumerate(texts)}
    preds = {"champion": predictions(champion, texts), "challenger": predictions(challenger, texts)}
    n_classes = {"topic": len(TOPIC_LABELS), "sentiment": len(SENTIMENT_LABELS)}
    task_col = {"topic": 0, "sentiment": 1}
    frozen = []
    for task, names in GATED_SETS.items():
        for name in names:
            rows = [index[e.text] for e in sets[name]]
            gold = np.array([e.label for e in sets[name]])
            champ = preds["champion"][task_col[task]][rows]
            chall = preds["challenger"][task_col[task]][rows]
            frozen.append(compare_set(name, task, gold, champ, chall, n_classes[task], min_drop_points, n_boot))
    per_task = {}
    for task in TASKS:
        labelled = holdout[holdout[task].notna()]
        rows = [index[t] for t in labelled["text"]]
        gold = np.array([LABEL_IDS[task][v] for v in labelled[task]], dtype=int)
        per_task[task] = (
            gold,
            preds["champion"][task_col[task]][rows],
            preds["challenger"][task_col[task]][rows],
            n_classes[task],
        )
    return decide(frozen, compare_slice(per_task, n_boot))


def static_int8_in_place(folder: Path, work: Path, version: str, max_disagreement: float) -> dict[str, Any]:
    """Re-quantize the dynamic INT8 artifact in ``folder`` to static INT8 in place, with temperatures fitted on the
    dev sets (:func:`finsentry.model.requantize.requantize_static`: the recipe the shipped model was made with).

    Static activation scales are fixed at calibration, so a text gets the same probabilities in any batch (issue
    14); the dynamic export computes them per batch. The dynamic export is kept under ``work/dynamic-export``;
    when no static recipe passes requantize's dev gate (``max_disagreement``), it is put back and served.

    Returns:
        requantize's result (``int8_recipe``, ``disagreement``, ``quantization`` ``static``, ``temperature``), or
        ``{"quantization": "dynamic", "why": ...}`` when the dynamic export stays.
    """
    from finsentry.model.export import ExportParityError
    from finsentry.model.requantize import requantize_static

    dynamic = work / "dynamic-export"
    if dynamic.exists():
        shutil.rmtree(dynamic)
    shutil.copytree(folder, dynamic)
    try:
        return requantize_static(dynamic, folder, version, max_disagreement=max_disagreement)
    except ExportParityError as exc:
        log.warning("static INT8 failed its dev gate, the dynamic INT8 export is served: %s", exc)
        shutil.copytree(dynamic, folder, dirs_exist_ok=True)
        return {"quantization": "dynamic", "why": f"static INT8: {exc}"}


def build_artifact(
    cfg: TrainConfig,
    run_dir: Path,
    out_dir: Path,
    model_version: str,
    extra_examples: Sequence[Example] = (),
    gpu_variants: bool = True,
    max_disagreement: float = 0.01,
    progress: bool = True,
    parity_limit: int | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` (+ ``extra_examples``) into ``run_dir`` and export ``out_dir``; returns the best epoch's summary.

    The INT8 parity check runs on FPB test (its first ``parity_limit`` sentences in smoke runs;
    :func:`finsentry.model.build.export_artifact`).

    Raises:
        finsentry.model.export.ExportParityError: INT8 disagrees with FP32 beyond ``max_disagreement``.
    """
    from finsentry.model.train import train

    best = train(cfg, run_dir, progress=progress, extra_examples=extra_examples)
    export_artifact(
        run_dir / "best.pt",
        out_dir,
        model_version,
        gpu_variants=gpu_variants,
        max_disagreement=max_disagreement,
        parity_limit=parity_limit,
    )
    return best


def write_retrain_card(folder: Path, extra: dict[str, Any], eval_limit: int | None) -> Path:
    """Evaluate ``folder`` on every frozen set, write card.json / card.md with ``extra``; gate section appended."""
    write_evaluated_card(folder, extra, limit=eval_limit)
    if "gate" in extra:
        with (folder / "card.md").open("a") as f:
            f.write("\n" + render_gate_md(extra["gate"]))
    return folder / "card.json"


def ensure_champion(registry: Registry, shipped: Path) -> tuple[ModelVersion, list[dict[str, Any]]]:
    """The current version; an empty registry first imports ``shipped`` as v0001 and promotes it."""
    current = registry.current()
    if current is not None:
        return current, []
    log.info("registry %s is empty: importing %s as the first version", registry.root, shipped)
    version = registry.add(shipped, status="imported")
    event = registry.promote(version.name)
    return registry.version(version.name), [event]


@dataclass
class _Plan:
    """What one retrain trains and gates: champion, recipe, version folder, run folder, labels, card notes."""

    champion: ModelVersion
    cfg: TrainConfig
    path: Path
    run_dir: Path
    split: LabelSplit
    extra: list[Example]
    info: dict[str, Any]


def retrain(
    settings: ModelSettings,
    recipe: TrainConfig | None = None,
    promote: bool = True,
    progress: bool = True,
) -> RetrainResult:
    """Run one retrain (module docstring). ``recipe`` overrides the champion's recipe (tests use a short one).

    A run that fails after claiming its version marks it ``failed`` (its labels then count as unused).

    Raises:
        finsentry.model.registry.RegistryBusy: another retrain holds the lock.
        NothingNew: fewer than ``min_new_labels`` labels since the last retrain.
    """
    rs = settings.retrain
    registry = Registry(settings.registry_dir)
    store = LabelStore(rs.labels_dir)
    with registry.retrain_lock():
        champion, events = ensure_champion(registry, settings.path)
        raw = store.read()
        cutoff = labels_cutoff(registry)
        new = raw if cutoff is None else raw[raw["ingested_at"] > pd.Timestamp(cutoff)]
        if len(new) < rs.min_new_labels:
            since = cutoff.isoformat() if cutoff else "the start"
            raise NothingNew(
                f"nothing new to train on: {len(new)} label(s) in {store.root} since {since} "
                f"(model.retrain.min_new_labels = {rs.min_new_labels}); import or send labels first"
            )
        split = split_labels(resolve(raw), rs.holdout_percent, evaluation_texts())
        extra = label_examples(split.train, rs.recent_days, rs.recent_copies)
        path = registry.claim_version()
        info = {
            "champion": {"version": champion.name, "model_version": champion.model_version},
            "labels_dir": str(store.root),
            "labels_ingested_until": raw["ingested_at"].max().isoformat(),
            "labels_new_since": cutoff.isoformat() if cutoff else None,
            "label_rows": int(len(raw)),
            "new_label_rows": int(len(new)),
            "items_train": int(len(split.train)),
            "items_holdout": int(len(split.holdout)),
            "items_dropped_eval_overlap": split.dropped_overlap,
            "label_examples": len(extra),
            "holdout_percent": rs.holdout_percent,
            "recent_days": rs.recent_days,
            "recent_copies": rs.recent_copies if rs.recent_days else 1,
        }
        registry.set_status(path.name, "candidate", **info)
        cfg = recipe or challenger_recipe(champion, rs.recipe)
        plan = _Plan(champion, cfg, path, Path(rs.work_dir) / path.name, split, extra, info)
        log.info("training challenger %s (%d label examples, champion %s)", path.name, len(extra), champion.name)
        try:
            return _challenge(registry, plan, settings, promote, progress, events)
        except BaseException as exc:
            registry.set_status(path.name, "failed", error=f"{type(exc).__name__}: {exc}", **info)
            raise


def _challenge(
    registry: Registry, plan: _Plan, settings: ModelSettings, promote: bool, progress: bool, events: list
) -> RetrainResult:
    """Train, export, gate, write the card and register one challenger (under the retrain lock)."""
    from finsentry.model.export import ExportParityError
    from finsentry.model.train import training_mix

    rs = settings.retrain
    name = plan.path.name
    if plan.run_dir.exists():
        shutil.rmtree(plan.run_dir)
    try:
        best = build_artifact(
            plan.cfg,
            plan.run_dir,
            plan.path,
            MODEL_VERSION_PREFIX + name,
            plan.extra,
            gpu_variants=rs.export_gpu_variants,
            max_disagreement=rs.export_max_disagreement,
            progress=progress,
            parity_limit=rs.eval_limit,
        )
    except ExportParityError as exc:
        reasons = [f"export: {exc}"]
        registry.set_status(name, "rejected", gate={"decision": "reject", "reasons": reasons}, **plan.info)
        gate = {"decision": "reject", "reasons": reasons, "frozen": [], "new_label_slice": {}}
        return RetrainResult("reject", name, False, gate, plan.path / "card.json", events)

    quantization = (
        static_int8_in_place(plan.path, plan.run_dir, MODEL_VERSION_PREFIX + name, rs.export_max_disagreement)
        if rs.static_int8
        else {"quantization": "dynamic", "why": "model.retrain.static_int8 is off"}
    )
    gate = run_gate(
        plan.champion.path, plan.path, plan.split.holdout, rs.min_drop_points, rs.bootstrap_resamples, rs.eval_limit
    )
    gate["champion"] = plan.info["champion"]
    passed = gate["decision"] == "promote"
    if passed:
        gate["promoted"] = "promoted to current" if promote else "passed, not promoted (--no-promote)"
    card = write_retrain_card(
        plan.path,
        {
            "training_config": plan.cfg.model_dump(),
            "training_dev": best,
            "quantization": quantization,
            "training_label_counts": label_counts(training_mix(plan.cfg) + plan.extra),
            "retrain": plan.info,
            "gate": gate,
            "chosen": f"challenger of {plan.champion.name} trained on the base data + {len(plan.split.train)} "
            f"labelled items; quality gate: {gate['decision']}",
            "rebuild": "finsentry model retrain (labels and registry as recorded under `retrain`)",
        },
        rs.eval_limit,
    )
    summary = {"decision": gate["decision"], "reasons": gate["reasons"]}
    registry.set_status(name, "passed" if passed else "rejected", gate=summary, **plan.info)
    if passed and promote:
        events.append(registry.promote(name))
    log.info("challenger %s: %s %s", name, gate["decision"], "; ".join(gate["reasons"]))
    return RetrainResult(gate["decision"], name, passed and promote, gate, card, events)


def describe(result: RetrainResult) -> str:
    """A short human-readable summary of a retrain (for the CLI)."""
    lines = [f"challenger {result.version}: {result.decision}" + (" (promoted)" if result.promoted else "")]
    lines += [f"  reason: {r}" for r in result.gate.get("reasons", [])]
    for row in result.gate.get("frozen", []):
        lines.append(
            f"  {row['set']:16s} macro-F1 {row['champion_macro_f1']:.4f} -> {row['challenger_macro_f1']:.4f} "
            f"({100 * row['delta']:+.2f} pts, allowed -{100 * row['tolerance']:.2f})"
        )
    s = result.gate.get("new_label_slice") or {}
    if s.get("delta") is not None:
        lo, hi = s["delta_ci95"]
        verdict = "not worse beyond the interval" if s["passed"] else "WORSE beyond the interval"
        lines.append(
            f"  held-out new labels: mean delta {100 * s['delta']:+.2f} pts, 95% paired CI "
            f"[{100 * lo:+.2f}, {100 * hi:+.2f}]: {verdict}"
        )
    lines.append(f"  card: {result.card}")
    return "\n".join(lines)
