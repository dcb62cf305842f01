"""`edgeport gate` given hostile or careless input: outputs that are inputs, read-only outputs, NaN/Inf
budgets, unknown schema versions, a bad $GITHUB_STEP_SUMMARY, checks that cannot be decided (refused
before anything is measured), tables in CI logs, and malformed files."""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeport.benchmarks import environment_fingerprint
from edgeport.benchmarks.latency import SCHEMA_VERSION, BenchResult
from edgeport.core.artifacts import sha256_file
from tests.bad_input.conftest import one_line_error, run_cli, run_unprivileged

NUMERIC_BUDGETS = (
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_accuracy_drop",
    "min_accuracy",
    "max_size_mb",
    "min_speedup",
    "max_regression",
)


# -- files --------------------------------------------------------------------------------------------------


def write_model(path: Path, seed: int = 0) -> Path:
    """A real (tiny) ONNX model: logits = input W."""
    values = np.random.default_rng(seed).standard_normal(32).tolist()
    weight = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], values)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def samples(seed: int = 0, n: int = 2000, scale: float = 1.0) -> list[float]:
    return (0.3 * np.random.default_rng(seed).lognormal(0.0, 0.1, n) * scale).tolist()


def entry(model: Path, values: list[float], environment: dict | None = None) -> dict:
    return BenchResult(
        str(model),
        sha256_file(model),
        {"batch": 1, "threads": 1, "rounds": 10},
        environment or environment_fingerprint(),
        values,
    ).to_dict()


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def quantize_manifest(model: Path, int8=98.0, fp32=98.5, fp32_sha: str | None = None, **extra) -> dict:
    return {
        "schema_version": 1,
        "artifact": {"path": model.name, "sha256": sha256_file(model), "size_bytes": model.stat().st_size},
        "lineage": {"onnx_sha256": fp32_sha} if fp32_sha else {},
        "verification": {"accuracy": {"int8": int8, "fp32": fp32}},
        **extra,
    }


def write_budget(folder: Path, text: str, name: str = "budgets.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def files(tmp_path) -> Path:
    """model.onnx, r.json (its measurement) and budgets.toml with a generous p90 budget."""
    model = write_model(tmp_path / "model.onnx")
    write_json(tmp_path / "r.json", entry(model, samples()))
    write_budget(tmp_path, "[targets.cpu]\np90_ms = 100.0\n")
    return tmp_path


@pytest.fixture
def no_measuring(monkeypatch):
    """The gate may not measure: a refusal must come before the measurement starts."""

    def refuse(*args, **kwargs):
        raise AssertionError("the gate started measuring before refusing")

    monkeypatch.setattr(importlib.import_module("edgeport.gate.measurer"), "measure_interleaved", refuse)


def gate(capsys, *args):
    return run_cli(capsys, "gate", "--quiet", *args)


# -- 1. an output that is one of the inputs ---------------------------------------------------------------


@pytest.mark.parametrize("option", ["--budget", "--result", "--manifest", "--baseline", "--artifact", "symlink"])
def test_junit_onto_an_input_is_refused_and_the_input_kept(tmp_path, capsys, files, option, no_measuring):
    write_json(files / "model.manifest.json", quantize_manifest(files / "model.onnx"))
    write_json(files / "base.json", entry(files / "model.onnx", samples(1)))
    write_budget(files, "[targets.cpu]\np90_ms = 100.0\nmax_regression = 0.5\n")
    inputs = {
        "--budget": files / "budgets.toml",
        "--result": files / "r.json",
        "--manifest": files / "model.manifest.json",
        "--baseline": files / "base.json",
        "--artifact": files / "model.onnx",
    }
    victim = inputs["--result" if option == "symlink" else option]
    junit = victim
    if option == "symlink":
        junit = tmp_path / "link.xml"
        junit.symlink_to(victim)
    before = victim.read_bytes()
    args = [arg for name, path in inputs.items() for arg in (name, path)]
    code, out, err = gate(capsys, *args, "--junit", junit)
    line = one_line_error(err)
    assert code == 2 and "--junit" in line and str(junit) in line, err
    assert victim.read_bytes() == before and out == ""


@pytest.mark.parametrize("option", ["--reference", "--baseline-artifact"])
def test_junit_onto_a_model_to_measure_is_refused_before_measuring(tmp_path, capsys, option, no_measuring):
    model, other = write_model(tmp_path / "model.onnx"), write_model(tmp_path / "other.onnx", seed=1)
    budget = write_budget(tmp_path, "[targets.cpu]\nmin_speedup = 1.0\nmax_regression = 0.5\n")
    before = other.read_bytes()
    code, _, err = gate(capsys, "--budget", budget, "--artifact", model, option, other, "--junit", other)
    assert code == 2 and option in one_line_error(err) and other.read_bytes() == before


def test_junit_onto_the_manifest_found_beside_the_result_is_refused(tmp_path, capsys, files):
    manifest = write_json(files / "manifest.json", quantize_manifest(files / "model.onnx"))
    before = manifest.read_bytes()
    code, _, err = gate(capsys, "--budget", files / "budgets.toml", "--result", files / "r.json", "--junit", manifest)
    assert code == 2 and "manifest" in one_line_error(err) and manifest.read_bytes() == before


def test_step_summary_onto_an_input_is_refused(capsys, files, monkeypatch):
    before = (files / "r.json").read_bytes()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files / "r.json"))
    code, out, err = gate(capsys, "--budget", files / "budgets.toml", "--result", files / "r.json", "--github")
    assert code == 2 and "GITHUB_STEP_SUMMARY" in one_line_error(err) and "--result" in err
    assert (files / "r.json").read_bytes() == before and out == ""
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files / "g.xml"))
    code, _, err = gate(
        capsys, "--budget", files / "budgets.toml", "--result", files / "r.json", "--github", "--junit", files / "g.xml"
    )
    assert code == 2 and "also the GITHUB_STEP_SUMMARY" in one_line_error(err) and not (files / "g.xml").exists()


