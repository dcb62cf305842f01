"""Outputs, second pass (issue 20): devices and FIFOs given as outputs, read-only outputs as root, a full
disk, two identical runs in the same second, and staging folders of live processes whose pid is not
visible here (containers sharing a folder and a hostname but not a pid namespace).

We run as root, as CI containers do: a device node made here is a real one (1,3 is /dev/null's), and
file permissions do not stop root, so the read-only refusal must come from the mode bits.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeport.core.artifacts import atomic_write_bytes, atomic_write_json, check_output_file
from edgeport.core.staging import RunFolder
from edgeport.errors import ArtifactError
from tests.bad_input.conftest import one_line_error, run_cli
from tests.bad_input.test_reproducible import TINY_RUN  # the smallest run through every stage

NOT_REGULAR = "not a regular file"


# -- files --------------------------------------------------------------------------------------------------


def make_node(folder: Path, kind: str, suffix: str = "") -> tuple[Path, int]:
    """A path of ``kind`` (chardev, fifo, link-to-chardev) in ``folder`` and the file type it must keep."""
    if kind == "fifo":
        path = folder / f"pipe{suffix}"
        os.mkfifo(path)
        return path, stat.S_IFIFO
    node = folder / f"null{suffix}"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers: harmless if written
    if kind == "link-to-chardev":
        link = folder / f"link{suffix}"
        link.symlink_to(node)
        return link, stat.S_IFCHR
    return node, stat.S_IFCHR


def still_a(path: Path, file_type: int) -> bool:
    return stat.S_IFMT(os.stat(path).st_mode) == file_type


def write_model(path: Path) -> Path:
    """A tiny real ONNX model: logits = input W (fast to measure)."""
    values = np.random.default_rng(0).standard_normal(32).tolist()
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("W", TensorProto.FLOAT, [8, 4], values)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


QUICK_BENCH = ("--warmup", "2", "--iterations", "20", "--rounds", "2", "--quiet")


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return write_model(tmp_path / "tiny.onnx")


@pytest.fixture
def gate_files(tmp_path, tiny_model) -> Path:
    """tiny.onnx, its measurement r.json and budgets.toml with a generous budget."""
    from edgeport.benchmarks import environment_fingerprint
    from edgeport.benchmarks.latency import BenchResult
    from edgeport.core.artifacts import sha256_file

    values = (0.3 * np.random.default_rng(0).lognormal(0.0, 0.1, 2000)).tolist()
    result = BenchResult(
        str(tiny_model),
        sha256_file(tiny_model),
        {"batch": 1, "threads": 1, "rounds": 10},
        environment_fingerprint(),
        values,
    ).to_dict()
    (tmp_path / "r.json").write_text(json.dumps(result))
    (tmp_path / "budgets.toml").write_text("[targets.cpu]\np90_ms = 100.0\n")
    return tmp_path


# -- 1. a device, FIFO or link to a device given as an output -----------------------------------------------

KINDS = ["chardev", "fifo", "link-to-chardev"]


@pytest.mark.parametrize("kind", KINDS)
def test_bench_refuses_an_output_that_is_not_a_regular_file(tmp_path, capsys, tiny_model, kind):
    node, file_type = make_node(tmp_path, kind)
    code, out, err = run_cli(capsys, "bench", tiny_model, "-o", node, *QUICK_BENCH)
    line = one_line_error(err)
    assert code == 2 and str(node) in line and NOT_REGULAR in line and out == "", err
    assert still_a(node, file_type)


@pytest.mark.parametrize("kind", KINDS)
def test_quantize_refuses_an_output_that_is_not_a_regular_file(tmp_path, capsys, cnn_files, kind):
    node, file_type = make_node(tmp_path, kind, ".onnx")
    code, _, err = run_cli(
        capsys, "quantize", cnn_files / "model.onnx", "--calib", cnn_files / "calib.npz", "-o", node, "--quiet"
    )
    line = one_line_error(err)
    assert code == 2 and str(node) in line and NOT_REGULAR in line, err
    assert still_a(node, file_type)
    assert not [p for p in tmp_path.iterdir() if p.stem not in ("null", "pipe", "link")]


@pytest.mark.parametrize("kind", KINDS)
def test_gate_refuses_a_junit_report_that_is_not_a_regular_file(capsys, gate_files, kind):
    node, file_type = make_node(gate_files, kind)
    args = ("--budget", gate_files / "budgets.toml", "--result", gate_files / "r.json", "--junit", node)
    code, out, err = run_cli(capsys, "gate", "--quiet", *args)
    line = one_line_error(err)
    assert code == 2 and str(node) in line and NOT_REGULAR in line and "gate" not in out, err
    assert still_a(node, file_type)


@pytest.mark.parametrize("kind", KINDS)
def test_gate_refuses_a_step_summary_that_is_not_a_regular_file(capsys, gate_files, monkeypatch, kind):
    """Appending does not replace a device, but a FIFO would block the gate and a device swallows the summary."""
    node, file_type = make_node(gate_files, kind)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(node))
    args = ("--budget", gate_files / "budgets.toml", "--result", gate_files / "r.json", "--github")
    code, out, err = run_cli(capsys, "gate", "--quiet", *args)
    line = one_line_error(err)
    assert code == 2 and str(node) in line and NOT_REGULAR in line and "gate" not in out, err
    assert still_a(node, file_type)


@pytest.mark.parametrize("kind", KINDS)
def test_atomic_write_never_replaces_a_file_that_is_not_regular(tmp_path, kind):
    """The last line of defence, for any writer that skipped check_output_file."""
    node, file_type = make_node(tmp_path, kind)
    with pytest.raises(ArtifactError, match=NOT_REGULAR):
        atomic_write_json(node, {"a": 1})
    assert still_a(node, file_type)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_link_to_a_regular_file_is_still_an_accepted_output(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert check_output_file(link) == link
    atomic_write_bytes(link, b"[]")
    assert link.read_text() == "[]"


# -- 18. a read-only (0444) output, as root -----------------------------------------------------------------


def test_bench_refuses_a_read_only_output_even_as_root(tmp_path, capsys, tiny_model):
    output = tmp_path / "r.json"
    output.write_text("keep")
    output.chmod(0o444)
    code, _, err = run_cli(capsys, "bench", tiny_model, "-o", output, *QUICK_BENCH)
    line = one_line_error(err)
    assert code == 2 and str(output) in line and "read-only" in line, err
    assert output.read_text() == "keep"


def test_quantize_and_gate_refuse_a_read_only_output_even_as_root(tmp_path, capsys, cnn_files, gate_files):
    output = tmp_path / "m.int8.onnx"
    output.write_text("keep")
    output.chmod(0o444)
    code, _, err = run_cli(
        capsys, "quantize", cnn_files / "model.onnx", "--calib", cnn_files / "calib.npz", "-o", output, "--quiet"
    )
    assert code == 2 and "read-only" in one_line_error(err) and output.read_text() == "keep", err
    junit = gate_files / "gate.xml"
    junit.write_text("keep")
    junit.chmod(0o444)
    args = ("--budget", gate_files / "budgets.toml", "--result", gate_files / "r.json", "--junit", junit)
    code, _, err = run_cli(capsys, "gate", "--quiet", *args)
    assert code == 2 and "read-only" in one_line_error(err) and junit.read_text() == "keep", err


# -- 15. a full disk ----------------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 256 KiB tmpfs that is already full; skipped where we may not mount one."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with open(folder / "filler", "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:  # full: nothing is left in a buffer to fail again at close
                pass
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_bench_on_a_full_disk_names_the_result_file(capsys, tiny_model, full_disk):
    output = full_disk / "result.json"
    code, _, err = run_cli(capsys, "bench", tiny_model, "-o", output, *QUICK_BENCH)
    line = one_line_error(err)
    assert code == 2 and str(output) in line and "No space left on device" in line, err
    assert not [p for p in full_disk.iterdir() if p.name != "filler"]


def test_run_on_a_full_disk_names_what_it_could_not_write(tmp_path, capsys, full_disk):
    (tmp_path / "edgeport.toml").write_text(TINY_RUN)
    runs = full_disk / "runs"
    code, _, err = run_cli(capsys, "run", "--config", tmp_path / "edgeport.toml", "--out", runs, "--quiet")
    line = one_line_error(err)
    assert code == 2 and str(runs) in line and "No space left on device" in line, err
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".cache")]


def test_a_run_stage_that_fails_on_a_full_disk_is_reported_as_a_full_disk(tmp_path):
    """Stages wrap the OSError in errors that blame their input (export, ORT quantization): the run folder
    says what happened instead. (On a real full disk the run's first write fails first, named above.)"""
    from edgeport.errors import QuantizationError

    with pytest.raises(ArtifactError, match="the disk is full") as raised:
        with RunFolder(tmp_path / "runs", "r"):
            try:
                raise OSError(28, os.strerror(28))
            except OSError as exc:
                raise QuantizationError("model.onnx: ORT quantization pre-processing failed") from exc
    assert str(tmp_path / "runs" / "r") in str(raised.value) and not (tmp_path / "runs").exists()


def test_quantize_on_a_full_disk_blames_the_disk_not_the_model(capsys, cnn_files, full_disk):
    output = full_disk / "m.int8.onnx"
    model = cnn_files / "model.onnx"
    code, _, err = run_cli(capsys, "quantize", model, "--calib", cnn_files / "calib.npz", "-o", output, "--quiet")
    line = one_line_error(err)
    assert code == 2 and "No space left on device" in line and str(full_disk) in line, err
    assert not line.startswith(f"error: {model}"), line
    assert [p.name for p in full_disk.iterdir()] == ["filler"]


def test_a_step_summary_on_a_full_disk_keeps_the_verdict(capsys, gate_files, full_disk, monkeypatch):
    """A regular summary file that fails at write time: the verdict is still printed, the JUnit report still
    written, and the error (exit 2) names the file and the verdict. (This used /dev/full, now refused.)"""
    summary = full_disk / "summary.md"
    summary.touch()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("COLUMNS", raising=False)
    junit = gate_files / "gate.xml"
    args = ("--budget", gate_files / "budgets.toml", "--result", gate_files / "r.json", "--github")
    code, out, err = run_cli(capsys, "gate", "--quiet", *args, "--junit", junit)
    line = one_line_error(err)
    assert code == 2 and str(summary) in line and "No space left on device" in line and "verdict was PASS" in line
    assert "gate PASS" in out and junit.is_file() and b"testsuite" in junit.read_bytes()
    code, out, err = run_cli(capsys, "gate", "--quiet", *args, "--json")
    assert code == 2 and json.loads(out)["verdict"] == "pass" and str(summary) in one_line_error(err)


# -- 17. two identical runs in the same second --------------------------------------------------------------


def test_a_second_identical_run_in_the_same_second_gets_its_own_folder(tmp_path, capsys, monkeypatch):
    """The first run is still building when the second starts (its RunFolder is open); both get the id of
    the same second. The second must finish in a folder of its own, and the first must still commit."""
    import edgeport.run.pipeline

    monkeypatch.setattr(edgeport.run.pipeline, "run_id_for", lambda config: "20250101-000000-abcdef12")
    (tmp_path / "edgeport.toml").write_text(TINY_RUN)
    runs = tmp_path / "runs"
    with RunFolder(runs, "20250101-000000-abcdef12") as first:
        code, _, err = run_cli(capsys, "run", "--config", tmp_path / "edgeport.toml", "--out", runs, "--quiet")
        assert code == 0, err
        atomic_write_json(first.path / "manifest.json", {"run_id": first.run_id})
        assert first.commit() == runs / "20250101-000000-abcdef12"
    second = runs / "20250101-000000-abcdef12-2"
    assert json.loads((second / "manifest.json").read_text())["run_id"] == second.name
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".cache")) == [
        "20250101-000000-abcdef12",
        "20250101-000000-abcdef12-2",
    ]


