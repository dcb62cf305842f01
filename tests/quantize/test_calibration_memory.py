"""ort-static calibrates in chunks sized from the measured bytes of the intermediate tensors
(backends/ort_calibrate.py): MinMax ranges are identical in one chunk or many, percentile thresholds
equivalent, entropy identical to one call over every sample; a model with large activations gets
small batches and chunks, a small one large ones; onnxruntime's scratch folder lives in our staging
folder; stdout stays clean."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.data.feeds import BATCH_FIRST, PER_SAMPLE
from edgeport.quantize import quant_config, quantize
from edgeport.quantize.backends import ort_calibrate
from edgeport.quantize.backends.ort_calibrate import BatchRules, plan_calibration
from edgeport.quantize.backends.ort_static import OrtStaticBackend
from edgeport.quantize.inputs.calibration import ArrayCalibrationReader

CHANNELS = 8


def conv_model(path: Path, size: int = 16, batch: int | str = "batch") -> Path:
    """x [batch, 3, size, size] -> Conv, Relu, Conv, Add, GlobalAveragePool, Flatten, Gemm -> y [batch, 4]."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(
            (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name
        )

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
            helper.make_node("Add", ["c2", "r1"], ["s"]),
            helper.make_node("GlobalAveragePool", ["s"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
        ],
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [
            weight("w1", CHANNELS, 3, 3, 3),
            weight("b1", CHANNELS),
            weight("w2", CHANNELS, CHANNELS, 3, 3),
            weight("b2", CHANNELS),
            weight("w3", 4, CHANNELS),
            weight("b3", 4),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def calibration(n: int = 40, size: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)}


def initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def scales(path: Path) -> dict[str, np.ndarray]:
    """The scale of every QuantizeLinear in the model, by the tensor it quantizes."""
    model = onnx.load(str(path))
    values = initializers(path)
    return {n.input[0]: values[n.input[1]] for n in model.graph.node if n.op_type == "QuantizeLinear"}


def _quantize(model: Path, calib: dict, out: Path, **options) -> dict:
    return quantize(model, calib, quant_config(backend="ort-static", reduce_range=True, **options), out).report


# --- the ranges: identical (minmax) or equivalent (histograms) in one chunk or many --------------------------


def test_minmax_int8_model_is_identical_in_one_chunk_or_many(tmp_path, monkeypatch):
    model, calib = conv_model(tmp_path / "m.onnx"), calibration(40)
    monkeypatch.setattr(OrtStaticBackend, "calibration_batch", 4)
    whole = _quantize(model, calib, tmp_path / "whole.onnx")
    assert (whole["calibration_batch"], whole["calibration_chunk"]) == (4, 40)
    per_sample = whole["calibration_sample_bytes"]
    assert per_sample > 0

    # the same batches, in ten chunks of four samples
    monkeypatch.setattr(ort_calibrate, "BUDGET", 4 * per_sample)
    chunked = _quantize(model, calib, tmp_path / "chunked.onnx")
    assert (chunked["calibration_batch"], chunked["calibration_chunk"]) == (4, 4)
    one, many = initializers(tmp_path / "whole.onnx"), initializers(tmp_path / "chunked.onnx")
    assert one.keys() == many.keys() and len(scales(tmp_path / "whole.onnx")) > 5
    for name, value in one.items():
        assert value.dtype == many[name].dtype and np.array_equal(value, many[name]), name

    # one sample per run and per chunk: still the same scales and zero points
    monkeypatch.setattr(ort_calibrate, "BUDGET", 1)
    single = _quantize(model, calib, tmp_path / "single.onnx")
    assert (single["calibration_batch"], single["calibration_chunk"]) == (1, 1)
    for name, value in initializers(tmp_path / "single.onnx").items():
        assert np.array_equal(value, one[name]), name


def test_percentile_thresholds_are_equivalent_in_chunks(tmp_path, monkeypatch):
    """Its histograms are merged chunk by chunk, their bins as wide as the first chunk's: thresholds
    within the spread between two calibration sets of the same size, not identical."""
    model, calib = conv_model(tmp_path / "m.onnx"), calibration(37)  # a short last batch: padded
    whole = _quantize(model, calib, tmp_path / "whole.onnx", calibration_method="percentile")
    other = _quantize(model, calibration(37, seed=7), tmp_path / "other.onnx", calibration_method="percentile")
    assert whole["calibration_chunk"] == other["calibration_chunk"] == 37
    monkeypatch.setattr(ort_calibrate, "BUDGET", 4 * whole["calibration_sample_bytes"])
    chunked = _quantize(model, calib, tmp_path / "chunked.onnx", calibration_method="percentile")
    assert (chunked["calibration_batch"], chunked["calibration_chunk"]) == (4, 4)
    one, many, spread = (scales(tmp_path / f"{name}.onnx") for name in ("whole", "chunked", "other"))
    assert one.keys() == many.keys() == spread.keys() and len(one) > 5
    moved = max(abs(float(many[name] / one[name]) - 1) for name in one)
    assert moved <= max(0.02, max(abs(float(spread[name] / one[name]) - 1) for name in one)), moved


def test_entropy_in_chunks_is_identical_to_one_call_over_every_sample(tmp_path, monkeypatch):
    """Two passes (ranges, then histograms over the one range every chunk shares): the int8 model is the
    same in one chunk or ten, and the ranges equal onnxruntime's own calibrator fed every sample at once."""
    model, calib = conv_model(tmp_path / "m.onnx"), calibration(40)
    monkeypatch.setattr(OrtStaticBackend, "calibration_batch", 4)
    whole = _quantize(model, calib, tmp_path / "whole.onnx", calibration_method="entropy")
    assert (whole["calibration_batch"], whole["calibration_chunk"]) == (4, 40)
    monkeypatch.setattr(ort_calibrate, "BUDGET", 4 * whole["calibration_sample_bytes"])
    chunked = _quantize(model, calib, tmp_path / "chunked.onnx", calibration_method="entropy")
    assert (chunked["calibration_batch"], chunked["calibration_chunk"]) == (4, 4)
    one, many = initializers(tmp_path / "whole.onnx"), initializers(tmp_path / "chunked.onnx")
    assert one.keys() == many.keys() and len(scales(tmp_path / "whole.onnx")) > 5
    for name, value in one.items():
        assert np.array_equal(value, many[name]), name

    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, load_tensors_data

    reference = create_calibrator(
        model, augmented_model_path=str(tmp_path / "aug.onnx"), calibrate_method=CalibrationMethod.Entropy
    )
    reference.collect_data(ArrayCalibrationReader(calib, 4))  # every sample in one call
    expected = reference.compute_data()
    reader = ArrayCalibrationReader(calib, 4, chunk=8)
    ort_calibrate.write_entropy_ranges(model, reader, None, tmp_path / "ranges.json")
    ranges = load_tensors_data(tmp_path / "ranges.json")
    assert set(ranges.data) == set(expected.data) and len(expected.data) > 5
    for name, data in expected.data.items():
        assert np.array_equal(ranges.data[name].range_value, data.range_value), name
        assert np.array_equal(ranges.data[name].hist, data.hist), name


# --- the sizes: from the measured bytes, not a constant -------------------------------------------------------


def test_large_activations_get_small_batches_and_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(ort_calibrate, "BUDGET", 16 * 2**20)
    small = _quantize(conv_model(tmp_path / "small.onnx", 16), calibration(40, 16), tmp_path / "s.onnx")
    large = _quantize(conv_model(tmp_path / "large.onnx", 256), calibration(12, 256), tmp_path / "l.onnx")
    # 16x16: a few tensors of 8 KiB per sample; 256x256: x, c1, r1, c2, s of 0.75-2 MiB each
    assert small["calibration_sample_bytes"] < 100_000 < 5 * 2**20 < large["calibration_sample_bytes"]
    assert (small["calibration_batch"], small["calibration_chunk"]) == (OrtStaticBackend.calibration_batch, 40)
    assert large["calibration_batch"] == large["calibration_chunk"] == 16 * 2**20 // large["calibration_sample_bytes"]
    assert large["calibration_chunk"] < 12


def test_a_fixed_batch_is_kept_and_chunks_are_whole_batches(tmp_path, monkeypatch):
    model = conv_model(tmp_path / "fixed.onnx", 16, batch=4)
    monkeypatch.setattr(ort_calibrate, "BUDGET", 1)
    report = _quantize(model, calibration(10), tmp_path / "f.onnx")
    assert (report["calibration_batch"], report["calibration_chunk"]) == (4, 4)
    assert report["calibration_sample_bytes"] > 0  # measured on a whole (padded) batch of four


def test_without_a_measurement_one_sample_at_a_time(tmp_path, monkeypatch):
    import onnxruntime.quantization.calibrate

    def broken(*args, **kwargs):
        raise RuntimeError("cannot make the probe")

    monkeypatch.setattr(onnxruntime.quantization.calibrate, "create_calibrator", broken)  # the probe's only
    report = _quantize(conv_model(tmp_path / "m.onnx"), calibration(5), tmp_path / "q.onnx")
    assert (report["calibration_batch"], report["calibration_chunk"], report["calibration_sample_bytes"]) == (
        1,
        1,
        None,
    )
    assert report["quantize_linear_nodes"] > 0


def test_plan_calibration():
    rules = BatchRules(BATCH_FIRST, None, "minmax", max_batch=32)
    assert plan_calibration(10, 100, rules, budget=1000) == ort_calibrate.CalibrationPlan(32, 96, False, 10)
    assert plan_calibration(300, 100, rules, budget=1000) == ort_calibrate.CalibrationPlan(3, 3, False, 300)
    assert plan_calibration(5000, 100, rules, budget=1000).batch == 1  # at least one sample
    unmeasured = plan_calibration(None, 100, rules, budget=1000)
    assert (unmeasured.batch, unmeasured.chunk) == (1, 1)
    few = plan_calibration(1, 7, rules, budget=1000)
    assert (few.batch, few.chunk) == (7, 7)
    percentile = plan_calibration(10, 100, BatchRules(BATCH_FIRST, None, "percentile", 32), budget=1000)
    assert percentile.pad and (percentile.batch, percentile.chunk) == (32, 96)
    entropy = plan_calibration(300, 100, BatchRules(BATCH_FIRST, None, "entropy", 32), budget=1000)
    assert entropy.pad and (entropy.batch, entropy.chunk) == (3, 3)
    fixed = plan_calibration(300, 100, BatchRules(BATCH_FIRST, 8, "minmax", 32), budget=1000)
    assert (fixed.batch, fixed.chunk, fixed.pad) == (8, 8, True)
    per_sample = plan_calibration(10, 100, BatchRules(PER_SAMPLE, None, "percentile", 32), budget=1000)
    assert (per_sample.batch, per_sample.chunk, per_sample.pad) == (1, 100, False)


def test_the_reader_walks_chunk_by_chunk():
    """What quantize_static's CalibStridedMinMax loop does with the reader: len(), then set_range per chunk."""
    data = {"x": np.arange(10, dtype=np.float32)[:, None]}
    seen: list[int] = []
    reader = ArrayCalibrationReader(data, 2, seen.append, pad=True, chunk=4)
    batches = []
    for start in range(len(reader)):
        reader.set_range(start_index=start, end_index=start + 1)
        batches.append([b["x"][:, 0].tolist() for b in iter(reader.get_next, None)])
    assert len(reader) == 3
    assert batches == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9]]]
    assert seen == [2, 2, 2, 2, 2]
    short = ArrayCalibrationReader(data, 4, pad=True, chunk=8)
    short.set_range(1, 2)
    assert [b["x"][:, 0].tolist() for b in iter(short.get_next, None)] == [[8, 9, 9, 9]]
    short.rewind()
    assert len(list(iter(short.get_next, None))) == 3


# --- where onnxruntime works, and what it prints ----------------------------------------------------------------


def test_onnxruntime_scratch_lives_in_the_staging_folder_and_stdout_stays_clean(tmp_path, monkeypatch, capsys):
    made: list[Path] = []
    original = tempfile.TemporaryDirectory

    def spy(*args, **kwargs):
        folder = original(*args, **kwargs)
        made.append(Path(folder.name))
        return folder

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    monkeypatch.setattr(ort_calibrate, "BUDGET", 1)
    out = tmp_path / "out" / "int8.onnx"
    out.parent.mkdir()
    _quantize(conv_model(tmp_path / "m.onnx"), calibration(6), out, calibration_method="percentile")
    assert capsys.readouterr().out == ""  # the histogram collector's lines, one per chunk, are kept out
    assert made and all(out.parent.resolve() in folder.resolve().parents for folder in made), made
    assert not any(folder.exists() for folder in made)
    assert sorted(p.name for p in out.parent.iterdir()) == ["int8.onnx"]