# -- 2. read-only outputs, where file permissions hold ------------------------------------------------------


@pytest.fixture
def unprivileged(shared_tmp) -> Path:
    """shared_tmp with model.onnx, r.json and budgets.toml readable by everyone, for run_unprivileged (whose
    child file permissions bind); skips when this machine cannot run edgeport that way."""
    try:
        probe = run_unprivileged(["--version"], shared_tmp, timeout=120)
    except OSError as exc:  # e.g. an interpreter the unprivileged child may not execute
        pytest.skip(f"cannot run edgeport unprivileged here: {exc}")
    if probe.returncode != 0:
        pytest.skip(f"cannot run edgeport unprivileged here: {probe.stderr.strip()[-300:]}")
    model = write_model(shared_tmp / "model.onnx")
    write_json(shared_tmp / "r.json", entry(model, samples()))
    write_budget(shared_tmp, "[targets.cpu]\np90_ms = 100.0\n")
    for path in shared_tmp.iterdir():
        path.chmod(0o644)
    return shared_tmp


def _refused_unprivileged(folder: Path, *args) -> str:
    out = run_unprivileged(
        ["gate", "--quiet", "--budget", "budgets.toml", "--result", "r.json", *map(str, args)], folder
    )
    assert out.returncode == 2, (out.returncode, out.stderr)
    return one_line_error(out.stderr)


def test_junit_into_a_read_only_folder_or_onto_a_read_only_file_is_refused(unprivileged):
    locked = unprivileged / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # owned by root, read-only for its owner too
    line = _refused_unprivileged(unprivileged, "--junit", locked / "gate.xml")
    assert "locked" in line and "not writable" in line
    assert not (locked / "gate.xml").exists()
    readonly = unprivileged / "gate.xml"
    readonly.write_text("keep")
    os.chown(readonly, 65534, 65534)  # nobody's, 0444: read-only for everyone without root's overrides
    readonly.chmod(0o444)
    line = _refused_unprivileged(unprivileged, "--junit", readonly)
    assert "gate.xml" in line and "read-only" in line
    assert readonly.read_text() == "keep"


def test_files_in_a_folder_this_user_may_not_enter_are_one_line_errors(unprivileged):
    """Beyond the issue: Path.is_file()/exists() raise PermissionError on Python 3.11 (a traceback)."""
    private = unprivileged / "private"
    private.mkdir()
    model = write_model(private / "model.onnx")
    os.chown(private, 65534, 65534)
    private.chmod(0o700)  # nobody's: no one else may enter it
    assert "private" in _refused_unprivileged(unprivileged, "--junit", private / "gate.xml")
    assert "cannot read the artifact" in _refused_unprivileged(unprivileged, "--artifact", model)
    # a result that recorded a model_path in that folder: looking for its manifest there must not crash
    data = json.loads((unprivileged / "r.json").read_text())
    write_json(unprivileged / "r.json", {**data, "model_path": str(model)})
    out = run_unprivileged(["gate", "--quiet", "--budget", "budgets.toml", "--result", "r.json"], unprivileged)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr


