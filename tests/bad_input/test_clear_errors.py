"""Clear errors: the message names the real cause (and the file), not a symptom further down."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.bad_input.conftest import one_line_error, run_cli


@pytest.fixture
def folder(cnn_files, tmp_path) -> Path:
    for name in ("model.onnx", "calib.npz", "val.npz"):
        shutil.copy(cnn_files / name, tmp_path / name)
    return tmp_path


def _quantize(capsys, folder: Path, model: str, *extra):
    return run_cli(
        capsys,
        "quantize",
        folder / model,
        "--calib",
        folder / "calib.npz",
        "--quiet",
        "-o",
        folder / "out.onnx",
        *extra,
    )


def _set_opset(src: Path, dst: Path, version: int) -> None:
    model = onnx.load(str(src))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = version
    onnx.save(model, str(dst))


@pytest.mark.parametrize("version", [28, 29])
def test_an_opset_newer_than_onnxruntime_is_named_before_any_work(folder, capsys, version):
    _set_opset(folder / "model.onnx", folder / "new.onnx", version)
    code, _, err = _quantize(capsys, folder, "new.onnx")
    assert code == 2
    line = one_line_error(err)
    assert f"opset {version} is newer than onnxruntime" in line and "new.onnx" in line, line
    assert ".edgeport-quantize" not in line and "int8 model is not valid" not in line
    assert not (folder / "out.onnx").exists()


def test_a_model_without_inputs_says_so(folder, capsys):
    constant = numpy_helper.from_array(np.ones((2, 3), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["W"], ["out"])],
        "g",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
        [constant],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), folder / "none.onnx")
    code, _, err = _quantize(capsys, folder, "none.onnx")
    assert code == 2
    line = one_line_error(err)
    assert "none.onnx" in line and "has no inputs" in line and "sample counts" not in line, line


def test_a_fixed_batch_model_is_quantized_and_verified(folder, capsys, trained_cnn):
    """A model exported with batch 2 fixed: calibration and verification run in chunks of 2,
    including an odd number of validation samples."""
    import torch

    example = torch.from_numpy(np.load(folder / "calib.npz")["x"][:2])
    torch.onnx.export(
        trained_cnn.eval(),
        (example,),
        str(folder / "batch2.onnx"),
        dynamo=False,
        opset_version=18,
        input_names=["input"],
        output_names=["logits"],
    )
    val = np.load(folder / "val.npz")
    np.savez(folder / "val.npz", x=val["x"][:95], y=val["y"][:95])
    code, out, err = _quantize(capsys, folder, "batch2.onnx", "--val", folder / "val.npz", "--json")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["verification"]["samples"] == 95
    assert manifest["verification"]["vs_fp32"]["top1_agreement"] >= 95


def test_inputs_that_do_not_fit_the_model_name_the_file(folder, capsys):
    np.savez(folder / "calib.npz", x=np.random.default_rng(0).random((8, 1, 9, 9)).astype(np.float32))
    code, _, err = _quantize(capsys, folder, "model.onnx")
    assert code == 2
    line = one_line_error(err)
    assert "calib.npz" in line and "input" in line, line


@pytest.mark.parametrize("where", ["option", "file"])
def test_a_seed_above_32_bits_is_refused_and_leaves_no_folder(tmp_path, capsys, where):
    out = tmp_path / "runs"
    if where == "option":
        code, _, err = run_cli(capsys, "run", "--seed", 2**32, "--out", out)
    else:
        (tmp_path / "edgeport.toml").write_text(f"[run]\nseed = {2**32}\n")
        code, _, err = run_cli(capsys, "run", "--config", tmp_path / "edgeport.toml", "--out", out)
    assert code == 2
    line = one_line_error(err)
    assert "seed" in line and "4294967295" in line, line
    assert not out.exists()


def test_search_seed_above_32_bits_is_refused(tmp_path, capsys):
    from tests.helpers import TINY_SPACE, tiny_config

    config = tiny_config(tmp_path, TINY_SPACE, f"strategy = 'random'\nn_iter = 2\nseed = {2**40}")
    for args in (["--config", config], ["--config", tiny_config(tmp_path, TINY_SPACE, name="b.toml"), "--seed", 2**33]):
        code, _, err = run_cli(capsys, "search", *args, "--out", tmp_path / "runs", "--quiet")
        assert code == 2 and "seed" in one_line_error(err)
    assert not (tmp_path / "runs").exists()


def test_a_run_that_fails_after_creating_out_leaves_no_empty_folder(tmp_path, capsys):
    """--teacher-weights that do not fit: the failure comes after the run folder was set up."""
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import save_checkpoint

    wrong = build_model("cnn:width=1,depth=2", 1, 10, 8)
    save_checkpoint(wrong, tmp_path / "t.safetensors", ModelSpec.parse("cnn:width=1,depth=2"), 1, 10, 8)
    out = tmp_path / "runs"
    code, _, err = run_cli(
        capsys, "run", "--teacher-weights", tmp_path / "t.safetensors", "--image-size", 8, "--out", out, "--quiet"
    )
    assert code == 2, err
    one_line_error(err)
    assert not out.exists()
