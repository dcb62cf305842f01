"""Scratch folders in the temporary folder: removed on leaving, and a SIGKILLed process's removed by the next
one opened, while a live process's is kept (real processes, real signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from edgeport.core.scratch import SCRATCH, scratch_folder

# Opens what ``opening`` names in a child whose temporary folder is argv[1], prints the folder it got, then
# either kills itself with SIGKILL (no cleanup can run) or waits for its standard input to close.
_CHILD = textwrap.dedent(
    """
    import os, signal, sys, tempfile
    from contextlib import contextmanager
    from edgeport.benchmarks.openvino_runtime import _CACHE_DIR, compiled_models_cached
    tempfile.tempdir = sys.argv[1]
    with compiled_models_cached():
        print(_CACHE_DIR.get(), flush=True)
        if sys.argv[2] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.read()
    """
)


def _child(tmp: Path, how: str) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


@pytest.fixture
def tmp_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_scratch_folder_is_removed_on_leaving_even_on_an_error(tmp_dir):
    with pytest.raises(RuntimeError), scratch_folder("probe") as folder:
        assert folder.parent == tmp_dir and folder.name.startswith(f".{SCRATCH}-probe-")
        assert f"@{os.getpid()}-" in folder.name
        assert folder.stat().st_mode & 0o777 == 0o700  # a shared folder: ours alone, as mkdtemp makes them
        (folder / "model.onnx").write_bytes(b"x" * 1000)
        raise RuntimeError("a stage failed")
    assert list(tmp_dir.iterdir()) == []


def test_a_killed_process_s_openvino_cache_is_removed_by_the_next_scratch_folder(tmp_dir):
    killed, stale = _child(tmp_dir, "kill")
    assert killed.wait() == -signal.SIGKILL
    assert stale.is_dir() and stale.parent == tmp_dir  # SIGKILL: nothing could remove it
    (stale / "blob").write_bytes(b"compiled model")
    with scratch_folder("probe") as mine:
        assert not stale.exists()
        assert mine.is_dir()


def test_a_live_process_s_scratch_folder_is_kept(tmp_dir):
    live, folder = _child(tmp_dir, "wait")
    try:
        with scratch_folder("probe"):
            assert folder.is_dir()
    finally:
        assert live.stdin is not None
        live.stdin.close()
        assert live.wait() == 0
    assert not folder.exists()  # removed by its own process on leaving


def test_only_scratch_folders_are_removed_from_the_temporary_folder(tmp_dir):
    """A killed quantize's staging folder in the temporary folder is left to the next quantize there, which
    says so; other files are never touched."""
    killed, stale = _child(tmp_dir, "kill")
    killed.wait()
    other = tmp_dir / stale.name.replace(f".{SCRATCH}-openvino-cache-", ".edgeport-quantize-")
    os.rename(stale, other)
    user = tmp_dir / "edgeport-scratch-mine"
    user.mkdir()
    with scratch_folder("probe"):
        pass
    assert other.is_dir() and user.is_dir()
