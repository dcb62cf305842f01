"""The `make run` job itself (default settings); slow, so only `make test-all` runs it."""

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from edgeport.cli import main

BUDGETS = str(Path(__file__).resolve().parents[2] / "examples" / "budgets.toml")


@pytest.mark.slow
def test_default_run_meets_the_accuracy_promise(tmp_path, capsys):
    assert main(["run", "--quiet", "--json", "--out", str(tmp_path)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    folder = tmp_path / manifest["run_id"]
    ort.InferenceSession(str(folder / "student.int8.onnx"), providers=["CPUExecutionProvider"])
    acc = manifest["metrics"]["accuracy"]
    assert acc["fp32_onnx"]["test"] - acc["int8_onnx"]["test"] <= 1.0
    assert acc["teacher"]["test"] > 98.0 and acc["student"]["test"] > 90.0
    # what the default is there to show: distillation beats the no-KD twin beyond noise, and int8 ships
    choice = manifest["lineage"]["student_choice"]
    paired = choice["paired_test"]
    assert choice["exported"] == "student" and paired["a_only"] > paired["b_only"]
    assert paired["p_value"] < paired["alpha"]
    assert manifest["runtimes"]["deploy"]["model"] == "int8"


@pytest.mark.slow
def test_default_run_meets_the_example_x86_budget_and_misses_the_tight_one(tmp_path, capsys):
    """examples/budgets.toml promises: `make run`'s artifact passes x86-avx2 here and fails tight-edge."""
    code = main(["run", "--quiet", "--json", "--out", str(tmp_path), "--budget", BUDGETS, "--target", "x86-avx2"])
    manifest = json.loads(capsys.readouterr().out)
    assert code == 0 and manifest["gate"]["verdict"] == "pass"
    folder = tmp_path / manifest["run_id"]
    assert json.loads((folder / "gate.json").read_text())["verdict"] == "pass"
    code = main(
        ["gate", "--quiet", "--budget", BUDGETS, "--target", "tight-edge", "--result", str(folder / "latency.json")]
    )
    assert code == 1
