"""The fidelity guard's judgement, the held-back split, recipes chosen from the graph, warning capture."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeport.errors import ConfigError
from edgeport.quant_backends import quant_config
from edgeport.quant_backends.fidelity import fidelity
from edgeport.quant_backends.guard import Tolerance, default_tolerance, hold_back, judge
from edgeport.quant_backends.noise import THIRD_PARTY, captured_warnings, third_party_summary
from edgeport.quant_backends.recipes import graph_profile, recipes_for


def test_argmax_agreement_only_for_classifier_outputs(rng):
    logits = rng.standard_normal((8, 10))
    assert "top1_agreement" in fidelity(logits, logits)
    hidden = rng.standard_normal((8, 16, 64))  # a hidden state: its flattened argmax means nothing
    assert "top1_agreement" not in fidelity(hidden, hidden + 0.01)


def test_cosine_guard_judges_every_output_and_fails_on_the_worst(rng):
    a, b = rng.standard_normal((6, 4, 8)), rng.standard_normal((6, 32))
    noisy_b = b + 2.0 * rng.standard_normal(b.shape)  # the second output is destroyed
    report = judge({"a": a, "b": b}, {"a": a, "b": noisy_b}, None, Tolerance(min_cosine=0.99), "held out")
    assert report.metric == "mean_cosine" and not report.within_tolerance
    assert report.value == pytest.approx(min(o["mean_cosine"] for o in report.outputs)) and report.value < 0.9
    assert report.line().startswith("OUTSIDE TOLERANCE")
    fine = judge({"a": a}, {"a": a * 1.001}, None, Tolerance(min_cosine=0.99), "held out")
    assert fine.within_tolerance and fine.line().startswith("within tolerance")


def test_accuracy_guard_counts_points_against_fp32(rng):
    labels = np.arange(20) % 4
    fp32 = np.eye(4)[labels] * 5.0
    int8 = fp32.copy()
    int8[:1] = np.eye(4)[(labels[:1] + 1) % 4] * 5.0  # one of 20 wrong: 5 points
    assert not judge({"y": fp32}, {"y": int8}, labels, Tolerance(max_drop=1.0), "val").within_tolerance
    assert judge({"y": fp32}, {"y": int8}, labels, Tolerance(max_drop=5.0), "val").within_tolerance


def test_default_tolerance_always_exists():
    assert default_tolerance(np.zeros(3, int)) == Tolerance(max_drop=1.0)
    assert default_tolerance(None) == Tolerance(min_cosine=0.99)


def test_hold_back_never_judges_on_calibration_samples():
    x = np.arange(16, dtype=np.float32)[:, None]
    held = hold_back({"x": x}, np.arange(16), "calib.npz")
    assert len(held.calibration["x"]) == 12 and len(held.validation["x"]) == 4
    assert not set(held.calibration["x"].ravel()) & set(held.validation["x"].ravel())
    assert list(held.validation_labels) == [12, 13, 14, 15] and "calib.npz" in held.judged_on
    with pytest.raises(ConfigError, match="give --val"):
        hold_back({"x": x[:1]}, None, "calib.npz")


def _attention_like() -> onnx.ModelProto:
    """x @ W1 -> scores = q @ k^T (activation x activation) -> softmax -> @ W2, with an int64 mask input."""
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [8, 8], np.ones(64, np.float32))
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [8, 8], np.ones(64, np.float32))
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["q"], name="proj"),
        helper.make_node("Transpose", ["q"], ["kt"], perm=[0, 2, 1], name="t"),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["p"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["p", "q"], ["ctx"], name="context"),
        helper.make_node("MatMul", ["ctx", "w2"], ["y"], name="out"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 8]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["n", 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 8])],
        [w1, w2],
    )
    return helper.make_model(graph)


def test_recipes_follow_the_graph(fp32_onnx):
    conv = graph_profile(onnx.load(str(fp32_onnx)))
    assert conv.conv_dominant
    auto = quant_config(backend="auto")
    assert [r.name for r in recipes_for(conv, auto)] == ["static-per-channel", "dynamic"]

    attention = graph_profile(_attention_like())
    assert not attention.conv_dominant and attention.integer_inputs == 1
    assert sorted(attention.activation_matmuls) == ["context", "scores"] and attention.weight_matmuls == 2
    recipes = recipes_for(attention, auto)
    assert [r.name for r in recipes] == ["static-weight-matmuls", "dynamic", "static-per-channel"]
    weights_only = recipes[0].config
    assert set(weights_only.exclude_nodes) == {"scores", "context"}  # attention scores stay in float
    assert "Softmax" in weights_only.exclude_op_types and "MatMul" not in weights_only.exclude_op_types


def test_third_party_warnings_are_collected_once_each():
    with captured_warnings() as noise:
        for _ in range(13):
            logging.warning("Axis 1 is out-of-range for weight 'ln.weight' with rank 1")
        warnings.warn("invalid value encountered in divide", RuntimeWarning, stacklevel=1)
    lines = noise.lines()
    assert lines == [
        f"{THIRD_PARTY}root: Axis 1 is out-of-range for weight 'ln.weight' with rank 1 (x13)",
        f"{THIRD_PARTY}RuntimeWarning: invalid value encountered in divide",
    ]
    assert "2 distinct third-party" in third_party_summary(["edgeport's own", *lines])
    assert third_party_summary(["edgeport's own"]) is None
