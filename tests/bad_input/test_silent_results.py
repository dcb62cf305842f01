"""Silent wrong results: inputs that used to give exit 0 and a meaningless or broken model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.bad_input.conftest import one_line_error, run_cli


def _quantize(capsys, folder: Path, *extra):
    return run_cli(
        capsys,
        "quantize",
        folder / "model.onnx",
        "--calib",
        folder / "calib.npz",
        "--quiet",
        "-o",
        folder / "out.onnx",
        *extra,
    )


def _nothing_written(folder: Path) -> bool:
    return not (folder / "out.onnx").exists() and not any(p.name.startswith(".") for p in folder.iterdir())


@pytest.fixture
def folder(cnn_files, tmp_path) -> Path:
    for name in ("model.onnx", "calib.npz", "val.npz"):
        shutil.copy(cnn_files / name, tmp_path / name)
    return tmp_path


# --- 7. degenerate calibration data ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zeros", "constant", "nan", "inf", "empty"])
def test_degenerate_calibration_is_refused(folder, capsys, kind):
    x = np.load(folder / "calib.npz")["x"]
    bad = {"zeros": np.zeros_like(x), "constant": np.full_like(x, 0.5), "empty": x[:0]}.get(kind, x.copy())
    if kind in ("nan", "inf"):
        bad[3, 0, 2, 2] = np.nan if kind == "nan" else np.inf
    np.savez(folder / "calib.npz", x=bad)
    for backend in ("ort-static", "ort-dynamic"):
        code, _, err = _quantize(capsys, folder, "--backend", backend)
        assert code == 2
        line = one_line_error(err)
        assert "calib.npz" in line and "model.onnx" not in line, line
        assert {"zeros": "all zero", "constant": "constant", "nan": "NaN", "inf": "Inf", "empty": "no samples"}[
            kind
        ] in line
        assert _nothing_written(folder)


def test_constant_calibration_is_refused_for_torch_backends(folder, capsys, trained_cnn):
    from edgeport.models import ModelSpec
    from edgeport.models.checkpoint import save_checkpoint

    save_checkpoint(trained_cnn, folder / "w.safetensors", ModelSpec.parse("cnn:width=1,depth=3"), 1, 10, 16)
    x = np.load(folder / "calib.npz")["x"]
    np.savez(folder / "calib.npz", x=np.zeros_like(x))
    code, _, err = run_cli(
        capsys,
        "quantize",
        "--torch",
        "cnn:width=1,depth=3",
        "--weights",
        folder / "w.safetensors",
        "--num-classes",
        10,
        "--calib",
        folder / "calib.npz",
        "--backend",
        "torch-fx",
        "--quiet",
        "-o",
        folder / "out.onnx",
    )
    assert code == 2 and "all zero" in one_line_error(err)
    assert _nothing_written(folder)


# --- 8. validation data is checked like calibration data --------------------------------------------


@pytest.mark.parametrize(
    "kind,expected",
    [("empty", "no samples"), ("nan", "NaN"), ("y+1000", "0..9"), ("y-5", ">= 0"), ("y-float", "integer")],
)
def test_bad_validation_data_is_refused(folder, capsys, kind, expected):
    val = np.load(folder / "val.npz")
    x, y = val["x"].copy(), val["y"]
    arrays = {
        "empty": {"x": x[:0], "y": y[:0]},
        "nan": {"x": np.where(x > 1, np.nan, x), "y": y},
        "y+1000": {"x": x, "y": y + 1000},
        "y-5": {"x": x, "y": y - 5},
        "y-float": {"x": x, "y": y.astype(np.float32)},
    }[kind]
    np.savez(folder / "val.npz", **arrays)
    code, _, err = _quantize(capsys, folder, "--val", folder / "val.npz")
    assert code == 2
    line = one_line_error(err)
    assert "val.npz" in line and expected in line, line
    assert _nothing_written(folder)


# --- 9. layers inside If/Loop subgraphs ---------------------------------------------------------------


def _model_with_layers_in_if(path: Path) -> None:
    """Both branches of an If hold the model's only MatMul: nothing at the top level to quantize."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W")

    def branch(name, scale):
        nodes = [
            helper.make_node("MatMul", ["x", "W"], [f"{name}_h"], name=f"{name}_matmul"),
            helper.make_node("Mul", [f"{name}_h", f"{name}_s"], [f"{name}_y"], name=f"{name}_mul"),
        ]
        consts = [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s")]
        return helper.make_graph(
            nodes, name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, ["n", 4])], consts
        )

    # The condition is computed from the input, so no optimiser can fold the If away.
    limit = numpy_helper.from_array(np.array(-1e30, np.float32), "limit")
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["peak"], name="peak", keepdims=0),
        helper.make_node("Greater", ["peak", "limit"], ["cond"], name="cond"),
        helper.make_node(
            "If", ["cond"], ["logits"], name="choose", then_branch=branch("then", 1.0), else_branch=branch("else", 2.0)
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        [weight, limit],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def test_nothing_quantized_inside_subgraphs_is_a_failed_check(tmp_path, capsys):
    _model_with_layers_in_if(tmp_path / "model.onnx")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((32, 8)).astype(np.float32))
    code, _, err = _quantize(capsys, tmp_path)
    assert code == 1  # the input was fine; the outcome fails the check
    line = one_line_error(err)
    assert "nothing was quantized" in line and "subgraph" in line, line
    assert _nothing_written(tmp_path)


