"""`edgeport gate`: budgets, noise-aware decisions, integrity, hardware, reporters; the statistics on
synthetic latency distributions; and the gate without torch."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeport.benchmarks import environment_fingerprint
from edgeport.benchmarks.latency import BenchResult
from edgeport.cli import main
from edgeport.core.artifacts import sha256_file
from edgeport.gate import GateReport, evaluate_gate, run_gate
from edgeport.gate.decide import percentile_check, regression_check
from edgeport.gate.measurer import Measurer
from edgeport.gate.run_gate import GateRequest
from tests.benchmarks.no_torch import BLOCK_TORCH

ROOT = Path(__file__).resolve().parents[2]


# -- synthetic latency: a main mode, a 30% slow mode and rare long spikes, like a busy shared CPU ------


def draw(rng, n: int = 2000, scale: float = 1.0) -> np.ndarray:
    base = 0.35 * rng.lognormal(0.0, 0.15, n)
    slow_mode = rng.random(n) < 0.3
    spikes = rng.random(n) < 0.03
    return (base * np.where(slow_mode, 1.3, 1.0) + spikes * rng.exponential(0.5, n)) * scale


def rounds(rng, scale: float = 1.0) -> np.ndarray:
    """A measurement as the gate sees it by default: 10 rounds of 200 runs."""
    return draw(rng, 2000, scale).reshape(10, 200)


def test_a_a_regression_checks_rarely_raise_false_alarms():
    """200 A/A comparisons at the gate's default size (2,000 samples each): at most 2% not passing."""
    rng = np.random.default_rng(7)
    alarms = sum(regression_check(rounds(rng), rounds(rng), 0.10, "ci", seed=i).verdict != "pass" for i in range(200))
    assert alarms <= 4


def test_a_15_percent_slowdown_is_detected_in_95_percent_of_trials():
    rng = np.random.default_rng(8)
    detected = sum(
        regression_check(rounds(rng, 1.15), rounds(rng), 0.10, "ci", seed=i).verdict == "fail" for i in range(200)
    )
    assert detected >= 190


def test_interleaved_measurements_cancel_drift_shared_by_a_round():
    """Measured interleaved (--baseline-artifact), both models see each round's drift; the paired
    analysis keeps A/A false alarms at zero and still catches a 15% slowdown."""
    rng = np.random.default_rng(13)

    def pair(scale):
        drift = rng.lognormal(0.0, 0.08, (10, 1))  # the machine's speed in each round
        return rounds(rng, scale) * drift, rounds(rng) * drift

    assert sum(regression_check(*pair(1.0), 0.10, "ci", seed=i, paired=True).verdict != "pass" for i in range(100)) <= 2
    assert (
        sum(regression_check(*pair(1.15), 0.10, "ci", seed=i, paired=True).verdict == "fail" for i in range(100)) >= 95
    )


def test_a_slowdown_at_the_limit_is_inconclusive_not_a_coin_flip():
    rng = np.random.default_rng(9)
    verdicts = [regression_check(rounds(rng, 1.10), rounds(rng), 0.10, "ci", seed=i).verdict for i in range(20)]
    assert verdicts.count("fail") <= 1 and verdicts.count("inconclusive") >= 10


def test_a_noise_burst_over_some_rounds_is_inconclusive_not_a_regression():
    """4 of 10 rounds at twice the latency (a neighbour's burst) move p50 by ~20%: with rounds
    resampled as blocks the interval shows the drift and the gate does not declare a regression."""
    rng = np.random.default_rng(12)
    verdicts = []
    for i in range(30):
        current = rounds(rng)
        current[rng.choice(10, 4, replace=False)] *= 2.0
        check = regression_check(current, rounds(rng), 0.10, "ci", seed=i)
        assert check.measured > 1.15  # a point-estimate gate would call this a regression
        verdicts.append(check.verdict)
    assert "fail" not in verdicts


