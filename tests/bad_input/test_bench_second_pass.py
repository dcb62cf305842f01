"""Issue 20, second hardening pass, `edgeport bench` and `quantize`'s model check: a remote device's
answer trusted as it came, inputs allocated before their size was asked, `--shape` overruled by
`--batch`, options silently ignored or unbounded, and a killed `bench --remote` leaving work behind.

Remote cases run against a real sshd on 127.0.0.1 (tests/benchmarks/test_remote.py); a device that
answers wrongly is a real program on that device (``--remote-python`` naming a script that prints a
crafted answer), not a mock.
"""

from __future__ import annotations

import importlib.util
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

from edgeport.benchmarks.records import BenchSettings
from edgeport.benchmarks.remote_answer import check_answer
from edgeport.benchmarks.remote_runner import environment_fingerprint, split_counts
from edgeport.errors import BenchmarkError
from tests.bad_input.conftest import refused, run_cli
from tests.benchmarks.test_remote import _args as ssh_args
from tests.benchmarks.test_remote import sshd  # noqa: F401  (a real sshd on 127.0.0.1 with throwaway keys)

ITERATIONS, ROUNDS = 50, 10


def _bench(capsys, *args):
    return run_cli(capsys, "bench", "--quiet", *args)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _zero_width_model(path: Path) -> Path:
    """Input ``a`` [N, 0] (a fixed zero-sized axis) through MatMul with a [0, 4] weight, plus a bias."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "W"], ["m"]), helper.make_node("Add", ["m", "B"], ["out"])],
        "zero",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 0])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])],
        [
            numpy_helper.from_array(np.zeros((0, 4), np.float32), "W"),
            numpy_helper.from_array(np.ones(4, np.float32), "B"),
        ],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _identity_model(path: Path, inputs: dict[str, list]) -> Path:
    """One Identity per input (``x`` -> ``x_out``): a model whose inputs' shapes are all that matters."""
    nodes = [helper.make_node("Identity", [name], [f"{name}_out"]) for name in inputs]
    graph = helper.make_graph(
        nodes,
        "identity",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, shape) for name, shape in inputs.items()],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


# --- item 4: a remote device's answer is checked, whole, before anything is written -------------------


def _valid_answer() -> dict:
    """What a correct runner answers for --iterations 50 --rounds 10 (the environment: this machine's)."""
    return {
        "samples_ms": [0.5 + 0.001 * i for i in range(ITERATIONS)],
        "round_sizes": split_counts(ITERATIONS, ROUNDS),
        "session_create_ms": 3.0,
        "first_inference_ms": 1.0,
        "peak_rss_mb": 50.0,
        "environment": environment_fingerprint(),
        "precision_used": None,
    }


def _answer(**changes) -> str:
    answer = _valid_answer()
    for key, value in changes.items():
        if value is _DROP:
            answer.pop(key)
        else:
            answer[key] = value
    return json.dumps(answer)  # NaN and Infinity come out as JSON's NaN/Infinity tokens, as a device may send


_DROP = object()
BAD_ANSWERS = [
    ("{}", "samples_ms"),
    ("[]", "not a JSON object"),
    ('"text"', "not a JSON object"),
    ("null", "not a JSON object"),
    (_answer(environment=_DROP), "environment"),
    (_answer(samples_ms="1,2,3"), "samples_ms"),
    (_answer(samples_ms=[float("nan")] * ITERATIONS), "samples_ms"),
    (_answer(samples_ms=[float("inf")] * ITERATIONS), "samples_ms"),
    (_answer(samples_ms=[-1.0] * ITERATIONS), "samples_ms"),
    (_answer(samples_ms=[0.0] * ITERATIONS), "samples_ms"),
    (_answer(samples_ms=[True] * ITERATIONS), "samples_ms"),
    (_answer(samples_ms=[0.5, 0.6, 0.7], round_sizes=[1, 1, 1]), "samples_ms"),
    (_answer(round_sizes=[ITERATIONS]), "round_sizes"),
    (_answer(round_sizes="10"), "round_sizes"),
    (_answer(session_create_ms="fast"), "session_create_ms"),
    (_answer(first_inference_ms=float("nan")), "first_inference_ms"),
    (_answer(peak_rss_mb=-5), "peak_rss_mb"),
    (_answer(environment=[]), "environment"),
    (_answer(precision_used=5), "precision_used"),
]
BAD_IDS = [
    "empty",
    "list",
    "string",
    "null",
    "no-environment",
    "samples-string",
    "nan",
    "inf",
    "negative",
    "zero",
    "bool",
    "3-of-50",
    "one-round",
    "rounds-string",
    "create-string",
    "first-nan",
    "rss-negative",
    "environment-list",
    "precision-int",
]


