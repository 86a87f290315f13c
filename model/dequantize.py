"""Rebuild an FP32 ONNX graph from a dynamically quantized INT8 one (needs the ``onnx`` package, not torch).

Why: the shipped artifact keeps only its CPU INT8 ``model.onnx``; its FP32 export and the PyTorch checkpoint
are not in the repository (90 MB each). To re-quantize the *same* model another way (static INT8,
:func:`finsentry.model.export.quantize_int8_static`) we need an FP32 graph whose weights are the model's.
This module inverts what ``onnxruntime.quantization.quantize_dynamic`` wrote:

* each ``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(Mul(a_scale, w_scale))`` chain becomes one
  FP32 ``MatMul`` of the original activation with ``W = (W_q - w_zero_point) * w_scale`` (per output
  channel: ``w_scale`` has shape ``[N]`` for a ``[K, N]`` weight);
* each ``Gather(W_q, ids) -> DequantizeLinear`` of an embedding becomes ``Gather(W, ids)`` with
  ``W = (W_q - zero_point) * scale`` (per row or per column, as the scale's shape says).

The FP32 weights are exactly the INT8 model's dequantized weights (INT8 grid values), so the result scores as
the INT8 model would without activation quantization; layers the INT8 recipe kept in FP32 are copied as they
are. The graph is topologically re-sorted and checked with ``onnx.checker``.

Raises :class:`DequantizeError` when a quantized chain does not have the shape ``quantize_dynamic`` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class DequantizeError(ValueError):
    """The INT8 graph is not in the form ``quantize_dynamic`` writes; the message names the node."""


def _dequantized(q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32, broadcasting a per-channel scale over the matching axis."""
    q = q.astype(np.float32)
    zero_point = zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.ndim == 1 and scale.size > 1:
        if scale.shape[0] == q.shape[-1]:
            return (q - zero_point[None, :]) * scale[None, :]
        if scale.shape[0] == q.shape[0]:
            return (q - zero_point[:, None]) * scale[:, None]
        raise DequantizeError(f"scale of {scale.shape[0]} channels fits neither axis of a {q.shape} weight")
    return (q - zero_point) * scale


def fp32_from_dynamic_int8(int8_path: Path, fp32_path: Path) -> Path:
    """Write the FP32 graph of the dynamic INT8 model ``int8_path`` to ``fp32_path`` (see module docstring).

    Inputs and outputs of the graph are unchanged (``input_ids`` / ``attention_mask`` int64 ``[batch, seq]``,
    float32 logits). Returns ``fp32_path``.

    Raises:
        DequantizeError: the graph has no dynamically quantized MatMul, a quantized chain is not in
            ``quantize_dynamic``'s form, or the graph has a cycle.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(int8_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}

    def array(name: str) -> np.ndarray:
        if name not in inits:
            raise DequantizeError(f"{name} is not an initializer (a weight computed at run time?)")
        return numpy_helper.to_array(inits[name])

    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only_consumer(name: str, op_type: str, of: str):
        found = consumers.get(name, [])
        if len(found) != 1 or found[0].op_type != op_type:
            raise DequantizeError(f"{of}: expected one {op_type} after it, found {[c.op_type for c in found]}")
        return found[0]

    removed: set[str] = set()
    added, new_inits = [], []
    for n in graph.node:
        if n.op_type == "MatMulInteger":
            a_q, w_q, _a_zp, w_zp = n.input
            quantizer = producer.get(a_q)
            if quantizer is None or quantizer.op_type != "DynamicQuantizeLinear":
                raise DequantizeError(f"{n.name}: its activation is not quantized by a DynamicQuantizeLinear")
            activation = quantizer.input[0]
            cast = only_consumer(n.output[0], "Cast", n.name)
            out_mul = only_consumer(cast.output[0], "Mul", n.name)
            scale_mul = producer.get(out_mul.input[1])
            if scale_mul is None or scale_mul.op_type != "Mul":
                raise DequantizeError(f"{n.name}: the output scale is not a Mul of activation and weight scales")
            weight = _dequantized(array(w_q), array(w_zp), array(scale_mul.input[1]))
            name = f"{w_q}_fp32"
            new_inits.append(numpy_helper.from_array(weight, name))
            added.append(helper.make_node("MatMul", [activation, name], [out_mul.output[0]], name=n.name + "_fp32"))
            removed |= {n.name, cast.name, out_mul.name, scale_mul.name}
        elif n.op_type == "DequantizeLinear" and n.input[0] in producer and producer[n.input[0]].op_type == "Gather":
            gather = producer[n.input[0]]
            w_q, ids = gather.input
            weight = _dequantized(array(w_q), array(n.input[2]), array(n.input[1]))
            name = f"{w_q}_fp32"
            new_inits.append(numpy_helper.from_array(weight, name))
            axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
            added.append(helper.make_node("Gather", [name, ids], [n.output[0]], name=gather.name + "_fp32", axis=axis))
            removed |= {n.name, gather.name}

    if not any(n.op_type == "MatMulInteger" for n in graph.node):
        raise DequantizeError(
            f"{int8_path} has no MatMulInteger node: not a dynamically quantized INT8 model "
            "(a static or FP32 model cannot be requantized from)"
        )
    kept = [n for n in graph.node if n.name not in removed]
    used = {i for n in kept + added for i in n.input}
    kept = [n for n in kept if n.op_type != "DynamicQuantizeLinear" or any(o in used for o in n.output)]
    nodes = kept + added
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    initializers = [i for i in list(graph.initializer) + new_inits if i.name in used]

    ready = {i.name for i in graph.input} | {i.name for i in initializers} | {""}
    ordered, pending = [], nodes
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready |= set(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise DequantizeError(f"cannot order the graph: {rest[0].name} waits on an input nothing produces")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    onnx.checker.check_model(model)
    onnx.save(model, str(fp32_path))
    return fp32_path
