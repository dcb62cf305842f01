"""Expand the search space into candidates: one full ``RunConfig`` per point, with a stable id.

Grid points come from scikit-learn's ``ParameterGrid`` (every combination, sorted keys), random
points from ``ParameterSampler`` (seeded, without replacement). A quantization option the chosen
backend does not use (``per_channel`` for ``backend = "none"``, ``calibration_method`` for
``ort-dynamic``) is shown as None in that candidate, and points that become identical are merged.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sklearn.model_selection import ParameterGrid, ParameterSampler

from edgeport.config import RunConfig
from edgeport.core.artifacts import sha256_json
from edgeport.core.project_file import validation_message
from edgeport.errors import ConfigError, EdgeportError
from edgeport.models import ModelSpec
from edgeport.quantize import QuantConfig, build_quant_config, config_types
from edgeport.quantize.config import NO_QUANTIZATION
from edgeport.quantize.tolerance import TOLERANCE_KEYS
from edgeport.search.settings import SearchSettings, searchable_parameters

MODEL_OPTION_PREFIX = "student.model."
QUANTIZE_PREFIX = "quantize."


@dataclass(frozen=True)
class Candidate:
    id: str
    index: int
    params: dict[str, Any]
    config: RunConfig
    quant_config: QuantConfig | None = None  # None: the fp32 model is the candidate
    reduce_range_reason: str = ""
    ignored: tuple[str, ...] = field(default=())


def _grids(settings: SearchSettings) -> list[dict[str, list]]:
    tables = settings.space if isinstance(settings.space, list) else [settings.space]
    if not tables or all(not table for table in tables):
        raise ConfigError("search.space is empty: give at least one parameter with a list of values")
    known = set(searchable_parameters())
    grids = []
    for table in tables:
        if not table:
            raise ConfigError("search.space: an empty [[search.space]] table")
        grid = {}
        for name, values in table.items():
            if name not in known and not (
                name.startswith(MODEL_OPTION_PREFIX) and len(name) > len(MODEL_OPTION_PREFIX)
            ):
                raise ConfigError(
                    f"search.space: unknown parameter {name!r}; searchable: "
                    f"{', '.join(sorted(known))}, or student.model.<option>"
                )
            values = values if isinstance(values, list) else [values]
            if not values:
                raise ConfigError(f"search.space.{name}: empty list; give at least one value")
            grid[name] = values
        grids.append(grid)
    return grids


def _set(config: dict, dotted: str, value: Any) -> None:
    *sections, leaf = dotted.split(".")
    target = config
    for section in sections:
        target = target.setdefault(section, {})
    target[leaf] = value


def _check_values(grids: list[dict[str, list]], base: RunConfig) -> None:
    """Refuse a value of the wrong type before any combination is built."""
    for grid in grids:
        for name, values in grid.items():
            for value in values:
                if name.startswith(MODEL_OPTION_PREFIX):
                    if not isinstance(value, (bool, int, float, str)):
                        raise ConfigError(f"search.space.{name}: value {value!r} is not a number, string or boolean")
                    continue
                if name == "quantize.backend" and value not in config_types():
                    raise ConfigError(
                        f"search.space.quantize.backend: unknown backend {value!r}; expected "
                        f"one of {', '.join(config_types())}"
                    )
                trial = base.model_dump()
                if name.startswith(QUANTIZE_PREFIX):  # judged by a backend that has the option
                    trial["quantize"] = {"backend": _backend_with(name[len(QUANTIZE_PREFIX) :])}
                _set(trial, name, value)
                try:
                    RunConfig.model_validate(trial)
                except ValidationError as exc:
                    raise ConfigError(
                        validation_message(exc, f"search.space.{name}").replace(
                            f"search.space.{name}: field '{name}': ", f"search.space.{name}: "
                        )
                    ) from exc


def _apply(base: RunConfig, params: dict[str, Any]) -> dict:
    config = copy.deepcopy(base.model_dump())
    for name, value in params.items():
        if not name.startswith(MODEL_OPTION_PREFIX):
            _set(config, name, value)
    options = {
        name[len(MODEL_OPTION_PREFIX) :]: value
        for name, value in params.items()
        if name.startswith(MODEL_OPTION_PREFIX)
    }
    if options:
        spec = ModelSpec.parse(config["student"]["model"])
        config["student"]["model"] = str(ModelSpec(spec.name, {**spec.options, **options}))
    return config


def _backend_with(option: str) -> str:
    """The first backend (``none`` included) whose config type has ``option``."""
    return next((name for name, kind in config_types().items() if option in kind.model_fields), "ort-static")


def _normalize_quantize(config: dict, params: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Drop quantization options the candidate's backend does not have; return its shown params."""
    quant = config["quantize"]
    kinds = config_types()
    used = set(kinds[quant["backend"]].model_fields) if quant["backend"] in kinds else set(quant)
    if quant["backend"] != NO_QUANTIZATION:  # the guard's tolerance keys, beside the backend's options
        used |= set(TOLERANCE_KEYS)
    ignored = tuple(sorted(k for k in quant if k not in used))
    for key in ignored:
        del quant[key]
    shown = {
        name: (None if name.startswith(QUANTIZE_PREFIX) and name[len(QUANTIZE_PREFIX) :] in ignored else value)
        for name, value in params.items()
    }
    return shown, tuple(QUANTIZE_PREFIX + k for k in ignored if QUANTIZE_PREFIX + k in params)


