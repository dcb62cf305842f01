"""Usability: a user's own model module, huge search spaces, tables in CI logs, the search example."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeport.models import ModelSpec
from tests.bad_input.conftest import one_line_error, run_cli

MODULE = """
from torch import nn


def build(in_channels, num_classes, hidden=8):
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(hidden, num_classes))
"""


# --- 17. --torch mymodel:build with a module in the working folder ------------------------------------


@pytest.mark.parametrize(
    "text,name,options",
    [
        ("mymodel:build", "mymodel:build", {}),
        ("mymodel:build:hidden=4", "mymodel:build", {"hidden": 4}),
        ("pkg.models:build", "pkg.models:build", {}),
        ("cnn:width=2,depth=3", "cnn", {"width": 2, "depth": 3}),
        ("cnn", "cnn", {}),
    ],
)
def test_spec_grammar_tells_factories_from_options(text, name, options):
    spec = ModelSpec.parse(text)
    assert (spec.name, spec.options) == (name, options)


def test_a_registered_name_with_an_option_typo_explains_the_grammar():
    from edgeport.errors import ModelError
    from edgeport.models import build_model

    with pytest.raises(ModelError, match="key=value"):
        build_model("cnn:width", 1, 10, 8)


def test_quantize_a_top_level_module_from_the_working_folder(tmp_path, cnn_files):
    """As a user runs it: the `edgeport` console script (its sys.path starts at the venv's bin folder),
    in the folder that holds mymodel.py."""
    from edgeport.models import build_model
    from edgeport.models.checkpoint import save_checkpoint

    (tmp_path / "mymodel.py").write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        model = build_model("mymodel:build", 1, 10, 16)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mymodel", None)
    save_checkpoint(model, tmp_path / "w.safetensors", ModelSpec.parse("mymodel:build"), 1, 10, 16)
    shutil.copy(cnn_files / "calib.npz", tmp_path / "calib.npz")
    script = Path(sys.executable).parent / "edgeport"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "edgeport.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [
            *command,
            "quantize",
            "--torch",
            "mymodel:build",
            "--weights",
            "w.safetensors",
            "--num-classes",
            "10",
            "--calib",
            "calib.npz",
            "--backend",
            "torch-fx",
            "--quiet",
            "-o",
            "mymodel.int8.onnx",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "mymodel.int8.manifest.json").read_text())
    assert manifest["lineage"]["torch_model"]["name"] == "mymodel:build"


# --- 18. huge search spaces are counted, not built ------------------------------------------------------


def test_a_huge_grid_is_refused_before_any_point_is_built(tmp_path, capsys, monkeypatch):
    from edgeport.search import runner, space
    from tests.helpers import tiny_config

    def never(*args, **kwargs):
        raise AssertionError("the space was expanded")

    monkeypatch.setattr(space, "expand", never)
    monkeypatch.setattr(runner, "expand", never)
    values = ", ".join(str(v) for v in np.linspace(0.1, 0.99, 100).round(4))
    grid = (
        f'"student.alpha" = [{values}]\n"student.temperature" = [{", ".join(str(t) for t in range(1, 101))}]\n'
        f'"student.model.width" = [{values}]\n'
    )
    config = tiny_config(tmp_path, grid)
    code, _, err = run_cli(capsys, "search", "--config", config, "--out", tmp_path / "runs", "--quiet")
    assert code == 2
    line = one_line_error(err)
    assert "1,000,000" in line and "--allow-large-grid" in line, line
    assert not (tmp_path / "runs").exists()


def test_check_size_counts_arithmetically():
    from edgeport.search.settings import SearchSettings
    from edgeport.search.space import MAX_CANDIDATES, check_size

    settings = SearchSettings.model_validate(
        {
            "space": {
                "student.alpha": [0.1] * 0 + [i / 1000 for i in range(1000)],
                "student.temperature": [float(t) for t in range(1, 1001)],
            }
        }
    )
    assert check_size(settings, None, allow_large_grid=True) == 1_000_000
    assert check_size(settings, 10, allow_large_grid=True) == 1_000_000
    small = SearchSettings.model_validate({"space": {"student.alpha": [0.1, 0.5]}})
    assert check_size(small, None, allow_large_grid=False) == 2 <= MAX_CANDIDATES
    random = SearchSettings.model_validate({"strategy": "random", "n_iter": 20, "space": settings.space})
    assert check_size(random, None, allow_large_grid=False) == 20


# --- 19. tables in CI logs are not cut, and fit 100 columns ----------------------------------------------


def test_quantize_table_is_not_cut_without_a_terminal(cnn_files, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    deep = tmp_path / ("a-rather-long-folder-name-as-ci-workspaces-have" * 2)
    deep.mkdir()
    for name in ("model.onnx", "calib.npz", "val.npz"):
        shutil.copy(cnn_files / name, deep / name)
    code, out, err = run_cli(
        capsys,
        "quantize",
        deep / "model.onnx",
        "--calib",
        deep / "calib.npz",
        "--val",
        deep / "val.npz",
        "--quiet",
        "-o",
        deep / "model.int8.onnx",
    )
    assert code == 0, err
    assert "…" not in out
    assert f"artifact: {deep / 'model.int8.onnx'}" in out.splitlines()  # whole, under the table
    assert max(len(line) for line in out.splitlines() if not line.startswith("artifact: ")) <= 100


def test_console_uses_the_terminal_width_when_there_is_one(monkeypatch):
    from edgeport.core.console import LOG_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console().width == LOG_WIDTH  # pytest's captured stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert make_console().width == 100


# --- 20. the search example shows a trade-off: tests/test_search.py (test_example_shows_a_trade_off) runs it.
