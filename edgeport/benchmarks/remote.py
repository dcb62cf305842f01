"""Latency on a remote edge device over SSH (the connection itself: ssh_device.py; what may reach the
ssh command line: ssh_options.py).

The model, the inputs (as .npz), the settings and the single-file runner (remote_runner.py, sent as
its source text) are unpacked into a fresh temporary folder on the device (one ssh connection); the
device's Python runs the runner (a second one), whose shell removes the folder; the raw samples and the
device's fingerprint come back and the host computes the statistics.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks import device_fingerprint, remote_runner, telemetry
from edgeport.benchmarks.records import ONNXRUNTIME, BenchResult, BenchSettings
from edgeport.benchmarks.remote_answer import check_answer, check_reading
from edgeport.benchmarks.runner_files import INPUTS, SETTINGS, external_data, runner_files
from edgeport.benchmarks.session import Feeds, Shapes, create_session, synthesize_inputs
from edgeport.benchmarks.ssh_device import SSH_ERROR, RemoteDevice
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
    "measure_remote_models",
    "probe_remote",
    "remote_telemetry",
]

_RUNNER = "edgeport_runner.py"


# Runs on the device (its Python, nothing else needed): unpacks the archive on stdin into a fresh temporary
# folder and prints the folder. Only plain files with plain names; the folder goes if unpacking fails.
_UNPACK = """\
import os, shutil, sys, tarfile, tempfile
folder = tempfile.mkdtemp(prefix="edgeport-")
try:
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
        for member in archive:
            if member.isfile() and "/" not in member.name and member.name not in (".", ".."):
                with open(os.path.join(folder, member.name), "wb") as out:
                    shutil.copyfileobj(archive.extractfile(member), out)
except BaseException:
    shutil.rmtree(folder, ignore_errors=True)
    raise
