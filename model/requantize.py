"""Re-quantize a shipped artifact's model with static INT8 (``finsentry model requantize``), without training.

Steps (each in :func:`requantize_static`):

1. FP32 graph from the source's dynamic INT8 ``model.onnx`` (:func:`finsentry.model.dequantize.
   fp32_from_dynamic_int8`: the same weights, no activation quantization), written as ``model.fp32.onnx``
   (git-ignored; evaluation compares against it).
2. Static INT8 with the first recipe of :data:`~finsentry.model.export.STATIC_INT8_RECIPES` whose argmax
   disagrees with that FP32 graph on at most ``max_disagreement`` (1%) of the *parity* dev rows, for each task
   (sentiment: FPB dev and tweet-sentiment dev; topic: topic dev). Calibration uses the first
   :data:`CALIBRATION_ROWS` rows of each dev set, parity the rest, so the recipe is chosen on rows the
   scales never saw, and no evaluation set is read.
3. ``labels.json`` of the source with the new ``model_version``, ``int8_recipe``, ``quantization:
   "static"`` and ``temperature`` per task (temperature scaling fitted on the dev sets with the new INT8
   model: :func:`finsentry.model.evaluate.fit_temperatures`); ``tokenizer.json`` copied.

The card is written afterwards by the caller (evaluation of both variants, reference logits, hashes).

Raises :class:`~finsentry.model.export.ExportParityError` when no recipe passes.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CALIBRATION_ROWS = 200
"""Rows of each dev set (``fpb_dev``, ``topic_dev``, ``sentiment_dev``) used to calibrate activation ranges;
the remaining dev rows choose the recipe."""


@dataclass(frozen=True)
class DevTexts:
    """Dev texts split into calibration and parity rows; ``parity[task]`` lists texts per task."""

    calibration: list[str]
    parity: dict[str, list[str]]

    @classmethod
    def load(cls, calibration_rows: int = CALIBRATION_ROWS) -> DevTexts:
        """From the dev splits (``data/splits``); never an evaluation set."""
        from finsentry.model.datasets import load_examples

        calibration: list[str] = []
        parity: dict[str, list[str]] = {"sentiment": [], "topic": []}
        for name in ("fpb_dev", "topic_dev", "sentiment_dev"):
            examples = load_examples(name)
            calibration += [e.text for e in examples[:calibration_rows]]
            parity[examples[0].task] += [e.text for e in examples[calibration_rows:]]
        return cls(calibration, parity)


def requantize_static(
    source: Path,
    out: Path,
    version: str,
    dev: DevTexts | None = None,
    max_disagreement: float = 0.01,
    recipe: str | None = None,
) -> dict:
    """Write ``out`` (model.onnx static INT8, model.fp32.onnx, tokenizer.json, labels.json) from ``source``.

    ``recipe``: None tries :data:`~finsentry.model.export.STATIC_INT8_RECIPES` in order; a name (of those or of
    :data:`~finsentry.model.export.OPT_IN_STATIC_RECIPES`) tries that recipe only, under the same gate.

    Returns ``{"int8_recipe", "disagreement": {recipe: {task: share}}, "quantization": "static",
    "temperature": {task: T}}``.

    Raises:
        ValueError: ``recipe`` names no recipe (nothing is written).
        FileNotFoundError: ``source`` lacks model.onnx, tokenizer.json or labels.json.
        DequantizeError: ``source``'s model.onnx is not a dynamic INT8 model (nothing but ``out`` is created).
        ExportParityError: no static recipe within ``max_disagreement`` on every task.
    """
    from finsentry.model.dequantize import fp32_from_dynamic_int8
    from finsentry.model.evaluate import fit_temperatures
    from finsentry.model.export import (
        STATIC_INT8_RECIPES,
        ExportParityError,
        quantize_int8_static,
        static_recipe,
        task_argmax,
    )

    recipes = STATIC_INT8_RECIPES if recipe is None else {recipe: static_recipe(recipe)}

    for name in ("model.onnx", "tokenizer.json", "labels.json"):
        if not (source / name).is_file():
            raise FileNotFoundError(f"{source / name} is missing: requantize needs a complete artifact folder")
    dev = dev or DevTexts.load()
    out.mkdir(parents=True, exist_ok=True)
    fp32_from_dynamic_int8(source / "model.onnx", out / "model.fp32.onnx")  # first: refuses a non-dynamic model
    labels = json.loads((source / "labels.json").read_text())
    max_length = int(labels["max_length"])
    shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")
    labels.update(model_version=version)
    (out / "labels.json").write_text(json.dumps(labels, indent=2))
    reference = {t: task_argmax(out, "model.fp32.onnx", x, max_length, t) for t, x in dev.parity.items()}
    measured: dict[str, dict[str, float]] = {}
    chosen = None
    for name, spec in recipes.items():
        quantize_int8_static(
            out / "model.fp32.onnx",
            out / "model.onnx",
            out / "tokenizer.json",
            dev.calibration,
            max_length,
            spec.keep_fp32,
            split_outliers=spec.split_outliers,
        )
        measured[name] = {
            t: float(np.mean(task_argmax(out, "model.onnx", x, max_length, t) != reference[t]))
            for t, x in dev.parity.items()
        }
        log.info("static INT8 recipe %s: argmax disagreement with FP32 on dev %s", name, measured[name])
        if max(measured[name].values()) <= max_disagreement:
            chosen = name
            break
    if chosen is None:
        raise ExportParityError(
            f"no static INT8 recipe within {max_disagreement:.0%} of FP32 on the dev parity rows: {measured}"
        )
    # fitted on raw logits, so the labels.json written above (no temperature yet) is the one to score with
    labels.update(int8_recipe=chosen, quantization="static", temperature=fit_temperatures(out))
    (out / "labels.json").write_text(json.dumps(labels, indent=2))
    return {
        "int8_recipe": chosen,
        "disagreement": measured,
        "quantization": "static",
        "temperature": labels["temperature"],
    }
