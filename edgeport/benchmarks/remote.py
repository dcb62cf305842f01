"""Latency on a remote edge device over SSH (the connection itself: ssh_device.py; what may reach the
ssh command line: ssh_options.py).

The model, the inputs (as .npz), the settings and the single-file runner (remote_runner.py, sent as
its source text) are copied into a fresh temporary folder on the device; the device's Python runs the
runner; the raw samples and the device's fingerprint come back and the host computes the statistics.
"""

from __future__ import annotations

import io
import json
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks import remote_runner
from edgeport.benchmarks.records import ONNXRUNTIME, BenchResult, BenchSettings
from edgeport.benchmarks.remote_answer import check_answer
from edgeport.benchmarks.ssh_device import RemoteDevice
from edgeport.benchmarks.ssh_options import ALLOWED_SSH_OPTIONS, CONTROL, check_remote_python, check_ssh_option
from edgeport.core.artifacts import sha256_file
from edgeport.errors import BenchmarkError, ConfigError

# The name this class had before "target" came to mean a gate target or a search's bench target;
# edgeport.search.bench_target and tests/bad_input/test_security.py still import it.
RemoteTarget = RemoteDevice

__all__ = [
    "ALLOWED_SSH_OPTIONS",
    "RemoteDevice",
    "RemoteTarget",
    "check_remote_python",
    "check_ssh_option",
    "measure_remote",
    "measure_remote_footprint",
    "probe_remote",
]

_RUNNER = "edgeport_runner.py"


def _make_folder(device: RemoteDevice) -> str:
    """A fresh temporary folder on the device (``mktemp -d``), checked to be one absolute path."""
    probe = device.quick("mktemp -d")
    if probe.returncode != 0:
        raise device.unreachable(probe)
    folder = probe.stdout.strip()
    # The folder is pasted (quoted) into the next commands: an answer that is not one absolute path
    # would put the files, and the final rm -rf, somewhere else.
    if not folder.startswith("/") or CONTROL.search(folder):
        raise BenchmarkError(f"{device.destination}: `mktemp -d` answered {folder[:200]!r}, not a folder path")
    return folder


def _upload(
    device: RemoteDevice,
    folder: str,
    model: Path,
    settings: BenchSettings,
    inputs: Mapping[str, np.ndarray],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """The model, the runner, the inputs and the settings (with ``extra``: a footprint's) into ``folder``."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        buffer = io.BytesIO()
        np.savez(buffer, **inputs)  # type: ignore[arg-type]  # numpy's stub types **kwds as its own options
        (tmp_path / "inputs.npz").write_bytes(buffer.getvalue())
        # watch_stdin: the runner stops when this side's ssh goes away (see _runner_command)
        written = {**settings.to_dict(), **(extra or {}), "watch_stdin": True}
        (tmp_path / "settings.json").write_text(json.dumps(written))
        # The runner travels as its own source text: it imports nothing from edgeport.
        runner = tmp_path / _RUNNER
        runner.write_text(Path(remote_runner.__file__).read_text())
        device.copy([model, runner, tmp_path / "inputs.npz", tmp_path / "settings.json"], folder)


def _runner_command(device: RemoteDevice, folder: str, model: Path) -> str:
    """The device's command: the runner under ``sh``, which removes ``folder`` however the runner ends.

    The host's own `rm -rf` cannot run when edgeport is killed (SIGKILL); the ssh it leaves then sees
    end-of-file on its stdin and passes it on, the runner stops on it (remote_runner.py: watch_stdin),
    and this trap removes the folder. `sh -c` because the login shell may not be a POSIX shell.
    """
    words = (device.python, f"{folder}/{_RUNNER}", f"{folder}/{model.name}", f"{folder}/settings.json")
    run = " ".join(shlex.quote(word) for word in (*words, f"{folder}/inputs.npz"))
    cleanup = shlex.quote(f"rm -rf -- {shlex.quote(folder)}")
    return f"sh -c {shlex.quote(f'trap {cleanup} EXIT HUP INT TERM; {run}')}"


def _runner_answer(device: RemoteDevice, folder: str, model: Path) -> Any:
    """Run the uploaded runner on the device; its parsed JSON answer."""
    result = device.ssh(_runner_command(device, folder, model), hold_stdin=True)
    if result.returncode != 0:
        raise device.failed(result)
    try:
        return json.loads(result.stdout)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BenchmarkError(f"{device.url}: the runner's answer is not JSON ({exc})") from exc


def _run_runner(device: RemoteDevice, folder: str, model: Path, settings: BenchSettings) -> dict[str, Any]:
    """Run the uploaded runner on the device; its JSON answer, checked against ``settings``."""
    return check_answer(_runner_answer(device, folder, model), device.url, settings)


def measure_remote_footprint(
    model: str | Path,
    device: RemoteDevice,
    settings: BenchSettings,
    inputs: Mapping[str, np.ndarray],
    extra: Mapping[str, Any],
) -> Any:
    """The footprint runner's answer from ``device`` (``extra``: footprint_settings' additions): its cold
    starts run there, each a fresh process of the device's Python. Checked by the caller (footprint.py)."""
    model = Path(model)
    folder = _make_folder(device)
    try:
        _upload(device, folder, model, settings, inputs, extra)
        return _runner_answer(device, folder, model)
    finally:
        device.quick(f"rm -rf -- {shlex.quote(folder)}")


