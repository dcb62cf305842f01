"""Shared pieces of the bad-input suite: the files a hostile or careless user points edgeport at.

Each test file here covers one family of defects (security, data safety, silent wrong results,
clear errors, usability, statistics, reproducibility); every case runs the real command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main


@pytest.fixture(scope="session")
def cnn_files(tmp_path_factory, fp32_onnx, digits16) -> Path:
    """A folder with a small trained CNN as fp32 ONNX (model.onnx), calib.npz (x) and val.npz (x, y).

    Tests that modify files copy them first; the folder itself is shared by the session.
    """
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "model.onnx").write_bytes(Path(fp32_onnx).read_bytes())
    np.savez(folder / "calib.npz", x=digits16.train.x[:64])
    np.savez(folder / "val.npz", x=digits16.val.x[:96], y=digits16.val.y[:96])
    return folder


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``edgeport ARGS`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    """The single `error: ...` line a refused command prints (and nothing else, no traceback)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err, err
    return lines[-1]


def refused(code: int, err: str, *names: str) -> str:
    """The one `error:` line of a command refused with exit 2; it must name each of ``names``."""
    assert code == 2, err
    line = one_line_error(err)
    for name in names:
        assert name in line, (name, line)
    return line


def run_unprivileged(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``edgeport ARGS`` in a subprocess for which file permissions hold.

    Root ignores them (CAP_DAC_OVERRIDE), so as root the child drops the capabilities that override
    file permissions from its bounding set before it starts: it keeps uid 0 (and so can still read
    the root-owned interpreter) but a 0555 folder or 0444 file now refuses it, as for any user.
    Skips the test when the capabilities cannot be dropped here.
    """
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    preexec = _drop_permission_overrides if os.geteuid() == 0 else None
    done = subprocess.run(
        [sys.executable, "-m", "edgeport.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )
    if "edgeport-test: cannot drop capabilities" in done.stderr:
        pytest.skip("cannot drop root's file-permission capabilities in this environment")
    return done


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER, _CAP_LINUX_IMMUTABLE = 1, 2, 3, 9


def _drop_permission_overrides() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER, _CAP_LINUX_IMMUTABLE):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            os.write(2, b"edgeport-test: cannot drop capabilities\n")
            os._exit(99)


@pytest.fixture
def shared_tmp(tmp_path_factory) -> Path:
    """A folder every user can enter and write (pytest's own tmp folders are private to root)."""
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    folder = Path(__import__("tempfile").mkdtemp(dir=base, prefix="edgeport-bad-input-"))
    folder.chmod(0o777)
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
