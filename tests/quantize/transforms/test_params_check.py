"""Invalid quantization parameters are repaired (activations left in float) or refused (weights)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.errors import QuantizationError
from edgeport.quantize import quant_config, quantize
from edgeport.quantize.guard.fidelity import fidelity
from edgeport.quantize.transforms.params_check import repair_quant_params


def _qdq_relu(path, scale: float) -> None:
    inits = [
        numpy_helper.from_array(np.array(scale, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.uint8), "z"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
        helper.make_node("Relu", ["xd"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("scale", [0.0, float("nan"), float("inf"), 1e30])
def test_an_invalid_activation_scale_is_left_in_float(tmp_path, scale):
    path = tmp_path / "m.onnx"
    _qdq_relu(path, scale)
    repairs = repair_quant_params(path)
    assert [r["tensor"] for r in repairs] == ["x"] and repairs[0]["action"] == "left in float"
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node] == ["Relu"]
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.array_equal(y, np.maximum(x, 0))


def test_a_valid_scale_is_left_alone(tmp_path):
    path = tmp_path / "m.onnx"
    _qdq_relu(path, 0.05)
    before = path.read_bytes()
    assert repair_quant_params(path) == [] and path.read_bytes() == before


def test_an_invalid_weight_scale_is_refused_with_the_tensor_named(tmp_path):
    inits = [
        numpy_helper.from_array(np.ones((4, 4), np.int8), "w_q"),
        numpy_helper.from_array(np.array(float("nan"), np.float32), "w_s"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w"], name="w_dq"),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    path = tmp_path / "w.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(QuantizationError, match="NaN or infinite scale for 'w_q'"):
        repair_quant_params(path)


def _masked_attention(path) -> None:
    """scores = x @ W; masked = scores + (1 - mask) * finfo.min; softmax; @ W2: the mask constant makes
    the masked tensor's calibrated range absurd."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(np.finfo(np.float32).min, np.float32), "minimum"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["scores"], name="scores"),
        helper.make_node("Sub", ["one", "mask"], ["inverted"], name="invert"),
        helper.make_node("Mul", ["inverted", "minimum"], ["penalty"], name="penalty"),
        helper.make_node("Add", ["scores", "penalty"], ["masked"], name="mask_add"),
        helper.make_node("Softmax", ["masked"], ["p"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["p", "w2"], ["y"], name="out"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["n", 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_masking_constant_is_repaired_during_quantization(tmp_path):
    fp32 = tmp_path / "attn.onnx"
    _masked_attention(fp32)
    rng = np.random.default_rng(1)
    mask = (rng.random((64, 8)) > 0.3).astype(np.float32)
    feeds = {"x": rng.standard_normal((64, 8)).astype(np.float32), "mask": mask}
    out = tmp_path / "attn.int8.onnx"
    result = quantize(fp32, feeds, quant_config(backend="ort-static", reduce_range=False), out)
    repaired = {r["tensor"] for r in result.report["repaired"]}
    assert repaired & {"penalty", "masked"}, result.report["repaired"]
    session = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, out)}
    ref, got = (session[p].run(None, feeds)[0] for p in (fp32, out))
    assert fidelity(ref, got)["mean_cosine"] > 0.99
