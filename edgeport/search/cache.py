"""Content-addressed stage cache: ``<root>/<stage>/<key>/`` holds a stage's files and result.json.

The key hashes the stage's settings and its inputs' keys, so equal work is done once and a wider
search reuses every stage already built. An entry is built in ``<root>/.tmp/`` and renamed into
place after its result.json (with the sha256 of every file) is written, so a killed process
leaves no half-written entry.

result.json carries a digest over its whole content (the file hashes included), checked on every
read: an entry whose digest or files do not match, or that has no digest (written by an older
edgeport), is treated as absent and built again, with a warning. A cache is derived data, so a
rebuild gives the right answer where a refusal would only stop the search. The digest catches
edits and damage; it is not a signature: whoever may write the cache folder can also forge it.

Every key carries the cache version (``core.schemas.STAGE_CACHE``), and the root records it in a
``cache-version`` file written when the cache is created. A key's content may change freely with a
version bump; a cache folder of another version (or one with entries and no version file: written
before versions were recorded) is refused before any work, with one line naming both versions, rather
than filled with a second generation of entries nothing would ever read or clean.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from edgeport.core.artifacts import (
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    sha256_file,
    sha256_json,
)
from edgeport.core.schemas import STAGE_CACHE
from edgeport.core.staging import make_staging_dir, remove_stale_staging
from edgeport.errors import ArtifactError

RESULT = "result.json"
DIGEST = "digest"
VERSION_FILE = "cache-version"
UNVERSIONED = 1  # the caches written before the version was recorded (no cache-version file)


def stage_key(stage: str, **parts) -> str:
    return sha256_json({"stage": stage, "cache_version": STAGE_CACHE, **parts})[:20]


def _found_version(root: Path) -> str | None:
    """What the cache at ``root`` says of its version: the version file's text, "" when there is none
    but entries are (an older cache), None for a folder without entries (a new cache)."""
    try:
        return (root / VERSION_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        # Hidden folders (.tmp, .teacher-logits) hold no stage entries: only those make a cache "older".
        return "" if any(not p.name.startswith(".") for p in root.iterdir()) else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"stage cache {str(root)!r}: cannot read its {VERSION_FILE} file ({exc})") from exc


def check_cache_version(root: Path) -> None:
    """Refuse a cache folder written with another cache version; give a new (empty) one this version."""
    found = _found_version(root)
    if found is None:
        atomic_write_text(root / VERSION_FILE, f"{STAGE_CACHE}\n")
        return
    if found == str(STAGE_CACHE):
        return
    if not found:
        written = f"was written by an older edgeport (cache version {UNVERSIONED}, no {VERSION_FILE} file)"
    else:
        written = f"has cache version {found if found.isdigit() else repr(found)}"
    raise ArtifactError(
        f"stage cache {str(root)!r} {written}; this edgeport uses cache version {STAGE_CACHE}: "
        "delete that folder or give another one with --cache"
    )


def _warn(folder: Path, why: str) -> None:
    # Printed, not raised: the entry is rebuilt and the search goes on.
    print(f"warning: stage cache entry {str(folder)!r} {why}; building it again", file=sys.stderr)


class StageCache:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = ensure_writable_dir(root)
        check_cache_version(self.root)
        self.tmp = ensure_writable_dir(self.root / ".tmp")

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def _discard(self, folder: Path, why: str) -> None:
        _warn(folder, why)
        shutil.rmtree(folder, ignore_errors=True)

    def lookup(self, stage: str, key: str) -> dict | None:
        """The stored result with absolute file paths, or None when missing or damaged."""
        folder = self.entry(stage, key)
        try:
            result = json.loads((folder / RESULT).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            self._discard(folder, f"has an unreadable {RESULT}")
            return None
        why = _damage(result, folder)
        if why:
            self._discard(folder, why)
            return None
        result.pop(DIGEST)
        result["paths"] = {name: str(folder / name) for name in result["files"]}
        result["folder"] = str(folder)
        return result

    def new_build_dir(self, stage: str, key: str) -> Path:
        # Named as every edgeport staging folder (host and pid of its maker): a later run removes
        # what a killed process left, and nothing else.
        return make_staging_dir(self.tmp, "partial", f"{stage}-{key}")

    def commit(self, stage: str, key: str, build_dir: Path, result: dict) -> dict:
        """Record file hashes and the digest, write result.json, move the entry into place (first writer wins)."""
        files = {p.name: sha256_file(p) for p in sorted(build_dir.iterdir()) if p.is_file()}
        # Hashed as read back: JSON turns tuples into lists and other values into strings.
        result = json.loads(json.dumps({**result, "stage": stage, "key": key, "files": files}, default=str))
        atomic_write_json(build_dir / RESULT, {**result, DIGEST: sha256_json(result)})
        final = self.entry(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(build_dir, final)
        except OSError as exc:
            if not (final / RESULT).is_file():
                raise ArtifactError(f"cannot move the {stage} stage into the cache at {str(final)!r}") from exc
            shutil.rmtree(build_dir, ignore_errors=True)  # another worker built the same key
        stored = self.lookup(stage, key)
        if stored is None:
            raise ArtifactError(f"cache entry {str(final)!r} could not be read back")
        return stored

    def remove_stale_builds(self) -> int:
        """Delete build folders of processes (on this host) that no longer run; return how many.

        Only folders named as edgeport's staging folders are candidates: anything else in ``.tmp``
        (another tool's files, a folder named by hand) is left alone.
        """
        return len(remove_stale_staging(self.tmp))


def _damage(result, folder: Path) -> str | None:
    """Why a stored result cannot be trusted, or None: its digest, then every file's hash."""
    if not isinstance(result, dict) or not isinstance(result.get("files"), dict):
        return f"has a malformed {RESULT}"
    digest = result.get(DIGEST)
    if digest is None:
        return "has no digest (written by an older edgeport)"
    if digest != sha256_json({k: v for k, v in result.items() if k != DIGEST}):
        return f"does not match its digest (its {RESULT} was edited or damaged)"
    for name, file_digest in result["files"].items():
        path = folder / name
        if Path(name).name != name or not path.is_file() or sha256_file(path) != file_digest:
            return f"has a missing or changed file {name!r}"
    return None
