"""The search to run: its definition from the project file, or from the folder's search.json on --resume.

A resumed search keeps the definition it was started with. A project file given with --resume is
checked against it: the [run] settings and the way candidates are drawn must be the same, and the
new space may only add candidates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgeport.config import RunConfig, load_config
from edgeport.core.artifacts import atomic_write_json
from edgeport.core.project_file import read_project_file
from edgeport.errors import ConfigError, ModelError
from edgeport.models import ModelSpec
from edgeport.search.settings import SearchSettings, load_search_settings
from edgeport.search.space import Candidate
from edgeport.search.store import STORE_NAME

DEFINITION = "search.json"
# Settings that decide which candidates exist and which survive: a resume may not change them.
_FIXED_ON_RESUME = ("strategy", "seed", "halving", "halving_factor", "halving_min_epochs")


@dataclass
class Definition:
    base: RunConfig
    settings: SearchSettings
    source: str


@dataclass(frozen=True)
class Resumed:
    """The folder --resume names and the search.json it holds."""

    folder: Path
    stored: dict


def _from_file(path: Path, overrides: dict) -> Definition:
    document = read_project_file(path)
    settings = load_search_settings(document, str(path))
    return Definition(load_config(path, overrides), settings, str(path))


def _stored(folder: Path) -> dict:
    if not (folder / STORE_NAME).is_file() or not (folder / DEFINITION).is_file():
        raise ConfigError(
            f"{folder}: not a search folder (no {STORE_NAME} and {DEFINITION}); "
            "--resume takes the folder an earlier `edgeport search` created"
        )
    try:
        return json.loads((folder / DEFINITION).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder / DEFINITION}: unreadable search definition ({exc})") from exc


def _from_stored(stored: dict, folder: Path) -> Definition:
    try:
        definition = Definition(
            RunConfig.model_validate_json(stored["run"]),
            SearchSettings.model_validate_json(stored["search"]),
            str(folder),
        )
        if not isinstance(stored["candidates"], list) or not isinstance(stored["cache"], str):
            raise TypeError("candidates and cache")
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(
            f"{folder / DEFINITION}: damaged search definition ({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from exc
    return definition


def _first_difference(a: dict, b: dict, prefix: str = "") -> str | None:
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            found = _first_difference(left, right, f"{prefix}{key}.")
            if found:
                return found
        elif left != right:
            return f"{prefix}{key}: {left!r} -> {right!r}"
    return None


def _check_same_search(old: Definition, new: Definition, config_path: Path, resume: Path) -> None:
    changed = _first_difference(old.base.model_dump(mode="json"), new.base.model_dump(mode="json"))
    if changed:
        raise ConfigError(
            f"{config_path}: the [run] settings differ from the search in {resume} ({changed}); "
            "a resumed search may only add candidates"
        )
    for name in _FIXED_ON_RESUME:
        if getattr(old.settings, name) != getattr(new.settings, name):
            raise ConfigError(
                f"{config_path}: search.{name} differs from the search in {resume}; "
                "a resumed search may only add candidates"
            )


def _model_specs(definition: Definition) -> set[str]:
    """Every model spec the definition can build: the [run] models and the space's values for them."""
    specs = {definition.base.teacher.model, definition.base.student.model}
    space = definition.settings.space
    for table in space if isinstance(space, list) else [space]:
        for name in ("teacher.model", "student.model"):
            values = table.get(name) if isinstance(table, dict) else None
            specs.update(v for v in (values if isinstance(values, list) else [values]) if isinstance(v, str))
    return specs


def _check_imports_nothing(stored: Definition, resume: Path) -> None:
    """search.json is a file edgeport wrote, so it may name registered models but never code to import:
    a user's factory runs on --resume only when the user's own --config names it (that file's
    definition is then the one used, and [run] must match)."""
    for text in sorted(_model_specs(stored)):
        try:
            spec = ModelSpec.parse(text)
        except ModelError:
            continue  # not a factory either: refused with the candidates, never imported
        if spec.is_user_factory:
            raise ConfigError(
                f"{resume / DEFINITION}: names the model factory {spec.name!r}; edgeport imports no code named "
                "only by a file it wrote: resume with --config FILE, your project file that names it"
            )


def resolve_definition(
    config_path: Path | None, resume: Path | None, overrides: dict
) -> tuple[Definition, Resumed | None]:
    """The search to run, and for --resume what the folder stored (checked against the new file)."""
    if resume is None:
        if config_path is None:
            raise ConfigError("edgeport search needs --config FILE (with a [search] table) or --resume RUN_DIR")
        return _from_file(config_path, overrides), None
    if config_path is None and overrides:
        raise ConfigError(
            "--seed with --resume needs --config: a resumed search keeps the settings it was started with"
        )
    resumed = Resumed(Path(resume), _stored(Path(resume)))
    old = _from_stored(resumed.stored, resumed.folder)
    if config_path is None:
        _check_imports_nothing(old, resumed.folder)
        return old, resumed
    new = _from_file(config_path, overrides)
    _check_same_search(old, new, config_path, resume)
    return new, resumed


def check_keeps_candidates(resumed: Resumed, candidates: list[Candidate]) -> None:
    """A resumed search may widen its space, never drop a candidate it already had."""
    ids = {c.id for c in candidates}
    missing = [c for c in resumed.stored["candidates"] if c not in ids]
    if missing:
        raise ConfigError(
            f"{resumed.folder}: the new space drops {len(missing)} candidate(s) of the earlier search; "
            "a resumed search may only add candidates"
        )


def write_definition(folder: Path, definition: Definition, candidates: list[Candidate], cache_root: Path) -> None:
    """search.json: what --resume reads back (the keys are the folder's format; keep them)."""
    atomic_write_json(
        folder / DEFINITION,
        {
            "run": definition.base.model_dump_json(),
            "search": definition.settings.model_dump_json(),
            "candidates": [c.id for c in candidates],
            "cache": str(cache_root.resolve()),
            "source": definition.source,
        },
    )