def _fake_device_python(folder: Path, answer: str) -> Path:
    """A "Python" on the device that prints ``answer`` as the runner's (the upload, `python -c`, is real)."""
    (folder / "answer.json").write_text(answer)
    script = folder / "fake-python"
    answer_file = folder / "answer.json"
    script.write_text(f'#!/bin/sh\n[ "$1" = -c ] && exec {sys.executable} "$@"\ncat {answer_file}\n')
    script.chmod(0o755)
    return script


def _remote_bench(capsys, sshd, model: Path, python: Path | str, *extra):  # noqa: F811
    args = ("--remote-python", python, "--iterations", ITERATIONS, "--rounds", ROUNDS, "--warmup", 0, *extra)
    return _bench(capsys, model, *ssh_args(sshd), *args)


def test_a_correct_fake_answer_is_accepted(sshd, capsys, cnn_files, tmp_path):  # noqa: F811
    # The control for the cases below: the fake device itself is fine when its answer is.
    python = _fake_device_python(tmp_path, json.dumps(_valid_answer()))
    code, out, err = _remote_bench(capsys, sshd, cnn_files / "model.onnx", python, "--json")
    assert code == 0, err
    assert len(json.loads(out)["results"][0]["samples_ms"]) == ITERATIONS


@pytest.mark.parametrize("answer, field", BAD_ANSWERS, ids=BAD_IDS)
def test_every_bad_answer_is_refused_naming_the_field(answer, field):
    # The check itself, on every case: fast. The cases below send a few of them through a real device.
    settings = BenchSettings(iterations=ITERATIONS, rounds=ROUNDS, warmup=0)
    with pytest.raises(BenchmarkError) as refused:
        check_answer(json.loads(answer), "ssh://pi@board:22", settings)
    assert "ssh://pi@board:22" in str(refused.value) and field in str(refused.value)


THROUGH_SSH = ["empty", "nan", "3-of-50", "first-nan"]


@pytest.mark.parametrize("case", THROUGH_SSH)
def test_a_bad_remote_answer_is_one_line_naming_the_device_and_field(
    sshd,  # noqa: F811
    capsys,
    cnn_files,
    tmp_path,
    case,
):
    answer, field = BAD_ANSWERS[BAD_IDS.index(case)]
    python = _fake_device_python(tmp_path, answer)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = _remote_bench(capsys, sshd, cnn_files / "model.onnx", python, "-o", out_dir / "r.json")
    refused(code, err, f"127.0.0.1:{sshd.port}", field)
    assert list(out_dir.iterdir()) == []  # nothing written, nothing half-written


# --- items 8 and 14: a fixed zero-sized dimension -----------------------------------------------------


def test_quantize_refuses_an_input_with_a_fixed_zero_sized_axis(capsys, tmp_path):
    model = _zero_width_model(tmp_path / "zero.onnx")
    np.savez(tmp_path / "calib.npz", a=np.zeros((32, 0), np.float32))
    code, _, err = run_cli(
        capsys, "quantize", model, "--calib", tmp_path / "calib.npz", "-o", tmp_path / "q.onnx", "--quiet"
    )
    refused(code, err, "zero.onnx", "'a'", "zero-sized")
    assert not (tmp_path / "q.onnx").exists()


def test_bench_calls_a_fixed_zero_axis_zero_sized_not_dynamic(capsys, tmp_path):
    model = _zero_width_model(tmp_path / "zero.onnx")
    code, _, err = _bench(capsys, model, "--iterations", 10)
    line = refused(code, err, "'a'", "zero-sized", "axis 1")
    assert "dynamic" not in line


# --- item 9: inputs too large to make are refused before allocating ------------------------------------


def test_bench_refuses_a_huge_batch_before_allocating(capsys, cnn_files):
    code, _, err = _bench(capsys, cnn_files / "model.onnx", "--batch", 1_000_000_000, "--iterations", 10)
    refused(code, err, "'input'", "1000000000x1x16x16", "GiB")


def test_bench_refuses_a_huge_fixed_dimension_before_allocating(capsys, tmp_path):
    model = _identity_model(tmp_path / "wide.onnx", {"x": ["N", 2**40]})
    code, _, err = _bench(capsys, model, "--iterations", 10)
    refused(code, err, "'x'", f"1x{2**40}", "GiB")