def test_run_folders_of_one_id_are_reserved_before_any_work(tmp_path):
    """RunFolder picks the id up front: a live run's id (still staging) and a committed one are both taken."""
    with RunFolder(tmp_path, "r", unique=True) as first, RunFolder(tmp_path, "r", unique=True) as second:
        assert (first.run_id, second.run_id) == ("r", "r-2")
        with pytest.raises(ArtifactError, match="being written by another run"):
            RunFolder(tmp_path, "r")  # an explicit id is never changed: refused before any work
        for folder in (second, first):
            atomic_write_json(folder.path / "manifest.json", {})
            folder.commit()
    with RunFolder(tmp_path, "r", unique=True) as third:
        assert third.run_id == "r-3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "r-2"]


# -- suspected: stale-folder cleanup trusting hostname and pid ----------------------------------------------

HOLDER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from edgeport.core.staging import make_staging_dir

    staging = make_staging_dir(Path(sys.argv[1]), "edgeport-quantize")
    # as another pid namespace would show it: a pid that does not run here
    shown = staging.with_name(staging.name.replace(f"@{os.getpid()}-", f"@{sys.argv[2]}-"))
    os.rename(staging, shown)
    print(shown, flush=True)
    sys.stdin.read()  # alive (and holding the folder) until the test closes our stdin
    """
)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_live_staging_folder_whose_pid_is_not_visible_here_is_kept(tmp_path, capsys, cnn_files):
    """Containers sharing a folder and a hostname but not a pid namespace: the owner's pid looks dead here.
    The folder is kept while its owner holds it, and removed by the next command once the owner is gone."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), str(_dead_pid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        staging = Path(holder.stdout.readline().strip())
        assert staging.is_dir()
        (staging / "work.onnx").write_text("in progress")
        args = ("quantize", cnn_files / "model.onnx", "--calib", cnn_files / "calib.npz", "--quiet")
        code, _, err = run_cli(capsys, *args, "-o", tmp_path / "a.onnx")
        assert code == 0, err
        assert (staging / "work.onnx").is_file() and f"removed {staging}" not in err
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    code, _, err = run_cli(capsys, *args, "-o", tmp_path / "b.onnx")
    assert code == 0 and not staging.exists(), err
