"""Evaluate a model artifact on the frozen evaluation sets and write its model card.

Variants side by side: ``onnx_int8`` (``model.onnx``, the shipped CPU model), ``onnx_fp32``
(``model.fp32.onnx``, present where the model was built) and ``torch_fp32`` (the training checkpoint,
only with ``--checkpoint`` and the ``train`` extra). Each set gets accuracy and macro-F1 with 95% bootstrap
confidence intervals (1,000 resamples, :mod:`finsentry.model.quality`), per-class precision / recall / F1,
the confusion matrix (also as PNG), the INT8 vs FP32 argmax agreement and the expected calibration error
(:func:`finsentry.model.calibration.expected_calibration_error`, 15 bins) of the softmax probabilities: ``ece``
with the temperatures of ``labels.json`` applied (as :class:`Scorer` applies them; "after"), ``ece_raw`` with
T = 1 ("before"). :func:`fit_temperatures` fits those temperatures on the dev sets (never the evaluation
sets). Evaluation, like the fit, scores each text's first window of ``max_length`` tokens.

The card (``card.json`` + ``card.md``) records these figures, the sha256 of every data file used, the
training config, package versions, the sha256 of every artifact file (``artifact_files``: the ONNX models,
``tokenizer.json``, ``labels.json``) and 32 reference inputs with the INT8 logits expected from them; every
:meth:`Scorer.load` checks a folder against them (:mod:`finsentry.model.verify`).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from finsentry.common.paths import SPLITS_DIR
from finsentry.model.calibration import ECE_BINS, expected_calibration_error, fit_temperature, softmax
from finsentry.model.datasets import DEV_SETS, EVAL_SETS, Example, load_eval_set, load_examples
from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.model.quality import summarize
from finsentry.model.scorer import ModelLoadError, Scorer, label_temperatures
from finsentry.model.verify import REFERENCE_BATCH_SIZE, artifact_hashes, file_sha256

REFERENCE_SOURCES: tuple[tuple[str, int], ...] = (("fpb_dev", 12), ("topic_dev", 10), ("sentiment_dev", 10))
"""Where the 32 reference inputs of the card come from: the first rows of three dev splits."""

ONNX_VARIANTS: dict[str, str] = {"onnx_int8": "model.onnx", "onnx_fp32": "model.fp32.onnx"}
"""Variant name -> artifact file evaluated through ONNX Runtime (CPU execution provider)."""


def task_of(set_name: str) -> str:
    """``topic`` for topic sets, else ``sentiment``."""
    return "topic" if set_name.startswith("topic") else "sentiment"


def _labels(task: str) -> tuple[str, ...]:
    return TOPIC_LABELS if task == "topic" else SENTIMENT_LABELS


def reference_texts() -> list[str]:
    """The 32 fixed reference inputs (see :data:`REFERENCE_SOURCES`)."""
    texts: list[str] = []
    for name, n in REFERENCE_SOURCES:
        texts += [e.text for e in load_examples(name, n)]
    return texts


def _set_logits(
    folder: Path,
    checkpoint: Path | None,
    sets: dict[str, list[Example]],
    max_length: int,
    variants: dict[str, str] = ONNX_VARIANTS,
) -> dict[str, dict[str, np.ndarray]]:
    """variant -> set name -> raw logits ``[N, C]`` float32 of that set's task (``variants``: name -> file)."""
    texts = sorted({e.text for examples in sets.values() for e in examples})
    index = {t: i for i, t in enumerate(texts)}
    logits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for variant, file in variants.items():
        if (folder / file).is_file():
            scorer = Scorer.load(folder, variant=file, max_length=max_length, verify=False)
            topic, sent, _ = scorer.logits(texts)
            logits[variant] = (topic, sent)
    if checkpoint is not None:
        from finsentry.model.train import load_checkpoint, load_tokenizer, predict_logits

        model, cfg = load_checkpoint(checkpoint)
        logits["torch_fp32"] = predict_logits(model, load_tokenizer(), texts, cfg.max_length)
    out: dict[str, dict[str, np.ndarray]] = {}
    for variant, (topic, sent) in logits.items():
        out[variant] = {}
        for name, examples in sets.items():
            rows = [index[e.text] for e in examples]
            chosen = topic if task_of(name) == "topic" else sent
            out[variant][name] = chosen[rows]
    return out


