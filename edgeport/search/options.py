"""What one ``edgeport search`` invocation asks for beyond the project file (the command-line options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeport.benchmarks.pool.devices import PoolChoice


@dataclass
class SearchOptions:
    out: Path = Path("runs")
    resume: Path | None = None
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    max_trials: int | None = None
    allow_large_grid: bool = False
    time_limit: str | None = None  # --time-budget: stop starting trials after this long
    remote: str | None = None
    remote_python: str = "python3"
    ssh_options: tuple[str, ...] = ()
    pool: PoolChoice | None = None  # --pool: trials measured on a device pool, several at once
    cache: Path | None = None
    gate_budget: Path | None = None  # --budget: gate the chosen artifact against a target of this budget file
    gate_target: str | None = None  # --target: the target in gate_budget (optional when it defines one)
    overrides: dict = field(default_factory=dict)
