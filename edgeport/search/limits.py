"""How much a search may do: at most max_trials candidates, and no new trial after its time limit.

The command line wins over the [search] table for both. The time limit only stops new trials from
starting; trials already running finish, and at least one trial always runs so there is a result.
"""

from __future__ import annotations

import time

from edgeport.errors import ConfigError
from edgeport.search.options import SearchOptions
from edgeport.search.settings import SearchSettings, parse_duration
from edgeport.search.space import Candidate


def max_trials(options: SearchOptions, settings: SearchSettings) -> int | None:
    return options.max_trials or settings.max_trials


def first_candidates(candidates: list[Candidate], options: SearchOptions, settings: SearchSettings) -> list[Candidate]:
    """The candidates within max_trials; more than that is refused unless --allow-large-grid."""
    limit = max_trials(options, settings)
    if limit is not None and len(candidates) > limit:
        if not options.allow_large_grid:
            raise ConfigError(
                f"the search space has {len(candidates)} candidates, more than max_trials {limit}; "
                "pass --allow-large-grid to run the first max_trials of them, or shrink the space"
            )
        candidates = candidates[:limit]
    return candidates


def time_limit_s(options: SearchOptions, settings: SearchSettings) -> float | None:
    """Seconds after which no new trial starts (None: no limit)."""
    limit = options.time_limit if options.time_limit is not None else settings.time_budget
    return parse_duration(limit) if limit is not None else None


class Clock:
    """Time since the search session started, against its time limit."""

    def __init__(self, limit_s: float | None) -> None:
        self.started = time.monotonic()
        self.limit_s = limit_s

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def over_limit(self) -> bool:
        return self.limit_s is not None and self.elapsed > self.limit_s


def fmt_seconds(seconds: float) -> str:
    """``m:ss``, as the progress line shows elapsed time and ETA."""
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
