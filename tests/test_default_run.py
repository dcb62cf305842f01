"""The `make run` job itself (default settings); slow, so only `make test-all` runs it."""

import json

import onnxruntime as ort
import pytest

from edgeport.cli import main


@pytest.mark.slow
def test_default_run_meets_the_accuracy_promise(tmp_path, capsys):
    assert main(["run", "--quiet", "--json", "--out", str(tmp_path)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    folder = tmp_path / manifest["run_id"]
    ort.InferenceSession(str(folder / "student.int8.onnx"), providers=["CPUExecutionProvider"])
    acc = manifest["metrics"]["accuracy"]
    assert acc["fp32_onnx"]["test"] - acc["int8_onnx"]["test"] <= 1.0
    assert acc["student"]["test"] > 95.0 and acc["teacher"]["test"] > 95.0
