"""Building a model artifact: the steps ``finsentry model build|export|requantize|eval`` and the retrain share.

An artifact folder (``model.onnx``, variants, ``tokenizer.json``, ``labels.json``, ``card.json`` / ``card.md``)
is made in three steps, each one function here, used by the CLI (``finsentry/cli_model.py``) and by
:mod:`finsentry.model.retrain`:

1. :func:`export_artifact`: a checkpoint -> ONNX (:func:`~finsentry.model.export.export_checkpoint`) with the
   shipped INT8 parity check (FPB test) and calibration texts (the first 128 rows of FPB dev and of topic dev).
2. :func:`write_evaluated_card`: evaluate the folder on every frozen set (:func:`~finsentry.model.evaluate.evaluate`),
   optionally plot its confusion matrices, and write its card with what says how it was made.
3. The workflows: :func:`build_shipped` (train unless done, export, card) and :func:`write_requantized_card` (the
   card of an artifact re-quantized to static INT8 by :mod:`finsentry.model.requantize`). ``finsentry model
   retrain`` trains and exports with :func:`~finsentry.model.retrain.build_artifact` (step 1) and writes its card
   with step 2.

A rewritten card keeps the fields of the old one that say how the artifact was made (:data:`PROVENANCE_FIELDS`;
:func:`card_fields`). Needs the ``train`` extra (torch) for training and export.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finsentry.model.train_config import TrainConfig

PARITY_SET = "fpb_test"
"""The set whose sentences the INT8 parity check scores (all of them, unless a smoke run limits it)."""
CALIBRATION_ROWS = {"fpb_dev": 128, "topic_dev": 128}
"""Rows of each dev set that calibrate static INT8 (dev only: no evaluation text leaks into the model)."""
PROVENANCE_FIELDS = ("chosen", "rebuild", "training_config", "training_dev", "tuning", "requantized_from")
"""Card fields that say how an artifact was made; a rewritten card keeps them."""


def export_artifact(
    checkpoint: Path,
    out: Path,
    version: str,
    *,
    gpu_variants: bool = True,
    max_disagreement: float | None = None,
    parity_limit: int | None = None,
) -> dict[str, Any]:
    """Export ``checkpoint`` into the artifact folder ``out`` with ``model_version`` ``version``.

    Args:
        gpu_variants: also write ``model.fp16.onnx`` (CUDA) and ``model.qdq.onnx`` (TensorRT).
        max_disagreement: largest share (0..1) of parity sentences on which INT8 may disagree with FP32
            (None: :data:`~finsentry.model.export.MAX_INT8_DISAGREEMENT`, 1%).
        parity_limit: score only the first N sentences of :data:`PARITY_SET` (smoke runs).

    Returns:
        :func:`~finsentry.model.export.export_checkpoint`'s ``{"int8_disagreement": float, "files": [...]}``.

    Raises:
        finsentry.model.export.ExportParityError: INT8 disagrees with FP32 beyond ``max_disagreement``.
    """
    from finsentry.model.datasets import load_examples
    from finsentry.model.export import MAX_INT8_DISAGREEMENT, export_checkpoint

    calibration = [e.text for name, rows in CALIBRATION_ROWS.items() for e in load_examples(name, rows)]
    return export_checkpoint(
        checkpoint,
        out,
        version,
        parity_texts=[e.text for e in load_examples(PARITY_SET, parity_limit)],
        calibration_texts=calibration,
        gpu_variants=gpu_variants,
        max_disagreement=MAX_INT8_DISAGREEMENT if max_disagreement is None else max_disagreement,
    )


def card_fields(folder: Path, keys: Sequence[str] = PROVENANCE_FIELDS) -> dict[str, Any]:
    """The fields ``keys`` (in that order) of ``folder``'s ``card.json``; ``{}`` without a card.

    Raises:
        ValueError: the card is not JSON. OSError: it cannot be read.
    """
    path = Path(folder) / "card.json"
    card = json.loads(path.read_text()) if path.exists() else {}
    return {k: card[k] for k in keys if k in card}


def write_evaluated_card(
    folder: Path,
    extra: dict[str, Any],
    *,
    checkpoint: Path | None = None,
    plots: Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``folder`` (and ``checkpoint`` in FP32, if given) on every frozen set, plot the confusion matrices
    into ``plots`` (if given), and write ``card.json`` / ``card.md`` with ``extra`` merged in.

    Returns:
        the evaluation report (:func:`~finsentry.model.evaluate.evaluate`; ``report["headline"]`` the card's
        headline figures).

    Raises:
        finsentry.model.scorer.ModelLoadError, FileNotFoundError: the folder holds no loadable model.
    """
    from finsentry.model.evaluate import evaluate, plot_confusions, write_card

    report = evaluate(folder, checkpoint=checkpoint, limit=limit)
    if plots is not None:
        plot_confusions(report, plots)
    write_card(folder, report, extra)
    return report


def build_shipped(
    cfg: TrainConfig, run_dir: Path, out: Path, version: str, rebuild: str, retrain: bool = False
) -> dict[str, Any]:
    """The shipped artifact end to end: train ``cfg`` into ``run_dir`` (unless it holds ``best.pt`` and not
    ``retrain``), export into ``out``, evaluate the artifact and the FP32 checkpoint, plot into ``out/eval`` and
    write the card (training recipe, the best epoch's dev figures, ``rebuild``: the command that rebuilds it).

    Returns:
        the evaluation report.

    Raises:
        finsentry.model.export.ExportParityError: INT8 disagrees with FP32 on more than 1% of FPB test.
    """
    import yaml

    from finsentry.model.train import train

    best_path = run_dir / "best.pt"
    if retrain or not best_path.is_file():
        train(cfg, run_dir)
    best = json.loads((run_dir / "best.json").read_text()) if (run_dir / "best.json").exists() else {}
    export_artifact(best_path, out, version)
    extra = {
        "training_config": yaml.safe_load((run_dir / "config.yaml").read_text()),
        "training_dev": best,
        "rebuild": rebuild,
    }
    return write_evaluated_card(out, extra, checkpoint=best_path, plots=out / "eval")


def write_requantized_card(source: Path, out: Path, result: dict[str, Any], rebuild: str) -> dict[str, Any]:
    """Card of ``out``, re-quantized from ``source`` by :func:`~finsentry.model.requantize.requantize_static`
    (``result`` its return value): evaluate ``out``, plot into ``out/eval`` and write the card with ``source``'s
    recipe, dev figures, choice and tuning, ``requantized_from`` (the source's ``model_version`` and ``result``)
    and ``rebuild``.

    Returns:
        the evaluation report.
    """
    keep = card_fields(source, ("training_config", "training_dev", "chosen", "tuning", "model_version"))
    source_version = keep.pop("model_version", None)
    keep["requantized_from"] = {"model_version": source_version, **result}
    keep["rebuild"] = rebuild
    return write_evaluated_card(out, keep, plots=out / "eval")
