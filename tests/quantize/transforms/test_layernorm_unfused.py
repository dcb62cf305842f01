"""Residual Adds written as Sum keep onnxruntime from fusing them into SkipLayerNormalization, where its
kernel measures slower: the same function, left unfused by onnxruntime, and only where the measurement says."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.quantize.transforms import layernorm_unfused
from edgeport.quantize.transforms.layernorm_unfused import NOTE, keep_layernorm_unfused, residual_adds

WIDTH = 16


def _layernorm(name: str, source: str, out: str) -> onnx.NodeProto:
    return helper.make_node("LayerNormalization", [source, "gamma", "beta"], [out], name=name)


def _model(path):
    """x + y -> LayerNorm (the residual pattern), x + y read by LayerNorm and Relu, a sum that is a graph output
    and feeds LayerNorm, and a sum read by Relu only."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Add", ["x", "y"], ["residual"], name="residual"),
        _layernorm("ln_residual", "residual", "a"),
        helper.make_node("Add", ["a", "y"], ["shared"], name="shared"),
        _layernorm("ln_shared", "shared", "b"),
        helper.make_node("Relu", ["shared"], ["c"]),
        helper.make_node("Add", ["b", "c"], ["exposed"], name="exposed"),
        _layernorm("ln_exposed", "exposed", "d"),
        helper.make_node("Add", ["d", "x"], ["plain"], name="plain"),
        helper.make_node("Relu", ["plain"], ["e"]),
    ]
    shape = [1, 4, WIDTH]
    graph = helper.make_graph(
        nodes,
        "residuals",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("e", "exposed")],
        [numpy_helper.from_array(rng.standard_normal(WIDTH).astype(np.float32), n) for n in ("gamma", "beta")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _run(path, optimized=None):
    options = ort.SessionOptions()
    if optimized:
        options.optimized_model_filepath = str(optimized)
    rng = np.random.default_rng(1)
    feed = {n: rng.standard_normal((1, 4, WIDTH)).astype(np.float32) for n in ("x", "y")}
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feed)


def _op_types(path):
    return {n.name or n.output[0]: n.op_type for n in onnx.load(str(path)).graph.node}


def test_only_a_sum_that_a_layernorm_alone_reads_is_the_pattern(tmp_path):
    model = onnx.load(str(_model(tmp_path / "m.onnx")))
    assert [n.name for n in residual_adds(model.graph)] == ["residual"]


def test_the_sum_is_exact_and_onnxruntime_no_longer_fuses_it(tmp_path, monkeypatch):
    path = _model(tmp_path / "m.onnx")
    before = _run(path, tmp_path / "before.onnx")
    # the premise: onnxruntime fuses this Add into SkipLayerNormalization (if it stops, the rewrite is moot)
    assert "SkipLayerNormalization" in _op_types(tmp_path / "before.onnx").values()
    monkeypatch.setattr(layernorm_unfused, "kernel_times_us", lambda width: (80.0, 16.0))
    note = keep_layernorm_unfused(path)
    assert note == {
        NOTE: f"1 residual Add written as Sum: Add + LayerNormalization 80 us fused by onnxruntime, "
        f"16 us kept apart (32x{WIDTH})"
    }
    assert _op_types(path)["residual"] == "Sum" and _op_types(path)["shared"] == "Add"
    after = _run(path, tmp_path / "after.onnx")
    assert "SkipLayerNormalization" not in _op_types(tmp_path / "after.onnx").values()
    for a, b in zip(before, after, strict=True):  # the same function; the two kernels round apart
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("times", [(20.0, 18.0), (16.0, 80.0)])
def test_where_the_fused_kernel_is_not_clearly_slower_the_file_is_left_as_it_is(tmp_path, monkeypatch, times):
    path = _model(tmp_path / "m.onnx")
    written = path.read_bytes()
    monkeypatch.setattr(layernorm_unfused, "kernel_times_us", lambda width: times)
    assert keep_layernorm_unfused(path)[NOTE].startswith("not applied: ")
    assert path.read_bytes() == written


def test_the_kernels_are_timed_on_this_machine():
    fused, apart = layernorm_unfused.kernel_times_us(WIDTH)
    assert 0 < fused < 1e5 and 0 < apart < 1e5
    assert layernorm_unfused.kernel_times_us(WIDTH) == (fused, apart)  # once per process and width
