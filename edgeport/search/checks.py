"""Refusals before any work: settings a candidate's `edgeport run` would refuse, and spaces a search cannot run."""

from __future__ import annotations

from edgeport.errors import ConfigError, EdgeportError
from edgeport.search.settings import SearchSettings
from edgeport.search.space import Candidate
from edgeport.stages import validate


def validate_candidates(candidates: list[Candidate], cpu: dict) -> None:
    """`edgeport run`'s own checks (``stages.validate``), once for every distinct setting a candidate uses."""
    seen: set[str] = set()
    for candidate in candidates:
        config = candidate.config
        key = config.model_dump_json(include={"teacher", "student", "data", "quantize"})
        if key in seen:
            continue
        seen.add(key)
        try:
            validate(config, cpu, fp32_candidate=True)
        except EdgeportError as exc:
            raise ConfigError(f"search candidate {candidate.params}: {exc}") from exc


def check_halving(candidates: list[Candidate], settings: SearchSettings) -> None:
    """Halving trains for fewer epochs in its rungs, so the epochs cannot also be a searched parameter."""
    if settings.halving and len({c.config.student.epochs for c in candidates}) > 1:
        raise ConfigError("search.halving uses student.epochs as its resource; do not also search over student.epochs")