def test_torch_bench_refuses_a_huge_batch_before_allocating(capsys, tmp_path, trained_cnn):
    from edgeport.models import ModelSpec
    from edgeport.models.checkpoint import save_checkpoint

    save_checkpoint(trained_cnn, tmp_path / "w.safetensors", ModelSpec.parse("cnn:width=1,depth=3"), 1, 10, 16)
    args = ("--torch", "cnn:width=1,depth=3", "--weights", tmp_path / "w.safetensors", "--num-classes", 10)
    code, _, err = _bench(capsys, *args, "--shape", "input=1x1x16x16", "--batch", 1_000_000_000, "--iterations", 10)
    refused(code, err, "'input'", "1000000000x1x16x16", "GiB")


# --- item 11: --shape is taken as given; --batch fills only the inputs without one ----------------------


def test_a_shape_whose_first_axis_is_not_the_batch_is_taken_as_given(capsys, tmp_path):
    # A recurrent state [layers, batch, hidden]: its first axis is 2 layers, not the batch.
    model = _identity_model(tmp_path / "vad.onnx", {"x": ["N", 16], "state": [2, "N", 16]})
    code, out, err = _bench(capsys, model, "--shape", "state=2x1x16", "--iterations", 10, "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["settings"]["batch"] == 1


def test_a_shape_sets_the_batch_when_batch_is_not_given(capsys, cnn_files):
    code, out, err = _bench(
        capsys, cnn_files / "model.onnx", "--shape", "input=8x1x16x16", "--iterations", 10, "--json"
    )
    assert code == 0, err
    result = json.loads(out)["results"][0]
    assert result["settings"]["batch"] == 8
    assert result["stats"]["throughput_per_s"] == pytest.approx(8 * 1000 / result["stats"]["mean_ms"], rel=0.01)


def test_a_shape_and_a_batch_that_disagree_are_refused(capsys, cnn_files):
    model = cnn_files / "model.onnx"
    code, _, err = _bench(capsys, model, "--shape", "input=8x1x16x16", "--batch", 4, "--iterations", 10)
    refused(code, err, "--shape input=8x1x16x16", "--batch")
    code, _, err = _bench(capsys, model, "--shape", "input=8x1x16x16", "--batch", "1,8", "--iterations", 10)
    refused(code, err, "--shape input=8x1x16x16", "--batch")
    code, out, err = _bench(capsys, model, "--shape", "input=8x1x16x16", "--batch", 8, "--iterations", 10, "--json")
    assert code == 0 and json.loads(out)["results"][0]["settings"]["batch"] == 8, err


def test_a_batch_sweep_over_a_model_with_other_dynamic_axes_writes_its_batch_axis_as_n(capsys, tmp_path):
    # A detector with dynamic H and W needs a --shape; `N` leaves its batch axis to each --batch value.
    model = _identity_model(tmp_path / "det.onnx", {"image": ["B", 3, "H", "W"]})
    args = ("--shape", "image=Nx3x8x12", "--batch", "1,3", "--iterations", 10, "--json")
    code, out, err = _bench(capsys, model, *args)
    assert code == 0, err
    assert [r["settings"]["batch"] for r in json.loads(out)["results"]] == [1, 3]
    code, _, err = _bench(capsys, model, "--shape", "image=3xNx8x12", "--iterations", 10)
    refused(code, err, "--shape", "image=3xNx8x12")  # N stands only for the first (batch) axis


# --- item 13: a --vs file whose name contains @runtime --------------------------------------------------


def test_vs_names_an_existing_file_with_an_at_sign(capsys, cnn_files, tmp_path):
    other = tmp_path / "x@ort"
    shutil.copy(cnn_files / "model.onnx", other)
    code, out, err = _bench(capsys, cnn_files / "model.onnx", "--vs", other, "--iterations", 10, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [r["model_path"] for r in report["results"]][1] == str(other)


# --- item 19: --threads is bounded -----------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["100000", "1,100000"])
def test_bench_refuses_an_absurd_thread_count(capsys, cnn_files, threads):
    code, _, err = _bench(capsys, cnn_files / "model.onnx", "--threads", threads, "--iterations", 10)
    refused(code, err, "--threads", "100000")


def test_remote_bench_refuses_an_absurd_thread_count_before_connecting(capsys, cnn_files):
    # The board does not exist: the refusal must come before any ssh.
    args = ("--remote", "ssh://pi@board.invalid", "--threads", 100000, "--iterations", 10)
    code, _, err = _bench(capsys, cnn_files / "model.onnx", *args)
    refused(code, err, "--threads", "100000")


# --- item 20: --inputs fixes the shapes (its samples fill --batch) -----------------------------------------


def test_inputs_with_shape_is_refused(capsys, cnn_files):
    model, inputs = cnn_files / "model.onnx", cnn_files / "calib.npz"
    code, _, err = _bench(capsys, model, "--inputs", inputs, "--shape", "input=8x1x16x16", "--iterations", 10)
    refused(code, err, "--shape", "--inputs")


# --- suspected: `quantize --runtime openvino --precision f16` records only the hint ----------------------


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
@pytest.mark.parametrize("backend", ["auto", "ort-static"])  # auto judges its recipes; a forced one is verified
def test_quantize_on_openvino_records_the_precision_the_judged_run_used(capsys, cnn_files, tmp_path, backend):
    from edgeport.benchmarks.openvino_runtime import OpenVinoSession

    args = ("--val", cnn_files / "val.npz", "--runtime", "openvino", "--precision", "f16", "--backend", backend)
    code, _, err = run_cli(
        capsys,
        "quantize",
        cnn_files / "model.onnx",
        "--calib",
        cnn_files / "calib.npz",
        "-o",
        tmp_path / "q.onnx",
        *args,
        "--quiet",
    )
    assert code in (0, 1), err
    manifest = json.loads((tmp_path / "q.manifest.json").read_text())
    judged_on = manifest["guard"]["judged_on"]
    # f16 is a hint: on a CPU without f16 arithmetic OpenVINO compiles the model as f32. The file is q.onnx
    # when int8 pays on this machine and q.rejected.onnx when it does not (a busy machine decides that).
    artifact = tmp_path / manifest["artifact"]["path"]
    used = OpenVinoSession(artifact, threads=1, precision="f16").precision
    assert judged_on.endswith(f"(OpenVINO compiled it as {used})"), judged_on


# --- suspected: SIGKILL during `bench --remote` ----------------------------------------------------------


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        found[int(entry.name)] = (int(parent), state, cmdline)
    return found


def _alive(pid: int) -> bool:
    entry = _processes().get(pid)
    return entry is not None and entry[1] != "Z"  # a zombie has exited; only its parent has not reaped it


def _poll(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the processes")
def test_sigkill_during_remote_bench_leaves_no_ssh_and_no_device_folder(sshd, cnn_files, tmp_path):  # noqa: F811
    model = tmp_path / f"killed-{os.getpid()}-{time.time_ns()}.onnx"  # a name to find the device's runner by
    shutil.copy(cnn_files / "model.onnx", model)
    args = [*map(str, ssh_args(sshd)), "--remote-python", sys.executable, "--iterations", "50000000", "--warmup", "0"]
    bench = subprocess.Popen(
        [sys.executable, "-m", "edgeport.cli", "bench", "--quiet", str(model), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    runners: dict[int, str] = {}
    try:

        def runner_started() -> bool:
            # the device's processes: the runner (and the sh around it), not the local ssh whose
            # command line carries the same words
            runners.update(
                {
                    pid: cmd
                    for pid, (_, _, cmd) in _processes().items()
                    if "edgeport_runner.py" in cmd and model.name in cmd and not cmd.startswith("ssh ")
                }
            )
            return bool(runners) or bench.poll() is not None

        assert _poll(runner_started), "the device's runner never started"
        assert bench.poll() is None, bench.stderr.read().decode() if bench.stderr else ""
        time.sleep(1.0)  # measuring now
        folder = next(
            Path(word).parent for cmd in runners.values() for word in cmd.split() if word.endswith(model.name)
        )
        assert folder.is_dir()
        ssh = [pid for pid, (parent, _, cmd) in _processes().items() if parent == bench.pid and cmd.startswith("ssh")]
        assert ssh, "no ssh child while measuring"
        bench.send_signal(signal.SIGKILL)
        bench.wait()
        assert _poll(lambda: not any(_alive(pid) for pid in ssh)), "a local ssh outlived edgeport"
        assert _poll(lambda: not any(_alive(pid) for pid in runners)), "the device's runner outlived edgeport"
        assert _poll(lambda: not folder.exists()), f"the device's temporary folder {folder} was left behind"
    finally:
        if bench.poll() is None:
            bench.kill()
        for pid in runners:  # a failed run must not leave a 50-million-iteration runner behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
