"""The numpy versions of onnxruntime's MultiHeadAttention and BiasGelu that the reference evaluator runs
compute what onnxruntime's kernels compute."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from edgeport.quantize.guard.reference_ops import CONTRIB_OPS

BATCH, LENGTH, HEADS, HEAD_SIZE = 2, 5, 3, 4
WIDTH = HEADS * HEAD_SIZE


def _both(node, inputs: dict[str, np.ndarray], output_shape):
    graph = helper.make_graph(
        [node],
        "contrib",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, output_shape)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("com.microsoft", 1)]
    )
    onnxruntime = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return onnxruntime.run(None, inputs)[0], ReferenceEvaluator(model, new_ops=CONTRIB_OPS).run(None, inputs)[0]


@pytest.mark.parametrize(
    "case", ["plain", "bias", "key_padding_mask", "attention_bias", "unidirectional", "scale", "all"]
)
def test_multi_head_attention_matches_onnxruntime(case):
    rng = np.random.default_rng(0)
    inputs = {n: rng.standard_normal((BATCH, LENGTH, WIDTH)).astype(np.float32) for n in ("q", "k", "v")}
    names = ["q", "k", "v", "", "", ""]
    attributes = {"num_heads": HEADS}
    if case in ("bias", "all"):
        inputs["bias"] = rng.standard_normal(3 * WIDTH).astype(np.float32)
        names[3] = "bias"
    if case in ("key_padding_mask", "all"):
        inputs["mask"] = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
        names[4] = "mask"
    if case in ("attention_bias", "all"):
        inputs["attention_bias"] = rng.standard_normal((1, HEADS, LENGTH, LENGTH)).astype(np.float32)
        names[5] = "attention_bias"
    if case in ("unidirectional", "all"):
        attributes["unidirectional"] = 1
    if case in ("scale", "all"):
        attributes["scale"] = 0.3
    while names[-1] == "":
        names.pop()
    node = helper.make_node("MultiHeadAttention", names, ["out"], domain="com.microsoft", **attributes)
    expected, got = _both(node, inputs, [BATCH, LENGTH, WIDTH])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_bias_gelu_and_gelu_match_onnxruntime():
    rng = np.random.default_rng(1)
    x = 3 * rng.standard_normal((BATCH, LENGTH, WIDTH)).astype(np.float32)
    bias = rng.standard_normal(WIDTH).astype(np.float32)
    node = helper.make_node("BiasGelu", ["x", "bias"], ["out"], domain="com.microsoft")
    expected, got = _both(node, {"x": x, "bias": bias}, list(x.shape))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    expected, got = _both(helper.make_node("Gelu", ["x"], ["out"], domain="com.microsoft"), {"x": x}, list(x.shape))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_form_it_does_not_know_is_refused_not_guessed():
    rng = np.random.default_rng(2)
    packed = rng.standard_normal((BATCH, LENGTH, HEADS, 3, HEAD_SIZE)).astype(np.float32)  # packed Q, K and V
    node = helper.make_node("MultiHeadAttention", ["packed"], ["out"], domain="com.microsoft", num_heads=HEADS)
    graph = helper.make_graph(
        [node],
        "packed",
        [helper.make_tensor_value_info("packed", TensorProto.FLOAT, packed.shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [BATCH, LENGTH, WIDTH])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("com.microsoft", 1)]
    )
    with pytest.raises(NotImplementedError):
        ReferenceEvaluator(model, new_ops=CONTRIB_OPS).run(None, {"packed": packed})