def test_percentile_budget_uses_the_upper_bound_in_ci_mode_and_the_estimate_in_point_mode():
    rng = np.random.default_rng(10)
    samples = rounds(rng)
    p90 = float(np.percentile(samples, 90))
    assert percentile_check("p90_ms", p90 * 1.2, samples, "ci").verdict == "pass"
    assert percentile_check("p90_ms", p90 * 0.8, samples, "ci").verdict == "fail"
    at = percentile_check("p90_ms", p90 * 1.001, samples, "ci")
    assert at.verdict == "inconclusive" and at.interval[0] < p90 * 1.001 < at.interval[1]
    assert percentile_check("p90_ms", p90 * 1.001, samples, "point").verdict == "pass"


# -- files a gate reads ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A real (tiny) ONNX model: y = relu(x W)."""
    weight = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], np.random.default_rng(0).standard_normal(32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["h"]), helper.make_node("Relu", ["h"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    path = tmp_path_factory.mktemp("gate") / "model.int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory) -> Path:
    """Same signature as ``model`` with ~500x the arithmetic: a real, large slowdown."""
    rng = np.random.default_rng(1)
    w1 = helper.make_tensor("W1", TensorProto.FLOAT, [8, 2048], rng.standard_normal(8 * 2048).tolist())
    w2 = helper.make_tensor("W2", TensorProto.FLOAT, [2048, 2048], rng.standard_normal(2048 * 2048).tolist())
    w3 = helper.make_tensor("W3", TensorProto.FLOAT, [2048, 4], rng.standard_normal(2048 * 4).tolist())
    nodes = [
        helper.make_node("MatMul", ["input", "W1"], ["a"]),
        helper.make_node("MatMul", ["a", "W2"], ["b"]),
        helper.make_node("MatMul", ["b", "W3"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "heavy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [w1, w2, w3],
    )
    path = tmp_path_factory.mktemp("gate-heavy") / "heavy.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def write_result(
    path: Path, model: Path, samples, batch: int = 1, threads: int = 1, environment=None, reference=None
) -> Path:
    def entry(samples_ms):
        return BenchResult(
            str(model),
            sha256_file(model),
            {"batch": batch, "threads": threads, "rounds": 10},
            environment or environment_fingerprint(),
            [float(s) for s in samples_ms],
        ).to_dict()

    data = entry(samples) if reference is None else {"int8": entry(samples), "fp32": entry(reference)}
    path.write_text(json.dumps(data))
    return path


def write_manifest(model: Path, int8: float = 98.0, fp32: float = 98.5, sha: str | None = None) -> Path:
    path = model.with_name(model.name[:-5] + ".manifest.json")
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "artifact": {
                    "path": model.name,
                    "sha256": sha or sha256_file(model),
                    "size_bytes": model.stat().st_size,
                },
                "verification": {"accuracy": {"int8": int8, "fp32": fp32}},
            }
        )
    )
    return path


