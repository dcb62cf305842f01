"""Data safety: no command overwrites its own input, refuses unwritable outputs before working,
leaves no scratch files in the user's folder, and cleans up after a killed process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.core.artifacts import sha256_file
from tests.bad_input.conftest import one_line_error, run_cli, run_unprivileged


def _copy(cnn_files: Path, folder: Path) -> Path:
    for name in ("model.onnx", "calib.npz", "val.npz"):
        shutil.copy(cnn_files / name, folder / name)
    return folder


def _fingerprints(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


# --- 3. an output that is one of the command's inputs -------------------------------------------------


@pytest.mark.parametrize("target", ["model.onnx", "link.onnx"])
def test_quantize_refuses_to_overwrite_its_model(cnn_files, tmp_path, capsys, target):
    folder = _copy(cnn_files, tmp_path)
    (folder / "link.onnx").symlink_to(folder / "model.onnx")
    before = _fingerprints(folder)
    code, _, err = run_cli(
        capsys, "quantize", folder / "model.onnx", "--calib", folder / "calib.npz", "-o", folder / target, "--quiet"
    )
    assert code == 2
    assert "is the input file" in one_line_error(err)
    assert _fingerprints(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["calib.npz", "link.onnx", "model.onnx", "val.npz"]


def test_bench_refuses_to_write_its_result_over_the_model(cnn_files, tmp_path, capsys):
    folder = _copy(cnn_files, tmp_path)
    before = _fingerprints(folder)
    for output in ("model.onnx", "calib.npz"):
        args = ["bench", folder / "model.onnx", "--iterations", "20", "--quiet", "-o", folder / output]
        if output == "calib.npz":
            args += ["--inputs", folder / "calib.npz"]
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        assert "is the input file" in one_line_error(err)
    assert _fingerprints(folder) == before


# --- 4. read-only outputs: exit 2 naming the path, before any work -----------------------------------


def _readonly_layout(shared_tmp: Path, cnn_files: Path) -> Path:
    folder = shared_tmp
    _copy(cnn_files, folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    (folder / "taken.onnx").write_bytes(b"previous")
    (folder / "taken.onnx").chmod(0o444)
    if os.geteuid() == 0:
        os.chown(folder / "taken.onnx", 65534, 65534)
    return folder


@pytest.mark.parametrize("command", ["quantize-folder", "quantize-file", "bench-folder", "bench-file"])
def test_read_only_outputs_are_refused_up_front(cnn_files, shared_tmp, command):
    folder = _readonly_layout(shared_tmp, cnn_files)
    output = "locked/out" if command.endswith("folder") else "taken"
    if command.startswith("quantize"):
        args = ["quantize", "model.onnx", "--calib", "calib.npz", "--quiet", "-o", f"{output}.onnx"]
        shown = f"{output}.onnx" if output == "taken" else "locked"
    else:
        args = [
            "bench",
            "model.onnx",
            "--iterations",
            "20",
            "--quiet",
            "-o",
            f"{output}.json" if output != "taken" else "taken.onnx",
        ]
        shown = "locked" if output != "taken" else "taken.onnx"
    done = run_unprivileged(args, folder)
    if done.returncode != 2 and "Permission denied" in done.stderr and "edgeport" not in done.stderr:
        pytest.skip(f"cannot run edgeport as another user here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr)
    assert shown in line and ("read-only" in line or "not writable" in line), line
    assert list((folder / "locked").iterdir()) == []
    assert (folder / "taken.onnx").read_bytes() == b"previous"


# --- 5. scratch files of ORT's shape inference stay out of the user's folder -------------------------


def _model_with_unknown_shape_op(path: Path) -> None:
    """MatMul then com.microsoft Inverse: onnxruntime runs it, its symbolic shape inference cannot."""
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "W")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Inverse", ["h"], ["y"], domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]),
        path,
    )


def test_failed_shape_inference_leaves_nothing_in_the_working_folder(tmp_path, capsys, monkeypatch):
    models, work = tmp_path / "models", tmp_path / "work"
    models.mkdir()
    work.mkdir()
    _model_with_unknown_shape_op(models / "inv.onnx")
    rng = np.random.default_rng(0)
    np.savez(models / "calib.npz", x=(rng.standard_normal((16, 4, 4)) + 4 * np.eye(4)).astype(np.float32))
    monkeypatch.chdir(work)
    out = models / "inv.int8.onnx"
    code, _, err = run_cli(capsys, "quantize", models / "inv.onnx", "--calib", models / "calib.npz", "--quiet")
    assert code == 0, err  # onnxruntime's symbolic inference gives up; ONNX shape inference takes over
    assert list(work.iterdir()) == []  # ... and its scratch file stayed in edgeport's own folder
    assert sorted(p.name for p in models.iterdir()) == [
        "calib.npz",
        "inv.int8.manifest.json",
        "inv.int8.onnx",
        "inv.onnx",
    ]
    report = json.loads((models / "inv.int8.manifest.json").read_text())["lineage"]["quantization"]["report"]
    assert report["symbolic_shape_inference"].startswith("failed (") and out.is_file()


# --- 6. staging folders of killed processes are removed by the next command --------------------------


def _spawn_and_kill(args: list[str], cwd: Path, watch: Path, prefix: str) -> Path:
    """Start ``edgeport ARGS``, SIGKILL it once its staging folder exists, return that folder."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeport.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            found = [p for p in watch.iterdir() if p.name.startswith(prefix)] if watch.is_dir() else []
            if found:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return found[0]
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    pytest.fail(f"edgeport {' '.join(args)} ended before its staging folder appeared")


def test_killed_quantize_leaves_a_folder_the_next_quantize_removes(cnn_files, tmp_path, capsys):
    folder = _copy(cnn_files, tmp_path)
    stale = _spawn_and_kill(
        ["quantize", "model.onnx", "--calib", "calib.npz", "--quiet", "-o", "a.onnx"],
        folder,
        folder,
        ".edgeport-quantize-",
    )
    assert stale.is_dir()
    live = folder / f".edgeport-quantize-otherhost@{os.getpid()}-keepme"
    live.mkdir()  # another host's folder is never touched
    code, _, err = run_cli(
        capsys, "quantize", folder / "model.onnx", "--calib", folder / "calib.npz", "-o", folder / "b.onnx"
    )
    assert code == 0, err
    assert not stale.exists()
    assert f"removed {stale}" in err.replace("\n", "")
    assert live.is_dir()


def test_killed_run_leaves_a_partial_folder_the_next_run_removes(tmp_path, capsys):
    out = tmp_path / "runs"
    args = [
        "run",
        "--image-size",
        "8",
        "--epochs",
        "1",
        "--teacher",
        "cnn:width=0.5,depth=2",
        "--student",
        "cnn:width=0.5,depth=2",
        "--skip-no-kd",
        "--calibration-samples",
        "32",
        "--cold-starts",
        "0",
        "--iterations",
        "40",
        "--out",
        str(out),
        "--quiet",
    ]
    stale = _spawn_and_kill(args, tmp_path, out, ".partial-")
    assert stale.is_dir()
    code, _, err = run_cli(capsys, *args[:-1])
    assert code == 0, err
    assert not stale.exists()
    # rich wraps the log line at the terminal's width, wherever the path's length puts the breaks
    assert "arunthatwaskilledleftitunfinished" in "".join(err.split())
    runs = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1 and json.loads((runs[0] / "manifest.json").read_text())["seed"] == 0