def test_coverage_counts_layers_inside_subgraphs(tmp_path):
    from edgeport.quantize.guard.verify import int8_coverage

    _model_with_layers_in_if(tmp_path / "model.onnx")
    coverage = int8_coverage(tmp_path / "model.onnx")
    assert coverage["float_kernels"] == 2 and coverage["in_subgraphs"] == 2 and coverage["integer_kernels"] == 0


# --- 10. exclusions that name nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "option,value,expected",
    [
        ("--exclude-node", "NoSuchNode", "no node of that name"),
        ("--exclude-op-type", "Bogus", "no such op"),
        ("--exclude-op-type", "LSTM", "no such op"),
    ],
)
def test_unknown_exclusions_are_refused(folder, capsys, option, value, expected):
    code, _, err = _quantize(capsys, folder, option, value)
    assert code == 2
    line = one_line_error(err)
    assert value in line and expected in line, line
    assert _nothing_written(folder)


def test_unknown_torch_module_exclusion_is_refused(folder, capsys, trained_cnn):
    from edgeport.models import ModelSpec
    from edgeport.models.checkpoint import save_checkpoint

    save_checkpoint(trained_cnn, folder / "w.safetensors", ModelSpec.parse("cnn:width=1,depth=3"), 1, 10, 16)
    code, _, err = run_cli(
        capsys,
        "quantize",
        "--torch",
        "cnn:width=1,depth=3",
        "--weights",
        folder / "w.safetensors",
        "--num-classes",
        10,
        "--calib",
        folder / "calib.npz",
        "--backend",
        "torch-fx",
        "--exclude-node",
        "features.99",
        "--quiet",
        "-o",
        folder / "out.onnx",
    )
    assert code == 2 and "features.99" in one_line_error(err) and "no such module" in err
    assert _nothing_written(folder)


def test_a_real_exclusion_still_works(folder, capsys):
    import onnx as onnx_lib

    conv = next(n.name for n in onnx_lib.load(str(folder / "model.onnx")).graph.node if n.op_type == "Conv")
    code, _, err = _quantize(capsys, folder, "--exclude-node", conv)
    assert code == 0, err
    kept = [n for n in onnx_lib.load(str(folder / "out.onnx")).graph.node if n.op_type == "Conv"]
    assert any(n.name == conv for n in kept)


# --- 11. NaN and Inf in numeric options and settings ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--max-accuracy-drop", "nan", "--val", "VAL"],
        ["--max-accuracy-drop", "inf", "--val", "VAL"],
        ["--min-cosine", "nan"],
        ["--percentile", "inf", "--calibration-method", "percentile"],
    ],
)
def test_quantize_refuses_nan_and_inf_options(folder, capsys, args):
    args = [str(folder / "val.npz") if a == "VAL" else a for a in args]
    code, _, err = _quantize(capsys, folder, *args)
    assert code == 2
    line = one_line_error(err)
    assert args[0] in line and ("finite" in line or "between" in line), line
    assert _nothing_written(folder)


@pytest.mark.parametrize("args", [["--temperature", "nan"], ["--alpha", "inf"], ["--max-accuracy-drop", "-inf"]])
def test_run_refuses_nan_and_inf_options(tmp_path, capsys, args):
    code, _, err = run_cli(capsys, "run", *args, "--out", tmp_path / "runs")
    assert code == 2 and args[0] in one_line_error(err) and "finite" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "line",
    ["[run.student]\ntemperature = nan", "[run.student]\nalpha = inf", "[run.quantize]\nmax_accuracy_drop = nan"],
)
def test_project_file_refuses_nan_and_inf(tmp_path, capsys, line):
    config = tmp_path / "edgeport.toml"
    config.write_text(f"[run]\nseed = 0\n{line}\n")
    code, _, err = run_cli(capsys, "run", "--config", config, "--out", tmp_path / "runs")
    assert code == 2
    message = one_line_error(err)
    assert "edgeport.toml" in message and line.split("\n")[1].split(" ")[0] in message, message
    assert not (tmp_path / "runs").exists()


