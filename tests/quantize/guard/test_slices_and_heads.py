"""Outputs as real pretrained models give them: a detector head whose box coordinates and class scores
share one tensor (judged slice by slice), CTC heads with raw logits or time-major layout (recognised from
the graph and the values), hidden states that are no heads, and recurrent layers counted as compute."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.errors import CheckFailedError, ConfigError
from edgeport.quantize.guard.fidelity import ctc_blank, ctc_greedy_decode
from edgeport.quantize.guard.heads import sequence_heads, sequence_outputs
from edgeport.quantize.guard.judge import DEFAULT_MIN_SLICE_AGREEMENT, Tolerance, judge
from edgeport.quantize.guard.slices import feature_axis, slice_fidelity
from edgeport.quantize.guard.verify import int8_coverage, require_quantized
from edgeport.quantize.tolerance import ToleranceSettings

# --- a detector head: box coordinates (0-320) and class scores (0-1) in one tensor ------------------------


def _detector_head(rng, samples=8, anchors=400, classes=12) -> np.ndarray:
    """[samples, anchors, 4 + 1 + classes]: boxes in pixels, objectness and sparse class scores (near 0
    on all but the few anchors on an object, as a trained YOLO's are)."""
    boxes = rng.uniform(0, 320, (samples, anchors, 4))
    logits = rng.normal(-7, 1.5, (samples, anchors, 1 + classes))
    on_object = rng.random((samples, anchors, 1 + classes)) < 0.03
    logits[on_object] = rng.normal(0.5, 2.0, int(on_object.sum()))
    return np.concatenate([boxes, 1 / (1 + np.exp(-logits))], axis=-1)


def _one_scale(output: np.ndarray) -> np.ndarray:
    """What int8 with one per-tensor scale makes of it: a step of 320 / 255, every score 0 or 1.255."""
    step = output.max() / 255
    return np.round(output / step) * step


def test_a_detector_head_whose_scores_int8_wiped_out_fails_despite_its_cosine(rng):
    fp32 = _detector_head(rng)
    int8 = _one_scale(fp32)
    assert np.allclose(np.unique(int8[..., 4:]), [0.0, fp32.max() / 255])  # every score 0 or one step
    report = judge({"head": fp32}, {"head": int8}, None, Tolerance(min_cosine=0.99), "held out")
    assert report.outputs[0]["mean_cosine"] > 0.999  # what the cosine alone let through
    assert not report.within_tolerance and report.metric == "slice_agreement"
    assert report.failed == ["slice_agreement (output 'head')"]
    check = report.checks[-1]
    assert check["value"] == pytest.approx(4 / 17) and check["required"] == DEFAULT_MIN_SLICE_AGREEMENT
    details = check["details"]
    assert details["axis"] == 2 and details["slices"] == 17
    assert all(w["index"] >= 4 and w["error"] > 0.3 for w in details["worst"])  # the scores, named
    line = report.line()
    assert line.startswith("OUTSIDE TOLERANCE: slice_agreement 0.2353 on output 'head' (axis 2; worst slice ")
    assert "mean_cosine 1 ok" in line
    assert 0 < report.shortfall() < 1

    # the same output at int8 precision per part (small noise): within tolerance, the check recorded
    scale = np.concatenate([np.full(4, 320.0), np.ones(fp32.shape[-1] - 4)])
    faithful = fp32 + rng.normal(0, 1e-3, fp32.shape) * scale
    fine = judge({"head": fp32}, {"head": faithful}, None, Tolerance(min_cosine=0.99), "held out")
    assert fine.within_tolerance and [c["metric"] for c in fine.checks] == ["mean_cosine", "slice_agreement"]
    assert fine.checks[-1]["value"] == 1.0 and "slice_agreement 1 on output 'head' ok" in fine.line()


def test_the_feature_axis_is_found_in_either_layout(rng):
    head = _detector_head(rng)
    channels_first = np.ascontiguousarray(np.swapaxes(head, 1, 2))  # [N, 4 + 1 + classes, anchors]
    assert feature_axis(head)[0] == 2 and feature_axis(channels_first)[0] == 1
    result = slice_fidelity(channels_first, _one_scale(channels_first))
    assert result["slice_axis"] == 1 and result["slice_agreement"] == pytest.approx(4 / 17)
    # a mixed head of one detection per sample, [N, 4 + 2]: four box coordinates and two scores
    single = np.concatenate([rng.uniform(0, 320, (40, 4)), rng.uniform(0, 1, (40, 2))], axis=1)
    assert slice_fidelity(single, _one_scale(single))["slice_agreement"] == pytest.approx(4 / 6)


def test_outputs_with_nothing_to_slice_are_not_sliced(rng):
    # a single-channel map: rows and columns are positions, not features
    depth = np.cumsum(np.cumsum(rng.normal(0, 1, (4, 1, 32, 32)), axis=2), axis=3)
    # channel-last hidden states with parts of one scale, an embedding, and probabilities
    hidden = rng.normal(0, 1, (4, 12, 64))
    embedding = rng.normal(0, 1, (20, 16))
    probabilities = np.exp(rng.normal(0, 3, (20, 1000)))
    probabilities /= probabilities.sum(1, keepdims=True)
    # units whose scales run on without a break (0.001 to 0.025, as MiniLM's pooler's): one part
    pooled = rng.normal(0, 1, (48, 384)) * np.geomspace(0.001, 0.025, 384)
    for output in (depth, hidden, embedding, probabilities, pooled):
        assert slice_fidelity(output, _one_scale(np.abs(output)) * np.sign(output)) == {}
    # a feature map with two groups of channels 1000 times apart: sliced along the channels, not the rows
    scales = np.repeat([10.0, 0.01], 8)[:, None, None]
    maps = np.cumsum(rng.normal(0, 1, (4, 16, 20, 20)), axis=2) * scales
    assert feature_axis(maps)[0] == 1


def test_a_few_near_silent_slices_do_not_fail_a_faithful_model(rng):
    fp32 = rng.normal(0, 1, (16, 50, 40)) * np.concatenate([np.full(38, 100.0), [0.01, 0.01]])
    int8 = fp32 + rng.normal(0, 0.05, fp32.shape)  # the two near-silent features drown in the noise
    result = slice_fidelity(fp32, int8)
    assert result["slice_agreement"] == pytest.approx(38 / 40) and 38 / 40 >= DEFAULT_MIN_SLICE_AGREEMENT
    assert {w["index"] for w in result["worst_slices"][:2]} == {38, 39}
    assert judge({"y": fp32}, {"y": int8}, None, Tolerance(min_cosine=0.99), "held out").within_tolerance


def test_the_top1_output_and_sequence_outputs_are_not_sliced(rng):
    labels = np.arange(40) % 4
    mixed = np.concatenate([np.eye(4)[labels] * 300.0, rng.uniform(0, 1, (40, 2))], axis=1)
    report = judge({"y": mixed}, {"y": _one_scale(mixed)}, labels, Tolerance(max_drop=1.0), "val")
    assert report.within_tolerance and [c["metric"] for c in report.checks] == ["top1_accuracy"]


def test_min_slice_agreement_is_a_checked_tolerance_field():
    assert Tolerance(min_cosine=0.99).min_slice_agreement == DEFAULT_MIN_SLICE_AGREEMENT == 0.9
    assert Tolerance(max_drop=1.0, min_slice_agreement=0.5).min_slice_agreement == 0.5
    with pytest.raises(ConfigError, match="min_slice_agreement"):
        Tolerance(min_cosine=0.99, min_slice_agreement=1.5)
    with pytest.raises(ConfigError, match="min_slice_agreement"):
        ToleranceSettings(min_slice_agreement=float("nan"))
    assert ToleranceSettings(min_slice_agreement=0.7).tolerance(labelled=False).min_slice_agreement == 0.7
    assert ToleranceSettings().tolerance(labelled=True) == Tolerance(max_drop=1.0)


# --- CTC heads from any exporter: raw logits, time-major, the blank at either end --------------------------


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _value(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _const(name, array):
    return numpy_helper.from_array(
        np.asarray(array, np.float32 if np.asarray(array).dtype.kind == "f" else np.int64), name
    )


def _ctc_logits(rng, blank, samples=20, steps=24, classes=8) -> np.ndarray:
    """Raw logits [samples, steps, classes], ``blank`` the argmax of ~60% of the steps, samples-first."""
    best = np.where(rng.random((samples, steps)) < 0.6, blank, rng.integers(1, classes - 1, (samples, steps)))
    logits = rng.normal(0, 1.0, (samples, steps, classes))
    np.put_along_axis(logits, best[..., None], 8.0, axis=-1)
    return logits


def _flip_steps(logits: np.ndarray, samples: tuple[int, ...]) -> np.ndarray:
    """One step of each of ``samples``, between two blanks, changes its argmax from the blank to a character:
    its decoded line gains that character."""
    flipped = logits.copy()
    blank = int(np.bincount(logits.argmax(-1).ravel()).argmax())
    for sample in samples:
        best = logits[sample].argmax(-1)
        step = next(t for t in range(1, len(best) - 1) if (best[t - 1 : t + 2] == blank).all())
        flipped[sample, step, 3] = logits[sample, step].max() + 1.0
    return flipped


def test_a_raw_logits_ctc_head_is_recognised_with_its_blank(rng):
    """MatMul + Add (no Softmax), paddle-style; the blank is the last class here (C - 1)."""
    head = _model(
        [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["logits"])],
        [_value("x", ["p2o.DynamicDimension.0", "p2o.DynamicDimension.1", 16])],
        [_value("logits", ["p2o.DynamicDimension.2", "p2o.DynamicDimension.3", 8])],
        [_const("w", rng.normal(0, 1, (16, 8))), _const("b", np.zeros(8))],
    )
    assert sequence_outputs(head) == {"logits"}
    fp32 = _ctc_logits(rng, blank=7)
    assert ctc_blank(fp32) == 7 and sequence_heads(head, {"logits": fp32}) == {"logits": 7}
    assert sequence_heads(head, {"logits": fp32[..., :6]}) == {}  # not the head's 8 classes
    assert sequence_heads(head, {"logits": rng.normal(0, 1, fp32.shape)}) == {}  # no blank: not CTC

    int8 = _flip_steps(fp32, (1, 5, 9)) + rng.normal(0, 1e-3, fp32.shape)
    heads = sequence_heads(head, {"logits": fp32})
    report = judge({"logits": fp32}, {"logits": int8}, None, Tolerance(min_cosine=0.99), "held out", heads)
    assert report.outputs[0]["mean_cosine"] > 0.99 and report.outputs[0]["ctc_blank"] == 7
    assert not report.within_tolerance and report.metric == "sequence_agreement"
    assert report.value == pytest.approx(17 / 20) and report.failed == ["sequence_agreement (output 'logits')"]
    assert [c["metric"] for c in report.checks] == ["mean_cosine", "sequence_agreement"]  # not sliced
    # with the graph's candidates only (as strategy/auto.py passes them), the blank is found in the values
    same = judge({"logits": fp32}, {"logits": int8}, None, Tolerance(min_cosine=0.99), "held out", {"logits"})
    assert same.outputs[0]["ctc_blank"] == 7 and same.value == pytest.approx(17 / 20)
    # decoding drops the blank found (7), not class 0
    assert all(7 not in line for line in ctc_greedy_decode(fp32, 7))


def test_a_time_major_ctc_head_is_recognised_samples_first(rng):
    """[N, T, F] -> MatMul -> Add -> Transpose(1, 0, 2): [T, N, C] out of the graph, whose input says
    [1, seqlen, F] and whose output dims are named unlike the input's; run_all_outputs delivers [N, T, C]."""
    head = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["mm"]),
            helper.make_node("Add", ["b", "mm"], ["logits"]),
            helper.make_node("Transpose", ["logits"], ["y"], perm=[1, 0, 2]),
        ],
        [_value("x", [1, "seqlen", 16])],
        [_value("y", ["time", 1, 8])],
        [_const("w", rng.normal(0, 1, (16, 8))), _const("b", np.zeros(8))],
    )
    assert sequence_outputs(head) == {"y"}
    fp32 = _ctc_logits(rng, blank=0)  # samples-first, as run_all_outputs gives it
    assert sequence_heads(head, {"y": fp32}) == {"y": 0}
    report = judge({"y": fp32}, {"y": _flip_steps(fp32, (0, 2))}, None, Tolerance(min_cosine=0.9), "val", {"y": 0})
    assert report.failed == ["sequence_agreement (output 'y')"] and report.value == pytest.approx(18 / 20)


