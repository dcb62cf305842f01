"""Calibration with a legitimately constant input: accepted when another input varies, refused when
nothing varies.

Found on the Silero VAD model: every stream starts from a zero recurrent state, and calibration on the
first chunks (or on chunks fed a zero state) was refused with "calibration input 'state' is constant
(all zero)", although the audio input varied. A fixed sample rate or an all-ones attention mask is the
same case. Calibration in which nothing varies still calibrates every range on one value: refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.bad_input.conftest import refused, run_cli

SAMPLES = 48


def two_input_model(path: Path) -> Path:
    """y = relu(x @ W1 + state @ W2) @ W3 + state: x [N, 8] the signal, state [N, 8] a carried state."""
    rng = np.random.default_rng(0)
    weights = {
        name: (rng.standard_normal(shape) * 0.4).astype(np.float32)
        for name, shape in {"w1": (8, 16), "w2": (8, 16), "w3": (16, 8)}.items()
    }
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["a"], name="from_x"),
            helper.make_node("MatMul", ["state", "w2"], ["b"], name="from_state"),
            helper.make_node("Add", ["a", "b"], ["h"], name="mix"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w3"], ["o"], name="out"),
            helper.make_node("Add", ["o", "state"], ["y"], name="carry"),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["N", 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    two_input_model(tmp_path / "model.onnx")
    return tmp_path


def _write(folder: Path, name: str, x: np.ndarray, state_value: float) -> None:
    np.savez(folder / name, x=x, state=np.full(x.shape, state_value, np.float32))


def _quantize(capsys, folder: Path, backend: str = "ort-static"):
    return run_cli(
        capsys,
        "quantize",
        folder / "model.onnx",
        "--calib",
        folder / "calib.npz",
        "--val",
        folder / "val.npz",
        "--backend",
        backend,
        "--quiet",
        "-o",
        folder / "out.onnx",
    )


@pytest.mark.parametrize("value", [0.0, 1.0], ids=["zero-state", "all-ones"])
def test_a_constant_input_beside_one_that_varies_is_accepted(folder, capsys, value):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((SAMPLES, 8)).astype(np.float32)
    _write(folder, "calib.npz", x, value)
    _write(folder, "val.npz", rng.standard_normal((SAMPLES, 8)).astype(np.float32), value)  # the input stays fixed
    code, _, err = _quantize(capsys, folder)
    assert code == 0, err
    assert "constant" not in err
    manifest = json.loads((folder / "out.manifest.json").read_text())
    assert manifest["lineage"]["calibration"]["samples"] == SAMPLES
    session = ort.InferenceSession(str(folder / "out.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": x[:4], "state": np.full((4, 8), value, np.float32)})[0].shape == (4, 8)


def test_per_sample_feeds_with_a_zero_state_and_a_fixed_rate_are_accepted(tmp_path, capsys):
    """The Silero layout: per-sample feeds, a zero state and a constant int64 rank-0 rate beside varying audio."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array((rng.standard_normal((8, 8)) * 0.4).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["audio", "w"], ["a"], name="mm"),
            helper.make_node("Add", ["a", "state"], ["s"], name="add"),
            helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT, name="cast"),
            helper.make_node("Mul", ["s", "srf"], ["y"], name="scale"),
        ],
        "stateful",
        [
            helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "model.onnx"))
    audio = rng.standard_normal((SAMPLES, 1, 8)).astype(np.float32)
    np.savez(
        tmp_path / "calib.npz",
        audio=audio,
        state=np.zeros((SAMPLES, 1, 8), np.float32),
        sr=np.full(SAMPLES, 2, np.int64),
    )
    np.savez(
        tmp_path / "val.npz",
        audio=audio[::-1].copy(),
        state=np.zeros((SAMPLES, 1, 8), np.float32),
        sr=np.full(SAMPLES, 2, np.int64),
    )
    code, _, err = run_cli(
        capsys,
        "quantize",
        tmp_path / "model.onnx",
        "--calib",
        tmp_path / "calib.npz",
        "--val",
        tmp_path / "val.npz",
        "--backend",
        "ort-static",
        "--quiet",
        "-o",
        tmp_path / "out.onnx",
    )
    assert code == 0, err
    assert (tmp_path / "out.onnx").is_file()


def test_calibration_in_which_nothing_varies_is_refused(folder, capsys):
    _write(folder, "val.npz", np.ones((SAMPLES, 8), np.float32), 0.5)
    np.savez(folder / "calib.npz", x=np.zeros((SAMPLES, 8), np.float32), state=np.full((SAMPLES, 8), 0.5, np.float32))
    for backend in ("ort-static", "ort-dynamic"):
        code, _, err = _quantize(capsys, folder, backend)
        line = refused(
            code, err, "calib.npz", "every calibration input is constant", "'x' all zero", "'state' every value 0.5"
        )
        assert "model.onnx" not in line
        assert not (folder / "out.onnx").exists()
