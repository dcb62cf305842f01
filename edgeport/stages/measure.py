"""The measure stage's settings: a project file's [bench] section as benchmark settings."""

from __future__ import annotations

from edgeport.benchmarks import BenchSettings
from edgeport.benchmarks.records import RuntimeChoice
from edgeport.config import BenchSection


def bench_settings(section: BenchSection, seed: int) -> BenchSettings:
    return BenchSettings(
        batch=section.batch,
        threads=section.threads,
        warmup=section.warmup,
        iterations=section.iterations,
        rounds=section.rounds,
        seed=seed,
        runtime=RuntimeChoice(section.runtime, section.precision),
    )
