"""int8 activation pairs become uint8 ones, exactly: the same floats on onnxruntime, right on OpenVINO."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.quantize.transforms.unsigned_activations import unsigned_activations

CHANNELS = 4
SCALE = 16.0  # OpenVINO's fault shows with any scale but 1 (and powers of 2 up to 2)


def _concat_conv(output_int8: bool = False) -> onnx.ModelProto:
    """Two int8 activations (one shared scale, as NNCF gives a Concat's inputs) -> Concat -> Conv whose
    int8 weights share the activations' zero point tensor. ``output_int8``: the second input's int8
    tensor is also a graph output."""
    rng = np.random.default_rng(0)
    weights = (rng.integers(-64, 65, (CHANNELS, 2 * CHANNELS, 1, 1)) / 64).astype(np.float32)
    nodes = []
    for i in range(2):
        nodes += [
            helper.make_node("QuantizeLinear", [f"x{i}", "s", "z"], [f"q{i}"], name=f"quant{i}"),
            helper.make_node("DequantizeLinear", [f"q{i}", "s", "z"], [f"d{i}"], name=f"dequant{i}"),
        ]
    nodes += [
        helper.make_node("Concat", ["d0", "d1"], ["cat"], axis=1),
        helper.make_node("QuantizeLinear", ["w", "sw", "z"], ["wq"], name="wquant"),
        helper.make_node("DequantizeLinear", ["wq", "sw", "z"], ["wd"], name="wdequant"),
        helper.make_node("Conv", ["cat", "wd"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CHANNELS, 3, 3])]
    if output_int8:
        outputs.append(helper.make_tensor_value_info("q1", TensorProto.INT8, [1, CHANNELS, 3, 3]))
    graph = helper.make_graph(
        nodes,
        "concat_conv",
        [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [1, CHANNELS, 3, 3]) for i in range(2)],
        outputs,
        [
            numpy_helper.from_array(np.array(SCALE, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z"),
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array(1 / 64, np.float32), "sw"),
        ],
        value_info=[helper.make_tensor_value_info("q0", TensorProto.INT8, [1, CHANNELS, 3, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _feeds() -> dict[str, np.ndarray]:
    # integers of the scale up to 3x beyond the int8 range: clamping is part of what must stay the same
    rng = np.random.default_rng(1)
    return {f"x{i}": (rng.integers(-400, 400, (1, CHANNELS, 3, 3)) * SCALE / 1.7).astype(np.float32) for i in range(2)}


def _zero_point(model: onnx.ModelProto, node_name: str) -> np.ndarray:
    node = next(n for n in model.graph.node if n.name == node_name)
    return numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == node.input[2]))


def _ort(model: onnx.ModelProto) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, _feeds())


def test_activation_pairs_become_uint8_and_every_output_stays_bit_equal():
    model = _concat_conv()
    before = _ort(model)
    assert unsigned_activations(model) == 2
    onnx.checker.check_model(model, full_check=True)  # the recorded int8 type of q0 changed with it
    for name in ("quant0", "dequant0", "quant1", "dequant1"):
        zero = _zero_point(model, name)
        assert zero.dtype == np.uint8 and int(zero) == 128
    weight_zero = _zero_point(model, "wquant")
    assert weight_zero.dtype == np.int8 and int(weight_zero) == 0  # the weights' shared zero point kept
    assert _zero_point(model, "wdequant").dtype == np.int8
    np.testing.assert_array_equal(_ort(model)[0], before[0])


def test_a_pair_whose_int8_tensor_is_a_graph_output_is_left_alone():
    model = _concat_conv(output_int8=True)
    before = _ort(model)
    assert unsigned_activations(model) == 1
    assert _zero_point(model, "quant1").dtype == np.int8 and _zero_point(model, "quant0").dtype == np.uint8
    after = _ort(model)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])  # the graph's int8 output keeps its type and values


def test_a_model_without_int8_activations_is_unchanged():
    model = _concat_conv()
    unsigned_activations(model)
    again = model.SerializeToString()
    assert unsigned_activations(model) == 0
    assert model.SerializeToString() == again


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_openvino_computes_the_rewritten_concat_conv_as_onnxruntime_does(tmp_path):
    import openvino as ov

    model = _concat_conv()
    unsigned_activations(model)
    onnx.save(model, str(tmp_path / "m.onnx"))
    # f32 for what stays float: OpenVINO's CPU default is bf16 where the CPU has it (AVX-512 BF16, AMX), whose
    # 8-bit mantissa rounds 6245.5 to 6240 (Intel Xeon, AVX-512 BF16) whatever the int8 part computes
    compiled = ov.Core().compile_model(str(tmp_path / "m.onnx"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    expected = _ort(model)[0]
    got = compiled(_feeds())[0]
    # with int8 activations OpenVINO gave values clamped to [-128, 127] here (expected reaches ~5000)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3 * float(np.abs(expected).max()))


def test_an_ir3_model_keeps_every_initializer_listed_as_a_graph_input():
    # IR < 4 lists every initializer as a graph input too: the old zero point leaves the inputs with its
    # initializer (left behind, it would have to be fed) and its uint8 twin is listed in its place
    model = _concat_conv()
    graph = model.graph
    for node in graph.node:
        if node.name in ("wquant", "wdequant"):
            node.input[2] = "zw"
    graph.initializer.append(numpy_helper.from_array(np.array(0, np.int8), "zw"))
    for init in graph.initializer:
        graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    model.ir_version = 3
    onnx.checker.check_model(model)
    before = _ort(model)
    assert unsigned_activations(model) == 2
    onnx.checker.check_model(model)  # every initializer is a graph input, as IR 3 requires
    assert "z" not in {i.name for i in graph.input} | {i.name for i in graph.initializer}
    np.testing.assert_array_equal(_ort(model)[0], before[0])
