"""Outlier-channel decomposition (model/outliers.py, LLM.int8()'s split) on a small real ONNX graph: the split
graph computes the same function in FP32, finds exactly the channels above the threshold over real tokens only,
and lets static INT8 keep a channel with values near 30 from flattening every ordinary channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from finsentry.model.outliers import OUTLIER_SUFFIX, decompose_outliers

D_IN, D_OUT, OUTLIER = 16, 8, 5


def _tiny_model(path: Path, rng: np.random.Generator) -> np.ndarray:
    """input_ids int64 [batch, seq] (attention_mask unused by the math) -> Gather(emb [50, 16]) ->
    MatMul(W [16, 8]) named like an encoder projection -> logits [batch, seq, 8]. Channel 5 of every embedding
    row is ~30, the others ~N(0, 0.5): a LayerNorm outlier feature in miniature."""
    emb = rng.normal(scale=0.5, size=(50, D_IN)).astype(np.float32)
    emb[:, OUTLIER] = 30.0 + rng.normal(size=50).astype(np.float32)
    weight = rng.normal(size=(D_IN, D_OUT)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "input_ids"], ["h"], name="/embeddings/Gather"),
            helper.make_node("Identity", ["attention_mask"], ["mask_out"], name="/mask/Identity"),
            helper.make_node("MatMul", ["h", "w"], ["logits"], name="/encoder/layer.0/intermediate/dense/MatMul"),
        ],
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", D_OUT]),
            helper.make_tensor_value_info("mask_out", TensorProto.INT64, ["batch", "seq"]),
        ],
        initializer=[numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return emb


def _batches(rng: np.random.Generator, n: int = 3) -> list[dict[str, np.ndarray]]:
    out = []
    for _ in range(n):
        ids = rng.integers(0, 50, size=(4, 6)).astype(np.int64)
        out.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    return out


def _run(path: Path, batch: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], batch)[0]


def test_the_split_graph_finds_the_outlier_channel_and_computes_the_same_function(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    _tiny_model(tmp_path / "fp32.onnx", rng)
    channels = decompose_outliers(tmp_path / "fp32.onnx", tmp_path / "split.onnx", _batches(rng))
    assert channels == {"h": [OUTLIER]}, channels
    split = onnx.load(str(tmp_path / "split.onnx")).graph
    side = [n.name for n in split.node if n.name.endswith(OUTLIER_SUFFIX)]
    assert side == ["/encoder/layer.0/intermediate/dense/MatMul" + OUTLIER_SUFFIX], side
    for batch in _batches(rng, 2):
        want, got = _run(tmp_path / "fp32.onnx", batch), _run(tmp_path / "split.onnx", batch)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-4), np.abs(got - want).max()


def test_padded_positions_do_not_make_outliers(tmp_path: Path) -> None:
    """Peaks are taken over real tokens only: with the outlier tokens masked as padding, nothing is split."""
    rng = np.random.default_rng(3)
    _tiny_model(tmp_path / "fp32.onnx", rng)
    ids = rng.integers(0, 50, size=(2, 4)).astype(np.int64)
    batch = {"input_ids": ids, "attention_mask": np.zeros_like(ids)}
    batch["attention_mask"][:, 0] = 1
    channels = decompose_outliers(tmp_path / "fp32.onnx", tmp_path / "split.onnx", [batch], threshold=40.0)
    assert channels == {}, channels  # every value is < 40 (30 +- a few): no channel crosses this threshold
    with pytest.raises(ValueError, match="threshold must be > 0"):
        decompose_outliers(tmp_path / "fp32.onnx", tmp_path / "x.onnx", [batch], threshold=0.0)
    with pytest.raises(ValueError, match="no MatMul"):
        decompose_outliers(tmp_path / "fp32.onnx", tmp_path / "x.onnx", [batch], pattern="nothing-matches")


def test_static_int8_of_the_split_graph_keeps_the_ordinary_channels(tmp_path: Path) -> None:
    """Quantized as the shipped recipe does (QDQ, uint8 per-tensor activations, MinMax), the unsplit MatMul's
    step is ~31/255 and the ordinary channels (|x| < 2) keep ~16 levels; split, the step fits them."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(5)
    _tiny_model(tmp_path / "fp32.onnx", rng)
    calibration = _batches(rng, 4)
    decompose_outliers(tmp_path / "fp32.onnx", tmp_path / "split.onnx", calibration)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration)

        def get_next(self):
            return next(self.it, None)

    errors = {}
    for name in ("fp32", "split"):
        graph = onnx.load(str(tmp_path / f"{name}.onnx")).graph
        exclude = [n.name for n in graph.node if n.name.endswith(OUTLIER_SUFFIX)]
        quantize_static(
            str(tmp_path / f"{name}.onnx"),
            str(tmp_path / f"{name}.int8.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=exclude,
        )
        test = _batches(rng, 1)[0]
        want = _run(tmp_path / "fp32.onnx", test)
        errors[name] = float(np.abs(_run(tmp_path / f"{name}.int8.onnx", test) - want).max())
    assert errors["split"] < errors["fp32"] / 4, errors


def test_the_split_recipe_on_the_real_encoder_is_close_to_fp32_and_batch_independent(tmp_path: Path) -> None:
    """minilm-mt-v1's weights (dequantized), static INT8 with every projection quantized after the split, as
    ``finsentry model requantize --recipe static_split_outliers`` builds it: the
    sentiment argmax agrees with FP32 on >= 98% of 300 dev rows the scales never saw (before the split: ~95%), and
    a text's probabilities do not depend on its batch."""
    import shutil

    from finsentry.common.paths import REPO_ROOT
    from finsentry.model.dequantize import fp32_from_dynamic_int8
    from finsentry.model.export import OPT_IN_STATIC_RECIPES, quantize_int8_static, task_argmax
    from finsentry.model.requantize import DevTexts
    from finsentry.model.scorer import Scorer

    source = REPO_ROOT / "model" / "artifacts" / "minilm-mt-v1"
    for name in ("tokenizer.json", "labels.json"):
        shutil.copyfile(source / name, tmp_path / name)
    fp32_from_dynamic_int8(source / "model.onnx", tmp_path / "model.fp32.onnx")
    dev = DevTexts.load()
    spec = OPT_IN_STATIC_RECIPES["static_split_outliers"]
    quantize_int8_static(
        tmp_path / "model.fp32.onnx",
        tmp_path / "model.onnx",
        tmp_path / "tokenizer.json",
        dev.calibration,
        64,
        spec.keep_fp32,
        split_outliers=spec.split_outliers,
    )
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert sum(n.name.endswith(OUTLIER_SUFFIX) for n in graph.node) >= 6  # split side products, kept FP32
    assert sum(n.op_type == "DequantizeLinear" for n in graph.node) > 70  # and the projections quantized
    texts = dev.parity["sentiment"][:300]
    fp32 = task_argmax(tmp_path, "model.fp32.onnx", texts, 64, "sentiment")
    int8 = task_argmax(tmp_path, "model.onnx", texts, 64, "sentiment")
    agreement = float(np.mean(fp32 == int8))
    assert agreement >= 0.98, agreement
    scorer = Scorer.load(tmp_path, verify=False)
    whole = np.array([p.sentiment_probs for p in scorer.predict(texts[:100])])
    by_seven = np.array(
        [p.sentiment_probs for s in range(0, 100, 7) for p in scorer.predict(texts[s : min(s + 7, 100)])]
    )
    assert np.abs(whole - by_seven).max() < 1e-4, np.abs(whole - by_seven).max()