def test_conv_heads_reach_the_last_axis_through_squeeze_and_transpose(rng):
    """A CRNN's 1x1 Conv head: [N, C, 1, T] -> Squeeze(2) -> Transpose(0, 2, 1) -> [N, T, C]; a Conv1d one
    without the Transpose keeps the classes on axis 1 and is not a sequence."""
    conv2d = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Squeeze", ["c", "axes"], ["s"]),
            helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 1]),
        ],
        [_value("x", ["n", 16, 1, "t"])],
        [_value("y", ["n", "t", 8])],
        [_const("w", rng.normal(0, 1, (8, 16, 1, 1))), _const("axes", np.array([2]))],
    )
    conv1d = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        [_value("x", ["n", 16, "t"])],
        [_value("y", ["n", 8, "t"])],
        [_const("w", rng.normal(0, 1, (8, 16, 1)))],
    )
    assert sequence_outputs(conv2d) == {"y"} and sequence_outputs(conv1d) == set()
    # paddle2onnx's opset 12: Squeeze's axes an attribute, the Softmax's axis the last one
    opset12 = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Squeeze", ["c"], ["s"], axes=[2]),
            helper.make_node("Transpose", ["s"], ["t"], perm=[0, 2, 1]),
            helper.make_node("Softmax", ["t"], ["y"], axis=2),
        ],
        [_value("x", ["n", 16, 1, "t"])],
        [_value("y", ["n", "t", 8])],
        [_const("w", rng.normal(0, 1, (8, 16, 1, 1)))],
        opset=12,
    )
    assert sequence_outputs(opset12) == {"y"}