def write_budget(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    return path


def gate(capsys, *args) -> tuple[int, str, str]:
    code = main(["gate", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


BUDGET = """
[targets.cpu]
batch = 1
threads = 1
p90_ms = {p90}
max_accuracy_drop = 1.0
min_accuracy = 90.0
max_size_mb = 1.0
[targets.cpu.hardware]
machine = "{machine}"
"""


def budget_for(tmp_path, p90: float) -> Path:
    return write_budget(tmp_path, BUDGET.format(p90=p90, machine=environment_fingerprint()["cpu"]["machine"]))


# -- CLI: pass, fail, inconclusive, JSON, JUnit, GitHub ---------------------------------------------------


def test_pass_and_fail_with_exit_codes_and_json(tmp_path, capsys, model):
    write_manifest(model)
    samples = draw(np.random.default_rng(1))
    result = write_result(tmp_path / "r.json", model, samples)
    p90 = float(np.percentile(samples, 90))
    code, out, _ = gate(capsys, "--budget", budget_for(tmp_path, p90 * 1.3), "--result", result, "--json")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "pass" and report["passed"]
    assert {c["name"] for c in report["checks"]} == {"p90_ms", "max_accuracy_drop", "min_accuracy", "max_size_mb"}
    assert report["artifact"]["sha256"] == sha256_file(model)
    code, out, _ = gate(capsys, "--budget", budget_for(tmp_path, p90 * 0.7), "--result", result, "--json")
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "fail"
    assert [c["verdict"] for c in report["checks"] if c["name"] == "p90_ms"] == ["fail"]


def test_inconclusive_fails_unless_allowed(tmp_path, capsys, model):
    write_manifest(model)
    samples = draw(np.random.default_rng(2))
    result = write_result(tmp_path / "r.json", model, samples)
    budget = budget_for(tmp_path, float(np.percentile(samples, 90)) * 1.001)
    code, out, _ = gate(capsys, "--budget", budget, "--result", result)
    assert code == 1 and "INCONCLUSIVE" in out
    code, out, _ = gate(capsys, "--budget", budget, "--result", result, "--allow-inconclusive")
    assert code == 0 and "allowed by --allow-inconclusive" in out
    code, _, _ = gate(capsys, "--budget", budget, "--result", result, "--mode", "point")
    assert code == 0


def test_junit_xml_is_accepted_by_a_junit_parser(tmp_path, capsys, model):
    junitparser = pytest.importorskip("junitparser")
    write_manifest(model, int8=95.0, fp32=98.0)  # a 3-point drop: that check fails
    samples = draw(np.random.default_rng(3))
    result = write_result(tmp_path / "r.json", model, samples)
    xml = tmp_path / "gate.xml"
    code, _, _ = gate(capsys, "--budget", budget_for(tmp_path, 100.0), "--result", result, "--junit", xml)
    assert code == 1
    suites = junitparser.JUnitXml.fromfile(str(xml))
    cases = {case.name: case for suite in suites for case in suite}
    assert set(cases) == {"p90_ms", "max_accuracy_drop", "min_accuracy", "max_size_mb"}
    assert cases["p90_ms"].is_passed and not cases["max_accuracy_drop"].is_passed
    assert "drop" in cases["max_accuracy_drop"].result[0].message or "3" in cases["max_accuracy_drop"].result[0].message
    assert sum(suite.failures for suite in suites) == 1


def test_github_writes_a_step_summary_and_error_annotations(tmp_path, capsys, model, monkeypatch):
    write_manifest(model)
    samples = draw(np.random.default_rng(4))
    result = write_result(tmp_path / "r.json", model, samples)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = gate(capsys, "--budget", budget_for(tmp_path, 0.01), "--result", result, "--github")
    assert code == 1
    assert "| p90_ms |" in summary.read_text() and "FAIL" in summary.read_text()
    assert any(line.startswith("::error title=edgeport gate cpu p90_ms::fail") for line in out.splitlines())


def test_regression_against_a_baseline(tmp_path, capsys, model):
    rng = np.random.default_rng(5)
    budget = write_budget(tmp_path, "[targets.cpu]\nmax_regression = 0.10\n")
    baseline = write_result(tmp_path / "base.json", model, draw(rng))
    same = write_result(tmp_path / "same.json", model, draw(rng))
    slower = write_result(tmp_path / "slower.json", model, draw(rng, scale=1.2))
    assert gate(capsys, "--budget", budget, "--result", same, "--baseline", baseline)[0] == 0
    code, out, _ = gate(capsys, "--budget", budget, "--result", slower, "--baseline", baseline, "--json")
    check = json.loads(out)["checks"][0]
    assert code == 1 and check["verdict"] == "fail" and check["interval"][0] > 1.1


def test_regression_against_a_baseline_artifact_measured_interleaved(tmp_path, capsys, model, heavy_model):
    budget = write_budget(tmp_path, "[targets.cpu]\nmax_regression = 0.25\n")
    code, out, _ = gate(
        capsys,
        "--budget",
        budget,
        "--artifact",
        model,
        "--baseline-artifact",
        model,
        "--iterations",
        "1000",
        "--allow-inconclusive",
        "--json",
    )
    report = json.loads(out)
    # A/A on real timing: never a declared regression (inconclusive is possible on a very noisy machine)
    assert code == 0 and report["sources"]["baseline_interleaved"], report["checks"]
    assert report["checks"][0]["verdict"] in ("pass", "inconclusive")
    code, out, _ = gate(
        capsys,
        "--budget",
        budget,
        "--artifact",
        heavy_model,
        "--baseline-artifact",
        model,
        "--iterations",
        "400",
        "--json",
    )
    check = json.loads(out)["checks"][0]
    assert code == 1 and check["verdict"] == "fail" and "Wilcoxon, interleaved" in check["reason"]
    assert check["measured"] > 2.0


def test_speedup_from_a_runs_latency_json(tmp_path, capsys, model):
    rng = np.random.default_rng(6)
    write_manifest(model)
    latency = write_result(tmp_path / "latency.json", model, draw(rng), reference=draw(rng, scale=1.5))
    budget = write_budget(tmp_path, "[targets.cpu]\nmin_speedup = 1.2\n")
    code, out, _ = gate(capsys, "--budget", budget, "--result", latency, "--manifest", write_manifest(model), "--json")
    check = json.loads(out)["checks"][0]
    assert code == 0 and check["name"] == "min_speedup" and 1.4 < check["measured"] < 1.6


def test_artifact_mode_measures_here_and_extra_measurements_settle_inconclusive_checks(
    tmp_path, capsys, model, monkeypatch
):
    write_manifest(model)
    code, out, _ = gate(
        capsys, "--budget", budget_for(tmp_path, 100.0), "--artifact", model, "--iterations", "300", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["samples"] == 300 and report["extra_measurements"] == 0

    # Control flow of re-measuring, with synthetic samples standing in for the machine.
    rng = np.random.default_rng(11)
    first = draw(rng, n=300)
    budget = budget_for(tmp_path, float(np.percentile(first, 90)) * 1.0005)
    calls = []
    real_measure = Measurer.measure

    def measure(self):
        measured = real_measure(self)
        calls.append(1)
        samples = first if len(calls) == 1 else draw(rng, n=300, scale=0.5)  # later runs are clearly faster
        measured["artifact"].rounds = samples.reshape(measured["artifact"].rounds.shape)
        return measured

    monkeypatch.setattr(Measurer, "measure", measure)
    report = run_gate(GateRequest(budget=budget, artifact=model, iterations=300, max_extra_measurements=3))
    assert len(calls) >= 2 and report["extra_measurements"] == len(calls) - 1
    assert report["samples"] == 300 * len(calls)


def test_the_typed_report_is_frozen_and_its_json_form_is_gate_json(tmp_path, model):
    """gate.json and --json keep their keys, in their order; run_gate returns exactly the typed report's form."""
    write_manifest(model, int8=95.0, fp32=98.5)
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(19)))
    request = GateRequest(budget=budget_for(tmp_path, 100.0), result=result)
    report = evaluate_gate(request)
    assert isinstance(report, GateReport) and report.verdict == "fail" and not report.passed
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.passed = True  # type: ignore[misc]
    as_json = report.as_dict()
    assert list(as_json) == [
        "target", "description", "verdict", "passed", "mode", "allow_inconclusive", "confidence", "checks",
        "artifact", "samples", "extra_measurements", "settings", "sources", "environment",
    ]  # fmt: skip
    assert list(as_json["artifact"]) == ["sha256", "path", "size_bytes", "manifest"]
    assert as_json["sources"] == {
        "result": str(result), "baseline": None, "baseline_interleaved": False, "budget": str(request.budget)
    }  # fmt: skip
    assert as_json["settings"] == {"batch": 1, "threads": 1, "runtime": "ort", "runtime_from": "default"}
    assert as_json["samples"] == 2000
    assert as_json["artifact"]["manifest"] == str(model.with_name("model.int8.manifest.json"))
    drop = next(c for c in as_json["checks"] if c["name"] == "max_accuracy_drop")
    assert drop["verdict"] == "fail" and drop["measured"] == pytest.approx(3.5)
    assert run_gate(request) == as_json == json.loads(json.dumps(as_json))
    write_manifest(model)


# -- integrity, hardware and bad input ------------------------------------------------------------------


def test_a_result_of_another_file_is_refused(tmp_path, capsys, model):
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(12)))
    other = tmp_path / "other.onnx"
    other.write_bytes(model.read_bytes() + b"\0")
    code, _, err = gate(capsys, "--budget", budget_for(tmp_path, 10), "--result", result, "--artifact", other)
    assert code == 2 and "measured a different file" in err
    manifest = write_manifest(model, sha="0" * 64)
    code, _, err = gate(capsys, "--budget", budget_for(tmp_path, 10), "--result", result, "--manifest", manifest)
    assert code == 2 and "refusing to gate a different file" in err
    write_manifest(model)


