"""Real OpenSSH daemons on 127.0.0.1 with throwaway keys: the remote devices of the tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def skip_without_openssh() -> None:
    if not Path(SSHD).exists() or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("no OpenSSH server/client on this machine (.ci/run installs openssh-server)")


@dataclass
class Daemon:
    """One sshd: its port, its folder (keys, known_hosts) and the user it lets in."""

    port: int
    folder: Path
    user: str
    process: subprocess.Popen

    def __getitem__(self, key: str):  # the dict the older tests read: sshd.port, sshd.folder
        return getattr(self, key)

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def ssh_options(self) -> list[str]:
        return [
            f"IdentityFile={self.folder / 'user_key'}",
            f"UserKnownHostsFile={self.folder / 'known_hosts'}",
            "IdentitiesOnly=yes",
        ]

    def kill(self) -> None:
        """The device dies: the daemon and every session it serves (a runner included), at once."""
        for pid in [*descendants(self.process.pid), self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def start_sshd(folder: Path) -> Daemon:
    """An sshd on a free loopback port that lets this user in with a key of its own."""
    skip_without_openssh()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin yes\nStrictModes no\nUsePAM no\nMaxStartups 30\n"
        # a classic key exchange: the post-quantum default costs a tenth of a second per connection here
        "KexAlgorithms curve25519-sha256\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.skip(f"sshd did not start: {process.stderr.read().decode()[-300:]}")
            time.sleep(0.1)
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    return Daemon(port, folder, user, process)


def dying_python(path: Path, daemon: Daemon, at_run: int, python: str = sys.executable) -> str:
    """A "Python" for ``daemon``'s device that is this one, except that when the device's runner starts for
    the ``at_run``-th time the device dies: its sshd and every session it serves (that runner included) are
    killed at once, as when a board loses power."""
    count = path.with_suffix(".count")
    pid_file = daemon.folder / "sshd.pid"
    path.write_text(
        f"""#!{python}
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
count = Path({str(count)!r})
runs = int(count.read_text()) if count.exists() else 0
if any(word.endswith("edgeport_runner.py") for word in sys.argv):
    runs += 1
    count.write_text(str(runs))
if runs == {at_run}:
    from tests.sshd import descendants
    master = int(Path({str(pid_file)!r}).read_text())
    for pid in [*descendants(master), master]:
        os.kill(pid, signal.SIGKILL)
os.execv({python!r}, [{python!r}, *sys.argv[1:]])
"""
    )
    path.chmod(0o755)
    return str(path)


def devices_entry(
    name: str, daemon: Daemon, python: str = sys.executable, port: int | None = None, tags: str = ""
) -> str:
    """One [devices.NAME] table of a devices file for ``daemon`` (``port``: another port, where nothing listens)."""
    options = ", ".join(f'"{o}"' for o in daemon.ssh_options())
    url = daemon.url if port is None else f"ssh://{daemon.user}@127.0.0.1:{port}"
    return f'[devices.{name}]\nurl = "{url}"\npython = "{python}"\nssh_options = [{options}]\ntags = {{ {tags} }}\n'