def test_a_detector_reshape_that_splits_the_channels_is_no_sequence(rng):
    """SSD-style: Conv [N, A * C, H, W] -> Transpose to NHWC -> Reshape [N, H * W * A, C]: classes per
    anchor, class 0 the background of most anchors, but not a sequence of steps."""
    ssd = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", ["t", "shape"], ["y"]),
        ],
        [_value("x", ["n", 16, 4, 4])],
        [_value("y", ["n", 48, 5])],
        [_const("w", rng.normal(0, 1, (15, 16, 1, 1))), _const("shape", np.array([0, -1, 5]))],
    )
    assert sequence_outputs(ssd) == set()


def test_layer_normalized_hidden_states_are_no_sequence_heads(rng):
    """A transformer's [N, T, 384] hidden state: LayerNormalization, or decomposed into ReduceMean / Sub /
    Pow / Sqrt / Div and Add(Mul(.., gamma), beta): never a head, whatever its values."""
    hidden = 384
    fused = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("LayerNormalization", ["h", "gamma", "beta"], ["y"], axis=-1),
        ],
        [_value("x", ["n", "t", 16])],
        [_value("y", ["n", "t", hidden])],
        [
            _const("w", rng.normal(0, 1, (16, hidden))),
            _const("gamma", np.ones(hidden)),
            _const("beta", np.zeros(hidden)),
        ],
    )
    decomposed = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("ReduceMean", ["h"], ["mean"], axes=[-1]),
            helper.make_node("Sub", ["h", "mean"], ["centred"]),
            helper.make_node("Pow", ["centred", "two"], ["squared"]),
            helper.make_node("ReduceMean", ["squared"], ["variance"], axes=[-1]),
            helper.make_node("Add", ["variance", "eps"], ["shifted"]),
            helper.make_node("Sqrt", ["shifted"], ["std"]),
            helper.make_node("Div", ["centred", "std"], ["normed"]),
            helper.make_node("Mul", ["normed", "gamma"], ["scaled"]),
            helper.make_node("Add", ["scaled", "beta"], ["y"]),
        ],
        [_value("x", ["n", "t", 16])],
        [_value("y", ["n", "t", hidden])],
        [
            _const("w", rng.normal(0, 1, (16, hidden))),
            _const("two", np.array(2.0)),
            _const("eps", np.array(1e-5)),
            _const("gamma", np.ones(hidden)),
            _const("beta", np.zeros(hidden)),
        ],
    )
    blank_heavy = _ctc_logits(rng, blank=0, classes=hidden)  # values that would pass for a CTC head's
    for model in (fused, decomposed):
        assert sequence_outputs(model) == set()
        assert sequence_heads(model, {"y": blank_heavy}) == {}


