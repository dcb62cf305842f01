"""Artifacts on disk: hashing, atomic writes and run folders.

A run folder is built under a hidden staging name and renamed into place only
after its manifest is written, so a folder named ``runs/<id>`` is always
complete and a failed run leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.errors import ArtifactError

ARTIFACT_KINDS = ("torch-state", "onnx-fp32", "onnx-int8", "torch-int8")
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A file produced by a stage, with its content hash."""

    path: Path
    kind: str
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ARTIFACT_KINDS:
            raise ArtifactError(f"artifact kind {self.kind!r} is not one of {', '.join(ARTIFACT_KINDS)}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, kind: str, **meta: Any) -> Artifact:
        path = Path(path)
        return cls(path=path, kind=kind, sha256=sha256_file(path), meta=dict(meta))

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def describe(self, relative_to: Path | None = None) -> dict[str, Any]:
        shown = self.path.relative_to(relative_to) if relative_to else self.path
        return {
            "path": str(shown),
            "kind": self.kind,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            **self.meta,
        }


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _probe_writable(folder: Path) -> None:
    # os.access answers for the real uid and ignores read-only mounts; creating a file is the proof.
    try:
        tempfile.NamedTemporaryFile(dir=folder, prefix=".edgeport-probe-", delete=True).close()
    except OSError as exc:
        raise ArtifactError(f"{folder}: folder is not writable ({exc.strerror or exc})") from exc


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove we can write into it, or raise ArtifactError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"output folder {str(path)!r} is not writable: {exc.strerror or exc}") from exc
    _probe_writable(path)
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file (links and relative paths resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return Path(a).resolve() == Path(b).resolve()


def check_output_file(path: str | os.PathLike, inputs: tuple = (), what: str = "output") -> Path:
    """Refuse, before any work, an output file that is one of the command's ``inputs``, a folder,
    in a missing or unwritable folder, or read-only."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path}: the {what} is a folder; give a file name")
    for source in inputs:
        if source is not None and Path(source).exists() and same_file(path, source):
            raise ArtifactError(f"{path}: the {what} is the input file {source}; write it to another path")
    folder = path.parent
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: folder for the {what} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise ArtifactError(f"{path}: the {what} exists and is read-only")
    _probe_writable(folder)
    return path


# Hidden folders a command builds in and renames (or deletes) when done. Their names carry the host
# and pid of the process that made them, so a later command can tell what a killed process left.
STAGING_KINDS = ("partial", "edgeport-quantize")


def _host_tag() -> str:
    host = socket.gethostname() or "host"
    return "".join(c if c.isalnum() else "_" for c in host)[:40]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def make_staging_dir(parent: Path, kind: str, label: str = "") -> Path:
    """A fresh hidden folder ``.<kind>-[<label>-]<host>@<pid>-<random>`` in ``parent``."""
    if kind not in STAGING_KINDS:
        raise ValueError(f"unknown staging kind {kind!r}")
    prefix = f".{kind}-{label + '-' if label else ''}{_host_tag()}@{os.getpid()}-"
    try:
        path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        os.chmod(path, 0o777 & ~_umask())
    except OSError as exc:
        raise ArtifactError(f"cannot create a staging folder in {str(parent)!r}: {exc.strerror or exc}") from exc
    return path


_KINDS = "|".join(STAGING_KINDS)
_STAGING_NAME = re.compile(rf"^\.(?:{_KINDS})-(?:.*-)?(?P<host>[A-Za-z0-9_]+)@(?P<pid>\d+)-[^-]+$")


def remove_stale_staging(parent: str | os.PathLike) -> list[Path]:
    """Delete staging folders in ``parent`` whose process (on this host) no longer runs; return them.

    A folder of a process on another host (a shared file system) or of a live process is kept.
    """
    parent = Path(parent)
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    host = _host_tag()
    for entry in entries:
        match = _STAGING_NAME.match(entry.name)
        if match is None or not entry.is_dir() or match["host"] != host or pid_alive(int(match["pid"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed


class RunFolder:
    """A run folder that becomes visible under its final name only when committed.

    Use as a context manager: on an exception the staging folder is removed;
    ``commit()`` renames it to its final name.
    """

    def __init__(self, parent: str | os.PathLike, run_id: str) -> None:
        self.created_parent = not Path(parent).exists()  # removed again if the run fails and leaves it empty
        self.parent = ensure_writable_dir(parent)
        self.run_id = run_id
        self.final = self.parent / run_id
        if self.final.exists():
            raise ArtifactError(f"run folder {str(self.final)!r} already exists")
        self.stale_removed = remove_stale_staging(self.parent)
        self.path = make_staging_dir(self.parent, "partial", run_id)
        self.committed = False

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
            if self.created_parent:
                try:
                    self.parent.rmdir()  # only when empty: a cache or other runs keep it
                except OSError:
                    pass

    def commit(self) -> Path:
        if not (self.path / "manifest.json").exists():
            raise ArtifactError(f"run folder {str(self.path)!r} has no manifest.json; refusing to commit it")
        try:
            os.replace(self.path, self.final)
        except OSError as exc:
            raise ArtifactError(f"cannot move the run into {str(self.final)!r}: {exc}") from exc
        self.committed = True
        self.path = self.final
        return self.final