def candidate_id(params: dict[str, Any]) -> str:
    return sha256_json(params)[:12]


def grid_size(settings: SearchSettings) -> int:
    return len(ParameterGrid(_grids(settings)))


# Without max_trials, a space larger than this is refused before any point is built (--allow-large-grid
# lifts it): a 100 x 100 x 100 grid once ran 10 minutes at 9.3 GB without starting a trial.
MAX_CANDIDATES = 1000


def check_size(settings: SearchSettings, max_trials: int | None, allow_large_grid: bool) -> int:
    """Count the candidates arithmetically (the product of the value lists) and refuse a space that is
    too large, before building any of its points; return the count."""
    size = grid_size(settings)  # ParameterGrid's len multiplies list lengths; nothing is materialised
    if settings.strategy == "random" and settings.n_iter is not None:  # load_search_settings requires n_iter
        size = min(size, settings.n_iter)
    if allow_large_grid:
        return size
    if max_trials is not None:
        if settings.strategy == "grid" and size > max_trials:
            raise ConfigError(
                f"the search space has {size:,} grid points, more than max_trials {max_trials}; "
                "pass --allow-large-grid to run the first max_trials of them, or shrink the space"
            )
    elif size > MAX_CANDIDATES:
        raise ConfigError(
            f"the search space has {size:,} candidates, more than the default maximum of "
            f"{MAX_CANDIDATES:,}; shrink the space, or set max_trials (--max-trials) with "
            "--allow-large-grid to run the first of them, or --allow-large-grid to run them all"
        )
    return size


def expand(
    settings: SearchSettings, base: RunConfig, cpu: dict, limit: int | None = None
) -> tuple[list[Candidate], dict]:
    """Every candidate of the space (the first ``limit`` of them), in order, validated; and what the
    expansion did."""
    grids = _grids(settings)
    _check_values(grids, base)
    total = len(ParameterGrid(grids))
    if settings.strategy == "grid":
        points = iter(ParameterGrid(grids))  # lazily: a huge grid cut by --max-trials is never built whole
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # n_iter above the grid size: the whole grid
            points = list(ParameterSampler(grids, n_iter=settings.n_iter, random_state=settings.seed))
    candidates: list[Candidate] = []
    seen: set[str] = set()
    merged = 0
    specs_checked: set[str] = set()
    drawn = 0
    for params in points:
        if limit is not None and len(candidates) >= limit:
            break
        drawn += 1
        config_dict = _apply(base, params)
        shown, ignored = _normalize_quantize(config_dict, params)
        cid = candidate_id(shown)
        if cid in seen:
            merged += 1
            continue
        seen.add(cid)
        try:
            config = RunConfig.model_validate(config_dict)
        except ValidationError as exc:
            raise ConfigError(validation_message(exc, f"search candidate {shown}")) from exc
        try:
            if config.student.model not in specs_checked:
                ModelSpec.parse(config.student.model).validate()
                specs_checked.add(config.student.model)
            quant_config: QuantConfig | None = None
            reason = ""
            if isinstance(config.quantize, QuantConfig):
                quant_config, reason = build_quant_config(config.quantize, cpu)
        except EdgeportError as exc:
            raise ConfigError(f"search candidate {shown}: {exc}") from exc
        candidates.append(Candidate(cid, len(candidates), shown, config, quant_config, reason, ignored))
    info = {
        "strategy": settings.strategy,
        "space_size": total,
        "points_drawn": drawn,
        "merged_duplicates": merged,
        "candidates": len(candidates),
    }
    return candidates, info
