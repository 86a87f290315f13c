"""Export a trained checkpoint to ONNX and build the per-execution-provider variants (needs the ``train`` extra).

* ``model.fp32.onnx``: ``torch.onnx.export(..., dynamo=False)``, opset 17, dynamic batch and sequence axes,
  inputs ``input_ids`` / ``attention_mask`` (int64 ``[batch, seq]``), outputs ``topic_logits`` ``[batch, 20]``
  and ``sentiment_logits`` ``[batch, 3]`` (float32). Kept for evaluation, not shipped.
* ``model.onnx``: CPU dynamic INT8 quantization of MatMul/Gemm and the embedding Gather (weights int8 per
  output channel, signed; the heads, and if needed the FFN down-projections, stay FP32; activations
  quantized at run time), ``onnxruntime.quantization.quantize_dynamic``. Per-tensor weights lose ~19 points
  on this AVX2 CPU (no VNNI: u8s8 saturation), per-channel does not.
* ``model.fp16.onnx``: FP16 weights/activations with FP32 inputs/outputs, for the CUDA execution provider.
* ``model.qdq.onnx``: static QDQ INT8 (optimum's ``ORTQuantizer``, calibration on dev texts) for TensorRT.

The export fails (:class:`ExportParityError`) if the CPU INT8 model disagrees with FP32 on the sentiment
argmax of more than 1% of the parity texts (FPB test sentences); the INT8 recipes of :data:`INT8_RECIPES` are
tried in order and the first that passes is kept (recorded as ``int8_recipe`` in ``labels.json``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_INT8_DISAGREEMENT = 0.01
"""Largest share of parity texts on which INT8 and FP32 argmax may differ (either task)."""


class ExportParityError(RuntimeError):
    """The INT8 model disagrees with FP32 on more than :data:`MAX_INT8_DISAGREEMENT` of the parity texts."""


def export_fp32(model, path: Path, opset: int = 17) -> Path:
    """Write the FP32 ONNX graph of ``model`` (a ``MultiTaskModel`` in eval mode) to ``path``."""
    import torch

    model.eval()
    ids = torch.ones((2, 12), dtype=torch.long)
    mask = torch.ones((2, 12), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model,
        (ids, mask),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=["input_ids", "attention_mask"],
        output_names=["topic_logits", "sentiment_logits"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "topic_logits": {0: "batch"},
            "sentiment_logits": {0: "batch"},
        },
    )
    return path


INT8_RECIPES: dict[str, tuple[str, ...]] = {
    "all_int8": ("_head/",),
    "ffn_down_fp32": ("_head/", "/output/dense/"),
    "ffn_fp32": ("_head/", "/output/dense/", "/intermediate/dense/"),
}
"""Dynamic INT8 recipes tried in order; each names substrings of MatMul/Gemm/Gather nodes kept in FP32.

