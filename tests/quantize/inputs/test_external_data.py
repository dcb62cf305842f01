"""Models saved with external data (``model.onnx`` + ``model.onnx.data``, torch's default exporter) quantize
through every ORT path, and onnxruntime's scratch folders live in our staging folder, not in /tmp."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

from edgeport.cli import main
from edgeport.quantize.backends.ort_prepare import data_file, has_external_data, pre_process

IN, HIDDEN, OUT = 16, 32, 4


def _mlp(path: Path, opset: int = 17, external: bool = True) -> Path:
    """x [batch, 16] -> MatMul, Add, Relu, MatMul -> y [batch, 4], every tensor in ``path``.data."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((IN, HIDDEN)) / 4).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(HIDDEN) / 4).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((HIDDEN, OUT)) / 4).astype(np.float32), "w2"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Add", ["h", "b1"], ["hb"]),
            helper.make_node("Relu", ["hb"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", OUT])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    if external:
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=0,
        )
    else:
        onnx.save(model, str(path))
    return path


def _calib(path: Path, n: int = 40) -> Path:
    np.savez(path, x=np.random.default_rng(1).standard_normal((n, IN)).astype(np.float32))
    return path


@pytest.fixture
def scratch(monkeypatch):
    """The folders ``quant_pre_process`` makes for its scratch files (``pre.quant.*``)."""
    made: list[Path] = []
    original = tempfile.TemporaryDirectory

    def spy(*args, **kwargs):
        folder = original(*args, **kwargs)
        if kwargs.get("prefix") == "pre.quant.":
            made.append(Path(folder.name))
        return folder

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    return made


def _quantize(capsys, model: Path, calib: Path, out: Path, *options: str) -> tuple[int, str, dict | None]:
    code = main(["quantize", str(model), "--calib", str(calib), "-o", str(out), "--quiet", *options])
    err = capsys.readouterr().err
    manifest_path = out.with_name(out.name.removesuffix(".onnx") + ".manifest.json")
    return code, err, json.loads(manifest_path.read_text()) if manifest_path.is_file() else None


def _assert_quantized(code: int, err: str, manifest: dict | None, out: Path) -> None:
    assert "Traceback" not in err and "not regular file" not in err, err
    assert code in (0, 1), err  # a verdict, never a usage error for a valid model
    assert manifest is not None and manifest["verification"]["onnxruntime"] == "loads"
    artifact = out if out.is_file() else out.with_name(out.name.removesuffix(".onnx") + ".rejected.onnx")
    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.ones((3, IN), np.float32)})[0].shape == (3, OUT)


@pytest.mark.parametrize("backend", ["ort-static", "ort-dynamic", "auto"])
def test_a_model_with_external_data_quantizes(tmp_path, capsys, scratch, backend):
    model = _mlp(tmp_path / "model.onnx")
    assert has_external_data(model) and (tmp_path / "model.onnx.data").is_file()
    out = tmp_path / "out" / "int8.onnx"
    out.parent.mkdir()
    code, err, manifest = _quantize(capsys, model, _calib(tmp_path / "calib.npz"), out, "--backend", backend)
    _assert_quantized(code, err, manifest, out)
    # onnxruntime's pre-processing worked inside our staging folder, and nothing of it is left
    assert scratch and all(out.parent in folder.parents for folder in scratch), scratch
    assert not any(folder.exists() for folder in scratch)
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


def test_the_shape_inference_fallback_keeps_the_external_data(tmp_path, capsys, monkeypatch, scratch):
    """onnxruntime's symbolic shape inference gives up on many real models (a BERT encoder): its fallback
    looked for model.onnx.data in its own temporary folder ("... but it is not regular file")."""

    def give_up(*args, **kwargs):
        raise Exception("Incomplete symbolic shape inference")

    monkeypatch.setattr(SymbolicShapeInference, "infer_shapes", staticmethod(give_up))
    model = _mlp(tmp_path / "model.onnx")
    prepared = tmp_path / "stage" / "prepared.onnx"
    prepared.parent.mkdir()
    notes = pre_process(model, prepared)
    assert notes["symbolic_shape_inference"].startswith("failed (Incomplete symbolic shape inference)")
    assert data_file(prepared).is_file() and has_external_data(prepared)
    loaded = onnx.load(str(prepared))  # its data beside it, where the quantizer looks
    assert {t.name for t in loaded.graph.initializer} >= {"w1", "b1", "w2"}
    assert scratch and all(prepared.parent in folder.parents for folder in scratch)

    out = tmp_path / "int8.onnx"
    code, err, manifest = _quantize(capsys, model, _calib(tmp_path / "calib.npz"), out, "--backend", "ort-static")
    _assert_quantized(code, err, manifest, out)
    assert "ONNX shape inference used" in json.dumps(manifest)


def test_an_old_opset_with_external_data_is_upgraded(tmp_path):
    model = _mlp(tmp_path / "old.onnx", opset=11)
    prepared = tmp_path / "stage" / "prepared.onnx"
    prepared.parent.mkdir()
    notes = pre_process(model, prepared)
    assert notes["opset_upgraded"] == "11 -> 13"
    assert (prepared.parent / "upgraded.onnx.data").is_file()  # the upgraded copy kept its tensors outside
    opset = next(o.version for o in onnx.load(str(prepared)).opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 13


def test_a_model_without_external_data_is_prepared_in_one_file(tmp_path):
    model = _mlp(tmp_path / "inline.onnx", external=False)
    prepared = tmp_path / "prepared.onnx"
    assert not has_external_data(model)
    pre_process(model, prepared)
    assert prepared.is_file() and not data_file(prepared).exists()


@pytest.mark.slow  # torch's exporter takes 10-30 s
def test_torchs_default_exporter_with_external_data(tmp_path, capsys):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT)).eval()
    model = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.randn(2, IN),),
            str(model),
            external_data=True,
            input_names=["x"],
            output_names=["y"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    assert (tmp_path / "model.onnx.data").is_file() and has_external_data(model)
    out = tmp_path / "int8.onnx"
    code, err, manifest = _quantize(capsys, model, _calib(tmp_path / "calib.npz"), out, "--backend", "ort-static")
    _assert_quantized(code, err, manifest, out)
