"""Security: `--remote`, `--remote-python` and `--ssh-option` must never make ssh run a local command.

OpenSSH runs local shell commands for ProxyCommand, LocalCommand, KnownHostsCommand, `Match exec`...,
and it reads options even after the destination, so a remote Python or a destination starting with
'-' becomes an option. Every refusal below carries a payload that would create a file on this
machine if it reached ssh; each test asserts the file is absent, the exit code is 2 and stderr is
one `error:` line naming the offending option. The board (pi@board.local) does not exist: nothing
here needs a network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from edgeport.benchmarks.remote import ALLOWED_SSH_OPTIONS, RemoteTarget
from edgeport.errors import ConfigError
from tests.bad_input.conftest import refused, run_cli
from tests.benchmarks.test_remote import sshd  # noqa: F401  (a real sshd on 127.0.0.1 with throwaway keys)
from tests.helpers import tiny_config

BOARD = "ssh://pi@board.local"


def _bench(capsys, cnn_files, *args):
    return run_cli(capsys, "bench", cnn_files / "model.onnx", "--iterations", 10, "--quiet", *args)


# Each payload, if ssh ever saw it, would create the file {pwned} on this machine.
SSH_OPTION_ATTACKS = [
    (["ProxyCommand=touch {pwned}"], "ProxyCommand"),
    (["proxycommand=touch {pwned}"], "proxycommand"),  # ssh keys are case-insensitive
    (["PermitLocalCommand=yes", "LocalCommand=touch {pwned}"], "PermitLocalCommand"),
    (["LocalCommand=touch {pwned}", "PermitLocalCommand=yes"], "LocalCommand"),
    (["ProxyCommand touch {pwned}"], "ProxyCommand"),  # ssh also reads `KEY VALUE`
    (["KnownHostsCommand=touch {pwned}"], "KnownHostsCommand"),
    (['Match exec "touch {pwned}"'], "Match"),
    (["IdentityFile=/x\nProxyCommand=touch {pwned}"], "IdentityFile"),  # a second config line
    (["ProxyJump=-oProxyCommand=touch {pwned}"], "ProxyJump"),  # the nested ssh would read an option
    (["ProxyJump=jump;touch {pwned}"], "ProxyJump"),  # the nested ssh runs through the local shell
]


@pytest.mark.parametrize("options, key", SSH_OPTION_ATTACKS, ids=[key for _, key in SSH_OPTION_ATTACKS])
def test_bench_refuses_ssh_options_that_run_local_commands(capsys, cnn_files, tmp_path, options, key):
    pwned = tmp_path / "pwned"
    args = [word for option in options for word in ("--ssh-option", option.format(pwned=pwned))]
    code, out, err = _bench(capsys, cnn_files, "--remote", BOARD, *args)
    line = refused(code, err, "--ssh-option", key)
    assert not pwned.exists(), "ssh ran the payload on this machine"
    assert out == ""
    if "not allowed" in line:
        assert "allowed keys: " + ", ".join(ALLOWED_SSH_OPTIONS) in line


def test_remote_python_starting_with_a_dash_is_refused(capsys, cnn_files, tmp_path):
    # Without `--`, ssh parses the remote command after the destination as -oProxyCommand=... .
    pwned = tmp_path / "pwned"
    code, _, err = _bench(capsys, cnn_files, "--remote", BOARD, "--remote-python", f"-oProxyCommand=touch {pwned}")
    refused(code, err, "--remote-python", "'-'")
    assert not pwned.exists()


@pytest.mark.parametrize(
    "python, expected", [("", "got nothing"), ("python3\ntouch x", "newline"), ("python3\x00", "NUL")]
)
def test_remote_python_empty_or_multiline_is_refused(capsys, cnn_files, python, expected):
    code, _, err = _bench(capsys, cnn_files, "--remote", BOARD, "--remote-python", python)
    refused(code, err, "--remote-python", expected)


@pytest.mark.parametrize(
    "url, part",
    [
        ("ssh://-oProxyCommand=touch pwned@board.local", "user"),  # user@host would start with '-'
        ("ssh://-oProxyCommand=touch pwned", "host"),
        ("ssh://pi@board;touch pwned", "host"),  # shell syntax reaches %h in a user's ProxyCommand
    ],
)
def test_destination_that_ssh_would_read_as_an_option_is_refused(capsys, cnn_files, tmp_path, monkeypatch, url, part):
    # The payload cannot hold a '/', so it writes into the working folder: that folder must stay empty.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = _bench(capsys, cnn_files, "--remote", url)
    refused(code, err, "--remote", f"the {part} must be")
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("port", ["0", "65536", "99999", "22x", ""])
def test_bad_port_is_refused_at_parse_time(capsys, cnn_files, port):
    # urlparse reads ':0' as port 0, which `parsed.port or 22` silently turned into 22.
    code, _, err = _bench(capsys, cnn_files, "--remote", f"{BOARD}:{port}")
    line = refused(code, err, "--remote", "port must be 1..65535, got")
    assert line.endswith(f"got {port or 'nothing'}")
    assert "cannot reach" not in line


def test_password_in_url_and_contradicting_port_are_refused(capsys, cnn_files):
    code, _, err = _bench(capsys, cnn_files, "--remote", "ssh://pi:secret@board.local")
    refused(code, err, "--remote", "password")
    code, _, err = _bench(capsys, cnn_files, "--remote", f"{BOARD}:2222", "--ssh-option", "Port=2200")
    refused(code, err, "Port=2200", "2222")


@pytest.mark.parametrize("option", ["ProxyCommand=touch {pwned}", "ProxyCommand touch {pwned}"])
def test_search_refuses_before_any_work(capsys, tmp_path, option):
    pwned = tmp_path / "pwned"
    config = tiny_config(tmp_path, '"quantize.backend" = ["none"]')
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "search",
        "--config",
        config,
        "--out",
        out,
        "--quiet",
        "--remote",
        BOARD,
        "--ssh-option",
        option.format(pwned=pwned),
    )
    refused(code, err, "--ssh-option", "ProxyCommand")
    assert not pwned.exists()
    assert not out.exists(), "the search created its folder or cache before refusing --ssh-option"


def test_search_refuses_remote_python_and_port_0(capsys, tmp_path):
    pwned = tmp_path / "pwned"
    config = tiny_config(tmp_path, '"quantize.backend" = ["none"]')
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "search",
        "--config",
        config,
        "--out",
        out,
        "--quiet",
        "--remote",
        BOARD,
        "--remote-python",
        f"-oProxyCommand=touch {pwned}",
    )
    refused(code, err, "--remote-python")
    code, _, err = run_cli(capsys, "search", "--config", config, "--out", out, "--quiet", "--remote", f"{BOARD}:0")
    refused(code, err, "--remote", "port must be 1..65535, got 0")
    assert not pwned.exists() and not out.exists()


# -- what is allowed still works, and the ssh command line is safe by construction --------------------


def test_allowed_options_parse_case_insensitively_into_a_safe_argv():
    target = RemoteTarget.parse(
        BOARD,
        "/opt/py 3/bin/python3",
        (
            "port=2222",
            "IdentityFile=/x",
            "StrictHostKeyChecking=yes",
            "identitiesonly=yes",
            "UserKnownHostsFile=/k/known_hosts /k/more_hosts",  # ssh takes several files, space-separated
            "ProxyJump=jump@bastion.example:2200,ssh://[::1]:22",
            "ConnectTimeout=30",
            "ServerAliveInterval=15",
            "LogLevel=ERROR",
            "HostKeyAlias=board",
        ),
    )
    assert (target.user, target.host, target.port) == ("pi", "board.local", 2222)
    assert target.url == "ssh://pi@board.local:2222" and target.connect_timeout == 30
    argv = target.argv("echo hi")
    assert argv[-3:] == ["--", "pi@board.local", "echo hi"], argv
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]
    options = [argv[i + 1] for i, word in enumerate(argv[:-3]) if word == "-o"]
    assert options == [
        "BatchMode=yes",
        "IdentityFile=/x",
        "StrictHostKeyChecking=yes",
        "IdentitiesOnly=yes",
        "UserKnownHostsFile=/k/known_hosts /k/more_hosts",
        "ProxyJump=jump@bastion.example:2200,ssh://[::1]:22",
        "ConnectTimeout=30",
        "ServerAliveInterval=15",
        "LogLevel=ERROR",
        "HostKeyAlias=board",
        "ConnectTimeout=10",
    ]  # ours last: ssh keeps the first value, the user's 30
    assert "Port=2222" not in options and argv[argv.index("-p") + 1] == "2222"


def test_user_option_folds_into_the_destination_and_conflicts_are_refused():
    assert RemoteTarget.parse("ssh://board.local", options=("User=pi",)).destination == "pi@board.local"
    with pytest.raises(ConfigError, match="User=root contradicts"):
        RemoteTarget.parse(BOARD, options=("User=root",))


@pytest.mark.skipif(not shutil.which("ssh"), reason="needs the OpenSSH client")
def test_real_ssh_reads_nothing_after_the_destination_as_an_option():
    # `ssh -G` prints the configuration ssh would use and connects nowhere. A remote command that
    # looks like an option must stay a remote command thanks to `--` (without it ssh would set
    # proxycommand); the allowlisted options must be spelled so that ssh really applies them.
    target = RemoteTarget.parse(BOARD, options=("Port=2222", "IdentityFile=/x", "StrictHostKeyChecking=yes"))
    argv = target.argv("-oProxyCommand=touch /nonexistent/pwned")
    shown = subprocess.run(["ssh", "-G", "-F", "/dev/null", *argv[1:]], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    config = dict(line.split(" ", 1) for line in shown.stdout.splitlines() if " " in line)
    assert "proxycommand" not in config
    assert (config["user"], config["hostname"], config["port"]) == ("pi", "board.local", "2222")
    assert config["identityfile"] == "/x" and config["stricthostkeychecking"] == "true"
    assert config["batchmode"] == "yes"
    unsafe = subprocess.run(
        ["ssh", "-G", "-F", "/dev/null", *[w for w in argv[1:] if w != "--"]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "proxycommand touch /nonexistent/pwned" in unsafe.stdout  # the attack `--` stops is real


def test_allowed_options_reach_a_real_sshd(sshd, capsys, cnn_files):  # noqa: F811 (the imported fixture)
    # Port and User given as options (not in the URL) and a lower-case key must still reach the
    # device: the allowlist refuses commands, not the options people need to log in.
    folder = sshd.folder
    options = [
        f"port={sshd.port}",
        f"User={sshd.user}",
        f"IdentityFile={folder / 'user_key'}",
        f"UserKnownHostsFile={folder / 'known_hosts'}",
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=yes",
        "ConnectTimeout=20",
        "ServerAliveInterval=15",
    ]
    code, out, err = run_cli(
        capsys,
        "bench",
        cnn_files / "model.onnx",
        "--iterations",
        20,
        "--warmup",
        2,
        "--quiet",
        "--json",
        "--remote",
        "ssh://127.0.0.1",
        "--remote-python",
        sys.executable,
        *[word for option in options for word in ("--ssh-option", option)],
    )
    assert code == 0, err
    result = json.loads(out)["results"][0]
    assert result["settings"]["remote"] == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    assert len(result["samples_ms"]) == 20