def fit_temperatures(folder: Path, variant: str | None = None, limit: int | None = None) -> dict[str, float]:
    """Temperatures for ``labels.json``'s ``temperature`` entry, fitted on the DEV sets of :data:`DEV_SETS`.

    Scores ``fpb_dev`` + ``sentiment_dev`` (the sentiment head) and ``topic_dev`` (the topic head) with the
    folder's model and fits each head's ``T`` on its raw first-window logits (minimum NLL,
    :func:`~finsentry.model.calibration.fit_temperature`), whatever temperature ``labels.json`` already holds.
    Never reads an evaluation set. The lead writes the result into ``labels.json`` (then the card).

    Args:
        folder: artifact folder (opened unverified: its card may not match yet).
        variant: the model file (``model.onnx``, ``model.fp32.onnx``) or a name of :data:`ONNX_VARIANTS`;
            default ``model.onnx``, the shipped CPU model. limit: first rows of each dev set (tests).

    Returns:
        ``{"sentiment": T, "topic": T}``.

    Raises:
        finsentry.model.scorer.ModelLoadError: an artifact file is missing or corrupt.
    """
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    file = ONNX_VARIANTS.get(variant or "onnx_int8", variant)
    if not (folder / file).is_file():
        raise ModelLoadError(f"{folder / file} is missing; no model to fit temperatures with")
    sets = {name: load_examples(name, limit) for name in DEV_SETS}
    (by_set,) = _set_logits(folder, None, sets, int(labels.get("max_length", 64)), {"dev": file}).values()
    out: dict[str, float] = {}
    for task in ("sentiment", "topic"):
        names = [name for name in DEV_SETS if task_of(name) == task]
        gold = np.array([e.label for name in names for e in sets[name]])
        out[task] = fit_temperature(np.concatenate([by_set[name] for name in names]), gold)
    return out


def evaluate(folder: Path, checkpoint: Path | None = None, limit: int | None = None) -> dict:
    """Evaluate the artifact in ``folder`` on every set of :data:`EVAL_SETS`.

    Returns a JSON-ready report ``{"model_version", "temperature": {"sentiment": T, "topic": T}, "sets": {name:
    {task, n, description, variants: {variant: summary}, int8_fp32_agreement}}, "headline": {...}}`` where a
    summary is :func:`finsentry.model.quality.summarize`'s dict plus ``ece`` (probabilities of the logits
    divided by ``labels.json``'s temperature, 1 where absent) and ``ece_raw`` (T = 1), 15 bins each.

    Raises:
        finsentry.model.scorer.ModelLoadError: an artifact file is missing or corrupt.
    """
    labels = json.loads((folder / "labels.json").read_text())
    max_length = int(labels.get("max_length", 64))
    temperature = label_temperatures(labels, folder / "labels.json")
    sets = {name: load_eval_set(name, limit) for name in EVAL_SETS}
    logits = _set_logits(folder, checkpoint, sets, max_length)
    preds = {variant: {name: z.argmax(axis=1) for name, z in by_set.items()} for variant, by_set in logits.items()}
    report: dict = {
        "model_version": labels.get("model_version"),
        "evaluated_at": _now(),
        "temperature": temperature,
        "sets": {},
    }
    for name, examples in sets.items():
        task = task_of(name)
        gold = np.array([e.label for e in examples])
        entry: dict = {"task": task, "n": len(examples), "description": EVAL_SETS[name], "variants": {}}
        for variant, by_set in preds.items():
            summary = summarize(gold, by_set[name], len(_labels(task)), _labels(task))
            z = logits[variant][name]
            summary["ece"] = expected_calibration_error(softmax(z, temperature[task]), gold, ECE_BINS)
            summary["ece_raw"] = expected_calibration_error(softmax(z), gold, ECE_BINS)
            entry["variants"][variant] = summary
        if "onnx_fp32" in preds:
            entry["int8_fp32_agreement"] = float(np.mean(preds["onnx_int8"][name] == preds["onnx_fp32"][name]))
        report["sets"][name] = entry
    report["headline"] = headline(report)
    return report


