"""One try of auto: a recipe quantized and judged, and the two ways a miss is tried again: with the
nodes that make the outputs kept in float (a destroyed part of an output), and with the most
sensitive layers kept in float (the fallback)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgeport.benchmarks.rounds import CONFIDENCE
from edgeport.benchmarks.speedup import Speedup
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import EdgeportError
from edgeport.quantize.apply import quantize
from edgeport.quantize.config import QuantConfig
from edgeport.quantize.guard.judge import GuardReport
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.strategy.ahead import Ahead
from edgeport.quantize.strategy.fallback import quantize_with_fallback
from edgeport.quantize.strategy.judging import Judging
from edgeport.quantize.strategy.recipes import Recipe
from edgeport.quantize.strategy.screening import SUBSET, clearly_outside, worth_screening


@dataclass
class Attempt:
    recipe: Recipe
    seconds: float
    config: QuantConfig | None = None  # the recipe's config (reduce_range as auto's, decided for the CPU)
    result: QuantResult | None = None
    guard: GuardReport | None = None
    error: str | None = None
    p50_ms: float | None = None
    fp32_p50_ms: float | None = None  # fp32's p50 in the same interleaved measurement as ``p50_ms``
    ratio_ci: tuple[float, float] | None = None  # the interval of p50_ms / fp32_p50_ms (benchmarks/speedup.py)
    confidence: float = CONFIDENCE  # ratio_ci's
    fallback: dict | None = None  # the fallback's steps, for the attempt that kept layers in float
    screened: str | None = None  # dropped after a calibration subset, and why (its guard is that run's)

    @property
    def faithful(self) -> bool:
        """A file was made and the guard judged it within tolerance."""
        return self.result is not None and self.guard is not None and self.guard.within_tolerance

    def speedup(self) -> Speedup | None:
        """Its p50 against fp32's, measured side by side (None until auto measured it)."""
        if not self.p50_ms or not self.fp32_p50_ms:
            return None
        return Speedup(self.fp32_p50_ms, self.p50_ms, self.ratio_ci, self.confidence)

    def measured(self, speedup: Speedup) -> None:
        self.fp32_p50_ms, self.p50_ms, self.ratio_ci = speedup.fp32_p50_ms, speedup.int8_p50_ms, speedup.ratio_ci
        self.confidence = speedup.confidence

    def describe(self, fp32_p50: float | None) -> dict:
        return {
            "recipe": self.recipe.name,
            "backend": self.recipe.config.backend,
            "why": self.recipe.why,
            "settings": self.recipe.config.describe(),
            "metric": self.guard.metric if self.guard else None,
            "value": self.guard.value if self.guard else None,
            "within_tolerance": self.guard.within_tolerance if self.guard else False,
            "p50_ms": self.p50_ms,
            "p50_over_fp32": self.p50_ms / base if self.p50_ms and (base := self.fp32_p50_ms or fp32_p50) else None,
            "p50_over_fp32_ci": list(self.ratio_ci) if self.ratio_ci else None,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "fallback": self.fallback,
            "screened": self.screened,
        }


def try_recipe(recipe: Recipe, judging: Judging, staged: Path, ahead: Ahead | None = None) -> Attempt:
    """``recipe`` quantized into ``staged`` (or its quantization started ``ahead`` there: its result awaited) and
    judged; a failure is recorded on the attempt."""
    started = time.perf_counter()
    attempt = Attempt(recipe, 0.0)
    try:
        if not isinstance(recipe.config, QuantConfig):
            raise EdgeportError(f"recipe {recipe.name!r} does not quantize")
        attempt.config = recipe.config
        if ahead is not None:
            attempt.result = ahead.result()
        else:
            attempt.result = quantize(judging.source, judging.calibration, attempt.config, staged, SILENT)
        attempt.guard = judging.judge(staged)
    except EdgeportError as exc:  # a recipe the graph cannot take: recorded, the next one is tried
        attempt.error = str(exc)
    except Exception as exc:  # onnxruntime refusing the recipe's output (its own exception types)
        attempt.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    attempt.seconds = time.perf_counter() - started
    return attempt