def test_search_settings_refuse_nan_and_inf(tmp_path, capsys):
    from tests.helpers import TINY_SPACE, tiny_config

    for search in ("latency_budget_ms = inf", "time_budget = inf", "latency_weight = nan"):
        config = tiny_config(tmp_path, TINY_SPACE, search)
        code, _, err = run_cli(capsys, "search", "--config", config, "--out", tmp_path / "runs", "--quiet")
        assert code == 2, err
        assert search.split(" ")[0] in one_line_error(err)
        assert not (tmp_path / "runs").exists()


# --- 12. datasets with one class, sparse labels or NaN pixels ------------------------------------------


def _digits_npz(path: Path, y_map=None, nan=False, classes=None):
    from edgeport.data import load_dataset

    data = load_dataset("digits", image_size=8)
    x, y = data.x, data.y
    if classes is not None:
        keep = np.isin(y, classes)
        x, y = x[keep], y[keep]
    if y_map is not None:
        y = y_map(y)
    if nan:
        x = x.copy()
        x[5, 0, 3, 3] = np.nan
    np.savez(path, x=x, y=y)


@pytest.mark.parametrize("case,expected", [("one-class", "at least 2 classes"), ("nan", "NaN")])
def test_bad_datasets_are_refused_up_front(tmp_path, capsys, case, expected):
    data = tmp_path / "data.npz"
    if case == "one-class":
        _digits_npz(data, classes=[3])
    else:
        _digits_npz(data, nan=True)
    code, _, err = run_cli(
        capsys, "run", "--dataset", "npz", "--data-path", data, "--image-size", 8, "--out", tmp_path / "runs", "--quiet"
    )
    assert code == 2
    line = one_line_error(err)
    assert "data.npz" in line and expected in line, line
    assert not (tmp_path / "runs").exists()


def test_sparse_labels_are_mapped_to_class_indices(tmp_path):
    from edgeport.data import load_dataset

    data = tmp_path / "data.npz"
    _digits_npz(data, y_map=lambda y: (y % 4) * 1_000_000, classes=[0, 1, 2, 3])
    dataset = load_dataset("npz", data, image_size=8)
    assert dataset.num_classes == 4
    assert sorted(np.unique(dataset.y)) == [0, 1, 2, 3]
    assert dataset.label_values == (0, 1_000_000, 2_000_000, 3_000_000)
    assert dataset.describe()["label_values"] == [0, 1_000_000, 2_000_000, 3_000_000]


def test_run_on_sparse_labels_builds_a_four_class_model(tmp_path, capsys):
    import json

    data = tmp_path / "data.npz"
    _digits_npz(data, y_map=lambda y: (y % 4) * 1_000_000, classes=[0, 1, 2, 3])
    code, out, err = run_cli(
        capsys,
        "run",
        "--dataset",
        "npz",
        "--data-path",
        data,
        "--image-size",
        8,
        "--epochs",
        1,
        "--skip-no-kd",
        "--iterations",
        40,
        "--calibration-samples",
        32,
        "--out",
        tmp_path / "runs",
        "--quiet",
        "--json",
    )
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["dataset"]["num_classes"] == 4 and manifest["dataset"]["label_values"][-1] == 3_000_000
    assert any("mapped to class indices" in w for w in manifest["warnings"])
    run = next(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    output = onnx.load(str(run / "student.fp32.onnx")).graph.output[0]
    assert output.type.tensor_type.shape.dim[1].dim_value == 4  # not 3,000,001 classes


@pytest.mark.parametrize(
    "args",
    [
        ["--duration", "inf"],
        ["--duration", "nan"],
        ["--warmup", "nans"],
        ["--warmup", "infs"],
        ["--margin", "nan", "--vs", "MODEL"],
        ["--seed", "-1"],
    ],
)
def test_bench_refuses_nan_and_inf_options(folder, capsys, args):
    args = [str(folder / "model.onnx") if a == "MODEL" else a for a in args]
    code, out, err = run_cli(capsys, "bench", folder / "model.onnx", "--quiet", "-o", folder / "r.json", *args)
    assert code == 2
    line = one_line_error(err)
    assert ("finite" in line or "range" in line) and not (folder / "r.json").exists(), line