def headline(report: dict, variant: str = "onnx_int8") -> dict[str, float]:
    """The figures the issues' acceptance checks name, for one variant."""
    sets = report["sets"]

    def get(name: str, metric: str) -> float:
        return sets[name]["variants"][variant][metric]

    return {
        "fpb_test_accuracy": get("fpb_test", "accuracy"),
        "fpb_test_macro_f1": get("fpb_test", "macro_f1"),
        "fpb_allagree_accuracy": get("fpb_test_allagree", "accuracy"),
        "topic_valid_accuracy": get("topic_valid", "accuracy"),
        "topic_valid_dedup_accuracy": get("topic_valid_dedup", "accuracy"),
        "sentiment_valid_accuracy": get("sentiment_valid", "accuracy"),
        "sentiment_valid_dedup_accuracy": get("sentiment_valid_dedup", "accuracy"),
    }


def plot_confusions(report: dict, out_dir: Path, variant: str = "onnx_int8") -> list[Path]:
    """One PNG confusion matrix per evaluation set (rows gold, columns predicted) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, entry in report["sets"].items():
        if variant not in entry["variants"]:
            continue
        m = np.array(entry["variants"][variant]["confusion"])
        labels = _labels(entry["task"])
        size = 9 if entry["task"] == "topic" else 4.5
        fig, ax = plt.subplots(figsize=(size, size * 0.85))
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 3 else 0, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6)
        acc = entry["variants"][variant]["accuracy"]
        ax.set_title(f"{name} ({variant}) accuracy {acc:.3f}", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        fig.tight_layout()
        path = out_dir / f"confusion_{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def package_versions(names: Sequence[str] = ("onnxruntime", "tokenizers", "numpy", "torch", "transformers")) -> dict:
    """Installed versions of the packages that determine the figures (``None`` if not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def reference_logits(folder: Path) -> list[dict]:
    """INT8 logits of the 32 reference inputs: ``[{text, topic_logits [20], sentiment_logits [3]}]``.

    Scored by ``model.onnx`` at ``labels.json``'s ``max_length``, :data:`REFERENCE_BATCH_SIZE` texts per run, as
    :func:`finsentry.model.verify.verify_reference_logits` re-scores them at every load.
    """
    texts = reference_texts()
    topic, sent, _ = Scorer.load(folder, variant="model.onnx", verify=False).logits(texts, REFERENCE_BATCH_SIZE)
    return [
        {"text": t, "topic_logits": topic[i].round(6).tolist(), "sentiment_logits": sent[i].round(6).tolist()}
        for i, t in enumerate(texts)
    ]


def write_card(folder: Path, report: dict, extra: dict | None = None) -> dict:
    """Write ``card.json`` and ``card.md`` into ``folder``; returns the card dict.

    ``extra`` is merged in (training config, how the model was chosen, the rebuild command, ...). The card's
    ``labels`` are the folder's own (``labels.json``), ``artifact_files`` the sha256 of its ONNX models,
    tokenizer and labels (:func:`~finsentry.model.verify.artifact_hashes`).
    """
    data_files = sorted(SPLITS_DIR.glob("*.csv"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    card = {
        "model_version": report.get("model_version"),
        "architecture": "all-MiniLM-L6-v2 encoder (6 layers, 384 hidden, 22M params), masked mean pooling, "
        f"20-class topic head + 3-class sentiment head; ONNX, {labels.get('quantization', 'dynamic')} INT8 "
        "(per-channel signed weights)",
        "labels": {"topic": list(labels["topic"]), "sentiment": list(labels["sentiment"])},
        "temperature": label_temperatures(labels, folder / "labels.json"),
        "headline": report["headline"],
        "evaluation": report["sets"],
        "data_files": {str(p.relative_to(SPLITS_DIR.parent.parent)): file_sha256(p) for p in data_files},
        "artifact_files": artifact_hashes(folder),
        "packages": package_versions(),
        "reference_logits": reference_logits(folder),
        "written_at": _now(),
    } | (extra or {})
    (folder / "card.json").write_text(json.dumps(card, indent=1))
    (folder / "card.md").write_text(render_card_md(card))
    return card


def render_card_md(card: dict) -> str:
    """Human-readable model card (Markdown) from the card dict."""
    lines = [f"# Model card: finsentry {card.get('model_version')}", "", card["architecture"], ""]
    if card.get("chosen"):
        lines += ["## How it was chosen", "", str(card["chosen"]), ""]
    if card.get("rebuild"):
        lines += ["## Rebuild", "", "```", str(card["rebuild"]), "```", ""]
    lines += ["## Results (95% bootstrap confidence intervals)", ""]
    lines += ["| set | n | variant | accuracy | macro-F1 |", "|---|---|---|---|---|"]
    for name, entry in card["evaluation"].items():
        for variant, s in entry["variants"].items():
            acc, (alo, ahi) = s["accuracy"], s["accuracy_ci95"]
            f1, (flo, fhi) = s["macro_f1"], s["macro_f1_ci95"]
            acc_txt = f"{acc:.4f} [{alo:.3f}, {ahi:.3f}]"
            f1_txt = f"{f1:.4f} [{flo:.3f}, {fhi:.3f}]"
            lines.append(f"| {name} | {entry['n']} | {variant} | {acc_txt} | {f1_txt} |")
    lines += [
        "",
        "INT8 vs FP32 argmax agreement: "
        + ", ".join(
            f"{n} {e['int8_fp32_agreement']:.4f}" for n, e in card["evaluation"].items() if "int8_fp32_agreement" in e
        ),
        "",
    ]
    lines += _calibration_md(card)
    if card.get("training_config"):
        lines += ["## Training config", "", "```yaml"]
        lines += [f"{k}: {v}" for k, v in sorted(card["training_config"].items())]
        lines += ["```", ""]
    lines += ["## Data", "", "Split files (sha256):", ""]
    lines += [f"- `{k}` {v[:16]}" for k, v in card["data_files"].items()]
    lines += ["", "## Packages", "", ", ".join(f"{k} {v}" for k, v in card["packages"].items()), ""]
    lines += ["Reference inputs: 32 (logits in card.json, checked by `Scorer` verification and the tests).", ""]
    return "\n".join(lines)


def _calibration_md(card: dict, variant: str = "onnx_int8") -> list[str]:
    """The card's calibration section: ECE before (T = 1) and after (``labels.json``'s temperatures) per set."""
    rows = [
        (name, entry["variants"][variant])
        for name, entry in card["evaluation"].items()
        if "ece" in entry["variants"].get(variant, {})
    ]
    if not rows:  # a card written before calibration was reported
        return []
    t = card.get("temperature") or {"sentiment": 1.0, "topic": 1.0}
    lines = [
        f"## Calibration (ECE, {ECE_BINS} bins)",
        "",
        f"Expected calibration error of {variant}'s probabilities (top label, equal-width bins; Guo et al. 2017): "
        f"before = T 1, after = the temperatures of labels.json (sentiment {t['sentiment']:.4g}, topic "
        f"{t['topic']:.4g}), fitted on the dev sets ({', '.join(DEV_SETS)}).",
        "",
        "| set | before | after |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {s['ece_raw']:.4f} | {s['ece']:.4f} |" for name, s in rows]
    return [*lines, ""]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
