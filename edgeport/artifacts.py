"""Artifacts on disk: hashing, atomic writes and run folders.

A run folder is built under a hidden staging name and renamed into place only
after its manifest is written, so a folder named ``runs/<id>`` is always
complete and a failed run leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
    def from_file(cls, path: str | os.PathLike, kind: str, **meta: Any) -> "Artifact":
        path = Path(path)
        return cls(path=path, kind=kind, sha256=sha256_file(path), meta=dict(meta))

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def describe(self, relative_to: Path | None = None) -> dict[str, Any]:
        shown = self.path.relative_to(relative_to) if relative_to else self.path
        return {"path": str(shown), "kind": self.kind, "sha256": self.sha256,
                "size_bytes": self.size_bytes, **self.meta}


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


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove we can write into it, or raise ArtifactError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".edgeport-probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise ArtifactError(f"output folder {str(path)!r} is not writable: {exc.strerror or exc}") from exc
    return path


class RunFolder:
    """A run folder that becomes visible under its final name only when committed.

    Use as a context manager: on an exception the staging folder is removed;
    ``commit()`` renames it to its final name.
    """

    def __init__(self, parent: str | os.PathLike, run_id: str) -> None:
        self.parent = ensure_writable_dir(parent)
        self.run_id = run_id
        self.final = self.parent / run_id
        if self.final.exists():
            raise ArtifactError(f"run folder {str(self.final)!r} already exists")
        try:
            self.path = Path(tempfile.mkdtemp(dir=self.parent, prefix=f".partial-{run_id}-"))
            os.chmod(self.path, 0o777 & ~_umask())
        except OSError as exc:
            raise ArtifactError(f"cannot create a run folder in {str(self.parent)!r}: {exc}") from exc
        self.committed = False

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

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
