"""`edgeport quantize` on existing ONNX files and torch models, as a user runs it."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.cli import main
from edgeport.models import ModelSpec
from edgeport.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory, fp32_onnx, digits16):
    folder = tmp_path_factory.mktemp("quantize")
    np.savez(folder / "calib.npz", x=digits16.train.x[:96])
    np.savez(folder / "val.npz", x=digits16.val.x, y=digits16.val.y)
    model = folder / "model.fp32.onnx"
    model.write_bytes(fp32_onnx.read_bytes())
    return folder


def _run(capsys, *args):
    code = main(["quantize", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_quantize_an_onnx_file(files, capsys):
    code, out, err = _run(
        capsys, files / "model.fp32.onnx", "--calib", files / "calib.npz", "--val", files / "val.npz", "--json"
    )
    assert code == 0, err
    manifest = json.loads(out)
    int8 = files / "model.int8.onnx"
    assert int8.exists() and (files / "model.int8.manifest.json").exists()
    assert json.loads((files / "model.int8.manifest.json").read_text()) == manifest
    assert manifest["artifact"]["sha256"] == __import__("edgeport.core.artifacts").core.artifacts.sha256_file(int8)
    verification = manifest["verification"]
    assert verification["vs_fp32"]["top1_agreement"] >= 97
    coverage = verification["coverage"]
    if manifest["auto"]["chosen"] == "static-float-classifier":  # the faster of the two: its Gemm in float
        assert coverage["float_kernels"] == 1 and coverage["integer_kernels"] >= 1
    else:
        assert manifest["auto"]["chosen"] == "static-per-channel" and coverage["share"] == 1.0
    assert verification["accuracy"]["int8"] > 80
    assert manifest["lineage"]["calibration"]["samples"] == 96
    assert manifest["lineage"]["quantization"]["backend"] == "ort-static"
    assert not [p for p in files.iterdir() if p.name.startswith(".")]


def test_quantize_a_torch_model_with_each_torch_backend(files, capsys, trained_cnn):
    spec = ModelSpec.parse("cnn:width=1,depth=3")
    save_checkpoint(trained_cnn, files / "w.safetensors", spec, 1, 10, 16)
    for backend in ("torch-fx", "torch-pt2e", "ort-static"):
        out = files / f"{backend}.onnx"
        code, _, err = _run(
            capsys,
            "--torch",
            "cnn:width=1,depth=3",
            "--weights",
            files / "w.safetensors",
            "--num-classes",
            10,
            "--calib",
            files / "calib.npz",
            "--val",
            files / "val.npz",
            "--backend",
            backend,
            "-o",
            out,
        )
        assert code == 0, err
        manifest = json.loads((files / f"{backend}.manifest.json").read_text())
        assert manifest["verification"]["vs_fp32"]["top1_agreement"] >= 97
        assert manifest["lineage"]["torch_model"]["name"] == "cnn"


def test_quantization_aware_training_from_labelled_calibration(files, capsys, trained_cnn, digits16):
    spec = ModelSpec.parse("cnn:width=1,depth=3")
    save_checkpoint(trained_cnn, files / "w.safetensors", spec, 1, 10, 16)
    np.savez(files / "labelled.npz", x=digits16.train.x[:300], y=digits16.train.y[:300])
    code, out, err = _run(
        capsys,
        "--torch",
        "cnn:width=1,depth=3",
        "--weights",
        files / "w.safetensors",
        "--calib",
        files / "labelled.npz",
        "--val",
        files / "val.npz",
        "--backend",
        "torch-fx-qat",
        "--qat-epochs",
        1,
        # the subject is QAT's mechanics: one epoch on 300 images lands a few validation images either side of
        # the default 1-point tolerance from run to run (97.0% against 95.7% required here; one CI run missed)
        "--max-accuracy-drop",
        3,
        "-o",
        files / "qat.onnx",
        "--json",
    )
    assert code == 0, err or json.loads(out)["verdict"]
    manifest = json.loads(out)
    report = manifest["lineage"]["quantization"]["report"]
    assert report["qat_epochs"] == 1 and len(report["history"]) == 1 and report["kd"] is False
    assert manifest["verification"]["accuracy"]["int8"] > 80
    code, _, err = _run(
        capsys,
        "--torch",
        "cnn:width=1,depth=3",
        "--weights",
        files / "w.safetensors",
        "--num-classes",
        10,
        "--calib",
        files / "calib.npz",
        "--backend",
        "torch-fx-qat",
        "-o",
        files / "x.onnx",
    )
    assert code == 2 and "needs labelled training data" in err


def _transformer_like(path):
    """Embedding + masked MLP over two int64 inputs, like input_ids / attention_mask."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((50, 16)).astype(np.float32), "emb"),
        numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["masked"]),
        helper.make_node("MatMul", ["masked", "w1"], ["h"], name="mlp_in"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["o"], name="mlp_out"),
        helper.make_node("ReduceMean", ["o", "axis1"], ["embedding"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", 8]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", 8]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, path)
    ids = rng.integers(0, 50, (40, 8)).astype(np.int64)
    mask = (rng.random((40, 8)) > 0.2).astype(np.int64)
    return ids, mask


