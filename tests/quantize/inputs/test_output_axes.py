"""Where each output keeps its samples is found by running the model (output_axes.py), and
run_all_outputs returns every output samples first, whatever the graph's dim names say."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.data.feeds import pad_feed
from edgeport.errors import QuantizationError
from edgeport.quantize.guard.verify import reference_agreement
from edgeport.quantize.inputs.output_axes import grown_axis, not_per_sample, output_plan, sample_axes
from edgeport.quantize.inputs.run import RUN_INPUT_BYTES, ort_session, run_all_outputs, run_batch

T, F, C = 5, 4, 3
W = (np.arange(F * C, dtype=np.float32).reshape(F, C) - 5) / 7


def _save(path, nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(W, "w"), *initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _ctc_head(path, batch="batch", declared=("seqlen", "batch", C)):
    """x [batch, T, F] -> scores = x @ w, [batch, T, C], exported time-major: [T, batch, C]; ``declared``
    is the output shape the graph states (names of any kind, or a fixed [1, seqlen])."""
    return _save(
        path,
        [
            helper.make_node("MatMul", ["x", "w"], ["s"]),
            helper.make_node("Transpose", ["s"], ["scores"], perm=[1, 0, 2]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, T, F])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, list(declared))],
    )


def _x(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, T, F)).astype(np.float32)


def _expected(x):
    return x.astype(np.float64) @ W.astype(np.float64)  # [N, T, C]


class Counting:
    """A session that counts its runs and the batch sizes it was fed."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, names, feed):
        self.batches.append(len(next(iter(feed.values()))))
        return self.session.run(names, feed)


def test_a_time_major_output_comes_back_samples_first(tmp_path):
    session = ort_session(_ctc_head(tmp_path / "ctc.onnx"))
    x = _x(7)
    assert sample_axes(session, {"x": x}) == {"scores": 1}
    out = run_all_outputs(session, {"x": x}, batch=3)  # chunks 3, 3, 1 joined on axis 1, moved to the front
    assert out["scores"].shape == (7, T, C) and out["scores"].flags.c_contiguous
    assert np.allclose(out["scores"], _expected(x), atol=1e-5)
    assert not_per_sample(out) == frozenset()


@pytest.mark.parametrize(
    "declared",
    [
        ("batch", "p2o.DynamicDimension.3", C),  # the names say axis 0 is the batch: it is the time axis
        (1, "seqlen", C),  # a fixed [1, seqlen]-style declaration that the runs contradict
        ("p2o.DynamicDimension.3", "p2o.DynamicDimension.4", C),  # names unlike the input's
    ],
)
def test_dim_names_do_not_decide_the_sample_axis(tmp_path, declared):
    session = ort_session(_ctc_head(tmp_path / "ctc.onnx", declared=declared))
    x = _x(6, seed=1)
    out = run_all_outputs(session, {"x": x}, batch=4)
    assert out["scores"].shape == (6, T, C) and np.allclose(out["scores"], _expected(x), atol=1e-5)


def test_a_renamed_batch_dim_on_a_batch_first_output_stays_on_axis_0(tmp_path):
    path = _save(
        tmp_path / "m.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["p2o.DynamicDimension.0", T, F])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["p2o.DynamicDimension.3", T, C])],
    )
    session = ort_session(path)
    x = _x(5, seed=2)
    assert sample_axes(session, {"x": x}) == {"y": 0}
    assert np.allclose(run_all_outputs(session, {"x": x}, batch=2)["y"], _expected(x), atol=1e-5)


def _with_reductions(path, batch="batch"):
    """A CTC head plus an output reduced over everything (keepdims=0: rank 0) and a per-batch constant."""
    shape = helper.make_tensor("shape_const", TensorProto.INT64, [2], [F, C])
    return _save(
        path,
        [
            helper.make_node("MatMul", ["x", "w"], ["s"]),
            helper.make_node("Transpose", ["s"], ["scores"], perm=[1, 0, 2]),
            helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=0),
            helper.make_node("Shape", ["w"], ["wshape"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, T, F])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["t", batch, C]),
            helper.make_tensor_value_info("mean", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("wshape", TensorProto.INT64, [2]),
        ],
        [numpy_helper.from_array(numpy_helper.to_array(shape), "unused")],
    )


