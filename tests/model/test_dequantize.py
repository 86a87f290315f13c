"""fp32_from_dynamic_int8 inverts quantize_dynamic on a small real ONNX graph (MatMul + embedding Gather)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from finsentry.model.dequantize import DequantizeError, fp32_from_dynamic_int8


def _tiny_model(path: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ids int64 [batch, seq] -> Gather(emb [50, 16]) -> Relu -> MatMul(W [16, 8]) -> out float32 [batch, seq, 8]."""
    emb = rng.normal(size=(50, 16)).astype(np.float32)
    weight = rng.normal(size=(16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "ids"], ["g"], name="/embeddings/Gather"),
            helper.make_node("Relu", ["g"], ["h"], name="/act/Relu"),
            helper.make_node("MatMul", ["h", "w"], ["out"], name="/dense/MatMul"),
        ],
        "tiny",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", 8])],
        initializer=[numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return emb, weight


def test_dequantized_graph_scores_with_the_int8_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    emb, weight = _tiny_model(tmp_path / "fp32.onnx", rng)
    quantize_dynamic(
        str(tmp_path / "fp32.onnx"),
        str(tmp_path / "int8.onnx"),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gather"],
    )
    fp32_from_dynamic_int8(tmp_path / "int8.onnx", tmp_path / "back.onnx")

    back = onnx.load(str(tmp_path / "back.onnx"))
    ops = sorted(n.op_type for n in back.graph.node)
    assert ops == ["Gather", "MatMul", "Relu"], f"rebuilt graph ops {ops}"
    weights = {i.name: numpy_helper.to_array(i) for i in back.graph.initializer}
    w_back = next(v for k, v in weights.items() if v.shape == (16, 8))
    e_back = next(v for k, v in weights.items() if v.shape == (50, 16))
    # per-channel symmetric int8: each value within half a quantization step of the original
    w_step = np.abs(weight).max(axis=0) / 127
    assert np.all(np.abs(w_back - weight) <= w_step / 2 + 1e-6), np.abs(w_back - weight).max()
    assert np.abs(e_back - emb).max() < np.abs(emb).max() / 127, np.abs(e_back - emb).max()

    ids = rng.integers(0, 50, size=(3, 5)).astype(np.int64)
    got = ort.InferenceSession(str(tmp_path / "back.onnx")).run(None, {"ids": ids})[0]
    want = np.maximum(e_back[ids], 0) @ w_back
    assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()
    # the INT8 model differs from it only by activation quantization
    int8 = ort.InferenceSession(str(tmp_path / "int8.onnx")).run(None, {"ids": ids})[0]
    assert np.abs(int8 - got).max() < 0.1 * np.abs(got).max(), (np.abs(int8 - got).max(), np.abs(got).max())


def test_a_graph_without_weights_as_initializers_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
            helper.make_node("DynamicQuantizeLinear", ["w"], ["wq", "ws", "wz"]),
            helper.make_node("MatMulInteger", ["xq", "wq", "xz", "wz"], ["y32"], name="mm"),
            helper.make_node("Cast", ["y32"], ["yf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["xs", "ws"], ["s"]),
            helper.make_node("Mul", ["yf", "s"], ["y"]),
        ],
        "bad",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "bad.onnx"))
    try:
        fp32_from_dynamic_int8(tmp_path / "bad.onnx", tmp_path / "out.onnx")
    except DequantizeError as exc:
        assert "not an initializer" in str(exc), str(exc)
    else:
        raise AssertionError("a weight computed at run time was dequantized without complaint")


def test_a_model_without_dynamic_quantization_is_refused(tmp_path: Path) -> None:
    _tiny_model(tmp_path / "fp32.onnx", np.random.default_rng(1))
    try:
        fp32_from_dynamic_int8(tmp_path / "fp32.onnx", tmp_path / "out.onnx")
    except DequantizeError as exc:
        assert "not a dynamically quantized INT8 model" in str(exc), str(exc)
    else:
        raise AssertionError("an FP32 model was 'dequantized' without complaint")
    assert not (tmp_path / "out.onnx").exists()


def test_requantize_cli_refuses_a_static_source_and_a_file_as_out_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from finsentry.cli import app
    from finsentry.common.paths import SHIPPED_MODEL_DIR  # static INT8 since minilm-mt-v1.1

    runner = CliRunner()
    res = runner.invoke(
        app, ["model", "requantize", "--source", str(SHIPPED_MODEL_DIR), "--out", str(tmp_path / "o"), "--version", "x"]
    )
    assert res.exit_code == 2 and "not a dynamically quantized INT8 model" in res.output, res.output
    assert "Traceback" not in res.output and sorted(p.name for p in (tmp_path / "o").iterdir()) == [], res.output
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = runner.invoke(
        app, ["model", "requantize", "--source", str(SHIPPED_MODEL_DIR), "--out", str(afile), "--version", "x"]
    )
    assert res.exit_code == 2 and "is a file" in res.output, res.output
    args = ["model", "requantize", "--source", str(SHIPPED_MODEL_DIR), "--out", str(tmp_path / "r"), "--version", "x"]
    res = runner.invoke(app, [*args, "--recipe", "all_the_int8"])
    assert res.exit_code == 2 and "'all_the_int8' is not a static INT8 recipe" in res.output, res.output
    assert "static_split_outliers" in res.output and not (tmp_path / "r").exists(), res.output
    same = ["model", "requantize", "--source", str(tmp_path / "r" / ".."), "--out", str(tmp_path), "--version", "x"]
    res = runner.invoke(app, same)
    assert res.exit_code == 2 and "is the --source folder" in res.output, res.output
