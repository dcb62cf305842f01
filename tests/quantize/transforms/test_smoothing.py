"""SmoothQuant-style smoothing: exact in fp32, and it rescues int8 where activation outliers ruin one scale."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.quantize import ModelSource, quant_config, quantize
from edgeport.quantize.guard.fidelity import fidelity
from edgeport.quantize.guard.verify import ort_session, run_all_outputs
from edgeport.quantize.strategy.recipes import AutoConfig, GraphProfile, recipes_for
from edgeport.quantize.transforms.smoothing import OUTLIER_RATIO, smooth_model, worst_outlier_ratio

WIDTH, TOKENS, OUTLIERS = 128, 8, [3, 17, 41]


def _outlier_model(path, residual: bool, factor: float = 80.0) -> None:
    """LayerNorm whose gamma blows three channels up (as pretrained transformers' do), read by a MatMul whose
    rows for those channels are small; with ``residual`` the LayerNorm output also feeds an Add."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, WIDTH)).astype(np.float32)
    w2 = rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, WIDTH)).astype(np.float32)
    gamma = np.ones(WIDTH, np.float32)
    gamma[OUTLIERS] = factor
    w1[OUTLIERS, :] /= factor
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1, name="ln"),
        helper.make_node("MatMul", ["ln", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["m"], name="fc2"),
    ]
    if residual:
        nodes.append(helper.make_node("Add", ["m", "ln"], ["y"], name="residual"))
    else:
        nodes.append(helper.make_node("Identity", ["m"], ["y"], name="out"))
    inits = [("gamma", gamma), ("beta", np.zeros(WIDTH, np.float32)), ("w1", w1), ("w2", w2)]
    graph = helper.make_graph(
        nodes,
        "outliers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", TOKENS, WIDTH])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", TOKENS, WIDTH]) for name in ("y", "m")],
        [numpy_helper.from_array(a, n) for n, a in inits],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _data(count: int, seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).normal(size=(count, TOKENS, WIDTH)).astype(np.float32)}


@pytest.mark.parametrize("residual", [False, True])
def test_smoothing_leaves_the_fp32_model_unchanged(tmp_path, residual):
    fp32, smoothed = tmp_path / "fp32.onnx", tmp_path / "smoothed.onnx"
    _outlier_model(fp32, residual)
    report, muls = smooth_model(fp32, smoothed, _data(32, 1), alpha=0.5)
    val = _data(16, 2)
    before = run_all_outputs(ort_session(fp32), val)["y"]
    after = run_all_outputs(ort_session(smoothed), val)["y"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    # fc1's input comes from a LayerNorm: folded into its gamma/beta (into a copy that feeds fc1 alone when
    # the residual reads it too); fc2's input (a Relu's) is divided by a Mul kept in float with its producer
    assert report["activations"] == 2 and report["folded_into_layer_norm"] == 1
    assert sorted(muls) == ["edgeport_smooth_1", "relu"]
    nodes = onnx.load(str(smoothed)).graph.node
    assert [n.op_type for n in nodes].count("LayerNormalization") == (2 if residual else 1)
    assert report["worst_outlier_ratio_before"] >= OUTLIER_RATIO > report["worst_outlier_ratio_after"]


@pytest.mark.parametrize("backend", ["ort-dynamic", "ort-static"])
@pytest.mark.parametrize("residual", [False, True])
def test_smoothing_rescues_int8_from_activation_outliers(tmp_path, backend, residual):
    fp32 = tmp_path / "fp32.onnx"
    _outlier_model(fp32, residual)
    calibration, val = _data(64, 1), _data(32, 2)
    # judged on fc2's output "m": with the residual, y carries the outlier channels themselves
    reference = run_all_outputs(ort_session(fp32), val)["m"]
    cosines = {}
    for alpha in (None, 0.5):
        config = quant_config(backend=backend, smooth_alpha=alpha)
        result = quantize(fp32, calibration, config, tmp_path / f"int8-{alpha}.onnx")
        int8 = run_all_outputs(ort_session(result.path), val)["m"]
        cosines[alpha] = fidelity(reference, int8)["mean_cosine"]
        assert ("smoothing" in result.report) == (alpha is not None)
    assert cosines[0.5] > 0.999 and cosines[0.5] > cosines[None] + 0.01, cosines
    assert not list(tmp_path.glob(".*smoothed*"))  # the smoothed staging model is removed


def test_auto_tries_smoothed_recipes_only_when_activations_have_outliers(tmp_path):
    fp32 = tmp_path / "fp32.onnx"
    _outlier_model(fp32, residual=True)
    ratio = worst_outlier_ratio(fp32, _data(16, 1))
    assert ratio is not None and ratio >= OUTLIER_RATIO
    profile = GraphProfile({"MatMul": 2, "LayerNormalization": 1, "Softmax": 1}, 2, ["scores"], 1)
    with_outliers = [r.name for r in recipes_for(profile, AutoConfig(), ratio)]
    assert with_outliers[-2:] == ["smooth-static-weight-matmuls", "smooth-dynamic"]
    assert not [n for n in (r.name for r in recipes_for(profile, AutoConfig(), 3.0)) if n.startswith("smooth")]


def test_a_smoothing_strength_outside_0_1_is_refused():
    with pytest.raises(Exception, match="smooth_alpha"):
        quant_config(backend="ort-static", smooth_alpha=1.5)


def test_fallback_keeps_the_smoothing(tmp_path):
    from edgeport.quantize.guard.judge import Validation
    from edgeport.quantize.strategy.fallback import Tolerance, quantize_with_fallback

    fp32 = tmp_path / "fp32.onnx"
    _outlier_model(fp32, residual=True)
    config = quant_config(backend="ort-dynamic", smooth_alpha=0.5)
    val = _data(32, 2)
    result, report = quantize_with_fallback(
        ModelSource(fp32),
        _data(64, 1),
        config,
        tmp_path / "int8.onnx",
        Validation(val, None, Tolerance(min_cosine=0.999)),
    )
    assert result.report["smoothing"]["activations"] == 2 and report.within_tolerance
    reference = run_all_outputs(ort_session(fp32), val)["m"]
    assert fidelity(reference, run_all_outputs(ort_session(result.path), val)["m"])["mean_cosine"] > 0.999
    assert not list(tmp_path.glob(".*smoothed*"))
