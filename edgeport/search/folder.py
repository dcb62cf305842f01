"""Where a search writes: a new ``search-<time>-<digest>`` folder, and the stage cache it uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edgeport.core.artifacts import ensure_writable_dir, sha256_json
from edgeport.errors import ArtifactError, ConfigError
from edgeport.search.definition import Definition, Resumed
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


def cache_root(options: SearchOptions, resumed: Resumed | None) -> Path:
    """--cache, else OUT/.cache/stages (shared by searches in OUT; on --resume OUT is the folder's parent).

    The cache search.json recorded is compared, never used: a folder edgeport writes into and cleans
    is one the user names (or the default), not one read from a file it wrote.
    """
    if options.cache:
        return Path(options.cache)
    if resumed is None:
        return Path(options.out) / ".cache" / "stages"
    default = resumed.folder.parent / ".cache" / "stages"
    recorded = resumed.stored["cache"]
    if not _same_folder(recorded, default):
        raise ConfigError(
            f"{resumed.folder / 'search.json'}: the search used the stage cache {recorded!r}, "
            f"not the default {str(default)!r}; to resume with it, give --cache {recorded!r}"
        )
    return default


def _same_folder(recorded: str, default: Path) -> bool:
    try:
        return Path(recorded).resolve() == default.resolve()
    except (OSError, ValueError, RuntimeError, TypeError):  # a NUL byte, a loop, not a path: not the default
        return False
