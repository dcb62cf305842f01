"""The fidelity guard's judgement, the held-back split, recipes chosen from the graph, warning capture,
sequence outputs judged by their decoded sequence."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.errors import ConfigError
from edgeport.quantize import quant_config
from edgeport.quantize.guard.fidelity import ctc_greedy_decode, fidelity, sequence_agreement
from edgeport.quantize.guard.heads import sequence_heads, sequence_outputs
from edgeport.quantize.guard.held_out import hold_back
from edgeport.quantize.guard.judge import (
    DEFAULT_MIN_SEQUENCE_AGREEMENT,
    GuardReport,
    Tolerance,
    default_tolerance,
    judge,
    verify_and_judge,
)
from edgeport.quantize.noise import THIRD_PARTY, captured_warnings, third_party_summary
from edgeport.quantize.strategy.recipes import graph_profile, recipes_for


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
    recipes = recipes_for(conv, auto)
    assert [r.name for r in recipes] == ["static-per-channel", "static-float-classifier", "dynamic"]
    # the head after the last convolution (and its fused BatchNorm/ReLU) stays in float: pooling, flatten, Gemm
    model = onnx.load(str(fp32_onnx))
    ops = {n.name: n.op_type for n in model.graph.node}
    head = recipes[1].config.exclude_nodes
    assert head == conv.classifier_head and "Gemm" in {ops[name] for name in head}
    assert not {ops[name] for name in head} & {"Conv", "Relu", "BatchNormalization"}
    assert recipes[1].races == "static-per-channel"
    # without a weight layer after the last convolution (a detector's map) there is no such head
    headless = onnx.helper.make_model(
        onnx.helper.make_graph(
            [c for c in model.graph.node if ops[c.name] not in ("Gemm",)][:3],
            "headless",
            list(model.graph.input),
            [onnx.helper.make_tensor_value_info(model.graph.node[2].output[0], onnx.TensorProto.FLOAT, None)],
            list(model.graph.initializer),
        )
    )
    assert [r.name for r in recipes_for(graph_profile(headless), auto)] == ["static-per-channel", "dynamic"]

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


# --- sequence outputs: judged by the decoded sequence ----------------------------------------------------


def _ctc_scores(rng, samples=20, steps=16, classes=6) -> np.ndarray:
    """Peaky CTC-like probabilities [samples, steps, classes]: mostly blank (0), a confident class here and there."""
    best = np.where(rng.random((samples, steps)) < 0.6, 0, rng.integers(1, classes, (samples, steps)))
    logits = rng.normal(0, 0.3, (samples, steps, classes))
    np.put_along_axis(logits, best[..., None], 6.0, axis=-1)
    return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)


def test_greedy_ctc_decoding_collapses_repeats_and_drops_blanks():
    steps = np.array([[0, 1, 1, 0, 1, 2, 2, 0, 0, 3]])
    scores = np.eye(4)[steps]
    assert ctc_greedy_decode(scores) == [(1, 1, 2, 3)]
    other = np.eye(4)[np.array([[1, 1, 0, 0, 1, 2, 0, 2, 0, 3]])]  # 2 is repeated across a blank: twice
    assert ctc_greedy_decode(other) == [(1, 1, 2, 2, 3)]
    assert sequence_agreement(scores, scores) == 1.0 and sequence_agreement(scores, other) == 0.0


def test_a_sequence_output_whose_decoding_changes_fails_despite_a_high_cosine(rng):
    fp32 = _ctc_scores(rng)
    int8 = fp32 + rng.normal(0, 1e-3, fp32.shape)  # small noise everywhere ...
    for sample in (2, 7, 11):  # ... and on three lines of twenty, a near tie at one step tips the other way
        step = int(np.argmax(fp32[sample].argmax(-1) == 0))  # a blank step
        near_tie = np.array([0.49, 0.47, 0.01, 0.01, 0.01, 0.01])
        fp32[sample, step], int8[sample, step] = near_tie, near_tie[[1, 0, 2, 3, 4, 5]]  # blank -> class 1
    assert [ctc_greedy_decode(fp32[i : i + 1]) != ctc_greedy_decode(int8[i : i + 1]) for i in (2, 7, 11)] == [True] * 3
    tolerance = Tolerance(min_cosine=0.99)
    cosine_only = judge({"probs": fp32}, {"probs": int8}, None, tolerance, "held out")
    assert cosine_only.within_tolerance and cosine_only.value > 0.99  # what cosine alone would let through
    assert "sequence_agreement" not in cosine_only.outputs[0] and len(cosine_only.checks) == 1

    report = judge({"probs": fp32}, {"probs": int8}, None, tolerance, "held out", sequence_outputs={"probs"})
    assert not report.within_tolerance
    assert report.metric == "sequence_agreement" and report.value == pytest.approx(17 / 20)
    assert report.required == DEFAULT_MIN_SEQUENCE_AGREEMENT
    assert report.outputs[0]["mean_cosine"] > 0.99 and report.outputs[0]["sequence_agreement"] == pytest.approx(0.85)
    assert report.failed == ["sequence_agreement (output 'probs')"]
    assert [(c["metric"], c["passed"]) for c in report.checks] == [("mean_cosine", True), ("sequence_agreement", False)]
    line = report.line()
    assert "\n" not in line and line.startswith("OUTSIDE TOLERANCE: sequence_agreement 0.85 on output 'probs'")
    assert "mean_cosine" in line and line.endswith("(held out)")
    assert report.shortfall() == pytest.approx(DEFAULT_MIN_SEQUENCE_AGREEMENT - 0.85)
    # describe() keeps every field it had, and adds the checks
    described = report.describe()
    assert {"metric", "value", "required", "within_tolerance", "judged_on", "outputs"} <= set(described)
    assert described["checks"][1]["value"] == pytest.approx(0.85)

    same = judge({"probs": fp32}, {"probs": fp32 * 1.0001}, None, tolerance, "held out", sequence_outputs={"probs"})
    assert same.within_tolerance and same.metric == "mean_cosine" and same.checks[1]["value"] == 1.0
    assert "sequence_agreement 1 on output 'probs' ok" in same.line()


def test_sequence_outputs_are_judged_with_labels_too(rng):
    logits = np.eye(3)[np.arange(20) % 3] * 5.0
    fp32_seq = _ctc_scores(rng)
    broken = fp32_seq[:, ::-1].copy()  # every line read backwards
    fp32, int8 = {"cls": logits, "seq": fp32_seq}, {"cls": logits, "seq": broken}
    report = judge(fp32, int8, np.arange(20) % 3, Tolerance(max_drop=1.0), "val", sequence_outputs={"seq"})
    assert not report.within_tolerance and report.metric == "sequence_agreement"
    assert report.checks[0]["metric"] == "top1_accuracy" and report.checks[0]["passed"]


def test_min_sequence_agreement_is_checked():
    assert Tolerance(min_cosine=0.99).min_sequence_agreement == DEFAULT_MIN_SEQUENCE_AGREEMENT
    with pytest.raises(ConfigError, match="min_sequence_agreement"):
        Tolerance(min_cosine=0.99, min_sequence_agreement=1.5)


def test_an_old_style_report_still_reads_as_one_line():
    report = GuardReport("mean_cosine", 0.995, 0.99, True, "held out")  # as callers built it before checks
    assert report.line() == "within tolerance: mean_cosine 0.995, required >= 0.99 (held out)"
    assert report.shortfall() == 0.0


def _graph_model(nodes, inputs, outputs, initializers=(), opset=13) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_sequence_outputs_reads_softmax_over_classes_from_the_graph():
    w = numpy_helper.from_array(np.ones((8, 5), np.float32), "w")
    features = _value("x", ["n", "t", 8])
    head = helper.make_node("MatMul", ["x", "w"], ["logits"])
    # a CTC head: Softmax over the last axis, then an Identity (paddle2onnx's final scale op)
    ctc = _graph_model(
        [head, helper.make_node("Softmax", ["logits"], ["p"], axis=-1), helper.make_node("Identity", ["p"], ["y"])],
        [features],
        [_value("y", ["n", "t", 5])],
        [w],
    )
    assert sequence_outputs(ctc) == {"y"}
    # opset 12 with a positive axis (the last one), output declared without a shape
    old = _graph_model(
        [head, helper.make_node("Softmax", ["logits"], ["y"], axis=2)], [features], [_value("y", None)], [w], opset=12
    )
    assert sequence_outputs(old) == {"y"}
    # opset 12, axis 1: softmax over T and C flattened together, not class scores per step
    flat = _graph_model(
        [head, helper.make_node("Softmax", ["logits"], ["y"], axis=1)], [features], [_value("y", None)], [w], opset=12
    )
    assert sequence_outputs(flat) == set()
    # LogSoftmax over classes at axis 1 of [N, C, T], transposed to [N, T, C]: a sequence
    channels_first = _graph_model(
        [
            helper.make_node("LogSoftmax", ["x"], ["lp"], axis=1),
            helper.make_node("Transpose", ["lp"], ["y"], perm=[0, 2, 1]),
        ],
        [_value("x", ["n", 5, "t"])],
        [_value("y", ["n", "t", 5])],
    )
    assert sequence_outputs(channels_first) == {"y"}
    # time-major [T, N, C] (torch CTC style): run_all_outputs delivers it samples-first, classes still last
    time_major = _graph_model(
        [
            head,
            helper.make_node("LogSoftmax", ["logits"], ["lp"], axis=2),
            helper.make_node("Transpose", ["lp"], ["y"], perm=[1, 0, 2]),
        ],
        [features],
        [_value("y", ["t", "n", 5])],
        [w],
    )
    assert sequence_outputs(time_major) == {"y"}
    # Softmax on [N * T, C], reshaped to [N, T, C] by a constant shape
    shape = numpy_helper.from_array(np.array([-1, 10, 5], np.int64), "shape")
    reshaped = _graph_model(
        [
            helper.make_node("MatMul", ["x2", "w"], ["l2"]),
            helper.make_node("Softmax", ["l2"], ["p"], axis=-1),
            helper.make_node("Reshape", ["p", "shape"], ["y"]),
        ],
        [_value("x2", ["nt", 8])],
        [_value("y", ["n", 10, 5])],
        [w, shape],
    )
    assert sequence_outputs(reshaped) == {"y"}


def test_feature_maps_classifiers_and_probability_maps_are_not_sequences(fp32_onnx):
    conv_w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "cw")
    image = _value("x", ["n", 3, "h", "w"])
    features = _graph_model([helper.make_node("Conv", ["x", "cw"], ["y"])], [image], [_value("y", None)], [conv_w])
    segmentation = _graph_model(  # Softmax over the channels of a map: per-pixel classes, not a sequence
        [helper.make_node("Conv", ["x", "cw"], ["f"]), helper.make_node("Softmax", ["f"], ["y"], axis=1)],
        [image],
        [_value("y", ["n", 4, "h", "w"])],
        [conv_w],
    )
    probability_map = _graph_model(
        [helper.make_node("Conv", ["x", "cw"], ["f"]), helper.make_node("Sigmoid", ["f"], ["y"])],
        [image],
        [_value("y", ["n", 4, "h", "w"])],
        [conv_w],
    )
    classifier = onnx.load(str(fp32_onnx))
    for model in (features, segmentation, probability_map, classifier):
        assert sequence_outputs(model) == set()
    # [n, 4, 8] hidden states out of a projection (MatMul): the graph cannot tell them from a linear CTC
    # head; their values can (no class 0 or 7 is the argmax of most steps: no CTC blank)
    hidden = _attention_like()
    assert sequence_outputs(hidden) == {"y"}
    states = np.random.default_rng(3).normal(0, 1, (6, 4, 8))
    assert sequence_heads(hidden, {"y": states}) == {}


def test_verify_and_judge_reads_sequence_outputs_from_the_fp32_graph(tmp_path, rng):
    from edgeport.quantize import ModelSource, quantize

    w = numpy_helper.from_array(rng.normal(0, 1, (8, 6)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.array([4, 0, 0, 0, 0, 0], np.float32), "b")  # class 0 the blank of most steps
    model = _graph_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
        ],
        [_value("x", ["n", 12, 8])],
        [_value("y", ["n", 12, 6])],
        [w, bias],
    )
    fp32 = tmp_path / "seq.onnx"
    onnx.save(model, str(fp32))
    x = rng.normal(0, 1, (40, 12, 8)).astype(np.float32)
    int8 = tmp_path / "seq.int8.onnx"
    quantize(ModelSource(fp32), {"x": x[:32]}, quant_config(backend="ort-static"), int8)
    _, report = verify_and_judge(int8, fp32, {"x": x[32:]}, None, Tolerance(min_cosine=0.9), "held out")
    sequence = [c for c in report.checks if c["metric"] == "sequence_agreement"]
    assert [c["output"] for c in sequence] == ["y"] and "sequence_agreement" in report.outputs[0]
    assert report.outputs[0]["ctc_blank"] == 0


def test_a_time_major_output_behind_a_transpose_is_a_sequence_once_samples_first():
    """[N, T, C] -> Transpose(1, 0, 2) -> LogSoftmax(axis=2): PyTorch's CTC layout [T, N, C]. run_all_outputs
    moves its samples axis to the front, so the classes stay last: a sequence output like the batch-first one."""

    def model(nodes, source):
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 40, 37])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        )
        assert source  # the graph's tensors named as in the docstring
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    transpose = helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2])
    time_major = model([transpose, helper.make_node("LogSoftmax", ["t"], ["y"], axis=2)], "time-major")
    batch_first = model([helper.make_node("LogSoftmax", ["x"], ["y"], axis=2)], "batch-first")
    assert sequence_outputs(time_major) == {"y"} and sequence_outputs(batch_first) == {"y"}


def test_an_int8_model_that_outputs_zeros_is_not_faithful():
    """Every activation rounded to zero gives zero outputs: their cosine to fp32 is 0, not a pass (a
    zero norm used to read as perfect agreement); two zero outputs still agree."""
    reference = np.random.default_rng(0).normal(size=(8, 4))
    assert fidelity(reference, np.zeros_like(reference))["mean_cosine"] == 0.0
    assert fidelity(np.zeros_like(reference), np.zeros_like(reference))["mean_cosine"] == 1.0
    spread = fidelity(reference, reference + 0.1 * np.random.default_rng(1).normal(size=(8, 4)))
    assert 0.0 < spread["cosine_sd"] < 0.1 and spread["samples"] == 8