# -- 3. NaN and Inf; schema versions --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
@pytest.mark.parametrize("field", NUMERIC_BUDGETS)
def test_non_finite_budgets_are_refused_naming_target_and_field(capsys, files, field, value):
    budget = write_budget(files, f"[targets.edge]\n{field} = {value}\n")
    code, _, err = gate(capsys, "--budget", budget, "--result", files / "r.json")
    line = one_line_error(err)
    assert code == 2 and f"targets.edge.{field}" in line and "finite" in line, line


def _schema_cases(model: Path) -> dict[str, dict]:
    one = entry(model, samples())
    fp32 = entry(model, samples(1, scale=1.5))
    return {
        "single result": {**one, "schema_version": 99},
        "bench -o": {"schema_version": 99, "model": str(model), "results": [{"model": "a", **one}]},
        "bench -o entry": {
            "schema_version": 1,
            "model": str(model),
            "results": [{"model": "a", **one, "schema_version": 99}],
        },
        "latency.json": {"int8": {**one, "schema_version": 99}, "fp32": fp32},
        "latency.json fp32": {"int8": one, "fp32": {**fp32, "schema_version": 99}},
    }


@pytest.mark.parametrize("case", ["single result", "bench -o", "bench -o entry", "latency.json", "latency.json fp32"])
def test_a_result_of_an_unknown_schema_version_is_refused(capsys, files, case):
    result = write_json(files / "x.json", _schema_cases(files / "model.onnx")[case])
    code, _, err = gate(capsys, "--budget", files / "budgets.toml", "--result", result)
    assert code == 2 and one_line_error(err) == (
        f"error: {result}: schema_version 99 is not one this edgeport reads ({SCHEMA_VERSION})"
    )


@pytest.mark.parametrize("version", [None, True, "1", 1.0])
def test_a_result_without_a_valid_schema_version_is_refused(capsys, files, version):
    data = entry(files / "model.onnx", samples())
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    result = write_json(files / "x.json", data)
    code, _, err = gate(capsys, "--budget", files / "budgets.toml", "--result", result)
    assert code == 2 and "schema_version" in one_line_error(err)


def _manifests(model: Path) -> dict[str, dict]:
    sha, size = sha256_file(model), model.stat().st_size
    return {
        "quantize": quantize_manifest(model),
        "run": {
            "schema_version": 1,
            "artifacts": {"int8_onnx": {"sha256": sha, "size_bytes": size}},
            "metrics": {"accuracy": {"int8_onnx": {"test": 98.0}, "fp32_onnx": {"test": 98.5}}},
        },
        "search": {
            "schema_version": 1,
            "sha256": sha,
            "size_bytes": size,
            "trial": "t1",
            "metrics": {"val_accuracy": 98.0, "fp32_val_accuracy": 98.5},
        },
    }


@pytest.mark.parametrize("kind", ["quantize", "run", "search"])
def test_a_manifest_of_an_unknown_or_missing_schema_version_is_refused(capsys, files, kind):
    budget = write_budget(files, "[targets.cpu]\nmax_accuracy_drop = 1.0\n")
    good = _manifests(files / "model.onnx")[kind]
    path = write_json(files / "m.json", good)
    assert gate(capsys, "--budget", budget, "--result", files / "r.json", "--manifest", path)[0] == 0
    write_json(path, {**good, "schema_version": 99})
    code, _, err = gate(capsys, "--budget", budget, "--result", files / "r.json", "--manifest", path)
    assert code == 2 and one_line_error(err) == f"error: {path}: schema_version 99 is not one this edgeport reads (1)"
    write_json(path, {k: v for k, v in good.items() if k != "schema_version"})
    code, _, err = gate(capsys, "--budget", budget, "--result", files / "r.json", "--manifest", path)
    assert code == 2 and "no schema_version" in one_line_error(err)


def test_the_gates_schema_versions_are_the_ones_edgeport_writes():
    from edgeport.core.manifest import MANIFEST_SCHEMA_VERSIONS
    from edgeport.quantize.job import MANIFEST_SCHEMA as QUANTIZE
    from edgeport.run.pipeline import MANIFEST_SCHEMA as RUN
    from edgeport.search.finish import SEARCH_SCHEMA

    assert MANIFEST_SCHEMA_VERSIONS == {"run": RUN, "quantize": QUANTIZE, "search": SEARCH_SCHEMA}


