"""A budget that names no runtime gates the artifact where its manifest says it ships (speed.deploy)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.gate.test_gate import draw, gate, model, write_budget, write_manifest, write_result  # noqa: F401

BUDGET = """
[targets.cpu]
batch = 1
threads = 1
p90_ms = 100.0
"""


def _deployed_on(model, runtime, precision=None):  # noqa: F811 (the fixture's name)
    path = write_manifest(model)
    manifest = json.loads(path.read_text())
    manifest["speed"] = {"deploy": {"runtime": runtime, "precision": precision, "verdict": "within tolerance"}}
    path.write_text(json.dumps(manifest))
    return path


def test_the_manifests_deployed_runtime_is_the_targets_when_the_budget_names_none(tmp_path, capsys, model):  # noqa: F811
    _deployed_on(model, "openvino", "f32")
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(1)))  # measured on onnxruntime
    code, _, err = gate(capsys, "--budget", write_budget(tmp_path, BUDGET), "--result", result)
    # an int8 file that ships on OpenVINO says nothing about its budget by its onnxruntime latency
    assert code == 2 and "measured on runtime 'ort'; the target is for 'openvino/f32'" in err
    # the budget naming the runtime wins: the team said where it ships
    named = write_budget(tmp_path, BUDGET + 'runtime = "ort"\n')
    code, out, err = gate(capsys, "--budget", named, "--result", result, "--json")
    assert code == 0, err
    assert json.loads(out)["settings"] == {"batch": 1, "threads": 1, "runtime": "ort", "runtime_from": "budget"}


def test_without_a_deployed_runtime_the_gate_measures_onnxruntime_and_says_why(tmp_path, capsys, model):  # noqa: F811
    write_manifest(model)  # written with the speed check off: no speed.deploy
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(1)))
    code, out, err = gate(capsys, "--budget", write_budget(tmp_path, BUDGET), "--result", result, "--json")
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["runtime"] == "ort" and settings["runtime_from"] == "default"


def test_a_deployed_runtime_edgeport_does_not_know_is_refused_naming_the_field(tmp_path, capsys, model):  # noqa: F811
    _deployed_on(model, "tensorrt")
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(1)))
    code, _, err = gate(capsys, "--budget", write_budget(tmp_path, BUDGET), "--result", result)
    assert code == 2 and "speed.deploy.runtime" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_the_gate_measures_the_artifact_on_the_runtime_it_ships_on(tmp_path, capsys, model):  # noqa: F811
    manifest = _deployed_on(model, "openvino", "f32")
    code, out, err = gate(capsys, "--budget", write_budget(tmp_path, BUDGET), "--artifact", model, "--json")
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["runtime"] == "openvino/f32" and settings["runtime_from"] == str(manifest)
    code, out, _ = gate(capsys, "--budget", write_budget(tmp_path, BUDGET), "--artifact", model)
    assert code == 0 and f"on runtime openvino/f32 (as {manifest} deploys it)" in " ".join(out.split())
