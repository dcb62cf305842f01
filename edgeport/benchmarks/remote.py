"""Latency on a remote edge device over SSH, with the system's OpenSSH client.

The model, the inputs (as .npz), the settings and the single-file runner are copied into a fresh
temporary folder on the device; the device's Python runs the runner; the raw samples and the
device's fingerprint come back and the host computes the statistics. Host keys are checked the
normal way (known_hosts) and BatchMode forbids password prompts.

Everything that reaches the local ``ssh`` command line is checked first, because ssh itself can
run local commands: ``-o ProxyCommand=...`` (and LocalCommand, KnownHostsCommand, Match exec...)
runs a shell command on this machine, and ssh reads options even *after* the destination, so a
remote command or destination starting with ``-`` becomes an option. Hence: a short allowlist of
``-o`` keys with checked values, destination and remote Python that cannot start with ``-``,
``--`` before the destination, and every remote word quoted for the device's shell.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from edgeport.artifacts import sha256_file
from edgeport.benchmarks import remote_runner
from edgeport.benchmarks.latency import BenchResult, BenchSettings
from edgeport.errors import BenchmarkError, ConfigError

CONNECT_TIMEOUT_S = 10
RUN_TIMEOUT_S = 1800

# A user or host name never starts with '-' (ssh would read it as an option) and holds no shell
# metacharacters (a ProxyCommand or `Match exec` in the user's ~/.ssh/config expands %r and %h into
# a shell command, see CVE-2023-51385).
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*", re.ASCII)
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _port(text: str) -> int | None:
    """The port in ``text`` if it is a plain decimal 1..65535 (urlparse reads ':0' as a falsy 0)."""
    if _DIGITS.fullmatch(text) and 1 <= int(text) <= 65535:
        return int(text)
    return None


def _host_ok(host: str) -> bool:
    return bool(_NAME.fullmatch(host) or _IPV6.fullmatch(host))


def _jump_host(spec: str) -> str | None:
    """Why one ProxyJump hop ``[ssh://][user@]host[:port]`` is refused, or None when it is fine.

    ssh turns ProxyJump into a nested `ssh ... host` command line run through the local shell, so
    each part must be a plain name: no leading '-', no quotes, spaces or other shell syntax.
    """
    rest = spec[len("ssh://") :] if spec.startswith("ssh://") else spec
    user, _, hostport = rest.rpartition("@")
    if user and not _NAME.fullmatch(user):
        return f"bad user {user!r}"
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host):
            return f"bad host {hostport!r}"
        port = tail[1:] if tail.startswith(":") else (None if not tail else "")
    else:
        host, colon, port = hostport.partition(":")
        port = port if colon else None
        if not _NAME.fullmatch(host):
            return f"bad host {host!r}"
    if port is not None and _port(port) is None:
        return f"port must be 1..65535, got {port!r}"
    return None


def _check_path(value: str) -> str | None:
    return None if value.strip() else "expects a file path"


def _check_choice(*choices: str):
    def check(value: str) -> str | None:
        return None if value.lower() in choices else f"expects one of {', '.join(choices)}"

    return check


def _check_count(minimum: int):
    def check(value: str) -> str | None:
        return None if _DIGITS.fullmatch(value) and int(value) >= minimum else f"expects a whole number >= {minimum}"

    return check


def _check_port(value: str) -> str | None:
    return None if _port(value) is not None else "port must be 1..65535"


def _check_user(value: str) -> str | None:
    return None if _NAME.fullmatch(value) else "expects a user name (letters, digits, . _ -; not starting with -)"


def _check_host(value: str) -> str | None:
    return None if _host_ok(value) else "expects a host name (letters, digits, . _ -; not starting with -)"


def _check_jump(value: str) -> str | None:
    if value.lower() == "none":
        return None
    for hop in value.split(","):
        problem = _jump_host(hop)
        if problem:
            return f"expects [user@]host[:port][,...]: {problem}"
    return None


# The only `ssh -o` keys accepted (ssh matches keys case-insensitively, so do we). None of them can
# run a command or write anything but known_hosts: refused are ProxyCommand, LocalCommand,
# PermitLocalCommand, KnownHostsCommand, Match (exec), Include, ControlMaster/ControlPath (local
# sockets), LocalForward/DynamicForward, SendEnv... and every key not listed here.
ALLOWED_SSH_OPTIONS = {
    "Port": _check_port,  # another port (same as ssh://host:PORT)
    "User": _check_user,  # another user (same as ssh://USER@host)
    "IdentityFile": _check_path,  # the key to log in with (read only)
    "IdentitiesOnly": _check_choice("yes", "no"),  # offer only that key, not the agent's
    "ConnectTimeout": _check_count(1),  # seconds to wait for a slow board
    "UserKnownHostsFile": _check_path,  # the known_hosts file(s) to check the host key against
    "StrictHostKeyChecking": _check_choice("yes", "no", "ask", "accept-new", "off"),
    "ProxyJump": _check_jump,  # reach the board through a bastion (names checked above)
    "HostKeyAlias": _check_host,  # the name to look up in known_hosts (boards behind NAT)
    "ServerAliveInterval": _check_count(0),  # keepalive during long benchmarks
    "ServerAliveCountMax": _check_count(0),
    "ConnectionAttempts": _check_count(1),  # retry a board that is still booting
    "Compression": _check_choice("yes", "no"),  # faster model upload on slow links
    "LogLevel": _check_choice("quiet", "fatal", "error", "info", "verbose", "debug", "debug1", "debug2", "debug3"),
}
_ALLOWED_BY_LOWER = {key.lower(): key for key in ALLOWED_SSH_OPTIONS}
_OPTION = re.compile(r"([A-Za-z]+)=(.*)", re.ASCII | re.DOTALL)
_KEY = re.compile(r"[A-Za-z]+", re.ASCII)
# Paths may contain spaces (UserKnownHostsFile even takes several); every other value is a word.
_MAY_HAVE_SPACES = {"IdentityFile", "UserKnownHostsFile"}


def check_ssh_option(option: str) -> tuple[str, str]:
    """The (canonical key, value) of one --ssh-option KEY=VALUE; ConfigError when it is not allowed."""
    allowed = ", ".join(ALLOWED_SSH_OPTIONS)
    leading = _KEY.match(option)
    key = leading.group(0) if leading else ""
    canonical = _ALLOWED_BY_LOWER.get(key.lower())
    if key and canonical is None:
        raise ConfigError(
            f"--ssh-option {key}: not allowed (keys that run local commands, such as ProxyCommand, "
            f"are refused); allowed keys: {allowed}"
        )
    match = _OPTION.fullmatch(option)
    if match is None:
        # ssh also reads `KEY VALUE` and `KEY = VALUE`: accepting only KEY=VALUE with a key of letters
        # keeps the key we check the key ssh uses.
        raise ConfigError(
            f"--ssh-option {key or 'KEY'}: expects KEY=VALUE with a key of letters and no spaces "
            f"around '=' (allowed keys: {allowed}), got {option!r}"
        )
    value = match.group(2)
    if canonical is None:  # a match always has a key, and unknown keys were refused above
        raise ConfigError(f"--ssh-option {key!r}: not an allowed key; allowed keys: {allowed}")
    if _CONTROL.search(value):
        raise ConfigError(
            f"--ssh-option {canonical}: the value must not contain a newline, NUL or other control "
            f"character, got {value!r}"
        )
    if canonical not in _MAY_HAVE_SPACES and (value != value.strip() or " " in value):
        raise ConfigError(f"--ssh-option {canonical}: the value must be one word, got {value!r}")
    problem = ALLOWED_SSH_OPTIONS[canonical](value)
    if problem:
        raise ConfigError(f"--ssh-option {canonical}: {problem}, got {value!r}")
    return canonical, value


def _parse_url(url: str) -> tuple[str | None, str, int | None]:
    """(user, host, port or None) of ssh://[user@]host[:port], checked for what ssh would misread."""
    expected = f"--remote expects ssh://user@host[:port], got {url!r}"
    # urlsplit silently drops tabs and newlines, so look before it does.
    if _CONTROL.search(url):
        raise ConfigError(f"--remote must not contain a newline, NUL or other control character, got {url!r}")
    parsed = urlsplit(url)
    if (
        parsed.scheme != "ssh"
        or not parsed.netloc
        or parsed.path not in ("", "/")
        or parsed.query
        or parsed.fragment
        or "?" in url
        or "#" in url
    ):
        raise ConfigError(expected)
    userinfo, at, hostport = parsed.netloc.rpartition("@")
    user = None
    if at:
        if ":" in userinfo:
            raise ConfigError(
                f"--remote {url!r}: a password in the URL is never used (ssh runs with BatchMode=yes); "
                "log in with a key: --ssh-option IdentityFile=..."
            )
        if not _NAME.fullmatch(userinfo):
            raise ConfigError(
                f"--remote {url!r}: the user must be letters, digits, '.', '_' or '-' and must not "
                f"start with '-', got {userinfo!r}"
            )
        user = userinfo
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host) or (tail and not tail.startswith(":")):
            raise ConfigError(expected)
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text = hostport.partition(":")
        port_text = port_text if colon else None
        if not host:
            raise ConfigError(expected)
        if not _NAME.fullmatch(host):
            raise ConfigError(
                f"--remote {url!r}: the host must be letters, digits, '.', '_' or '-' and must not "
                f"start with '-', got {host!r}"
            )
    port = None
    if port_text is not None:
        port = _port(port_text)
        if port is None:
            raise ConfigError(f"--remote {url!r}: port must be 1..65535, got {port_text or 'nothing'}")
    return user, host, port


