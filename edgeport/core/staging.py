"""Staging and run folders: work is built in a hidden folder and renamed into place when complete.

A run folder is built under a hidden staging name and renamed into place only after its manifest is
written, so a folder named ``runs/<id>`` is always complete and a failed run leaves nothing
half-written behind.

A staging folder is held with an advisory lock (flock) for its whole life, and its run id is reserved
with another, so cleanup never removes a live process's folder and two runs never share a folder, even
when the owner's pid means nothing here (another pid namespace on a shared folder).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from edgeport.core.artifacts import current_umask, disk_full, ensure_writable_dir
from edgeport.errors import ArtifactError

# Hidden folders a command builds in and renames (or deletes) when done. Their names carry the host
# and pid of the process that made them, and the process holds an advisory lock (flock) on the folder
# itself for its whole life: a later command removes a folder only when both say its owner is gone.
# The pid alone is not enough: in another pid namespace (containers sharing a folder and a hostname)
# a live owner's pid can look dead here. The kernel drops the lock when the owner dies, even by SIGKILL.
STAGING_KINDS = ("partial", "edgeport-quantize", "edgeport-scratch")
_HELD: dict[Path, int] = {}  # staging folder (as made) -> the descriptor holding its lock


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


class _NoLocks(Exception):
    """The file system does not support flock (some FUSE and network mounts): fall back to the pid."""


def _lock(path: Path, create: bool = False) -> int | None:
    """A descriptor holding ``path``'s exclusive advisory lock, or None when another process holds it,
    the path is gone, or it was replaced between our open and our lock (the lock would guard nothing)."""
    flags = os.O_RDONLY | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o666 & ~current_umask())
    except OSError:  # gone, or another user's folder we may not open: not ours to judge
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # held by a live process
        os.close(fd)
        return None
    except OSError as exc:
        os.close(fd)
        raise _NoLocks(str(path)) from exc
    try:
        held, now = os.fstat(fd), os.stat(path)
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return fd
    except OSError:  # removed meanwhile
        pass
    os.close(fd)
    return None


def _release_gone() -> None:
    """Close the locks of staging folders that were deleted (a finished quantize removes its own)."""
    for path in [p for p in _HELD if not p.exists()]:
        os.close(_HELD.pop(path))


def release_staging(path: Path) -> None:
    """Drop the lock on a staging folder made by make_staging_dir (renamed or removed since)."""
    fd = _HELD.pop(Path(path), None)
    if fd is not None:
        os.close(fd)


def make_staging_dir(parent: Path, kind: str, label: str = "") -> Path:
    """A fresh hidden folder ``.<kind>-[<label>-]<host>@<pid>-<random>`` in ``parent``, locked by this process."""
    if kind not in STAGING_KINDS:
        raise ValueError(f"unknown staging kind {kind!r}")
    _release_gone()
    prefix = f".{kind}-{label + '-' if label else ''}{_host_tag()}@{os.getpid()}-"
    for _ in range(3):  # a cleanup in another pid namespace may take the fresh folder before we lock it
        try:
            path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
            os.chmod(path, 0o777 & ~current_umask())
        except OSError as exc:
            raise ArtifactError(f"cannot create a staging folder in {str(parent)!r}: {exc.strerror or exc}") from exc
        try:
            fd = _lock(path)
        except _NoLocks:
            return path  # unlocked: cleanup goes by the pid alone, as before locks
        if fd is not None:
            _HELD[path] = fd
            return path
        shutil.rmtree(path, ignore_errors=True)
    raise ArtifactError(f"cannot lock a staging folder in {str(parent)!r}: other processes keep removing it")


_KINDS = "|".join(STAGING_KINDS)
_STAGING_NAME = re.compile(rf"^\.(?P<kind>{_KINDS})-(?:.*-)?(?P<host>[A-Za-z0-9_]+)@(?P<pid>\d+)-[^-]+$")
_RESERVATION = re.compile(r"^\.edgeport-run-id-.+\.lock$")


def _remove_if_unlocked(entry: Path) -> bool:
    """Delete a staging folder while holding its lock, so its owner cannot be alive; False when it is."""
    try:
        fd = _lock(entry)
    except _NoLocks:  # the pid said it is gone; there is nothing else to ask
        shutil.rmtree(entry, ignore_errors=True)
        return not entry.exists()
    if fd is None:
        return False
    try:
        shutil.rmtree(entry, ignore_errors=True)
    finally:
        os.close(fd)
    return not entry.exists()


def _remove_stale_reservation(entry: Path) -> None:
    try:
        fd = _lock(entry)
    except _NoLocks:
        return
    if fd is not None:  # its run was killed: nobody holds it
        entry.unlink(missing_ok=True)
        os.close(fd)


def remove_stale_staging(parent: str | os.PathLike, kinds: tuple[str, ...] = STAGING_KINDS) -> list[Path]:
    """Delete staging folders (of ``kinds``) in ``parent`` whose process (on this host) no longer runs;
    return them.

    Gone means both: its pid does not run here and nobody holds its lock. A folder of a process on
    another host (a shared file system), of a live pid, or that a live process holds is kept. Run id
    reservations of killed runs are removed too (not returned: they hold nothing).
    """
    parent = Path(parent)
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    host = _host_tag()
    for entry in entries:
        if _RESERVATION.match(entry.name) and entry.is_file():
            _remove_stale_reservation(entry)
            continue
        match = _STAGING_NAME.match(entry.name)
        if match is None or match["kind"] not in kinds or not entry.is_dir() or match["host"] != host:
            continue
        if pid_alive(int(match["pid"])):
            continue
        if _remove_if_unlocked(entry):
            removed.append(entry)
    return removed


class _RunIdReservation:
    """``parent/.edgeport-run-id-<id>.lock``, locked while a run builds under ``id``: two runs that start
    in the same second with the same configuration (the same id) would otherwise both build, and the
    second one's rename would fail at the very end. The file is removed when the run commits or fails."""

    def __init__(self, parent: Path, run_id: str) -> None:
        self.path = parent / f".edgeport-run-id-{run_id}.lock"
        self.unsupported = False
        try:
            self.fd = _lock(self.path, create=True)
        except _NoLocks:  # no reservation possible here: only an existing run folder takes the id
            self.path.unlink(missing_ok=True)
            self.fd, self.unsupported = None, True

    @property
    def held(self) -> bool:
        return self.fd is not None or self.unsupported

    def release(self) -> None:
        if self.fd is not None:
            # unlink before closing: whoever locks the old file afterwards sees it replaced and backs off
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


