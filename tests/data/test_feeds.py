"""The two input layouts (batch-first, per-sample feeds): how each is recognised, cut and joined, on real
onnxruntime sessions and ORT's calibration reader."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.data.feeds import (
    BATCH_FIRST,
    PER_SAMPLE,
    feed_batch,
    feed_layout,
    first_feed,
    iter_feeds,
    join_outputs,
    model_layout,
)
from edgeport.errors import BenchmarkError, QuantizationError
from edgeport.quantize.guard.verify import ort_session, run_all_outputs
from edgeport.quantize.inputs.calibration import ArrayCalibrationReader, check_arrays_fit

VAD_SHAPES = {"input": ["batch", 512], "state": [2, "batch", 128], "sr": []}


def _vad_arrays(n: int = 6, state_shape=(2, 1, 128), input_shape=(1, 512), sr_shape=()) -> dict:
    rng = np.random.default_rng(0)
    return {
        "input": rng.standard_normal((n, *input_shape)).astype(np.float32),
        "state": rng.standard_normal((n, *state_shape)).astype(np.float32),
        "sr": np.full((n, *sr_shape), 16000, np.int64),
    }


def test_layout_follows_from_the_ranks():
    assert feed_layout(VAD_SHAPES, _vad_arrays(), "calib.npz") == PER_SAMPLE
    shapes = {"input": ["batch", 512], "state": [2, "batch", 128]}
    batch_first = {"input": np.zeros((6, 512), np.float32), "state": np.zeros((2, 6, 128), np.float32)}
    assert feed_layout(shapes, batch_first, "calib.npz") == BATCH_FIRST
    assert feed_layout({"x": [1, 4]}, {"x": np.zeros((3, 1, 4))}, "f") == PER_SAMPLE


def test_a_mix_of_layouts_is_one_line_naming_the_file_and_the_odd_input():
    mixed = _vad_arrays(state_shape=(2, 128))  # state batch-first, the others per-sample
    with pytest.raises(QuantizationError) as caught:
        feed_layout(VAD_SHAPES, mixed, "calib.npz", "calibration input")
    text = str(caught.value)
    assert "\n" not in text and text.startswith("calib.npz: calibration input 'state' has shape (6, 2, 128)")
    assert "[2, batch, 128]" in text and "per-sample feeds for every input (rank 4" in text
    # without a rank-0 input both forms are possible: the message offers both, for the odd input
    shapes = {"input": ["batch", 512], "state": [2, "batch", 128]}
    arrays = {"input": np.zeros((6, 1, 512)), "state": np.zeros((6, 2, 128))}
    with pytest.raises(BenchmarkError, match=r"'state' has shape \(6, 2, 128\).*give batch-first arrays \(rank 3"):
        feed_layout(shapes, arrays, "bench.npz", error=BenchmarkError)


def test_a_rank_that_fits_neither_layout_explains_both():
    arrays = _vad_arrays(state_shape=(2, 1, 1, 128))
    with pytest.raises(QuantizationError) as caught:
        feed_layout(VAD_SHAPES, arrays, "calib.npz")
    assert str(caught.value) == (
        "calib.npz: input 'state' has shape (6, 2, 1, 1, 128); the model expects rank 3 [2, batch, 128]: give "
        "batch-first arrays (rank 3, samples on the model's batch axis) or per-sample feeds (rank 4, one "
        "complete input per slice along the first axis)"
    )


def test_a_rank_0_input_is_only_possible_per_sample():
    arrays = {"x": np.zeros((6, 4), np.float32), "sr": np.array(16000)}  # a 0-d array: no samples at all
    with pytest.raises(QuantizationError, match="'sr' has shape \\(\\); .*rank-0 input is fed per sample only"):
        feed_layout({"x": ["batch", 4], "sr": []}, arrays, "f.npz")


def test_per_sample_feeds_run_one_sample_each_and_stack():
    arrays = _vad_arrays(n=5)
    feeds = list(iter_feeds(arrays, PER_SAMPLE, 256))
    assert len(feeds) == 5
    assert feeds[2]["state"].shape == (2, 1, 128) and np.array_equal(feeds[2]["state"], arrays["state"][2])
    assert isinstance(feeds[0]["sr"], np.ndarray) and feeds[0]["sr"].shape == () and feeds[0]["sr"] == 16000
    assert join_outputs([np.zeros((1, 1))] * 5, PER_SAMPLE).shape == (5, 1, 1)
    assert first_feed(arrays, PER_SAMPLE)["input"].shape == (1, 512)
    assert feed_batch(VAD_SHAPES, first_feed(arrays, PER_SAMPLE)) == 1


def test_batch_first_arrays_are_cut_in_chunks_and_concatenated():
    arrays = {"x": np.arange(10, dtype=np.float32).reshape(5, 2)}
    chunks = list(iter_feeds(arrays, BATCH_FIRST, 2))
    assert [len(c["x"]) for c in chunks] == [2, 2, 1]
    assert np.array_equal(join_outputs([c["x"] for c in chunks], BATCH_FIRST), arrays["x"])
    assert first_feed(arrays, BATCH_FIRST)["x"].shape == (1, 2)


def _scaled_matmul(path, batch, scalar_input: bool = False) -> None:
    """y = (x @ w) * s: x [batch, 4] (batch a number or a name), s a rank-0 input or a constant 1."""
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])]
    initializers = [numpy_helper.from_array(w, "w")]
    if scalar_input:
        inputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, []))
    else:
        initializers.append(numpy_helper.from_array(np.array(1, np.float32), "s"))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Mul", ["xw", "s"], ["y"])],
        "scaled",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_a_fixed_batch_model_is_still_padded_batch_first(tmp_path):
    _scaled_matmul(tmp_path / "fixed.onnx", 2)
    session = ort_session(tmp_path / "fixed.onnx")
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    expected = x.astype(np.float64) @ (np.arange(12).reshape(4, 3) / 10)
    out = run_all_outputs(session, {"x": x})["y"]  # chunks 2, 2, 1+1 padding, the padding dropped
    assert out.shape == (5, 3) and np.allclose(out, expected, atol=1e-5)
    # per-sample feeds of the same model: each slice is one complete fixed-size input, no padding
    per_sample = run_all_outputs(session, {"x": np.stack([x[:2], x[2:4], x[[4, 0]]])})["y"]
    assert per_sample.shape == (3, 2, 3) and np.allclose(per_sample.reshape(6, 3)[:5], expected, atol=1e-5)


def test_a_rank_0_input_runs_per_sample(tmp_path):
    _scaled_matmul(tmp_path / "scaled.onnx", "batch", scalar_input=True)
    x = np.random.default_rng(1).standard_normal((4, 1, 4)).astype(np.float32)
    s = np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    out = run_all_outputs(ort_session(tmp_path / "scaled.onnx"), {"x": x, "s": s})["y"]
    expected = (x[:, 0].astype(np.float64) @ (np.arange(12).reshape(4, 3) / 10)) * s[:, None]
    assert out.shape == (4, 1, 3) and np.allclose(out[:, 0], expected, atol=1e-5)
    assert model_layout(tmp_path / "scaled.onnx", {"x": x, "s": s}) == PER_SAMPLE


def test_calibration_reader_per_sample_and_padded_batch_first():
    arrays = _vad_arrays(n=3)
    seen: list[int] = []
    reader = ArrayCalibrationReader(arrays, 32, seen.append, layout=PER_SAMPLE)
    feeds = iter(reader.get_next, None)
    shapes = [(f["input"].shape, f["sr"].shape) for f in feeds]
    assert shapes == [((1, 512), ())] * 3 and seen == [1, 1, 1]
    padded = ArrayCalibrationReader({"x": np.arange(3.0)[:, None]}, 2, pad=True)
    assert [b["x"].ravel().tolist() for b in iter(padded.get_next, None)] == [[0.0, 1.0], [2.0, 2.0]]


def test_fixed_dims_are_checked_against_the_whole_shape_per_sample():
    inputs = {"x": ((1, 4), np.dtype(np.float32))}
    assert check_arrays_fit(inputs, {"x": np.zeros((3, 1, 4), np.float32)}, "f.npz", "calibration", "m") == (PER_SAMPLE)
    with pytest.raises(QuantizationError, match=r"expects size 1 on axis 1 \[1, 4\]"):
        check_arrays_fit(inputs, {"x": np.zeros((3, 2, 4), np.float32)}, "f.npz", "calibration", "m")
    with pytest.raises(QuantizationError, match=r"expects size 4 on axis 1"):
        check_arrays_fit(inputs, {"x": np.zeros((3, 5), np.float32)}, "f.npz", "calibration", "m")