@pytest.mark.parametrize(
    "int8, fp32", [(float("nan"), 98.0), (98.0, float("inf")), (float("-inf"), 98.0), (150.0, 98.0), (98.0, -1.0)]
)
def test_non_finite_or_impossible_manifest_accuracies_are_refused(capsys, files, int8, fp32):
    budget = write_budget(files, "[targets.cpu]\nmax_accuracy_drop = 1.0\n")
    manifest = write_json(files / "m.json", quantize_manifest(files / "model.onnx", int8=int8, fp32=fp32))
    code, _, err = gate(capsys, "--budget", budget, "--result", files / "r.json", "--manifest", manifest)
    assert code == 2 and "accuracy must be a percentage" in one_line_error(err)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_non_finite_samples_are_refused(capsys, files, bad):
    data = entry(files / "model.onnx", samples())
    data["samples_ms"][7] = bad
    result = write_json(files / "x.json", data)  # json writes NaN / Infinity
    code, _, err = gate(capsys, "--budget", files / "budgets.toml", "--result", result)
    assert code == 2 and "finite" in one_line_error(err)


# -- 4. $GITHUB_STEP_SUMMARY that cannot be written ---------------------------------------------------------


def test_a_step_summary_in_a_missing_folder_is_refused_before_measuring(capsys, files, monkeypatch, no_measuring):
    missing = files / "no-such-folder" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(missing))
    for args in (["--result", files / "r.json"], ["--artifact", files / "model.onnx"]):
        code, out, err = gate(capsys, "--budget", files / "budgets.toml", *args, "--github")
        line = one_line_error(err)
        assert code == 2 and "no-such-folder" in line and "GITHUB_STEP_SUMMARY" in line and out == ""
    assert not missing.parent.exists()