@pytest.mark.parametrize("backend", ["ort-dynamic", "ort-static"])
def test_multi_input_int64_model(tmp_path, capsys, backend):
    ids, mask = _transformer_like(tmp_path / "enc.onnx")
    np.savez(tmp_path / "calib.npz", input_ids=ids, attention_mask=mask)
    code, out, err = _run(
        capsys, tmp_path / "enc.onnx", "--calib", tmp_path / "calib.npz", "--backend", backend, "--json"
    )
    assert code == 0, err
    verification = json.loads(out)["verification"]
    assert "accuracy" not in verification  # no labels: fidelity only
    assert verification["vs_fp32"]["mean_cosine"] > 0.98
    assert verification["coverage"]["integer_kernels"] == 2


def test_bad_input_exits_2(files, tmp_path, capsys):
    calib, model = files / "calib.npz", files / "model.fp32.onnx"
    nan = np.load(calib)["x"].copy()
    nan[0, 0, 0, 0] = np.inf
    np.savez(tmp_path / "nan.npz", x=nan)
    np.savez(tmp_path / "empty.npz", x=nan[:0])
    np.savez(tmp_path / "named.npz", images=nan)
    np.savez(tmp_path / "f64.npz", x=np.load(calib)["x"].astype(np.float64))
    _run(capsys, model, "--calib", calib, "--reduce-range", "true", "-o", tmp_path / "q.onnx")
    cases = [
        ([tmp_path / "q.onnx", "--calib", calib], "already quantized"),
        ([model, "--calib", tmp_path / "empty.npz"], "calibration set has no samples"),
        ([model, "--calib", tmp_path / "nan.npz"], "NaN or Inf"),
        ([model, "--calib", tmp_path / "named.npz"], "expected arrays named 'input' (or x)"),
        ([model, "--calib", tmp_path / "f64.npz"], "expects float32"),
        ([model, "--calib", tmp_path / "absent.npz"], "absent.npz: no such file"),
        ([model, "--calib", calib, "--backend", "tensorrt"], "quantization backend 'tensorrt' is not one of"),
        (
            [model, "--calib", calib, "--backend", "torch-fx", "--engine", "arm"],
            "quantization engine 'arm' is not one of",
        ),
        (
            [model, "--calib", calib, "--backend", "ort-static", "--engine", "fbgemm"],
            "backend 'ort-static' does not support option 'engine'",
        ),
        (
            [model, "--calib", calib, "--backend", "ort-dynamic", "--calibration-method", "entropy"],
            "does not support option 'calibration_method'",
        ),
        ([model, "--calib", calib, "--backend", "torch-fx"], "quantizes torch models"),
        (["--torch", "cnn", "--calib", calib], "--torch needs --weights"),
        ([tmp_path / "absent.onnx", "--calib", calib], "model file not found"),
    ]
    for args, message in cases:
        code, _, err = _run(capsys, *args, "-o", tmp_path / "out.onnx")
        assert code == 2, (args, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (message, err)
        assert not (tmp_path / "out.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
