"""`edgeport run` end to end, and its handling of bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks import summarize
from edgeport.cli import main
from edgeport.core.artifacts import sha256_file
from edgeport.data import Normalizer, load_dataset, split_dataset
from edgeport.exporter import onnx_predict, read_metadata

TINY = [
    "--image-size",
    "16",
    "--epochs",
    "2",
    "--teacher",
    "cnn:width=1,depth=3",
    "--student",
    "cnn:width=0.5,depth=3",
    "--iterations",
    "200",
    "--calibration-samples",
    "64",
    "--quiet",
]
# the runs that are not about memory or cold start skip the footprint's fresh processes (tiny_run measures it)
QUICK = [*TINY, "--cold-starts", "0"]
FILES = {
    "teacher.safetensors",
    "student.safetensors",
    "student-nokd.safetensors",
    "student.fp32.onnx",
    "student.int8.onnx",
    "manifest.json",
    "report.md",
    "latency.json",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeport.cli", "run", *TINY, "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    return out, out / manifest["run_id"], manifest


def test_run_writes_a_complete_folder(tiny_run):
    out, folder, manifest = tiny_run
    assert {p.name for p in folder.iterdir()} == FILES
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == [folder.name]
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    for art in manifest["artifacts"].values():
        assert sha256_file(folder / art["path"]) == art["sha256"]
        assert (folder / art["path"]).stat().st_size == art["size_bytes"]
    assert set(manifest["metrics"]["accuracy"]) == {"teacher", "student", "student_no_kd", "fp32_onnx", "int8_onnx"}
    assert manifest["dataset"]["sha256"] == load_dataset("digits", image_size=16).fingerprint()
    assert manifest["versions"]["onnxruntime"] and manifest["environment"]["cpu"]["logical_cores"] >= 1
    assert manifest["config"]["student"]["epochs"] == 2 and manifest["seed"] == 0
    assert read_metadata(folder / "student.int8.onnx")["kind"] == "onnx-int8"


def test_run_numbers_come_from_the_run(tiny_run):
    _, folder, manifest = tiny_run
    data = load_dataset("digits", image_size=16)
    splits = split_dataset(data, 0.15, 0.15, seed=0)
    norm = Normalizer.fit(splits.train.x)
    for key, name in (("fp32_onnx", "student.fp32.onnx"), ("int8_onnx", "student.int8.onnx")):
        logits = onnx_predict(folder / name, norm(splits.test.x))
        accuracy = float((logits.argmax(1) == splits.test.y).mean() * 100)
        assert manifest["metrics"]["accuracy"][key]["test"] == pytest.approx(accuracy)
    samples = json.loads((folder / "latency.json").read_text())
    for key in ("fp32", "int8"):
        assert len(samples[key]["samples_ms"]) == 200
        assert manifest["latency"][key] == summarize(
            samples[key]["samples_ms"], round_sizes=samples[key]["settings"]["round_sizes"]
        )
    ratio = manifest["latency"]["int8"]["p50_ms"] / manifest["latency"]["fp32"]["p50_ms"]
    assert manifest["latency"]["int8_over_fp32_p50"] == pytest.approx(ratio)
    report = (folder / "report.md").read_text()
    assert f"**{ratio:.2f}**" in report
    assert f"{manifest['metrics']['accuracy']['int8_onnx']['test']:.2f}" in report
    verdict = "int8 is faster" if ratio < 1 else "int8 is NOT faster"
    assert verdict in report
    # memory and cold start of both artifacts, each start a process of its own; the manifest's medians are
    # the raw starts' in latency.json, which the gate reads
    for key in ("fp32", "int8"):
        raw, summary = samples[key]["footprint"], manifest["footprint"][key]
        assert [f["cpu_mem_arena"] for f in raw] == [True, False] == [f["cpu_mem_arena"] for f in summary]
        for stored, shown in zip(raw, summary, strict=True):
            peaks = sorted(s["peak_rss_mb"] for s in stored["starts"])
            assert len(peaks) == stored["cold_starts"] == 3 and shown["peak_rss_mb"]["median"] == peaks[1]
            assert "starts" not in shown
    assert "## Memory and cold start" in report and "median of 3 cold starts" in report


def test_given_teacher_is_not_retrained_and_its_logits_are_cached(tiny_run, tmp_path):
    out, folder, first = tiny_run
    args = [
        "run",
        *QUICK,
        "--out",
        str(out),
        "--teacher-weights",
        str(folder / "teacher.safetensors"),
        "--skip-no-kd",
        "--seed",
        "0",
        "--json",
    ]
    proc = subprocess.run([sys.executable, "-m", "edgeport.cli", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    second = json.loads(proc.stdout)
    assert second["lineage"]["teacher"]["trained_here"] is False
    assert second["lineage"]["teacher_logits_cache_hit"] is True
    assert second["artifacts"]["teacher"]["sha256"] == first["artifacts"]["teacher"]["sha256"]
    assert "student_no_kd" not in second["metrics"]["accuracy"]
    # same seed, same teacher, same data: the distilled student is bit-identical
    assert second["artifacts"]["student"]["sha256"] == first["artifacts"]["student"]["sha256"]


def test_run_with_another_backend_and_fallback(tmp_path):
    args = [
        "run",
        *QUICK,
        "--out",
        str(tmp_path),
        "--skip-no-kd",
        "--backend",
        "torch-fx-qat",
        "--max-accuracy-drop",
        "2",
        "--json",
    ]
    proc = subprocess.run([sys.executable, "-m", "edgeport.cli", *args], capture_output=True, text=True, timeout=600)
    manifest = json.loads(proc.stdout)
    fallback = manifest["fallback"]
    assert proc.returncode == (0 if fallback["within_tolerance"] else 1)
    assert fallback["metric"] == "top1_accuracy" and fallback["steps"][0]["excluded"] == []
    assert manifest["lineage"]["quantization"]["backend"] == "torch-fx-qat"
    assert manifest["lineage"]["quantization"]["report"]["kd"] is True  # QAT keeps the distillation loss
    assert manifest["verification"]["coverage"]["integer_kernels"] > 0
    assert "Accuracy-aware fallback" in (tmp_path / manifest["run_id"] / "report.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--student", "vgg99"], "unknown model 'vgg99'"),
        (["--teacher", "cnn:depth=0"], "depth must be"),
        (["--dataset", "npz", "--data-path", "/no/such/file.npz"], "/no/such/file.npz: no such file"),
        (["--dataset", "npz"], "needs a data path"),
        (["--epochs", "0"], "field 'teacher.epochs'"),
        (["--student-epochs", "-3"], "field 'student.epochs'"),
        (["--teacher-weights", "/no/teacher.safetensors"], "teacher checkpoint not found"),
        (["--epochs", "two"], "'two' is not a valid integer"),
        (["--alpha", "2"], "student.alpha"),
        (["--backend", "tflite"], "quantization backend 'tflite' is not one of"),
        (["--backend", "ort-dynamic", "--format", "qoperator"], "does not support option 'format'"),
        (["--max-accuracy-drop", "-1"], "quantize.max_accuracy_drop"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_folder(tmp_path, capsys, args, message):
    out = tmp_path / "runs"
    code = main(["run", "--quiet", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out.exists() or list(out.iterdir()) == []


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--quiet", "--out", str(blocker / "runs")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_bad_npz_leaves_no_partial_folder(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((10, 1, 8, 8)), y=np.zeros(9, int))
    out = tmp_path / "runs"
    assert main(["run", "--quiet", "--out", str(out), "--dataset", "npz", "--data-path", str(bad)]) == 2
    assert "bad.npz" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []  # a folder the run created is removed again


def test_console_script_help_and_list():
    exe = Path(sys.executable).with_name("edgeport")
    proc = subprocess.run([str(exe), "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ort-static" in proc.stdout and "digits" in proc.stdout
    proc = subprocess.run([str(exe), "run", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--teacher-weights" in proc.stdout
    proc = subprocess.run([str(exe), "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: No such command")


def test_run_with_a_budget_finishes_with_the_gate_verdict(tmp_path, capsys):
    budget = tmp_path / "budgets.toml"
    budget.write_text(
        "[targets.cpu]\nbatch = 1\nthreads = 1\np90_ms = 0.001\nmax_accuracy_drop = 50.0\n"
        "[targets.other]\nthreads = 2\np90_ms = 1.0\n[targets.memory]\nmax_peak_rss_mb = 4000\n"
    )
    out = tmp_path / "runs"
    code = main(["run", *QUICK, "--out", str(out), "--budget", str(budget), "--target", "other"])
    err = capsys.readouterr().err
    assert code == 2 and "target 'other' is for batch 1, 2 thread(s)" in err and not out.exists()
    code = main(["run", *QUICK, "--out", str(out), "--budget", str(budget), "--target", "memory"])
    err = capsys.readouterr().err  # a footprint budget, but the run was told to measure no footprint
    assert code == 2 and "or set [run.bench] cold_starts above 0" in err and not out.exists()
    code = main(["run", *QUICK, "--out", str(out), "--budget", str(budget), "--target", "cpu", "--json"])
    manifest = json.loads(capsys.readouterr().out)
    assert code == 1 and manifest["gate"]["verdict"] == "fail"
    gate = json.loads((out / manifest["run_id"] / "gate.json").read_text())
    assert {c["name"]: c["verdict"] for c in gate["checks"]} == {"p90_ms": "fail", "max_accuracy_drop": "pass"}