def test_hardware_mismatch_names_the_flag(tmp_path, capsys, model):
    environment = environment_fingerprint()
    environment["cpu"] = {**environment["cpu"], "isa": ["avx2"]}
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(13)), environment=environment)
    budget = write_budget(tmp_path, '[targets.vnni]\np50_ms = 1.0\n[targets.vnni.hardware]\nisa = ["avx512_vnni"]\n')
    code, _, err = gate(capsys, "--budget", budget, "--result", result)
    assert code == 2 and "without avx512_vnni" in err and "'vnni'" in err


@pytest.mark.parametrize(
    "budget_text, extra, message",
    [
        (None, [], "budget file not found"),
        ("[targets.cpu\n", [], "not valid TOML"),
        ("[targets.cpu]\np90_ms = -1.0\n", [], "greater than 0"),
        ("[targets.cpu]\np90_ms = 0\n", [], "greater than 0"),
        ("[targets.cpu]\np90ms = 1.0\n", [], "unknown key"),
        ("[targets.cpu]\nbatch = 1\n", [], "has no budget"),
        ("[targets.cpu]\np90_ms = 1.0\n", ["--target", "gpu"], "unknown target 'gpu'"),
        ("[targets.cpu]\np99_ms = 1.0\n", [], "cannot support a p99 budget"),
        ("[targets.cpu]\nbatch = 8\np90_ms = 1.0\n", [], "no measurement at batch 8"),
        ("[targets.cpu]\nmax_regression = 0.1\n", [], "give --baseline"),
        ("[targets.cpu]\nmax_regression = 0.1\n", ["--baseline-artifact", "x.onnx"], "use it without --result"),
        ("[targets.cpu]\nmin_speedup = 1.1\n", [], "needs the fp32 latency"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, model, budget_text, extra, message):
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(14), n=60))
    budget = tmp_path / "missing.toml" if budget_text is None else write_budget(tmp_path, budget_text)
    code, _, err = gate(capsys, "--budget", budget, "--result", result, *extra)
    assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1, err


