"""Outlier-channel decomposition of an ONNX graph's projections, so that static INT8 can quantize all of them.

Why: with one activation scale per tensor (static INT8, :func:`finsentry.model.export.quantize_int8_static`) the
inputs of this encoder's projections are hard to quantize: a few hidden channels reach 20-30 where 99% of the
values stay under 1.7 (the LayerNorm outlier features of BERT-family models), so a uint8 step sized for the
outliers leaves ordinary activations a handful of levels. With every projection in INT8, 4.5% (sentiment) and
5.1% (topic) of the dev argmaxes differed from FP32 (``docs/tuning.md``).

What: the mixed-precision decomposition of LLM.int8() (T. Dettmers, M. Lewis, Y. Belkada, L. Zettlemoyer,
"LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale", NeurIPS 2022). For a projection
``y = x @ W`` (``x`` float32 ``[batch, seq, d_in]``, ``W`` ``[d_in, d_out]``) whose input has outlier channels
``C``, the graph computes ::

    y = (x * m) @ W  +  x[..., C] @ W[C, :]

where ``m`` is 1 on ordinary channels and 0 on ``C``. The first product is the original MatMul, which static INT8
then quantizes with a scale fitted to the ordinary channels only; the second (``|C|`` of 384 inputs) stays FP32.
In FP32 the two graphs are the same function (equal to float rounding). ``C`` is fixed once, from calibration
texts: the channels whose largest magnitude over real (unpadded) tokens exceeds :data:`OUTLIER_THRESHOLD` (6.0,
the paper's threshold; no value here was fitted to our data). The channels are a property of the weights, so the
same text gets the same probabilities whatever its batch (unlike a per-batch outlier search).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

OUTLIER_THRESHOLD = 6.0
"""Largest ``|activation|`` of an ordinary channel (Dettmers et al. 2022, section 3.2: magnitudes of at least 6
mark the outlier features; the same value in bitsandbytes' ``llm_int8_threshold``)."""

PROJECTION_PATTERN = (
    r"layer\.\d+/(attention/self/(query|key|value)|attention/output/dense|intermediate/dense|output/dense)/"
)
"""Node names of the encoder's projections (MatMul with a weight initializer) that are decomposed."""

OUTLIER_SUFFIX = "_outliers_fp32"
"""Suffix of the added outlier MatMuls: :func:`finsentry.model.export.quantize_int8_static` keeps them in FP32."""


def activation_absmax(model_path: Path, names: list[str], batches: Iterable[Mapping[str, np.ndarray]]) -> dict:
    """Largest ``|value|`` per channel of the tensors ``names`` over the real tokens of ``batches``.

    Args:
        model_path: an FP32 ONNX graph. names: tensors ``[batch, seq, channels]`` of it.
        batches: model inputs (int64 ``input_ids`` / ``attention_mask`` ``[batch, seq]``); padded positions
            (mask 0) are left out.

    Returns:
        ``{name: float32 [channels]}``.

    Raises:
        ValueError: ``batches`` is empty.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper

    model = onnx.load(str(model_path))
    for name in names:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor by name
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out: dict[str, np.ndarray] = {}
    for batch in batches:
        real = np.asarray(batch["attention_mask"]).astype(bool)
        for name, value in zip(names, session.run(names, dict(batch)), strict=True):
            peak = np.abs(value[real]).max(axis=0)
            out[name] = peak if name not in out else np.maximum(out[name], peak)
    if not out and names:
        raise ValueError("activation_absmax needs at least one batch of calibration inputs")
    return out


def decompose_outliers(
    fp32_path: Path,
    out_path: Path,
    batches: Iterable[Mapping[str, np.ndarray]],
    threshold: float = OUTLIER_THRESHOLD,
    pattern: str = PROJECTION_PATTERN,
) -> dict[str, list[int]]:
    """Write ``fp32_path`` with each projection of ``pattern`` split as in the module doc.

    Args:
        fp32_path: an FP32 ONNX graph (after ``quant_pre_process``, so tensors keep their names).
        out_path: where the decomposed graph goes (FP32; same outputs to float rounding).
        batches: calibration inputs (dev texts, as :func:`activation_absmax` takes them).
        threshold: channels whose calibration peak exceeds it are outliers (default :data:`OUTLIER_THRESHOLD`).
        pattern: regular expression over MatMul node names.

    Returns:
        ``{input tensor name: [outlier channel indices]}`` for the inputs that have any.

    Raises:
        ValueError: ``threshold`` is not positive, or no MatMul matches ``pattern``.
    """
    import onnx
    from onnx import helper, numpy_helper

    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    model = onnx.load(str(fp32_path))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    match = re.compile(pattern)
    projections = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights and match.search(n.name)]
    if not projections:
        raise ValueError(f"no MatMul of {fp32_path} matches {pattern!r}")
    inputs = sorted({n.input[0] for n in projections})
    peaks = activation_absmax(fp32_path, inputs, batches)
    after_producer: dict[str, list] = {}  # tensor -> nodes to insert right after the node producing it
    after_node: dict[str, list] = {}  # projection name -> nodes to insert right after it
    channels: dict[str, list[int]] = {}
    for name in inputs:
        outliers = np.flatnonzero(peaks[name] > threshold)
        if outliers.size == 0:
            continue
        channels[name] = outliers.tolist()
        mask = np.ones(peaks[name].shape[0], np.float32)
        mask[outliers] = 0.0
        graph.initializer.append(numpy_helper.from_array(mask, f"{name}_ordinary_mask"))
        graph.initializer.append(numpy_helper.from_array(outliers.astype(np.int64), f"{name}_outlier_channels"))
        after_producer[name] = [
            helper.make_node("Mul", [name, f"{name}_ordinary_mask"], [f"{name}_ordinary"], name=f"{name}_ordinary"),
            helper.make_node(
                "Gather", [name, f"{name}_outlier_channels"], [f"{name}_outliers"], name=f"{name}_outliers", axis=2
            ),
        ]
        for node in (n for n in projections if n.input[0] == name):
            w = numpy_helper.to_array(weights[node.input[1]])
            rows = f"{node.name}{OUTLIER_SUFFIX}_weight"
            graph.initializer.append(numpy_helper.from_array(w[outliers, :].astype(np.float32), rows))
            y = node.output[0]
            node.input[0], node.output[0] = f"{name}_ordinary", f"{y}_ordinary"
            after_node[node.name] = [
                helper.make_node(
                    "MatMul", [f"{name}_outliers", rows], [f"{y}_outliers"], name=node.name + OUTLIER_SUFFIX
                ),
                helper.make_node("Add", [f"{y}_ordinary", f"{y}_outliers"], [y], name=f"{node.name}_recombined"),
            ]
    nodes = list(graph.node)
    del graph.node[:]
    graph_inputs = {i.name for i in graph.input}
    for name in (n for n in after_producer if n in graph_inputs):
        graph.node.extend(after_producer[name])
    for node in nodes:
        graph.node.append(node)
        for produced in node.output:
            graph.node.extend(after_producer.get(produced, []))
        graph.node.extend(after_node.get(node.name, []))
    onnx.save(model, str(out_path))
    return channels
