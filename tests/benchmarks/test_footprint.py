"""Memory and cold start per model and runtime (`edgeport bench --footprint`, benchmarks/footprint.py) and
the gate's footprint budgets, on real onnxruntime (and OpenVINO where installed) in real child processes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgeport.benchmarks import remote_runner
from edgeport.benchmarks.footprint import footprint_settings
from edgeport.benchmarks.records import BenchSettings, RuntimeChoice
from edgeport.cli import main
from edgeport.errors import ConfigError
from edgeport.gate.run_gate import target_for_settings

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")


def _inputs(tmp_path, x):
    np.savez(tmp_path / "inputs.npz", input=x[:1])
    return tmp_path / "inputs.npz"


def test_a_cold_starts_peak_is_what_the_kernel_reports_for_that_process(tmp_path, fp32_onnx, digits16):
    """The child's own peak (VmHWM) against the maximum resident set size the kernel gives its parent for
    the same process (what /usr/bin/time -v prints): the figure belongs to that one process."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(footprint_settings(BenchSettings(), RuntimeChoice("ort"), True, 1)))
    command = [sys.executable, remote_runner.__file__, remote_runner.COLD_START, str(fp32_onnx), str(settings)]
    child = subprocess.Popen([*command, str(_inputs(tmp_path, digits16.val.x))], stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    start = json.loads(out)
    kernel_mb = usage.ru_maxrss / 1024.0  # KiB on Linux
    assert start["peak_rss_mb"] == pytest.approx(kernel_mb, rel=0.05)
    # before the session: the interpreter, numpy, onnxruntime's import and the inputs; the model adds to it
    assert 0 < start["rss_before_session_mb"] < start["peak_rss_mb"]
    assert start["model_rss_mb"] == pytest.approx(start["peak_rss_mb"] - start["rss_before_session_mb"])
    assert start["session_create_ms"] > 0 and start["first_inference_ms"] > 0 and start["warm_median_ms"] > 0


def test_bench_footprint_measures_each_model_with_and_without_the_arena(tmp_path, capsys, fp32_onnx):
    out = tmp_path / "result.json"
    args = ["bench", str(fp32_onnx), "--vs", str(fp32_onnx), "--footprint", "--cold-starts", "2"]
    code = main([*args, "--iterations", "60", "--rounds", "3", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    results = json.loads(out.read_text())["results"]
    assert [r["model"] for r in results] == ["a", "b"]
    for result in results:
        arenas = [f["cpu_mem_arena"] for f in result["footprint"]]
        assert arenas == [True, False] and all(f["runtime"] == "ort" for f in result["footprint"])
        for footprint in result["footprint"]:
            assert footprint["cold_starts"] == len(footprint["starts"]) == 2
            peak, cold = footprint["peak_rss_mb"], footprint["cold_start_ms"]
            assert peak["min"] <= peak["median"] <= peak["max"]
            sums = sorted(s["session_create_ms"] + s["first_inference_ms"] for s in footprint["starts"])
            assert (cold["min"], cold["max"]) == pytest.approx((sums[0], sums[-1]))
            assert footprint["model_rss_mb"]["median"] > 0
    # two cold-start processes per setting: A's figures are not B's (each process has its own peak)
    pids = {s["pid"] for r in results for f in r["footprint"] for s in f["starts"]}
    assert len(pids) == 8 and os.getpid() not in pids
    assert "footprint: median [range] over 2 cold starts" in printed and "B (ort arena on) over A" in printed


@needs_openvino
def test_openvino_has_one_memory_setting(tmp_path, fp32_onnx):
    out = tmp_path / "result.json"
    args = ["bench", str(fp32_onnx), "--runtime", "openvino", "--footprint", "--cold-starts", "1"]
    assert main([*args, "--iterations", "30", "--rounds", "2", "-o", str(out), "--quiet"]) == 0
    (result,) = json.loads(out.read_text())["results"]
    (footprint,) = result["footprint"]
    assert footprint["runtime"] == "openvino" and footprint["cpu_mem_arena"] is None
    assert footprint["precision_used"] in ("f32", "bf16")


BUDGETS = """
[targets.roomy]
max_peak_rss_mb = 4000
max_cold_start_ms = 60000
[targets.tight]
max_peak_rss_mb = 1
[targets.no-arena]
max_first_run_ms = 60000
cpu_mem_arena = false
[targets.latency-only]
p50_ms = 1000
"""


@pytest.fixture(scope="module")
def footprint_result(tmp_path_factory, fp32_onnx):
    folder = tmp_path_factory.mktemp("footprint")
    out = folder / "result.json"
    args = ["bench", str(fp32_onnx), "--footprint", "--cold-starts", "2", "--iterations", "60", "--rounds", "3"]
    assert main([*args, "-o", str(out), "--quiet"]) == 0
    (folder / "budgets.toml").write_text(BUDGETS)
    return folder


def _gate(folder, target, *source):
    return main(["gate", "--budget", str(folder / "budgets.toml"), "--target", target, *map(str, source), "--json"])


@pytest.mark.parametrize("target, code", [("roomy", 0), ("tight", 1), ("no-arena", 0)])
def test_the_gate_judges_footprint_budgets_from_a_result(footprint_result, capsys, target, code):
    assert _gate(footprint_result, target, "--result", footprint_result / "result.json") == code
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    result = json.loads((footprint_result / "result.json").read_text())["results"][0]
    arena = target != "no-arena"
    record = next(f for f in result["footprint"] if f["cpu_mem_arena"] is arena)
    for name, figure in (("max_peak_rss_mb", "peak_rss_mb"), ("max_first_run_ms", "first_inference_ms")):
        if name in checks:  # judged on the worst cold start of the record measured as the target deploys
            assert checks[name]["measured"] == record[figure]["max"]
            assert f"arena {'on' if arena else 'off'}" in checks[name]["reason"]


def test_a_footprint_budget_without_figures_is_refused(tmp_path, capsys, fp32_onnx):
    plain = tmp_path / "plain.json"
    assert main(["bench", str(fp32_onnx), "--iterations", "30", "--rounds", "2", "-o", str(plain), "--quiet"]) == 0
    (tmp_path / "budgets.toml").write_text(BUDGETS)
    assert _gate(tmp_path, "roomy", "--result", plain) == 2
    err = capsys.readouterr().err
    assert "max_peak_rss_mb, max_cold_start_ms" in err and "no footprint on ort with its CPU arena on" in err
    assert "--footprint" in err and len(err.strip().splitlines()) == 1


def test_the_gate_measures_the_footprint_itself_with_an_artifact(tmp_path, capsys, fp32_onnx):
    (tmp_path / "budgets.toml").write_text(BUDGETS)
    code = _gate(tmp_path, "tight", "--artifact", fp32_onnx, "--iterations", "60")
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and [c["name"] for c in report["checks"]] == ["max_peak_rss_mb"]
    assert "worst of 5 cold starts" in report["checks"][0]["reason"]


def test_search_and_a_run_without_cold_starts_refuse_footprint_budgets(tmp_path):
    (tmp_path / "budgets.toml").write_text(BUDGETS)
    with pytest.raises(ConfigError, match="has max_peak_rss_mb, which this search does not measure"):
        target_for_settings(tmp_path / "budgets.toml", "tight", 1, 1, "this search")
    with pytest.raises(ConfigError, match=r"or set \[run.bench\] cold_starts above 0"):
        target_for_settings(tmp_path / "budgets.toml", "tight", 1, 1, "this run")  # cold_starts = 0
    target_for_settings(tmp_path / "budgets.toml", "tight", 1, 1, "this run", None, measures_footprint=True)
    target_for_settings(tmp_path / "budgets.toml", "latency-only", 1, 1, "this search")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--footprint", "--cold-starts", "0"], "--cold-starts must be an integer from 1 to 100"),
        (["--cold-starts", "3"], "--cold-starts counts the cold starts of --footprint"),
    ],
)
def test_bad_footprint_options_are_one_line_and_exit_2(capsys, fp32_onnx, args, message):
    assert main(["bench", str(fp32_onnx), *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_damaged_footprint_in_a_result_is_refused_naming_the_field(footprint_result, tmp_path, capsys):
    data = json.loads((footprint_result / "result.json").read_text())
    data["results"][0]["footprint"][0]["peak_rss_mb"]["max"] = "64"
    (tmp_path / "result.json").write_text(json.dumps(data))
    (tmp_path / "budgets.toml").write_text(BUDGETS)
    assert _gate(tmp_path, "roomy", "--result", tmp_path / "result.json") == 2
    err = capsys.readouterr().err
    assert "field 'footprint.0.peak_rss_mb.max'" in err and len(err.strip().splitlines()) == 1


def test_an_openvino_target_has_no_arena_to_switch_off(tmp_path, capsys, fp32_onnx):
    budget = '[targets.ov]\nruntime = "openvino"\nmax_peak_rss_mb = 100\ncpu_mem_arena = false\n'
    (tmp_path / "budgets.toml").write_text(budget)
    assert _gate(tmp_path, "ov", "--artifact", fp32_onnx) == 2
    assert "cpu_mem_arena is onnxruntime's memory arena" in capsys.readouterr().err
