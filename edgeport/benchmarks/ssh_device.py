"""A remote benchmark device reached with the system's OpenSSH client: the checked ssh command lines,
running a command there and streaming files to it.

Host keys are checked the normal way (known_hosts) and BatchMode forbids password prompts. Every
value that reaches the command line went through ssh_options.py first; here ``--`` ends ssh's options
before the destination and the caller quotes every remote word for the device's shell.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from edgeport.benchmarks.ssh_options import check_remote_python, check_ssh_option, parse_ssh_url
from edgeport.errors import BenchmarkError, ConfigError, DeviceUnreachable

CONNECT_TIMEOUT_S = 10
RUN_TIMEOUT_S = 1800
SSH_ERROR = 255  # ssh's own exit status: no connection, or the connection was lost

Completed = subprocess.CompletedProcess[str]


@dataclass(frozen=True)
class RemoteDevice:
    user: str | None
    host: str
    port: int
    python: str = "python3"
    options: tuple[str, ...] = ()  # extra, allowlisted `-o KEY=VALUE` for ssh (IdentityFile, UserKnownHostsFile, ...)

    @classmethod
    def parse(cls, url: str, python: str = "python3", options: tuple[str, ...] = ()) -> RemoteDevice:
        user, host, port = parse_ssh_url(url)
        python = check_remote_python(python)
        kept = []
        for option in options:
            key, value = check_ssh_option(option)
            # Port and User go into the device itself, so the -p and user@ we pass and the
            # device we report agree (ssh would otherwise let `-o User=` override user@host).
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

    def ssh(
        self, command: str, timeout: float = RUN_TIMEOUT_S, stdin: bytes | None = None, hold_stdin: bool = False
    ) -> Completed:
        """``command`` on the device. ``hold_stdin``: ssh's stdin is a pipe this process holds open until the
        command ends, so that the device's side sees end-of-file as soon as this process dies, even by
        SIGKILL (remote.py: the runner stops and its folder is removed)."""
        if hold_stdin:
            return _call_holding_stdin(self.argv(command), timeout, self)
        return _call(self.argv(command), timeout, self, stdin)

    def quick(self, command: str) -> Completed:
        """``command`` with the short timeout of a step that only has to connect (a probe, mktemp, rm)."""
        return self.ssh(command, timeout=self.connect_timeout * 3)

    def unreachable(self, result: Completed) -> DeviceUnreachable:
        return DeviceUnreachable(
            f"cannot reach {self.destination} over ssh (port {self.port}): {last_line(result.stderr)}"
        )

    def failed(self, result: Completed) -> BenchmarkError:
        """The error of a command that ran on the device and failed: its Python missing, or its last line;
        ssh's own status (the connection was lost while the command ran) is the device's failure."""
        if result.returncode == SSH_ERROR:
            return DeviceUnreachable(f"{self.destination}: connection lost: {last_line(result.stderr)}")
        if result.returncode == 127:
            return BenchmarkError(f"{self.destination}: {self.python!r} not found on the device")
        return BenchmarkError(f"{self.destination}: {last_line(result.stderr)}")


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _call_holding_stdin(args: list[str], timeout: float, device: RemoteDevice) -> Completed:
    # Only this process holds the write end (os.pipe's ends are not inherited by other children): when
    # it exits, however it exits, ssh reads end-of-file and forwards it to the device.
    read_end, write_end = os.pipe()
    try:
        return _call(args, timeout, device, read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def _call(args: list[str], timeout: float, device: RemoteDevice, stdin: bytes | int | None = None) -> Completed:
    """``args`` run to the end; ``stdin``: bytes to feed (default none), or a file descriptor to read."""
    try:
        if isinstance(stdin, int):
            done = subprocess.run(args, capture_output=True, timeout=timeout, stdin=stdin)
        else:
            done = subprocess.run(args, capture_output=True, timeout=timeout, input=stdin if stdin is not None else b"")
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        )
    except FileNotFoundError as exc:
        raise BenchmarkError(f"{args[0]} not found: install the OpenSSH client") from exc
    except subprocess.TimeoutExpired as exc:
        raise DeviceUnreachable(f"{device.destination}: no answer within {timeout:.0f} s") from exc