_MAX_SUFFIX = 1000


def _reserve(parent: Path, run_id: str, unique: bool) -> tuple[str, _RunIdReservation]:
    """``run_id``, or with ``unique`` the first free of ``run_id-2``, ``run_id-3``...: reserved, and no
    run folder of that name yet. Without ``unique`` a taken id is refused before any work."""
    for n in range(1, _MAX_SUFFIX + 1):
        candidate = run_id if n == 1 else f"{run_id}-{n}"
        reservation = _RunIdReservation(parent, candidate)
        if reservation.held and not (parent / candidate).exists():
            return candidate, reservation
        reservation.release()
        if not unique:
            final = str(parent / candidate)
            if (parent / candidate).exists():
                raise ArtifactError(f"run folder {final!r} already exists")
            raise ArtifactError(f"run folder {final!r} is being written by another run")
    raise ArtifactError(f"{parent}: {_MAX_SUFFIX} runs named {run_id!r} already exist or are being written")


class RunFolder:
    """A run folder that becomes visible under its final name only when committed.

    Use as a context manager: on an exception the staging folder is removed;
    ``commit()`` renames it to its final name. ``unique``: when ``run_id`` is taken (a run folder, or a
    run still building under it) use ``run_id-2``, ``-3``...; otherwise a taken id is refused.
    A failure while building caused by a full disk is reported as such, naming the folder.
    """

    def __init__(self, parent: str | os.PathLike, run_id: str, unique: bool = False) -> None:
        self.created_parent = not Path(parent).exists()  # removed again if the run fails and leaves it empty
        self.parent = ensure_writable_dir(parent)
        self.stale_removed = remove_stale_staging(self.parent)
        self.run_id, self._reservation = _reserve(self.parent, run_id, unique)
        self.final = self.parent / self.run_id
        try:
            self.path = make_staging_dir(self.parent, "partial", self.run_id)
        except BaseException:
            self._reservation.release()
            raise
        self._staging = self.path
        self.committed = False

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
            self._release()
            if self.created_parent:
                try:
                    self.parent.rmdir()  # only when empty: a cache or other runs keep it
                except OSError:
                    pass
        if exc is not None and not isinstance(exc, ArtifactError) and disk_full(exc):
            # the stage that failed wrapped the OSError in an error that blames its input
            raise ArtifactError(
                f"{self.final}: the disk is full, the run could not be written ({os.strerror(errno.ENOSPC)})"
            ) from exc

    def _release(self) -> None:
        release_staging(self._staging)
        self._reservation.release()

    def commit(self) -> Path:
        if not (self.path / "manifest.json").exists():
            raise ArtifactError(f"run folder {str(self.path)!r} has no manifest.json; refusing to commit it")
        try:
            os.replace(self.path, self.final)
        except OSError as exc:
            raise ArtifactError(f"cannot move the run into {str(self.final)!r}: {exc}") from exc
        self.committed = True
        self.path = self.final
        self._release()  # after the rename: until then the id and the folder stay held
        return self.final