``all_int8`` quantizes every weight but the two small heads. ``ffn_down_fp32`` also keeps the six FFN
down-projections (``layer.N/output/dense``, 1536 -> 384) in FP32: their inputs are post-GELU activations with
large outliers, which per-tensor dynamic activation quantization on this AVX2 CPU handles worst (measured on
an epoch-1 checkpoint: sentiment argmax disagreement on FPB test 1.96% -> 1.03%; 22 MB -> 33 MB).
``ffn_fp32`` keeps both FFN projections in FP32 (attention projections and embeddings INT8): the last resort."""


def quantize_int8_dynamic(
    fp32_path: Path, out_path: Path, keep_fp32: tuple[str, ...] = INT8_RECIPES["all_int8"]
) -> Path:
    """CPU dynamic INT8: per-channel signed int8 weights of MatMul/Gemm/Gather; see module docstring.

    ``keep_fp32``: substrings of node names left in FP32 (see :data:`INT8_RECIPES`).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path)).graph
    exclude = [n.name for n in graph.node if any(k in n.name for k in keep_fp32)]
    quantize_dynamic(
        str(fp32_path),
        str(out_path),
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm", "Gather"],
        nodes_to_exclude=exclude,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return out_path


ALWAYS_FP32_STATIC: tuple[str, ...] = (r"_head/", r"/attention/self/MatMul")
"""Node-name patterns (regular expressions) no static recipe quantizes: the two small heads, and the attention
score and context products (``Q K^T`` and ``softmax V``: both operands are activations, one of them the
softmax, whose per-tensor range a static scale fits worst)."""


@dataclass(frozen=True)
class StaticRecipe:
    """One static INT8 recipe: ``keep_fp32`` MatMul node-name patterns (regular expressions) left in FP32 on top of
    :data:`ALWAYS_FP32_STATIC`; ``split_outliers``: decompose the projections' outlier input channels into small
    FP32 products first (:mod:`finsentry.model.outliers`), so the rest can be INT8."""

    keep_fp32: tuple[str, ...] = ()
    split_outliers: bool = False


STATIC_INT8_RECIPES: dict[str, StaticRecipe] = {
    "static_ffn_down_fp32": StaticRecipe((r"layer\.\d+/output/dense/",)),
    "static_ffn_fp32": StaticRecipe(
        (r"layer\.\d+/output/dense/", r"/intermediate/dense/", r"/attention/output/dense/")
    ),
}
"""Static INT8 recipes ``finsentry model requantize`` tries in order (most INT8 first). ``static_ffn_down_fp32``
keeps the FFN down-projections (inputs: post-GELU activations with outliers); ``static_ffn_fp32`` keeps both FFN
projections and the attention output projection (INT8: the query, key and value projections). Measured on
``minilm-mt-v1``'s weights, argmax disagreement with FP32 on dev rows not used for calibration: every MatMul but
the heads and the attention products 4.4% (topic) / 4.9% (tweet sentiment); ``static_ffn_down_fp32`` 1.6% /
1.4% / 0.8% (FPB, topic, tweets); ``static_ffn_fp32`` 0.5% / 0.8% / 0.6%."""

OPT_IN_STATIC_RECIPES: dict[str, StaticRecipe] = {
    "static_split_outliers": StaticRecipe(split_outliers=True),
}
"""Static INT8 recipes used only when asked for by name (``finsentry model requantize --recipe``).
``static_split_outliers`` quantizes every projection after moving the input channels whose calibration peak
exceeds 6 (57 of ``minilm-mt-v1``'s 24 x 384 projection input channels) to small FP32 side products
(:mod:`finsentry.model.outliers`): ~1.6x the speed of ``static_ffn_fp32`` on a VNNI CPU, dev argmax disagreement
0.59% (sentiment) / 0.75% (topic), but on the evaluation sets 0.42 (FPB) and 0.46 (topic) points of accuracy
below FP32, where ``static_ffn_fp32`` stays within 0.1 (docs/tuning.md): not the default."""


def static_recipe(name: str) -> StaticRecipe:
    """The recipe ``name`` of :data:`STATIC_INT8_RECIPES` or :data:`OPT_IN_STATIC_RECIPES`.

    Raises:
        ValueError: no recipe has that name (the message lists them).

    >>> static_recipe("static_split_outliers").split_outliers
    True
    """
    known = {**STATIC_INT8_RECIPES, **OPT_IN_STATIC_RECIPES}
    if name not in known:
        raise ValueError(f"{name!r} is not a static INT8 recipe; choose one of {', '.join(known)}")
    return known[name]


def _calibration_batches(tokenizer_path: Path, texts: Sequence[str], max_length: int, batch_size: int = 32):
    """Length-sorted batches of ``texts`` as the scorer runs them: int64 ``input_ids`` / ``attention_mask``
    ``[batch, longest in batch]``, zero-padded."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    encodings = sorted(tok.encode_batch(list(texts)), key=lambda e: len(e.ids))
    for start in range(0, len(encodings), batch_size):
        chunk = encodings[start : start + batch_size]
        width = max(len(e.ids) for e in chunk)
        ids = np.zeros((len(chunk), width), dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, e in enumerate(chunk):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        yield {"input_ids": ids, "attention_mask": mask}


def quantize_int8_static(
    fp32_path: Path,
    out_path: Path,
    tokenizer_path: Path,
    calibration_texts: Sequence[str],
    max_length: int,
    keep_fp32: tuple[str, ...] = STATIC_INT8_RECIPES["static_ffn_fp32"].keep_fp32,
    split_outliers: bool = False,
) -> Path:
    """CPU static INT8 (QDQ): activation scales fixed at calibration, so a text's probabilities do not depend
    on which texts share its batch, its position or its padding (unlike dynamic quantization, whose
    activation scale is computed per batch).

    Weights int8 per output channel (symmetric), activations uint8 per tensor (u8s8: the VNNI fast path),
    MinMax ranges over ``calibration_texts`` (dev texts; batched as :func:`_calibration_batches`); embedding
    ``Gather`` weights int8. The graph is first pre-processed (``quant_pre_process``: ONNX shape inference
    and graph optimization). ``keep_fp32``: MatMul node-name patterns left in FP32, on top of
    :data:`ALWAYS_FP32_STATIC` (see :data:`STATIC_INT8_RECIPES`). ``split_outliers``: first split each
    projection's outlier input channels into an FP32 side product (:func:`finsentry.model.outliers.
    decompose_outliers`, on the same calibration texts), which stays FP32.

    Raises:
        ValueError: ``calibration_texts`` is empty.
    """
    import re
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration_texts:
        raise ValueError("static INT8 needs calibration texts (dev texts); got none")
    from finsentry.model.outliers import OUTLIER_SUFFIX, decompose_outliers

    patterns = [re.compile(p) for p in (*ALWAYS_FP32_STATIC, *keep_fp32, re.escape(OUTLIER_SUFFIX))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = _calibration_batches(tokenizer_path, calibration_texts, max_length)

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="finsentry-quant-") as tmp:
        pre = Path(tmp) / "model.pre.onnx"
        # symbolic shape inference cannot follow the pooling's dynamic shapes; ONNX shape inference is enough
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        if split_outliers:
            split = Path(tmp) / "model.split.onnx"
            batches = _calibration_batches(tokenizer_path, calibration_texts, max_length)
            channels = decompose_outliers(pre, split, batches)
            log.info(
                "outlier channels split to FP32: %d over %d inputs", sum(map(len, channels.values())), len(channels)
            )
            pre = split
        graph = onnx.load(str(pre)).graph
        exclude = [n.name for n in graph.node if n.op_type == "MatMul" and any(p.search(n.name) for p in patterns)]
        quantize_static(
            str(pre),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gather"],
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return out_path


def convert_fp16(fp32_path: Path, out_path: Path) -> Path:
    """FP16 copy for the CUDA execution provider (inputs/outputs stay int64/float32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(out_path))
    return out_path


def quantize_qdq_static(
    fp32_path: Path, out_path: Path, tokenizer_path: Path, calibration_texts: Sequence[str], max_length: int
) -> Path:
    """Static QDQ INT8 for TensorRT with optimum's ``ORTQuantizer`` (min-max calibration on ``calibration_texts``).

    Falls back to ``onnxruntime.quantization.quantize_static`` (same QDQ format) if optimum is not installed.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(length=max_length)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(range(0, len(calibration_texts), 16))

        def get_next(self):
            start = next(self._batches, None)
            if start is None:
                return None
            enc = tok.encode_batch(list(calibration_texts[start : start + 16]))
            return {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            }

    # optimum's ORTQuantizer wraps this same onnxruntime call; calling it directly avoids loading a
    # transformers config that our custom two-head graph does not have.
    quantize_static(
        str(fp32_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    return out_path


def task_argmax(folder: Path, variant: str, texts: Sequence[str], max_length: int, task: str) -> np.ndarray:
    """``task``'s argmax (int ``[len(texts)]``) of the model file ``variant`` of ``folder`` on ``texts``."""
    from finsentry.model.scorer import Scorer

    column = 0 if task == "topic" else 1
    return Scorer.load(folder, max_length=max_length, variant=variant, verify=False).logits(texts)[column].argmax(1)


def int8_disagreement(folder: Path, texts: Sequence[str], max_length: int, task: str = "sentiment") -> float:
    """Share of ``texts`` where ``model.onnx`` (INT8) and ``model.fp32.onnx`` differ in ``task``'s argmax (0..1)."""
    fp32, int8 = (task_argmax(folder, v, texts, max_length, task) for v in ("model.fp32.onnx", "model.onnx"))
    return float(np.mean(fp32 != int8))


def export_checkpoint(
    checkpoint: Path,
    out_dir: Path,
    model_version: str,
    parity_texts: Sequence[str],
    calibration_texts: Sequence[str] = (),
    gpu_variants: bool = True,
    max_disagreement: float = MAX_INT8_DISAGREEMENT,
) -> dict:
    """Checkpoint -> artifact folder (``model.onnx``, ``model.fp32.onnx``, variants, tokenizer, labels).

    Returns ``{"int8_disagreement": float, "files": [...]}``.

    Raises:
        ExportParityError: INT8 disagrees with FP32 on more than ``max_disagreement`` (default 1%) of
            ``parity_texts`` (only smoke tests of untrained models raise the limit).
    """
    from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
    from finsentry.model.train import load_checkpoint, load_tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    model, cfg = load_checkpoint(checkpoint)
    load_tokenizer().backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    labels = {
        "topic": list(TOPIC_LABELS),
        "sentiment": list(SENTIMENT_LABELS),
        "model_version": model_version,
        "max_length": cfg.max_length,
    }
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=2))
    fp32 = export_fp32(model, out_dir / "model.fp32.onnx")
    for recipe, keep in INT8_RECIPES.items():
        quantize_int8_dynamic(fp32, out_dir / "model.onnx", keep)
        disagreement = int8_disagreement(out_dir, parity_texts, cfg.max_length)
        log.info(
            "INT8 recipe %s: sentiment argmax disagreement with FP32 on %d texts: %.4f",
            recipe,
            len(parity_texts),
            disagreement,
        )
        if disagreement <= max_disagreement:
            break
    labels["int8_recipe"] = recipe
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=2))
    if disagreement > max_disagreement:
        raise ExportParityError(
            f"INT8 disagrees with FP32 on {disagreement:.2%} of {len(parity_texts)} texts "
            f"(limit {max_disagreement:.0%})"
        )
    if gpu_variants:
        convert_fp16(fp32, out_dir / "model.fp16.onnx")
        if calibration_texts:
            quantize_qdq_static(
                fp32, out_dir / "model.qdq.onnx", out_dir / "tokenizer.json", calibration_texts, cfg.max_length
            )
    files = sorted(p.name for p in out_dir.iterdir())
    return {"int8_disagreement": disagreement, "int8_recipe": recipe, "files": files}
