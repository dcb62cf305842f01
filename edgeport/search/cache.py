"""Content-addressed stage cache: ``<root>/<stage>/<key>/`` holds a stage's files and result.json.

The key hashes the stage's settings and its inputs' keys, so equal work is done once and a wider
search reuses every stage already built. An entry is built in ``<root>/.tmp/`` and renamed into
place after its result.json (with the sha256 of every file) is written, so a killed process
leaves no half-written entry; an entry whose files no longer match their hashes is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from edgeport.artifacts import atomic_write_json, ensure_writable_dir, pid_alive, sha256_file, sha256_json
from edgeport.errors import ArtifactError

RESULT = "result.json"


def stage_key(stage: str, **parts) -> str:
    return sha256_json({"stage": stage, **parts})[:20]


class StageCache:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = ensure_writable_dir(root)
        self.tmp = ensure_writable_dir(self.root / ".tmp")

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> dict | None:
        """The stored result with absolute file paths, or None when missing or damaged."""
        folder = self.entry(stage, key)
        try:
            result = json.loads((folder / RESULT).read_text())
        except (OSError, ValueError):
            return None
        files = result.get("files", {})
        for name, digest in files.items():
            path = folder / name
            if not path.is_file() or sha256_file(path) != digest:
                shutil.rmtree(folder, ignore_errors=True)  # damaged: build it again
                return None
        result["paths"] = {name: str(folder / name) for name in files}
        result["folder"] = str(folder)
        return result

    def new_build_dir(self, stage: str, key: str) -> Path:
        # The pid in the name lets a later run remove what a killed process left behind.
        return Path(tempfile.mkdtemp(dir=self.tmp, prefix=f"{stage}-{key}-{os.getpid()}-"))

    def commit(self, stage: str, key: str, build_dir: Path, result: dict) -> dict:
        """Record file hashes, write result.json, move the entry into place (first writer wins)."""
        files = {p.name: sha256_file(p) for p in sorted(build_dir.iterdir()) if p.is_file()}
        result = {**result, "stage": stage, "key": key, "files": files}
        atomic_write_json(build_dir / RESULT, result)
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
        """Delete build folders of processes that no longer run; return how many."""
        removed = 0
        for folder in self.tmp.iterdir():
            parts = folder.name.split("-")
            pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
            if pid is not None and not pid_alive(pid):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed
