"""The one reader of .npz (and cached .npy) files: numpy and the standard library only, bounded memory.

``np.load`` trusts the file: it loads every member, believes each .npy header's shape (a header that
claims 3.6 PiB is a MemoryError traceback; a 4 MB zip bomb grew to 4.7 GB before anything refused it)
and lets zipfile's and zlib's own exceptions escape. Here a file is read in two passes:

1. Check, decompressing nothing but headers: the archive is a zip, each requested member exists once,
   is stored or deflated (what numpy writes), unencrypted, and its .npy header (version 1 or 2) names a
   numeric dtype (object arrays never) and a shape whose size, with the header, is exactly the
   member's size in the zip directory; for a deflated member the compressed stream is no longer than
   deflate can make that size. The declared sizes of all requested arrays together must stay within
   the cap (``max_npz_bytes``).
2. Read each member's data in small chunks into an array allocated at the declared, checked size;
   a stream that ends early, or whose CRC does not match, is refused. zipfile never yields more than
   the directory's size, so data past the declared size is never decompressed.

Peak memory is therefore the arrays asked for (at most the cap) plus one chunk. Only the members a
caller names are read: an unused array, however large or damaged, costs nothing. Every refusal is a
``DataError`` naming the file, the member and, for size refusals, the cap.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import IO

import numpy as np

from edgeport.errors import ConfigError, DataError

MAX_BYTES_ENV = "EDGEPORT_MAX_NPZ_BYTES"
DEFAULT_MAX_BYTES = 4 * 1024**3  # 4 GiB of arrays: far above any calibration or benchmark set
MEMORY_FRACTION = 0.5  # ... and never more than half of the memory available when reading starts
CHUNK_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 10_000  # numpy's own limit on a .npy header
NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex: everything edgeport feeds a model
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}  # all numpy writes
# The zip and numpy failures a damaged file raises; each becomes one DataError naming the file.
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)


def format_bytes(count: int) -> str:
    """1000 B, 64.0 MiB, 3.6 PiB: sizes in messages, exact below 1 KiB."""
    if count < 1024:
        return f"{count} B"
    exponent = min(int(math.log(count, 1024)), 6)
    return f"{count / 1024**exponent:.1f} {'KMGTPE'[exponent - 1]}iB"


def _available_memory() -> int | None:
    """Bytes this process could still get: /proc/meminfo's MemAvailable, lowered by a cgroup v2 limit."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's limit, which MemAvailable (the host's) does not show
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            room = max(int(limit) - used, 0)
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def max_npz_bytes() -> int:
    """The cap on the arrays one file may make: $EDGEPORT_MAX_NPZ_BYTES (bytes) when set, otherwise
    4 GiB or half the available memory, whichever is smaller."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) <= 0 or int(raw) > 2**62:
            raise ConfigError(f"${MAX_BYTES_ENV}: expected a positive whole number of bytes, got {raw[:40]!r}")
        return int(raw)
    available = _available_memory()
    if available is None:
        return DEFAULT_MAX_BYTES
    return max(min(DEFAULT_MAX_BYTES, int(available * MEMORY_FRACTION)), CHUNK_BYTES)


def _cap_source(cap: int) -> str:
    if os.environ.get(MAX_BYTES_ENV, "").strip():
        return f"the {format_bytes(cap)} cap on .npz data (${MAX_BYTES_ENV})"
    return f"the {format_bytes(cap)} cap on .npz data (raise it with ${MAX_BYTES_ENV})"


class _Declared:
    """One member's checked .npy header: what will be allocated, and how many bytes precede the data."""

    def __init__(self, dtype: np.dtype, shape: tuple[int, ...], fortran: bool, header_bytes: int) -> None:
        self.dtype, self.shape, self.fortran, self.header_bytes = dtype, shape, fortran, header_bytes
        self.count = math.prod(shape)  # Python ints: a 2^60-element claim is a number, not an overflow
        self.nbytes = self.count * dtype.itemsize


def _read_header(stream: IO[bytes], where: str) -> _Declared:
    """Parse and check a .npy header (the stream is left at the first data byte)."""
    try:
        version = np.lib.format.read_magic(stream)
    except ValueError as exc:
        raise DataError(f"{where}: not an .npy array ({exc})") from exc
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise DataError(f"{where}: .npy format version {version[0]}.{version[1]} is not read (1.0 or 2.0 are)")
    try:
        shape, fortran, dtype = readers[version](stream, max_header_size=MAX_HEADER_BYTES)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise DataError(f"{where}: its .npy header is damaged ({exc})") from exc
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
        raise DataError(f"{where}: holds dtype {dtype} (object or structured); only numeric arrays are read")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise DataError(f"{where}: its .npy header gives an invalid shape {shape}")
    # The stream stopped right after the header: its position is where the data starts.
    return _Declared(dtype, tuple(int(n) for n in shape), bool(fortran), stream.tell())


def _check_within_cap(where: str, declared: _Declared, total: int, cap: int) -> None:
    if total > cap:
        others = f"; with the arrays read before it, {format_bytes(total)}" if total != declared.nbytes else ""
        raise DataError(
            f"{where}: declares {format_bytes(declared.nbytes)} ({declared.dtype}, shape {declared.shape}){others}, "
            f"over {_cap_source(cap)}"
        )


def _read_data(stream: IO[bytes], declared: _Declared, where: str) -> np.ndarray:
    """The member's data, chunk by chunk, into an array of exactly the declared size."""
    flat = np.empty(declared.count, dtype=declared.dtype)
    target = flat.view(np.uint8)
    position = 0
    while position < declared.nbytes:
        chunk = stream.read(min(CHUNK_BYTES, declared.nbytes - position))
        if not chunk:
            raise DataError(
                f"{where}: its data ends after {format_bytes(position)}; the header declares "
                f"{format_bytes(declared.nbytes)}"
            )
        target[position : position + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        position += len(chunk)
    if stream.read(1):  # also completes the zip stream, so its CRC is checked
        raise DataError(f"{where}: holds more data than its header declares ({format_bytes(declared.nbytes)})")
    if declared.fortran:
        return flat.reshape(declared.shape[::-1]).transpose()
    return flat.reshape(declared.shape)


class NpzReader:
    """An open .npz archive: ``names`` of its arrays, ``read(names)`` checks then loads just those."""

    def __init__(self, path: str | Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.cap = max_npz_bytes() if max_bytes is None else max_bytes
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError as exc:
            raise DataError(f"{self.path}: no such file") from exc
        except READ_ERRORS as exc:
            raise DataError(f"{self.path}: {_not_a_zip(self.path, exc)}") from exc
        self._members = {_array_name(info.filename): info for info in self._zip.infolist()}
        repeated = [name for name, n in Counter(info.filename for info in self._zip.infolist()).items() if n > 1]
        if repeated:
            self.close()
            raise DataError(f"{self.path}: member {repeated[0]!r} appears more than once; the file is damaged")

    @property
    def names(self) -> list[str]:
        """The array names (member names without .npy), as np.load gives them."""
        return list(self._members)

    def read(self, names: list[str]) -> dict[str, np.ndarray]:
        """``{name: array}`` for ``names`` (each must be a member): every header and the total checked
        against the cap before any data is decompressed."""
        declared: dict[str, _Declared] = {}
        total = 0
        for name in names:
            info = self._members[name]
            where = f"{self.path}: member {info.filename!r}"
            declared[name] = self._header(info, where)
            total += declared[name].nbytes
            _check_within_cap(where, declared[name], total, self.cap)  # first: a huge claim is told the cap
            _check_member_size(info, declared[name], where)
        return {name: self._read_member(self._members[name], declared[name]) for name in names}

    def _header(self, info: zipfile.ZipInfo, where: str) -> _Declared:
        _check_zip_entry(info, where)
        try:
            with self._zip.open(info) as stream:
                return _read_header(stream, where)
        except DataError:
            raise
        except READ_ERRORS as exc:
            raise DataError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from exc

    def _read_member(self, info: zipfile.ZipInfo, declared: _Declared) -> np.ndarray:
        where = f"{self.path}: member {info.filename!r}"
        try:
            with self._zip.open(info) as stream:
                stream.read(declared.header_bytes)
                return _read_data(stream, declared, where)
        except DataError:
            raise
        except READ_ERRORS as exc:
            raise DataError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from exc

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _array_name(filename: str) -> str:
    return filename[: -len(".npy")] if filename.endswith(".npy") else filename


def _not_a_zip(path: Path, exc: BaseException) -> str:
    try:
        with path.open("rb") as handle:
            is_npy = handle.read(6) == b"\x93NUMPY"
    except OSError:
        is_npy = False
    if is_npy:
        return "is a plain .npy array, not an .npz archive (save with np.savez(path, x=...))"
    return f"not an .npz (zip) archive ({exc})"


def _check_zip_entry(info: zipfile.ZipInfo, where: str) -> None:
    """What the zip directory says, checked before anything is decompressed."""
    if info.flag_bits & 0x1:
        raise DataError(f"{where}: is encrypted")
    if info.compress_type not in ZIP_METHODS:
        raise DataError(f"{where}: zip compression method {info.compress_type} is not read (stored or deflated are)")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise DataError(f"{where}: stored, but its sizes disagree; the file is damaged")
    # Deflate expands incompressible data by a few bytes per 16 KiB block; a longer stream hides more.
    if info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size > info.file_size + info.file_size // 1000 + 64:
        raise DataError(
            f"{where}: its compressed stream ({format_bytes(info.compress_size)}) is longer than "
            f"{format_bytes(info.file_size)} of data can make; the file is damaged"
        )


def _check_member_size(info: zipfile.ZipInfo, declared: _Declared, where: str) -> None:
    """Header plus data must be exactly the member's size in the zip directory: zipfile never yields more
    than that size, so the stream can neither overfill nor silently underfill the array."""
    member_bytes = declared.header_bytes + declared.nbytes
    if member_bytes != info.file_size:
        raise DataError(
            f"{where}: the zip directory gives {format_bytes(info.file_size)} but its .npy header declares "
            f"{format_bytes(member_bytes)} ({declared.dtype}, shape {declared.shape}); the file is damaged"
        )


def read_npz(path: str | Path, names: list[str], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Just ``names`` from the .npz at ``path`` (a missing name is a DataError listing those present)."""
    with NpzReader(path, max_bytes) as archive:
        missing = [name for name in names if name not in archive.names]
        if missing:
            found = ", ".join(sorted(archive.names)) or "none"
            raise DataError(f"{path}: expected array(s) {', '.join(map(repr, missing))}, found {found}")
        return archive.read(names)


def read_npy(path: str | Path, max_bytes: int | None = None) -> np.ndarray:
    """A plain .npy file (an internal cache entry), with the same header, size and cap checks."""
    path = Path(path)
    cap = max_npz_bytes() if max_bytes is None else max_bytes
    where = str(path)
    try:
        with path.open("rb") as stream:
            declared = _read_header(stream, where)
            if declared.header_bytes + declared.nbytes != path.stat().st_size:
                raise DataError(f"{where}: its size does not match its .npy header; the file is damaged")
            _check_within_cap(where, declared, declared.nbytes, cap)
            return _read_data(stream, declared, where)
    except DataError:
        raise
    except READ_ERRORS as exc:
        raise DataError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from exc
