"""What may reach the local ``ssh`` command line: the ssh:// URL, the --remote-python path and an
allowlist of ``-o KEY=VALUE`` options with checked values.

ssh itself can run local commands: ``-o ProxyCommand=...`` (and LocalCommand, KnownHostsCommand, Match
exec...) runs a shell command on this machine, and ssh reads options even *after* the destination, so a
remote command or destination starting with ``-`` becomes an option. Hence: a short allowlist of ``-o``
keys with checked values, and a destination and remote Python that cannot start with ``-`` (ssh_device.py
adds ``--`` before the destination and quotes every remote word).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from edgeport.errors import ConfigError

# A user or host name never starts with '-' (ssh would read it as an option) and holds no shell
# metacharacters (a ProxyCommand or `Match exec` in the user's ~/.ssh/config expands %r and %h into
# a shell command, see CVE-2023-51385).
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*", re.ASCII)
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Why a value is refused, or None when it is fine.
Check = Callable[[str], str | None]


def _port(text: str) -> int | None:
    """The port in ``text`` if it is a plain decimal 1..65535 (urlparse reads ':0' as a falsy 0)."""
    if _DIGITS.fullmatch(text) and 1 <= int(text) <= 65535:
        return int(text)
    return None


def _host_ok(host: str) -> bool:
    return bool(NAME.fullmatch(host) or _IPV6.fullmatch(host))


def _jump_host(spec: str) -> str | None:
    """Why one ProxyJump hop ``[ssh://][user@]host[:port]`` is refused, or None when it is fine.

    ssh turns ProxyJump into a nested `ssh ... host` command line run through the local shell, so
    each part must be a plain name: no leading '-', no quotes, spaces or other shell syntax.
    """
    rest = spec[len("ssh://") :] if spec.startswith("ssh://") else spec
    user, _, hostport = rest.rpartition("@")
    if user and not NAME.fullmatch(user):
        return f"bad user {user!r}"
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host):
            return f"bad host {hostport!r}"
        port = tail[1:] if tail.startswith(":") else (None if not tail else "")
    else:
        host, colon, port = hostport.partition(":")
        port = port if colon else None
        if not NAME.fullmatch(host):
            return f"bad host {host!r}"
    if port is not None and _port(port) is None:
        return f"port must be 1..65535, got {port!r}"
    return None


def _check_path(value: str) -> str | None:
    return None if value.strip() else "expects a file path"


def _check_choice(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value.lower() in choices else f"expects one of {', '.join(choices)}"

    return check


def _check_count(minimum: int) -> Check:
    def check(value: str) -> str | None:
        return None if _DIGITS.fullmatch(value) and int(value) >= minimum else f"expects a whole number >= {minimum}"

    return check


def _check_port(value: str) -> str | None:
    return None if _port(value) is not None else "port must be 1..65535"


def _check_user(value: str) -> str | None:
    return None if NAME.fullmatch(value) else "expects a user name (letters, digits, . _ -; not starting with -)"


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
ALLOWED_SSH_OPTIONS: dict[str, Check] = {
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
    if CONTROL.search(value):
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


def parse_ssh_url(url: str) -> tuple[str | None, str, int | None]:
    """(user, host, port or None) of ssh://[user@]host[:port], checked for what ssh would misread."""
    expected = f"--remote expects ssh://user@host[:port], got {url!r}"
    # urlsplit silently drops tabs and newlines, so look before it does.
    if CONTROL.search(url):
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
        if not NAME.fullmatch(userinfo):
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
        if not NAME.fullmatch(host):
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
    if CONTROL.search(python):
        raise ConfigError(f"--remote-python must not contain a newline, NUL or other control character, got {python!r}")
    if python.startswith("-"):
        raise ConfigError(
            f"--remote-python must be a path or name such as python3 or /usr/bin/python3, "
            f"not start with '-', got {python!r}"
        )
    return python
