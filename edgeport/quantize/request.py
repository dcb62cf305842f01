"""The request for one verified quantization and its outcome: built once, frozen.

``QuantizeRequest`` carries everything ``quantize_verified`` needs (both ``edgeport quantize`` and the
run/search stage build one); ``QuantOutcome`` everything it produced. Kept light (the records of the
guard and the strategies are named for the type checker only): the package's front door names both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.quantize.config import QuantConfig
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.source import ModelSource

if TYPE_CHECKING:
    from edgeport.exporter import OnnxLineage
    from edgeport.quantize.guard.judge import GuardReport, Validation
    from edgeport.quantize.strategy.fallback import FallbackReport
    from edgeport.quantize.strategy.outcome import AutoOutcome
    from edgeport.quantize.strategy.payoff import Payoff


@dataclass(frozen=True)
class QuantizeRequest:
    """One quantization to verify: the fp32 model, the calibration inputs, what the int8 model is
    judged on (held-out inputs, labels, tolerance), the settings (``reduce_range`` already decided:
    ``options.build_quant_config``), where the int8 model goes and the lineage written into it
    (``backend`` and ``quant`` are filled in from the applied settings)."""

    source: ModelSource
    calibration: dict[str, np.ndarray]
    validation: Validation
    config: QuantConfig  # AutoConfig: edgeport chooses the recipe
    output: Path
    lineage: OnnxLineage
    fallback: bool = False  # an explicit tolerance: sensitive layers kept in float until within it
    fallback_layers: tuple[str, ...] | None = None  # only these may fall back (default: every conv/linear)
    runtime: RuntimeChoice = ONNXRUNTIME  # the runtime the artifact ships with: judged as it runs there
    # int8 ships only when faster than fp32 on ``runtime`` (measured here); off where this machine is not
    # the target (the latency is then measured there, e.g. `edgeport bench` on the board)
    speed_check: bool = True
    # with the speed check: the int8 file ships on whichever installed runtime runs it fastest and faithfully,
    # if it beats fp32 on every installed runtime and precision (``runtime`` still judges and ranks recipes)
    choose_runtime: bool = False

    def judged_on(self) -> str:
        """Which inputs the guard judged, and on which runtime when it is not onnxruntime."""
        ran = f"; int8 run on {self.runtime.label()}" if self.runtime.name != ONNXRUNTIME.name else ""
        return self.validation.judged_on + ran


@dataclass(frozen=True)
class QuantOutcome:
    """A verified quantization: the int8 model (at the request's ``output``), the settings applied (for
    backend ``auto``, the chosen recipe's), the verification report, the guard's verdict, and, when they
    ran, the fallback's steps and every recipe auto tried."""

    result: QuantResult
    config: QuantConfig
    verification: dict
    guard: GuardReport
    fallback: FallbackReport | None = None
    auto: AutoOutcome | None = None
    payoff: Payoff | None = None  # the speed verdict (None: the speed check was off)

    @property
    def ships(self) -> bool:
        """Within tolerance and, where it was measured, faster than fp32 on the runtime it ships with."""
        return self.guard.within_tolerance and (self.payoff is None or self.payoff.ships)

    def verdict(self) -> str:
        """The first line of the manifest: the guard's verdict, or why a faithful model does not ship."""
        if self.guard.within_tolerance and self.payoff is not None and not self.payoff.ships:
            return f"NOT FASTER THAN FP32: {self.payoff.line()} (guard: {self.guard.line()})"
        if not self.guard.within_tolerance and self.payoff is not None:
            return f"{self.guard.line()}; {self.payoff.line()}"
        payoff = self.payoff
        if payoff is not None and payoff.baseline is not None and payoff.speedup is not None:  # the runtime chosen
            return (
                f"{self.guard.line()}; ships as int8 on {payoff.runtime.label()} at {payoff.speedup.text()} the p50 "
                f"of {payoff.baseline.label}, the fastest faithful fp32"
            )
        return self.guard.line()

    def notes(self) -> list[str]:
        """edgeport's own observations for the manifest's warnings: with the speed check off, int8 that
        auto measured slower than fp32 on this CPU; with it on, a faithful option on another runtime or
        precision that ran clearly faster than the int8 model that ships."""
        chosen = self.auto.chosen if self.auto is not None else None
        if self.payoff is not None:
            return self._faster_option()
        if self.auto is None or chosen is None:
            return []
        if not chosen.p50_ms or not self.auto.fp32_p50_ms:
            return []
        ratio = chosen.p50_ms / self.auto.fp32_p50_ms
        if ratio < 1.0:
            return []
        return [
            f"the fastest faithful int8 recipe ({chosen.recipe.name}) ran at {ratio:.2f}x the fp32 p50 "
            "on this CPU (batch 1, one thread): int8 does not pay here; keep the fp32 model or measure on the target"
        ]

    def _faster_option(self) -> list[str]:
        """A faithful option that ran clearly faster than the int8 model that ships (measured beside it)."""
        assert self.payoff is not None
        better = self.payoff.faster_than_shipped()
        if better is None:
            return []
        base = self.payoff.options_fp32_p50_ms or better.p50_ms
        return [
            f"{better.option.label} ran at {better.p50_ms / base:.2f}x fp32 on {self.payoff.runtime.label()}, faster "
            f"than this int8 model on {self.payoff.runtime.label()} and faithful: where that runtime is the target, "
            f"quantize with --runtime {better.option.runtime.name} or ship that option"
        ]


__all__ = ["QuantOutcome", "QuantizeRequest"]