print(folder)
"""


def _archive(model: Path, settings: BenchSettings, inputs: Mapping[str, np.ndarray], extra: Mapping[str, Any]) -> bytes:
    """The model (with its external data), the runner, the inputs and the settings (with ``extra``: a
    footprint's) as one tar stream."""
    # watch_stdin: the runner stops when this side's ssh goes away (see _runner_command)
    written = {**settings.to_dict(), **extra, "watch_stdin": True}
    files = {
        model.name: model.read_bytes(),
        **external_data(model),
        # The runner travels as its own source text, with the two files it imports (nothing else of edgeport).
        _RUNNER: Path(remote_runner.__file__).read_bytes(),
        "device_fingerprint.py": Path(device_fingerprint.__file__).read_bytes(),
        "telemetry.py": Path(telemetry.__file__).read_bytes(),
        **runner_files(inputs, written),
    }
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def _upload(
    device: RemoteDevice,
    model: Path,
    settings: BenchSettings,
    inputs: Mapping[str, np.ndarray],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Everything the runner needs, in a fresh temporary folder on the device, in one ssh connection (each
    connection costs a key exchange: a third of a second on a small board); the folder, checked."""
    unpack = f"{shlex.quote(device.python)} -c {shlex.quote(_UNPACK)}"
    result = device.ssh(unpack, stdin=_archive(model, settings, inputs, extra or {}))
    if result.returncode == SSH_ERROR:  # the first connection of a measurement: the device is out of reach
        raise device.unreachable(result)
    if result.returncode != 0:
        raise device.failed(result)
    folder = result.stdout.strip()
    # The folder is pasted (quoted) into the next commands: an answer that is not one absolute path
    # would put the runner's files, and the final rm -rf, somewhere else.
    if not folder.startswith("/") or CONTROL.search(folder):
        raise BenchmarkError(f"{device.destination}: the upload answered {folder[:200]!r}, not a folder path")
    return folder


def _remove(device: RemoteDevice, folder: str) -> None:
    """The folder gone from the device, when the runner's own clean-up may not have run (it failed to start)."""
    device.quick(f"rm -rf -- {shlex.quote(folder)}")


def _runner_command(device: RemoteDevice, folder: str, model: Path) -> str:
    """The device's command: the runner under ``sh``, which removes ``folder`` however the runner ends.

    The host's own `rm -rf` cannot run when edgeport is killed (SIGKILL); the ssh it leaves then sees
    end-of-file on its stdin and passes it on, the runner stops on it (remote_runner.py: watch_stdin),
    and this trap removes the folder. `sh -c` because the login shell may not be a POSIX shell.
    """
    words = (device.python, f"{folder}/{_RUNNER}", f"{folder}/{model.name}", f"{folder}/{SETTINGS}")
    run = " ".join(shlex.quote(word) for word in (*words, f"{folder}/{INPUTS}"))
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


def _run_runner(
    device: RemoteDevice, folder: str, model: Path, settings: BenchSettings, sustained: bool
) -> dict[str, Any]:
    """Run the uploaded runner on the device; its JSON answer, checked against ``settings``."""
    return check_answer(_runner_answer(device, folder, model), device.url, settings, sustained)


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
    folder = _upload(device, model, settings, inputs, extra)
    try:
        return _runner_answer(device, folder, model)  # its shell removes the folder however the runner ends
    except BaseException:
        _remove(device, folder)
        raise


def measure_remote(
    model: str | Path, device: RemoteDevice, settings: BenchSettings, inputs: dict[str, np.ndarray]
) -> BenchResult:
    """Run the benchmark on ``device`` and return a BenchResult with the device's fingerprint."""
    return _measured(model, device, settings, inputs)[0]


def _measured(
    model: str | Path, device: RemoteDevice, settings: BenchSettings, inputs: dict[str, np.ndarray]
) -> tuple[BenchResult, dict[str, Any] | None]:
    """The BenchResult, and with ``settings.duration_s`` (`bench --sustained`: measured for that long, in
    equal rounds) the device's own telemetry before, during and after the run."""
    if settings.provider != "cpu":
        raise ConfigError("remote benchmarks use the device's CPU provider; --provider must be cpu")
    model = Path(model)
    sustained = {"sustained_s": settings.duration_s} if settings.duration_s else {}
    folder = _upload(device, model, settings, inputs, sustained)
    try:
        # its shell removes the folder however it ends
        data = _run_runner(device, folder, model, settings, bool(sustained))
    except BaseException:
        _remove(device, folder)
        raise
    result = BenchResult(
        str(model),
        sha256_file(model),
        {
            **settings.to_dict(),
            "inputs": "given",
            "remote": device.url,
            # checked by check_answer: exactly the rounds asked for (sustained: as many as the time allowed)
            "round_sizes": data["round_sizes"],
            "precision_used": data.get("precision_used"),
        },
        data["environment"],
        data["samples_ms"],
        session_create_ms=data["session_create_ms"],
        first_inference_ms=data["first_inference_ms"],
        peak_rss_mb=data["peak_rss_mb"],
    )
    return result, data.get("telemetry")


def measure_remote_models(
    models: Mapping[str, Path], settings: BenchSettings, feeds: Feeds | None, shapes: Shapes, device: RemoteDevice
) -> tuple[dict[str, BenchResult], dict[str, dict[str, Any]]]:
    """Each model on the device in turn, with inputs made here (the device needs no model parsing); with
    ``settings.duration_s`` (sustained) each model's telemetry from the device too."""
    measured, telemetry = {}, {}
    for label, path in models.items():
        inputs = (
            feeds
            if feeds is not None
            # synthesised from the model's signature as onnxruntime reads it: the host needs no OpenVINO
            else synthesize_inputs(create_session(path, settings, ONNXRUNTIME), settings.batch, settings.seed, shapes)
        )
        measured[label], readings = _measured(path, device, settings, dict(inputs))
        if readings is not None:
            telemetry[label] = readings
    return measured, telemetry


def remote_telemetry(device: RemoteDevice) -> dict[str, Any]:
    """The device's temperature, CPU frequency and throttle counters now: telemetry.py's read_telemetry,
    run there by its Python (the source travels on the command line), its answer checked."""
    script = Path(telemetry.__file__).read_text() + "\nimport json\nprint(json.dumps(read_telemetry()))\n"
    result = device.quick(f"{shlex.quote(device.python)} -c {shlex.quote(script)}")
    if result.returncode == SSH_ERROR:
        raise device.unreachable(result)
    if result.returncode != 0:
        raise device.failed(result)
    try:
        reading = json.loads(result.stdout)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BenchmarkError(f"{device.url}: the telemetry answer is not JSON ({exc})") from exc
    return check_reading(reading, device.url)


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
