"""Latency on a remote edge device over SSH, with the system's OpenSSH client.

The model, the inputs (as .npz), the settings and the single-file runner are copied into a fresh
temporary folder on the device; the device's Python runs the runner; the raw samples and the
device's fingerprint come back and the host computes the statistics. Host keys are checked the
normal way (known_hosts) and BatchMode forbids password prompts.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from edgeport.benchmarks import remote_runner
from edgeport.benchmarks.latency import BenchResult, BenchSettings, file_sha256
from edgeport.errors import BenchmarkError, ConfigError

CONNECT_TIMEOUT_S = 10
RUN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class RemoteTarget:
    user: str | None
    host: str
    port: int
    python: str = "python3"
    options: tuple[str, ...] = ()  # extra `-o KEY=VALUE` for ssh/scp (IdentityFile, UserKnownHostsFile, ...)

    @classmethod
    def parse(cls, url: str, python: str = "python3", options: tuple[str, ...] = ()) -> "RemoteTarget":
        parsed = urlparse(url)
        if parsed.scheme != "ssh" or not parsed.hostname or parsed.path not in ("", "/"):
            raise ConfigError(f"--remote expects ssh://user@host[:port], got {url!r}")
        try:
            port = parsed.port or 22
        except ValueError as exc:
            raise ConfigError(f"--remote {url!r}: bad port") from exc
        for option in options:
            if "=" not in option:
                raise ConfigError(f"--ssh-option expects KEY=VALUE, got {option!r}")
        return cls(parsed.username, parsed.hostname, port, python, tuple(options))

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _common(self) -> list[str]:
        args = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        for option in self.options:
            args += ["-o", option]
        return args

    def ssh(self, command: str, timeout: float = RUN_TIMEOUT_S, stdin: bytes | None = None):
        return _call(["ssh", *self._common(), "-p", str(self.port), self.destination, command], timeout, self, stdin)

    def copy(self, files: list[Path], folder: str) -> None:
        """Stream each file through ssh into ``folder``: needs only a shell on the device (no scp/sftp)."""
        for file in files:
            target = shlex.quote(f"{folder}/{file.name}")
            result = self.ssh(f"cat > {target}", stdin=file.read_bytes())
            if result.returncode != 0:
                raise BenchmarkError(f"copying {file.name} to {self.destination} failed: "
                                     f"{_last_line(result.stderr)}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _call(args: list[str], timeout: float, target: RemoteTarget, stdin: bytes | None = None):
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, input=stdin if stdin is not None else b"")
        return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                           done.stderr.decode(errors="replace"))
    except FileNotFoundError as exc:
        raise BenchmarkError(f"{args[0]} not found: install the OpenSSH client") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{target.destination}: no answer within {timeout:.0f} s") from exc


def measure_remote(model: str | Path, target: RemoteTarget, settings: BenchSettings,
                   inputs: dict[str, np.ndarray]) -> BenchResult:
    """Run the benchmark on ``target`` and return a BenchResult with the device's fingerprint."""
    if settings.provider != "cpu":
        raise ConfigError("remote benchmarks use the device's CPU provider; --provider must be cpu")
    model = Path(model)
    probe = target.ssh("mktemp -d", timeout=CONNECT_TIMEOUT_S * 3)
    if probe.returncode != 0:
        raise BenchmarkError(f"cannot reach {target.destination} over ssh (port {target.port}): "
                             f"{_last_line(probe.stderr)}")
    folder = probe.stdout.strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            buffer = io.BytesIO()
            np.savez(buffer, **inputs)
            (tmp_path / "inputs.npz").write_bytes(buffer.getvalue())
            (tmp_path / "settings.json").write_text(json.dumps(asdict(settings)))
            runner = tmp_path / "edgeport_runner.py"
            runner.write_text(Path(remote_runner.__file__).read_text())
            target.copy([model, runner, tmp_path / "inputs.npz", tmp_path / "settings.json"], folder)
        remote_model = f"{folder}/{model.name}"
        command = " ".join(shlex.quote(part) for part in (
            target.python, f"{folder}/edgeport_runner.py", remote_model, f"{folder}/settings.json",
            f"{folder}/inputs.npz"))
        result = target.ssh(command)
    finally:
        target.ssh(f"rm -rf {shlex.quote(folder)}", timeout=CONNECT_TIMEOUT_S * 3)
    if result.returncode == 127:
        raise BenchmarkError(f"{target.destination}: {target.python!r} not found on the device")
    if result.returncode != 0:
        raise BenchmarkError(f"{target.destination}: {_last_line(result.stderr)}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{target.destination}: the runner's answer is not JSON ({exc})") from exc
    return BenchResult(str(model), file_sha256(model),
                       {**asdict(settings), "inputs": "given", "remote": f"ssh://{target.destination}:{target.port}"},
                       data["environment"], data["samples_ms"], session_create_ms=data["session_create_ms"],
                       first_inference_ms=data["first_inference_ms"], peak_rss_mb=data["peak_rss_mb"])


def probe_remote(target: RemoteTarget) -> str:
    """Fail early, before any work, when the device is unreachable or lacks numpy/onnxruntime.

    Returns a line identifying the device's software and machine (onnxruntime version, machine, CPU).
    """
    check = ("import importlib.util as u, sys, platform; m = [p for p in ('numpy', 'onnxruntime') "
             "if u.find_spec(p) is None]; print(*m, file=sys.stderr) if m else None; m and sys.exit(3); "
             "import onnxruntime; print(onnxruntime.__version__, platform.machine(), platform.processor())")
    result = target.ssh(f"{shlex.quote(target.python)} -c {shlex.quote(check)}", timeout=CONNECT_TIMEOUT_S * 3)
    if result.returncode == 255:
        raise BenchmarkError(f"cannot reach {target.destination} over ssh (port {target.port}): "
                             f"{_last_line(result.stderr)}")
    if result.returncode == 127:
        raise BenchmarkError(f"{target.destination}: {target.python!r} not found on the device")
    if result.returncode == 3:
        missing = result.stderr.strip().split()
        raise BenchmarkError(f"{target.destination}: missing package on the device: {', '.join(missing)} "
                             f"(pip install {' '.join(missing)})")
    if result.returncode != 0:
        raise BenchmarkError(f"{target.destination}: {_last_line(result.stderr)}")
    return result.stdout.strip()