# --- recurrent layers are compute layers -------------------------------------------------------------------


def _lstm_model(rng, path) -> None:
    """x [N, T, 8] -> Transpose -> three stacked LSTMs (hidden 8) -> MatMul head: most compute is recurrent."""
    hidden, steps = 8, 6
    nodes = [helper.make_node("Transpose", ["x"], ["seq0"], perm=[1, 0, 2])]
    initializers = []
    for layer in range(3):
        initializers += [
            _const(f"W{layer}", rng.normal(0, 0.3, (1, 4 * hidden, 8))),
            _const(f"R{layer}", rng.normal(0, 0.3, (1, 4 * hidden, hidden))),
            _const(f"B{layer}", np.zeros((1, 8 * hidden))),
        ]
        nodes += [
            helper.make_node(
                "LSTM",
                [f"seq{layer}", f"W{layer}", f"R{layer}", f"B{layer}"],
                [f"y{layer}"],
                hidden_size=hidden,
                name=f"lstm{layer}",
            ),
            helper.make_node("Squeeze", [f"y{layer}", "axis1"], [f"seq{layer + 1}"]),
        ]
    nodes += [
        helper.make_node("Transpose", ["seq3"], ["batch_first"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["batch_first", "head"], ["y"], name="head"),
    ]
    initializers += [_const("axis1", np.array([1])), _const("head", rng.normal(0, 0.3, (hidden, 5)))]
    onnx.save(_model(nodes, [_value("x", ["n", steps, 8])], [_value("y", ["n", steps, 5])], initializers), path)


def test_lstm_layers_count_in_int8_coverage(rng, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = tmp_path / "lstm.onnx"
    _lstm_model(rng, fp32)
    coverage = int8_coverage(fp32)
    assert coverage["float_kernels"] == 4 and coverage["integer_kernels"] == 0 and coverage["share"] == 0.0
    assert sum("(LSTM)" in layer for layer in coverage["unfused"]) == 3
    with pytest.raises(CheckFailedError, match=r"it has 4 Conv/Gemm/MatMul/LSTM/GRU/RNN layer\(s\)"):
        require_quantized(coverage)

    only_head = tmp_path / "head.int8.onnx"  # the MatMul alone in int8: 1 of 4, not "1 of 1"
    quantize_dynamic(fp32, only_head, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
    coverage = int8_coverage(only_head)
    assert (coverage["integer_kernels"], coverage["float_kernels"]) == (1, 3) and coverage["share"] == 0.25

    everything = tmp_path / "all.int8.onnx"
    quantize_dynamic(fp32, everything, op_types_to_quantize=["MatMul", "LSTM"], weight_type=QuantType.QInt8)
    coverage = int8_coverage(everything)
    assert coverage["integer_ops"].get("DynamicQuantizeLSTM") == 3 and coverage["float_kernels"] == 0


# --- through onnxruntime's quantizer and the guard, as `edgeport quantize` runs them ----------------------


def _quantized(tmp_path, model: onnx.ModelProto, x: np.ndarray):
    from edgeport.quantize import ModelSource, quant_config, quantize
    from edgeport.quantize.guard.judge import verify_and_judge

    fp32, int8 = tmp_path / "model.onnx", tmp_path / "model.int8.onnx"
    onnx.save(model, fp32)
    quantize(ModelSource(fp32), {"x": x[:32]}, quant_config(backend="ort-static"), int8)
    return verify_and_judge(int8, fp32, {"x": x[32:]}, None, Tolerance(min_cosine=0.99), "held out")


def test_a_concatenated_detector_head_quantized_by_onnxruntime_fails_on_its_scores(tmp_path, rng):
    """Concat(boxes * 320, sigmoid scores): the static recipe gives the Concat one scale, and the scores go."""
    nodes = [
        helper.make_node("MatMul", ["x", "wb"], ["b0"]),
        helper.make_node("Sigmoid", ["b0"], ["b1"]),
        helper.make_node("Mul", ["b1", "size"], ["boxes"]),
        helper.make_node("MatMul", ["x", "ws"], ["s0"]),
        helper.make_node("Add", ["s0", "bs"], ["s1"]),
        helper.make_node("Sigmoid", ["s1"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["y"], axis=2),
    ]
    weights = [
        _const("wb", rng.normal(0, 0.5, (16, 4))),
        _const("size", [320.0]),
        _const("ws", rng.normal(0, 1, (16, 11))),
        _const("bs", np.full(11, -4.0)),
    ]
    model = _model(nodes, [_value("x", ["n", 200, 16])], [_value("y", ["n", 200, 15])], weights)
    _, report = _quantized(tmp_path, model, rng.normal(0, 1, (40, 200, 16)).astype(np.float32))
    assert report.outputs[0]["mean_cosine"] > 0.999
    assert not report.within_tolerance and report.failed == ["slice_agreement (output 'y')"]
    assert report.checks[-1]["details"]["axis"] == 2 and report.checks[-1]["value"] <= 4 / 15


def test_a_time_major_raw_logits_head_is_judged_by_its_decoded_sequence(tmp_path, rng):
    """MatMul + Add (class 0 the blank of most steps) -> Transpose to [T, N, C]: found by verify_and_judge."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("Transpose", ["logits"], ["y"], perm=[1, 0, 2]),
    ]
    weights = [_const("w", rng.normal(0, 1, (8, 6))), _const("b", [4, 0, 0, 0, 0, 0.0])]
    model = _model(nodes, [_value("x", ["n", 12, 8])], [_value("y", [12, "n", 6])], weights)
    verification, report = _quantized(tmp_path, model, rng.normal(0, 1, (40, 12, 8)).astype(np.float32))
    assert [c["metric"] for c in report.checks] == ["mean_cosine", "sequence_agreement"]
    assert report.outputs[0]["ctc_blank"] == 0 and verification["vs_fp32"]["ctc_blank"] == 0


def test_auto_keeps_a_concatenated_head_in_float_instead_of_shipping_wiped_scores(tmp_path, rng, capsys):
    """A conv detector whose head concatenates boxes and scores, through `edgeport quantize` (auto): the
    static recipe that misses on the scores is retried with the node that makes the output in float."""
    import json

    from edgeport.cli import main

    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["f0"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["f0"], ["f1"], name="stem_relu"),
        helper.make_node("Conv", ["f1", "wb"], ["b0"], name="box_conv"),
        helper.make_node("Sigmoid", ["b0"], ["b1"], name="box_sigmoid"),
        helper.make_node("Mul", ["b1", "size"], ["boxes"], name="box_scale"),
        helper.make_node("Conv", ["f1", "ws", "bs"], ["s0"], name="score_conv"),
        helper.make_node("Sigmoid", ["s0"], ["scores"], name="score_sigmoid"),
        helper.make_node("Concat", ["boxes", "scores"], ["c"], axis=1, name="head_concat"),
        helper.make_node("Reshape", ["c", "shape"], ["y"], name="head_flatten"),
    ]
    weights = [
        _const("w0", rng.normal(0, 0.3, (16, 8, 3, 3))),
        _const("wb", rng.normal(0, 0.3, (4, 16, 1, 1))),
        _const("size", [320.0]),
        _const("ws", rng.normal(0, 0.5, (11, 16, 1, 1))),
        _const("bs", np.full(11, -4.0)),
        onnx.numpy_helper.from_array(np.array([0, 15, -1], dtype=np.int64), "shape"),
    ]
    model = _model(nodes, [_value("x", ["n", 8, 10, 20])], [_value("y", ["n", 15, 200])], weights)
    onnx.save(model, tmp_path / "det.onnx")
    x = rng.normal(0, 1, (48, 8, 10, 20)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x[:32])
    np.savez(tmp_path / "val.npz", x=x[32:])
    args = [tmp_path / "det.onnx", "--calib", tmp_path / "calib.npz", "--val", tmp_path / "val.npz", "--quiet"]
    code = main(["quantize", *(str(a) for a in args), "--json"])
    manifest = json.loads(capsys.readouterr().out)
    attempts = {a["recipe"]: a for a in manifest["auto"]["attempts"]}
    assert not attempts["static-per-channel"]["within_tolerance"]
    assert attempts["static-per-channel"]["metric"] == "slice_agreement"
    head = attempts["static-per-channel+float-head"]
    assert head["within_tolerance"] and "head_concat" in head["why"] and "head_flatten" in head["why"]
    assert code == 0 and manifest["auto"]["chosen"] == "static-per-channel+float-head"