def check_remote_python(python: str) -> str:
    """The --remote-python path, refused when the device's shell or ssh could read it as something else."""
    if not python or not python.strip():
        raise ConfigError("--remote-python expects the path or name of Python on the device, got nothing")
    if _CONTROL.search(python):
        raise ConfigError(f"--remote-python must not contain a newline, NUL or other control character, got {python!r}")
    if python.startswith("-"):
        raise ConfigError(
            f"--remote-python must be a path or name such as python3 or /usr/bin/python3, "
            f"not start with '-', got {python!r}"
        )
    return python


@dataclass(frozen=True)
class RemoteTarget:
    user: str | None
    host: str
    port: int
    python: str = "python3"
    options: tuple[str, ...] = ()  # extra, allowlisted `-o KEY=VALUE` for ssh (IdentityFile, UserKnownHostsFile, ...)

    @classmethod
    def parse(cls, url: str, python: str = "python3", options: tuple[str, ...] = ()) -> RemoteTarget:
        user, host, port = _parse_url(url)
        python = check_remote_python(python)
        kept = []
        for option in options:
            key, value = check_ssh_option(option)
            # Port and User go into the target itself, so the -p and user@ we pass and the
            # target we report agree (ssh would otherwise let `-o User=` override user@host).
            if key == "Port":
                if port is not None and port != int(value):
                    raise ConfigError(f"--ssh-option Port={value} contradicts the port {port} in --remote {url!r}")
                port = int(value)
            elif key == "User":
                if user is not None and user != value:
                    raise ConfigError(f"--ssh-option User={value} contradicts the user {user!r} in --remote {url!r}")
                user = value
            else:
                kept.append(f"{key}={value}")
        return cls(user, host, port or 22, python, tuple(kept))

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def url(self) -> str:
        """ssh://[user@]host:port of the device actually reached (user and port from options included)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user}@{host}:{self.port}" if self.user else f"ssh://{host}:{self.port}"

    @property
    def connect_timeout(self) -> int:
        for option in self.options:
            key, _, value = option.partition("=")
            if key == "ConnectTimeout":
                return int(value)
        return CONNECT_TIMEOUT_S

    def _common(self) -> list[str]:
        # ssh keeps the first value it sees for each key: BatchMode goes first so nothing can turn
        # password prompts back on, the user's options (ConnectTimeout included) before our default.
        args = ["-o", "BatchMode=yes"]
        for option in self.options:
            args += ["-o", option]
        return args + ["-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]

    def argv(self, command: str) -> list[str]:
        """The ssh command line that runs ``command`` (already quoted for the device's shell) there.

        `--` ends ssh's options: without it ssh goes on reading options after the destination, so a
        command starting with '-' (e.g. `-oProxyCommand=...`) would run locally.
        """
        return ["ssh", *self._common(), "-p", str(self.port), "--", self.destination, command]

    def ssh(self, command: str, timeout: float = RUN_TIMEOUT_S, stdin: bytes | None = None):
        return _call(self.argv(command), timeout, self, stdin)

    def copy(self, files: list[Path], folder: str) -> None:
        """Stream each file through ssh into ``folder``: needs only a shell on the device (no scp/sftp)."""
        for file in files:
            target = shlex.quote(f"{folder}/{file.name}")
            result = self.ssh(f"cat > {target}", stdin=file.read_bytes())
            if result.returncode != 0:
                raise BenchmarkError(f"copying {file.name} to {self.destination} failed: {_last_line(result.stderr)}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _call(args: list[str], timeout: float, target: RemoteTarget, stdin: bytes | None = None):
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, input=stdin if stdin is not None else b"")
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        )
    except FileNotFoundError as exc:
        raise BenchmarkError(f"{args[0]} not found: install the OpenSSH client") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{target.destination}: no answer within {timeout:.0f} s") from exc


def measure_remote(
    model: str | Path, target: RemoteTarget, settings: BenchSettings, inputs: dict[str, np.ndarray]
) -> BenchResult:
    """Run the benchmark on ``target`` and return a BenchResult with the device's fingerprint."""
    if settings.provider != "cpu":
        raise ConfigError("remote benchmarks use the device's CPU provider; --provider must be cpu")
    model = Path(model)
    probe = target.ssh("mktemp -d", timeout=target.connect_timeout * 3)
    if probe.returncode != 0:
        raise BenchmarkError(
            f"cannot reach {target.destination} over ssh (port {target.port}): {_last_line(probe.stderr)}"
        )
    folder = probe.stdout.strip()
    # The folder is pasted (quoted) into the next commands: an answer that is not one absolute path
    # would put the files, and the final rm -rf, somewhere else.
    if not folder.startswith("/") or _CONTROL.search(folder):
        raise BenchmarkError(f"{target.destination}: `mktemp -d` answered {folder[:200]!r}, not a folder path")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            buffer = io.BytesIO()
            np.savez(buffer, **inputs)  # type: ignore[arg-type]  # numpy's stub types **kwds as its own options
            (tmp_path / "inputs.npz").write_bytes(buffer.getvalue())
            (tmp_path / "settings.json").write_text(json.dumps(asdict(settings)))
            runner = tmp_path / "edgeport_runner.py"
            runner.write_text(Path(remote_runner.__file__).read_text())
            target.copy([model, runner, tmp_path / "inputs.npz", tmp_path / "settings.json"], folder)
        remote_model = f"{folder}/{model.name}"
        command = " ".join(
            shlex.quote(part)
            for part in (
                target.python,
                f"{folder}/edgeport_runner.py",
                remote_model,
                f"{folder}/settings.json",
                f"{folder}/inputs.npz",
            )
        )
        result = target.ssh(command)
    finally:
        target.ssh(f"rm -rf -- {shlex.quote(folder)}", timeout=target.connect_timeout * 3)
    if result.returncode == 127:
        raise BenchmarkError(f"{target.destination}: {target.python!r} not found on the device")
    if result.returncode != 0:
        raise BenchmarkError(f"{target.destination}: {_last_line(result.stderr)}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{target.destination}: the runner's answer is not JSON ({exc})") from exc
    return BenchResult(
        str(model),
        sha256_file(model),
        {
            **asdict(settings),
            "inputs": "given",
            "remote": target.url,
            # checked against the sample count where used (rounds.round_sizes)
            "round_sizes": data.get("round_sizes"),
        },
        data["environment"],
        data["samples_ms"],
        session_create_ms=data["session_create_ms"],
        first_inference_ms=data["first_inference_ms"],
        peak_rss_mb=data["peak_rss_mb"],
    )


def probe_remote(target: RemoteTarget) -> str:
    """Fail early, before any work, when the device is unreachable or lacks numpy/onnxruntime.

    Returns a line identifying the device's software and machine (onnxruntime version, machine, CPU).
    """
    check = (
        "import importlib.util as u, sys, platform; m = [p for p in ('numpy', 'onnxruntime') "
        "if u.find_spec(p) is None]; print(*m, file=sys.stderr) if m else None; m and sys.exit(3); "
        "import onnxruntime; print(onnxruntime.__version__, platform.machine(), platform.processor())"
    )
    result = target.ssh(f"{shlex.quote(target.python)} -c {shlex.quote(check)}", timeout=target.connect_timeout * 3)
    if result.returncode == 255:
        raise BenchmarkError(
            f"cannot reach {target.destination} over ssh (port {target.port}): {_last_line(result.stderr)}"
        )
    if result.returncode == 127:
        raise BenchmarkError(f"{target.destination}: {target.python!r} not found on the device")
    if result.returncode == 3:
        missing = result.stderr.strip().split()
        raise BenchmarkError(
            f"{target.destination}: missing package on the device: {', '.join(missing)} "
            f"(pip install {' '.join(missing)})"
        )
    if result.returncode != 0:
        raise BenchmarkError(f"{target.destination}: {_last_line(result.stderr)}")
    return result.stdout.strip()