def test_a_device_as_step_summary_is_refused_before_measuring(capsys, files, monkeypatch, no_measuring):
    """/dev/full is a device, not a file to append to: refused up front (issue 20). The write-time failure
    on a full disk is tested in test_outputs_second_pass.py with a full tmpfs."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/dev/full")
    code, out, err = gate(capsys, "--budget", files / "budgets.toml", "--result", files / "r.json", "--github")
    line = one_line_error(err)
    assert code == 2 and "/dev/full" in line and "not a regular file" in line and out == "", err


# -- 5. everything that can be refused before measuring is refused before measuring -------------------------


def _other_machine() -> dict:
    environment = environment_fingerprint()
    return {**environment, "cpu": {**environment["cpu"], "model": "Some Other CPU"}}


@pytest.mark.parametrize(
    "budget, extra, message",
    [
        ("min_speedup = 1.1", [], "needs the fp32 latency"),
        ("max_regression = 0.1", [], "give --baseline"),
        ("max_accuracy_drop = 1.0", [], "needs the artifact's manifest"),
        ("min_accuracy = 90.0", [], "needs the artifact's manifest"),
        ("p99_ms = 10.0", ["--iterations", "50"], "cannot support a p99 budget"),
        ('p50_ms = 10.0\n[targets.cpu.hardware]\nisa = ["no_such_flag"]', [], "without no_such_flag"),
        ("max_regression = 0.1", ["--baseline", "base.json"], "measured on another machine"),
        ("max_accuracy_drop = 1.0", ["--manifest", "other.manifest.json"], "refusing to gate a different file"),
        ("min_speedup = 1.1", ["--reference", "fp32.onnx", "--manifest", "own.manifest.json"], "is not the fp32 model"),
    ],
)
def test_a_check_that_cannot_be_decided_is_refused_before_measuring(
    capsys, tmp_path, no_measuring, budget, extra, message
):
    model = write_model(tmp_path / "model.onnx")
    other = write_model(tmp_path / "fp32.onnx", seed=3)
    write_json(tmp_path / "base.json", entry(model, samples(), environment=_other_machine()))
    write_json(tmp_path / "other.manifest.json", quantize_manifest(other))
    write_json(tmp_path / "own.manifest.json", quantize_manifest(model, fp32_sha="e" * 64))
    path = write_budget(tmp_path, f"[targets.cpu]\n{budget}\n")
    extra = [str(tmp_path / a) if a.endswith((".json", ".onnx")) else a for a in extra]
    code, out, err = gate(capsys, "--budget", path, "--artifact", model, *extra)
    assert code == 2 and message in one_line_error(err) and out == "", err


# -- 6. tables in a CI log ----------------------------------------------------------------------------------


def test_the_table_in_a_ci_log_is_not_cut(capsys, files, monkeypatch):
    """Not a TTY (capsys) and no COLUMNS, as on a CI runner: every cell in full, no '…'."""
    monkeypatch.delenv("COLUMNS", raising=False)
    values = samples()
    write_json(files / "model.manifest.json", quantize_manifest(files / "model.onnx", int8=95.0, fp32=98.5))
    p90 = float(np.percentile(values, 90))
    budget = write_budget(
        files,
        f"[targets.a-rather-long-target-name]\np90_ms = {p90 * 1.001}\n"
        "max_accuracy_drop = 1.0\nmin_accuracy = 90.0\nmax_size_mb = 1.0\n",
    )
    code, out, err = gate(capsys, "--budget", budget, "--result", files / "r.json", "--json")
    report = json.loads(out)
    code, out, err = gate(capsys, "--budget", budget, "--result", files / "r.json")
    assert code == 1 and "…" not in out, out
    for check in report["checks"]:
        assert check["verdict"].upper() in out and check["reason"] in out, (check, out)
    assert "the 95% interval of p90 straddles the budget; measure longer" in out and "INCONCLUSIVE" in out
    assert "verdict" in out and "95% interval" in out


# -- beyond the issue: other hostile input ------------------------------------------------------------------


def test_a_baseline_that_is_the_result_itself_is_refused(capsys, files):
    budget = write_budget(files, "[targets.cpu]\nmax_regression = 0.1\n")
    shutil.copy(files / "r.json", files / "copy.json")
    for baseline in (files / "r.json", files / "copy.json"):
        code, _, err = gate(capsys, "--budget", budget, "--result", files / "r.json", "--baseline", baseline)
        assert code == 2 and "same measurement" in one_line_error(err)


def test_very_deeply_nested_json_is_a_one_line_error(capsys, files):
    deep = files / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    wrapped = files / "deep-object.json"
    wrapped.write_text('{"results": ' + "[" * 100_000 + "]" * 100_000 + "}")
    for path in (deep, wrapped):
        code, _, err = gate(capsys, "--budget", files / "budgets.toml", "--result", path)
        assert code == 2 and "not readable JSON" in one_line_error(err)
    code, _, err = gate(capsys, "--budget", files / "budgets.toml", "--result", files / "r.json", "--manifest", deep)
    assert code == 2 and "not readable JSON" in one_line_error(err)


@pytest.mark.parametrize("option", ["--budget", "--result", "--manifest", "--baseline"])
def test_a_device_is_refused_not_read_forever(capsys, files, option):
    """/dev/zero would be read until memory runs out; /dev/null stands in for any device here."""
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    write_budget(files, "[targets.cpu]\np90_ms = 100.0\nmax_regression = 0.5\n")
    args = {"--budget": files / "budgets.toml", "--result": files / "r.json", "--baseline": files / "r.json"}
    args[option] = "/dev/null"
    code, _, err = gate(capsys, *[a for k, v in args.items() for a in (k, v)])
    assert code == 2 and "/dev/null" in one_line_error(err) and "device" in err


def test_an_artifact_that_is_not_a_regular_file_is_named_as_such(capsys, files):
    code, _, err = gate(capsys, "--budget", files / "budgets.toml", "--artifact", "/dev/null")
    assert code == 2 and "not a regular file" in one_line_error(err)


@pytest.mark.parametrize(
    "text, message",
    [
        ("targets = 5\n", "field 'targets'"),
        ("[targets]\ncpu = 5\n", "field 'targets.cpu'"),
        ("[targets.cpu]\np90_ms = 1.0\nbatch = 1.5\n", "targets.cpu.batch"),
        ("[targets.cpu]\np90_ms = 1.0\nhardware = 5\n", "targets.cpu.hardware"),
    ],
)
def test_malformed_budget_tables_are_one_line_errors(capsys, files, text, message):
    code, _, err = gate(capsys, "--budget", write_budget(files, text), "--result", files / "r.json")
    assert code == 2 and message in one_line_error(err)


def test_a_budget_file_that_is_not_utf8_is_a_one_line_error(capsys, files):
    budget = files / "latin1.toml"
    budget.write_bytes("# caf\u00e9\n[targets.cpu]\np90_ms = 1.0\n".encode("latin-1"))
    code, _, err = gate(capsys, "--budget", budget, "--result", files / "r.json")
    assert code == 2 and "latin1.toml" in one_line_error(err)
