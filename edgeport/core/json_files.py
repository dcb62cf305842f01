"""Reading the JSON files edgeport wrote (manifests, benchmark results): a one-line ConfigError naming the
file for anything that is not a readable JSON object, and a refusal of files no version of edgeport wrote
or this version cannot read (``schema_version``)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Collection
from pathlib import Path

from edgeport.errors import ConfigError


def refuse_special_file(path: Path, what: str) -> None:
    """Refuse a folder or a device (``/dev/zero`` would be read forever); pipes and regular files are read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # the reader says "not found"
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path}: the {what} is a folder; give a file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise ConfigError(f"{path}: the {what} is a device, not a file")


def read_json(path: str | Path, what: str) -> dict:
    """A JSON object from ``path``, or a one-line ConfigError naming the file and ``what`` it should be."""
    path = Path(path)
    refuse_special_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: {what} is not readable JSON ({exc})") from exc
    except RecursionError as exc:  # json gives up on very deep nesting this way
        raise ConfigError(f"{path}: {what} is not readable JSON (nested too deeply)") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a JSON object")
    return data


def check_schema_version(data: dict, source: str, accepted: Collection[int], what: str) -> None:
    """Refuse a file edgeport did not write (no schema_version) or wrote in a format this version cannot read."""
    known = ", ".join(str(v) for v in sorted(set(accepted)))
    if "schema_version" not in data:
        raise ConfigError(
            f"{source}: not an edgeport {what} (no schema_version; this edgeport reads schema_version {known})"
        )
    version = data["schema_version"]
    if type(version) is not int or version not in accepted:  # type(): True == 1 in Python
        raise ConfigError(f"{source}: schema_version {version!r} is not one this edgeport reads ({known})")


__all__ = ["check_schema_version", "read_json", "refuse_special_file"]
