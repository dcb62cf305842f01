"""Where a search writes: a new ``search-<time>-<digest>`` folder, and the stage cache it uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edgeport.artifacts import ensure_writable_dir, sha256_json
from edgeport.errors import ArtifactError
from edgeport.search.definition import Definition
from edgeport.search.options import SearchOptions


def new_folder(out: Path, definition: Definition) -> Path:
    """A fresh folder under ``out``, named by the time and a digest of the definition."""
    ensure_writable_dir(out)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    digest = sha256_json(
        {"run": definition.base.model_dump(mode="json"), "search": definition.settings.model_dump(mode="json")}
    )[:8]
    folder = out / f"search-{stamp}-{digest}"
    try:
        folder.mkdir()
    except FileExistsError as exc:
        raise ArtifactError(f"search folder {str(folder)!r} already exists") from exc
    return folder


def cache_root(options: SearchOptions, stored: dict | None) -> Path:
    """--cache, else the cache a resumed search used, else OUT/.cache/stages (shared by searches in OUT)."""
    if options.cache:
        return Path(options.cache)
    if stored is not None:
        return Path(stored["cache"])
    return Path(options.out) / ".cache" / "stages"