def test_outputs_that_do_not_depend_on_the_batch_are_named_not_per_sample(tmp_path):
    session = ort_session(_with_reductions(tmp_path / "r.onnx"))
    x = _x(9, seed=3)
    assert sample_axes(session, {"x": x}) == {"scores": 1, "mean": None, "wshape": None}
    out = run_all_outputs(session, {"x": x}, batch=4)  # three runs: rank-0 means stacked, never concatenated
    assert not_per_sample(out) == {"mean", "wshape"}
    assert out["scores"].shape == (9, T, C) and np.allclose(out["scores"], _expected(x), atol=1e-5)
    assert out["mean"].shape == (3,) and np.allclose(out["mean"], [x[:4].mean(), x[4:8].mean(), x[8:].mean()])
    assert out["wshape"].tolist() == [F, C] * 3  # concatenated on axis 0, as before
    one_run = run_all_outputs(session, {"x": x})  # one chunk: the rank-0 value as it is
    assert one_run["mean"].shape == () and np.isclose(one_run["mean"], x.mean())


def test_a_fixed_batch_of_1_finds_its_length_1_axis_and_stacks_the_rest(tmp_path):
    session = ort_session(_with_reductions(tmp_path / "fixed.onnx", batch=1))
    x = _x(4, seed=4)
    # every run is one sample: each output is per sample, a time-major one joined on its axis of length 1
    assert sample_axes(session, {"x": x}) == {"scores": 1, "mean": 0, "wshape": 0}
    out = run_all_outputs(session, {"x": x})
    assert not_per_sample(out) == frozenset()
    assert out["scores"].shape == (4, T, C) and np.allclose(out["scores"], _expected(x), atol=1e-5)
    assert out["mean"].shape == (4,) and np.allclose(out["mean"], x.reshape(4, -1).mean(1))
    assert out["wshape"].shape == (4, 2)


def test_a_fixed_batch_of_2_is_padded_and_joined_on_its_sample_axis(tmp_path):
    session = Counting(ort_session(_ctc_head(tmp_path / "fixed2.onnx", batch=2, declared=(T, 2, C))))
    x = _x(5, seed=5)
    out = run_all_outputs(session, {"x": x}, batch=256)
    assert out["scores"].shape == (5, T, C) and np.allclose(out["scores"], _expected(x), atol=1e-5)
    assert set(session.batches) == {2}  # the last chunk padded to the fixed size, its padding dropped


def test_the_probe_runs_twice_per_session_at_most(tmp_path):
    session = Counting(ort_session(_ctc_head(tmp_path / "ctc.onnx")))
    x = _x(8, seed=6)
    run_all_outputs(session, {"x": x}, batch=8)
    assert session.batches == [1, 2, 8]  # probe on one sample and on two, then the real run
    run_all_outputs(session, {"x": x[:5]}, batch=8)
    sample_axes(session, {"x": x})
    assert session.batches == [1, 2, 8, 5]  # cached: no more probing


def test_an_open_batch_axis_the_graph_fixes_runs_one_sample_at_a_time(tmp_path):
    """Declared [batch, T, F], but a Reshape to [1, T * C] makes any batch but 1 fail."""
    path = _save(
        tmp_path / "reshaped.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["s"]), helper.make_node("Reshape", ["s", "to"], ["flat"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
        [helper.make_tensor_value_info("flat", TensorProto.FLOAT, [1, T * C])],
        [numpy_helper.from_array(np.array([1, T * C], np.int64), "to")],
    )
    x = _x(3, seed=7)
    out = run_all_outputs(ort_session(path), {"x": x})
    assert out["flat"].shape == (3, T * C) and np.allclose(out["flat"], _expected(x).reshape(3, -1), atol=1e-5)


def test_large_inputs_run_in_modest_chunks(tmp_path):
    path = _save(
        tmp_path / "img.onnx",
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 608, 800])],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, ["batch"])],
        opset=17,
    )
    images = np.zeros((24, 3, 608, 800), np.float32)  # 5.8 MB each
    images[:, 0] = np.arange(24, dtype=np.float32)[:, None, None]
    step = run_batch({"x": images})
    assert step * images[0].nbytes <= RUN_INPUT_BYTES and 1 <= step < 24
    session = Counting(ort_session(path))
    out = run_all_outputs(session, {"x": images})
    assert max(session.batches) == step and np.allclose(out["m"], np.arange(24) / 3, atol=1e-5)
    assert run_batch({"x": np.zeros((1000, 8), np.float32)}) == 256  # small inputs: the batch given


def test_outputs_as_float32_when_asked(tmp_path):
    session = ort_session(_ctc_head(tmp_path / "ctc.onnx"))
    x = _x(3)
    assert run_all_outputs(session, {"x": x})["scores"].dtype == np.float64  # the default, as callers expect
    assert run_all_outputs(session, {"x": x}, dtype=np.float32)["scores"].dtype == np.float32


def test_outputs_whose_size_changes_from_run_to_run_are_one_line(tmp_path):
    path = _save(
        tmp_path / "nz.onnx",
        [helper.make_node("NonZero", ["x"], ["nz"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
        [helper.make_tensor_value_info("nz", TensorProto.INT64, [3, "k"])],
    )
    x = _x(4, seed=8)
    x[1] = 0  # the second chunk has no nonzero values: [3, k] with k changing from run to run
    with pytest.raises(QuantizationError, match="'nz' changes shape from run to run"):
        run_all_outputs(ort_session(path), {"x": x}, batch=2, source="val.npz")


@pytest.mark.parametrize(
    ("one", "two", "axis"),
    [
        ((1, 4), (2, 4), 0),
        ((5, 1, 3), (5, 2, 3), 1),
        ((), (), None),  # rank 0: nothing grows
        ((1, 1), (2, 2), None),  # two axes grow: ambiguous
        ((1, 3), (4, 3), None),  # grew, but not 1 -> 2
        ((3,), (3, 1), None),  # the rank changed
    ],
)
def test_grown_axis(one, two, axis):
    assert grown_axis(one, two) == axis


def test_pad_feed_repeats_the_last_sample():
    feed = pad_feed({"x": np.arange(6).reshape(3, 2)}, 5)
    assert feed["x"].tolist() == [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]]


def test_the_reference_runtime_is_fed_the_fixed_batch(tmp_path):
    """A fixed batch of 1 and a Reshape to [1, -1]: four samples in one reference run gave [1, 4 * K]
    against onnxruntime's [4, K], and a broadcasting error out of the guard."""
    path = _save(
        tmp_path / "fixed.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["s"]), helper.make_node("Reshape", ["s", "to"], ["flat"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, T, F])],
        [helper.make_tensor_value_info("flat", TensorProto.FLOAT, [1, T * C])],
        [numpy_helper.from_array(np.array([1, -1], np.int64), "to")],
        opset=19,
    )
    session = ort_session(path)
    x = _x(20, seed=9)
    ort_out = run_all_outputs(session, {"x": x})["flat"]
    assert ort_out.shape == (20, T * C)
    found = reference_agreement(path, {"x": x}, ort_out, plan=output_plan(session, {"x": x}))
    assert found["samples"] == 4 and "error" not in found and found["mean_cosine"] > 0.9999
    assert reference_agreement(path, {"x": x}, ort_out)["samples"] == 4  # its own plan, probed


def test_the_reference_runtime_reads_one_sample_where_more_would_not_fit_its_time(tmp_path, monkeypatch):
    from edgeport.quantize.guard import verify

    path = _save(
        tmp_path / "open.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", T, F])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", T, C])],
        opset=19,
    )
    x = _x(20, seed=4)
    ort_out = run_all_outputs(ort_session(path), {"x": x})["y"]
    monkeypatch.setattr(verify, "REFERENCE_SECONDS", 0.0)  # as a PicoDet's 9 s a sample would be
    one = reference_agreement(path, {"x": x}, ort_out)
    assert one["samples"] == 1 and one["mean_cosine"] > 0.9999
    monkeypatch.setattr(verify, "REFERENCE_SECONDS", 60.0)
    assert reference_agreement(path, {"x": x}, ort_out, samples=6)["samples"] == 6  # joined after the first
    assert reference_agreement(path, {"x": x[:3]}, ort_out[:3], samples=6)["samples"] == 3  # all there are


def test_the_guard_compares_an_output_without_samples_whole(tmp_path):
    """First output reduced over everything (rank 0), second per sample: the verification neither crashes
    on the first nor compares a few samples' slice of it with another runtime's."""
    from onnxruntime.quantization import quantize_dynamic

    from edgeport.quantize.guard.verify import verify_with_outputs

    fp32 = _save(
        tmp_path / "fp32.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("ReduceMean", ["y"], ["m"], keepdims=0)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
        [
            helper.make_tensor_value_info("m", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", T, C]),
        ],
    )
    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(str(fp32), str(int8))
    x = _x(12, seed=10)
    report, fp32_all, int8_all = verify_with_outputs(int8, fp32, {"x": x})
    assert not_per_sample(fp32_all) == not_per_sample(int8_all) == {"m"}
    assert fp32_all["m"].shape == () and np.isclose(fp32_all["m"], _expected(x).mean(), atol=1e-5)
    assert report["samples"] == 12 and report["vs_fp32"]["mean_cosine"] > 0.99  # "m" as one vector
    assert report["reference_runtime"]["samples"] == 4  # compared on "y", the first per-sample output
