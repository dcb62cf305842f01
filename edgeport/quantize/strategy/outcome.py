"""What auto found (``AutoOutcome``: every attempt, the chosen one, how they were measured) and what its caller
asked of it (``Plan``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeport.benchmarks import BenchSettings
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.quantize.strategy.attempts import Attempt
from edgeport.quantize.strategy.judging import Judging
from edgeport.quantize.strategy.recipes import GraphProfile


@dataclass
class AutoOutcome:
    profile: GraphProfile
    attempts: list[Attempt] = field(default_factory=list)
    chosen: Attempt | None = None
    fp32_p50_ms: float | None = None
    outlier_ratio: float | None = None  # calibration activations: worst channel max / median channel max
    runtime: RuntimeChoice = ONNXRUNTIME  # where the recipes were judged and measured
    judging: Judging | None = None  # the fp32 reference every recipe was judged against (not recorded)
    ranking: BenchSettings | None = None  # the settings the faithful recipes were measured with
    fallback_skipped: str | None = None  # why the fallback was not tried (int8 could not pay)
    skipped: dict[str, str] = field(default_factory=dict)  # recipes not tried, and why
    ranked_later: bool = False  # the faithful recipes were measured on every installed runtime, not here

    def faithful_files(self) -> dict[str, Attempt]:
        """Every faithful recipe other than the chosen one, by its option name ("int8 (nncf)"): the files
        measured beside the chosen one ("int8") on every installed runtime when the runtime is chosen."""
        return {f"int8 ({a.recipe.name})": a for a in self.attempts if a is not self.chosen and a.faithful}

    def describe(self) -> dict:
        return {
            "graph": self.profile.describe(),
            "activation_outlier_ratio": round(self.outlier_ratio, 2) if self.outlier_ratio is not None else None,
            "chosen": self.chosen.recipe.name if self.chosen else None,
            "fp32_p50_ms": self.fp32_p50_ms,
            # None: fewer than two faithful recipes, nothing to rank (the speed check measures the one)
            "ranking_settings": {
                "batch": 1,
                "threads": 1,
                "iterations": self.ranking.iterations,
                "rounds": self.ranking.rounds,
            }
            if self.ranking
            else None,
            # True: the faithful recipes were measured with fp32 on every installed runtime (speed.alternatives)
            "ranked_with_runtimes": self.ranked_later,
            "runtime": self.runtime.label(),
            "attempts": [a.describe(self.fp32_p50_ms) for a in self.attempts],
            "fallback_skipped": self.fallback_skipped,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class Plan:
    """What the caller does around the recipes. ``must_pay``: int8 ships only when faster than fp32, so the
    fallback is skipped when the most faithful recipe, every layer int8, is already no faster: keeping
    layers in float cannot make it pay (a detector spent ten minutes on a fallback that could not).
    ``with_nncf``: NNCF's int8 is one more recipe. ``ranked_later``: the faithful recipes are not measured
    here: the caller measures every faithful file on every installed runtime (``AutoOutcome.faithful_files``)."""

    must_pay: bool = False
    with_nncf: bool = False
    ranked_later: bool = False


__all__ = ["AutoOutcome", "Plan"]
