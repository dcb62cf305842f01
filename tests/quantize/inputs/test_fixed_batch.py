"""A model whose input fixes a batch of 1 ([1, C, H, W]), given batch-first .npz files of 20 samples:
every place that runs it (calibration, the guard, the reference runtime, the recipes) feeds it one sample
a run, and `edgeport quantize` states a verdict instead of a traceback."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.cli import main

CHANNELS, SIZE, FILTERS, CLASSES = 3, 8, 8, 5
FEATURES = FILTERS * SIZE * SIZE


def _fixed_batch_cnn(path):
    """x [1, 3, 8, 8] -> Conv, Relu -> features, reshaped to [1, -1] (a fixed batch written into the
    graph), -> MatMul -> logits [1, 5]. Four samples in one reference run gave features [1, 4 * 512]."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((FILTERS, CHANNELS, 3, 3)) * 0.3).astype(np.float32), "wc"),
        numpy_helper.from_array((rng.standard_normal((FEATURES, CLASSES)) * 0.05).astype(np.float32), "wg"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "flat"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Reshape", ["r", "flat"], ["features"]),
            helper.make_node("MatMul", ["features", "wg"], ["logits"]),
        ],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, FEATURES]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES]),
        ],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_fixed_batch_of_1_with_batch_first_files(tmp_path, capsys):
    model = _fixed_batch_cnn(tmp_path / "fixed.onnx")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((20, CHANNELS, SIZE, SIZE)).astype(np.float32))
    np.savez(tmp_path / "val.npz", x=rng.standard_normal((20, CHANNELS, SIZE, SIZE)).astype(np.float32))
    out = tmp_path / "int8.onnx"
    code = main(
        [
            "quantize",
            str(model),
            "--calib",
            str(tmp_path / "calib.npz"),
            "--val",
            str(tmp_path / "val.npz"),
            "-o",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and code in (0, 1), err
    manifest = json.loads((tmp_path / "int8.manifest.json").read_text())
    assert manifest["guard"]["within_tolerance"] == (code == 0)
    verification = manifest["verification"]
    assert verification["samples"] == 20
    reference = verification["reference_runtime"]
    assert reference["samples"] == 4 and "error" not in reference, reference  # fed one sample a run
    assert reference["mean_cosine"] > 0.999  # the same int8 file in two runtimes
    judged = {o["name"]: o for o in manifest["guard"]["outputs"]}
    assert set(judged) == {"features", "logits"}  # each output judged per sample: 20 rows of each
    assert judged["features"]["mean_cosine"] > 0.99
