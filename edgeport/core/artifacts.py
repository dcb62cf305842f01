"""Artifacts on disk: hashing, atomic writes and the checks every output passes before any work.

Outputs are only ever written to regular files: a write renames a temporary file over the path, which
would turn a device node, a FIFO or a socket (``-o /dev/null`` as root) into a regular file. A write
that fails names its file (the OSError of a write carries none). Staging and run folders: core/staging.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
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


def current_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


def disk_full(exc: BaseException | None) -> bool:
    """True when ``exc``, or an exception it was raised from, is a full disk or an exhausted quota.

    Libraries wrap the OSError (onnx and onnxruntime in their own types, edgeport's stages in errors
    that name the input model), so the whole chain is searched, and the text for C++ errors."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        if any(text in str(exc) for text in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return name
    return "special file"


def refuse_non_regular(path: str | os.PathLike, what: str = "output") -> None:
    """Raise ArtifactError when ``path`` exists (links followed) and is not a regular file.

    Writing renames a new file over the path: a device node or FIFO would be replaced, and root may
    do that even under /dev. A link to a regular file is fine (the link itself is replaced)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet, or a dangling link
        return
    if not stat.S_ISREG(mode):
        raise ArtifactError(f"{path}: the {what} is not a regular file (a {_file_type(mode)}); give a file path")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    Never replaces something that is not a regular file; a write that fails (a full disk) is an
    ArtifactError that names ``path``: the OSError of a write carries no file name."""
    path = Path(path)
    refuse_non_regular(path)  # the last line of defence for writers that did not call check_output_file
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot write the file ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ArtifactError(f"{path}: cannot write the file ({exc.strerror or exc})") from exc
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


def read_only(path: str | os.PathLike) -> bool:
    """True for an existing file nobody may write: no write bit at all, or not writable by this user.

    os.access alone is always true for root; the mode bits are what the owner asked for."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(path, os.W_OK)


def check_output_file(path: str | os.PathLike, inputs: tuple = (), what: str = "output") -> Path:
    """Refuse, before any work, an output file that is one of the command's ``inputs``, a folder,
    not a regular file (a device, a FIFO, a link to one), in a missing or unwritable folder, or read-only."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path}: the {what} is a folder; give a file name")
    refuse_non_regular(path, what)
    for source in inputs:
        if source is not None and Path(source).exists() and same_file(path, source):
            raise ArtifactError(f"{path}: the {what} is the input file {source}; write it to another path")
    folder = path.parent
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: folder for the {what} does not exist")
    if read_only(path):
        raise ArtifactError(f"{path}: the {what} exists and is read-only")
    _probe_writable(folder)
    return path