def test_result_file_problems_exit_2(tmp_path, capsys, model):
    budget = budget_for(tmp_path, 1.0)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    for args, message in [
        (["--result", tmp_path / "missing.json"], "not found"),
        (["--result", tmp_path / "bad.json"], "not readable JSON"),
        (["--result", tmp_path / "other.json"], "not an edgeport benchmark result"),
        ([], "needs --result"),
        (["--artifact", tmp_path / "none.onnx"], "artifact not found"),
    ]:
        code, _, err = gate(capsys, "--budget", budget, *args)
        assert code == 2 and message in err, (args, err)


def test_gate_runs_without_torch(tmp_path, model):
    write_manifest(model)
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(15)))
    budget = budget_for(tmp_path, 100.0)
    code = (
        BLOCK_TORCH + "import edgeport.gate\nfrom edgeport.cli import main\n"
        f"rc = main(['gate', '--budget', {str(budget)!r}, '--result', {str(result)!r}, '--json'])\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verdict"] == "pass"


def test_malformed_evidence_and_names_exit_2_with_one_line(tmp_path, capsys, model):
    budget = budget_for(tmp_path, 1.0)
    good = json.loads(write_result(tmp_path / "r.json", model, draw(np.random.default_rng(16))).read_text())
    cases = {
        "strings.json": {**good, "samples_ms": ["0.4"] * 20},
        "nosettings.json": {**good, "settings": None},
        "badcpu.json": {**good, "environment": {"cpu": {"logical_cores": "2"}}},
        "badlist.json": {"results": ["x"]},
    }
    for name, data in cases.items():
        (tmp_path / name).write_text(json.dumps(data))
        code, _, err = gate(capsys, "--budget", budget, "--result", tmp_path / name)
        assert code == 2 and "not an edgeport benchmark result" in err and err.count("\n") == 1, (name, err)
    (tmp_path / "m.json").write_text(
        json.dumps({"schema_version": 1, "artifact": {"sha256": sha256_file(model), "size_bytes": "big"}})
    )
    code, _, err = gate(capsys, "--budget", budget, "--result", tmp_path / "r.json", "--manifest", tmp_path / "m.json")
    assert code == 2 and "size_bytes" in err
    named = write_budget(tmp_path, '[targets."a,b:c"]\np50_ms = 1.0\n')
    code, _, err = gate(capsys, "--budget", named, "--result", tmp_path / "r.json")
    assert code == 2 and "target name" in err