def measure_remote(
    model: str | Path, device: RemoteDevice, settings: BenchSettings, inputs: dict[str, np.ndarray]
) -> BenchResult:
    """Run the benchmark on ``device`` and return a BenchResult with the device's fingerprint."""
    if settings.provider != "cpu":
        raise ConfigError("remote benchmarks use the device's CPU provider; --provider must be cpu")
    model = Path(model)
    folder = _make_folder(device)
    try:
        _upload(device, folder, model, settings, inputs)
        data = _run_runner(device, folder, model, settings)
    finally:
        device.quick(f"rm -rf -- {shlex.quote(folder)}")
    return BenchResult(
        str(model),
        sha256_file(model),
        {
            **settings.to_dict(),
            "inputs": "given",
            "remote": device.url,
            # checked by check_answer: exactly the rounds asked for
            "round_sizes": data["round_sizes"],
            "precision_used": data.get("precision_used"),
        },
        data["environment"],
        data["samples_ms"],
        session_create_ms=data["session_create_ms"],
        first_inference_ms=data["first_inference_ms"],
        peak_rss_mb=data["peak_rss_mb"],
    )


def probe_remote(device: RemoteDevice, runtimes: set[str] | frozenset[str] = frozenset({ONNXRUNTIME.name})) -> str:
    """Fail early, before any work, when the device is unreachable or lacks numpy or a package of
    ``runtimes`` (onnxruntime for "ort", openvino for "openvino").

    Returns a line identifying the device's software and machine (runtime versions, machine, CPU); for
    onnxruntime alone it is the line searches have always cached by.
    """
    packages = ["numpy"] + [{ONNXRUNTIME.name: "onnxruntime", "openvino": "openvino"}[r] for r in sorted(runtimes)]
    versions = " ".join(f"{p}.__version__," for p in packages[1:])
    check = (
        f"import importlib.util as u, sys, platform; m = [p for p in {tuple(packages)!r} "
        "if u.find_spec(p) is None]; print(*m, file=sys.stderr) if m else None; m and sys.exit(3); "
        f"import {', '.join(packages[1:])}; print({versions} platform.machine(), platform.processor())"
    )
    result = device.quick(f"{shlex.quote(device.python)} -c {shlex.quote(check)}")
    if result.returncode == 255:
        raise device.unreachable(result)
    if result.returncode == 3:
        missing = result.stderr.strip().split()
        raise BenchmarkError(
            f"{device.destination}: missing package on the device: {', '.join(missing)} "
            f"(pip install {' '.join(missing)})"
        )
    if result.returncode != 0:
        raise device.failed(result)
    return result.stdout.strip()