def screen(recipe: Recipe, judging: Judging, staged: Path) -> Attempt | None:
    """``recipe`` first calibrated on a subset (strategy/screening.py): the dropped attempt when it is
    clearly outside tolerance there (no file, its guard the subset's), else None (calibrate it in full)."""
    config = recipe.config
    if not isinstance(config, QuantConfig):
        return None
    used = min(config.calibration_samples, len(next(iter(judging.calibration.values()), ())))
    if not worth_screening(config.backend, used):
        return None
    # evenly spaced samples, not the first ones: a calibration file ordered by class or by source is common
    picked = np.linspace(0, used - 1, SUBSET).round().astype(int)
    spread = dataclasses.replace(judging, calibration={k: v[picked] for k, v in judging.calibration.items()})
    subset = Recipe(recipe.name, config.model_copy(update={"calibration_samples": SUBSET}), recipe.why)
    attempt = try_recipe(subset, spread, staged)
    reason = clearly_outside(attempt.guard) if attempt.guard is not None and attempt.error is None else None
    if reason is None:
        return None
    attempt.recipe, attempt.config, attempt.result, attempt.screened = recipe, config, None, reason
    return attempt


# Ops that only move or relabel values: the head of an output is found behind them.
_MOVES = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Cast"}


def output_heads(model: onnx.ModelProto) -> tuple[str, ...]:
    """The top-level nodes that make each graph output: the producer, and through data-moving ops
    (Transpose, Reshape, ...) the first node that computes, e.g. the Concat that joins box coordinates
    and class scores. Quantized, such a node gives one scale to parts of very different ranges."""
    producers = {out: node for node in model.graph.node for out in node.output}
    heads: list[str] = []
    for output in model.graph.output:
        node = producers.get(output.name)
        while node is not None:
            if node.name:
                heads.append(node.name)
            if node.op_type not in _MOVES or not node.input:
                break
            node = producers.get(node.input[0])
    return tuple(dict.fromkeys(heads))


def float_head(attempt: Attempt, judging: Judging, staged: Path) -> Attempt | None:
    """A recipe missed only because a part of an output was destroyed (``slice_agreement`` alone: a
    detector's class scores sharing one int8 scale with its box coordinates): again with the nodes that
    make the outputs kept in float, before any compute layer falls back. None when that was not the miss."""
    if attempt.guard is None or attempt.config is None or judging.source.onnx_path is None:
        return None
    failed = attempt.guard.failed
    if not failed or not all(name.startswith("slice_agreement") for name in failed):
        return None  # only a destroyed part, the whole output otherwise faithful, points at the head
    heads = output_heads(onnx.load(str(judging.source.onnx_path), load_external_data=False))
    if not heads:
        return None
    config = attempt.config.model_copy(update={"exclude_nodes": tuple(attempt.config.exclude_nodes) + heads})
    why = attempt.recipe.why + f"; the nodes that make the outputs ({', '.join(heads)}) kept in float"
    return try_recipe(Recipe(f"{attempt.recipe.name}+float-head", config, why), judging, staged)


def fallback_attempt(best: Attempt, judging: Judging, staged: Path, progress: Progress) -> Attempt:
    """No recipe is within tolerance: keep the most sensitive layers of the most faithful one in float
    (sensitivity ranking, bisection: quantize/strategy/fallback.py), so that the result is faithful with the
    sensitive part named, rather than a miss."""
    assert best.config is not None
    recipe = Recipe(f"{best.recipe.name}+fallback", best.config, best.recipe.why + "; sensitive layers kept in float")
    started = time.perf_counter()
    attempt = Attempt(recipe, 0.0, best.config)
    try:
        attempt.result, report = quantize_with_fallback(
            judging.source, judging.calibration, best.config, staged, judging.validation, progress, first=best.result
        )
        attempt.fallback = {k: v for k, v in report.describe().items() if k != "tensors"}  # the ranking: --explain
        layers = len(report.sensitivity)
        if layers and len(report.excluded) >= layers:  # an "int8" model with every layer in float is no answer
            attempt.result = None
            attempt.error = (
                f"within tolerance only with all {layers} layers in float: no faithful int8 model"
                if report.within_tolerance
                else f"outside tolerance even with all {layers} layer(s) in float ({report.metric} "
                f"{report.steps[-1][report.metric]:.4g}): the loss is in the quantized ops between them"
            )
        else:
            attempt.guard = judging.judge(staged)
    except EdgeportError as exc:
        attempt.error = str(exc)
    attempt.seconds = time.perf_counter() - started
    return attempt


__all__ = ["Attempt", "fallback_attempt", "float_head", "output_heads", "screen", "try_recipe"]