def test_json_with_github_keeps_stdout_parseable_and_allowed_inconclusive_is_a_warning(
    tmp_path, capsys, model, monkeypatch
):
    junitparser = pytest.importorskip("junitparser")
    write_manifest(model)
    samples = draw(np.random.default_rng(17))
    result = write_result(tmp_path / "r.json", model, samples)
    budget = budget_for(tmp_path, float(np.percentile(samples, 90)) * 1.001)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    code, out, err = gate(
        capsys,
        "--budget",
        budget,
        "--result",
        result,
        "--allow-inconclusive",
        "--json",
        "--github",
        "--junit",
        tmp_path / "g.xml",
    )
    assert code == 0 and json.loads(out)["verdict"] == "inconclusive"
    assert "::warning title=edgeport gate cpu p90_ms::inconclusive" in err and "::error" not in err
    suites = junitparser.JUnitXml.fromfile(str(tmp_path / "g.xml"))
    assert sum(s.failures for s in suites) == 0 and sum(s.skipped for s in suites) == 1


def test_min_speedup_against_another_fp32_model_is_refused(tmp_path, capsys, model):
    rng = np.random.default_rng(18)
    latency = write_result(tmp_path / "latency.json", model, draw(rng), reference=draw(rng, scale=1.5))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "artifacts": {
                    "int8_onnx": {"sha256": sha256_file(model), "size_bytes": 1},
                    "fp32_onnx": {"sha256": "f" * 64},
                },
            }
        )
    )
    budget = write_budget(tmp_path, "[targets.cpu]\nmin_speedup = 1.2\n")
    code, _, err = gate(capsys, "--budget", budget, "--result", latency, "--manifest", manifest)
    assert code == 2 and "is not the fp32 model" in err


# -- targets with a runtime -------------------------------------------------------------------------------

OPENVINO_BUDGET = """
[targets.ov]
batch = 1
threads = 1
runtime = "openvino"
precision = "f32"
p90_ms = 100.0
"""


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_a_target_with_runtime_openvino_is_measured_there(tmp_path, capsys, model):
    budget = write_budget(tmp_path, OPENVINO_BUDGET)
    code, out, err = gate(capsys, "--budget", budget, "--artifact", model, "--iterations", "100", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["runtime"] == "openvino/f32" and report["verdict"] == "pass"


def test_a_result_measured_on_another_runtime_is_refused(tmp_path, capsys, model):
    result = write_result(tmp_path / "r.json", model, draw(np.random.default_rng(1)))  # an onnxruntime result
    code, _, err = gate(capsys, "--budget", write_budget(tmp_path, OPENVINO_BUDGET), "--result", result)
    assert code == 2 and "measured on runtime 'ort'; the target is for 'openvino/f32'" in err
    assert len(err.strip().splitlines()) == 1


def test_a_precision_hint_without_openvino_is_refused(tmp_path, capsys, model):
    budget = write_budget(tmp_path, OPENVINO_BUDGET.replace('runtime = "openvino"\n', ""))
    code, _, err = gate(capsys, "--budget", budget, "--artifact", model)
    assert code == 2 and "precision is OpenVINO's" in err
