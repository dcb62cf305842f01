"""``edgeport quantize`` with ``--backend auto`` (the default for ONNX models): every recipe of
``quantize.strategy.recipes`` in order, each judged by the guard on held-out inputs, the faithful ones
measured side by side, the fastest kept. Every attempt is recorded for the manifest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.session import create_session
from edgeport.core.progress import SILENT, Progress
from edgeport.data.feeds import BATCH_FIRST, first_feed, model_layout
from edgeport.errors import EdgeportError
from edgeport.quantize.apply import quantize
from edgeport.quantize.config import AutoConfig, QuantConfig
from edgeport.quantize.guard.fidelity import sequence_outputs
from edgeport.quantize.guard.judge import GuardReport, Validation, judge
from edgeport.quantize.inputs.run import fixed_batch, ort_session, run_all_outputs
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy.fallback import quantize_with_fallback
from edgeport.quantize.strategy.recipes import GraphProfile, Recipe, graph_profile, recipes_for
from edgeport.quantize.transforms.smoothing import worst_outlier_ratio

# Ranking faithful recipes needs a clear ordering, not a release figure: short, interleaved, batch 1.
RANKING = BenchSettings(batch=1, threads=1, warmup=20, iterations=300, rounds=5)
# One faithful recipe is still measured against fp32, shorter: only whether int8 pays at all is asked.
CHECK = BenchSettings(batch=1, threads=1, warmup=10, iterations=100, rounds=5)


@dataclass
class Attempt:
    recipe: Recipe
    seconds: float
    config: QuantConfig | None = None  # the recipe's config (reduce_range as auto's, decided for the CPU)
    result: QuantResult | None = None
    guard: GuardReport | None = None
    error: str | None = None
    p50_ms: float | None = None
    fallback: dict | None = None  # the fallback's steps, for the attempt that kept layers in float

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
            "p50_over_fp32": self.p50_ms / fp32_p50 if self.p50_ms and fp32_p50 else None,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "fallback": self.fallback,
        }


@dataclass
class AutoOutcome:
    profile: GraphProfile
    attempts: list[Attempt] = field(default_factory=list)
    chosen: Attempt | None = None
    fp32_p50_ms: float | None = None
    outlier_ratio: float | None = None  # calibration activations: worst channel max / median channel max
    runtime: RuntimeChoice = ONNXRUNTIME  # where the recipes were judged and measured

    def describe(self) -> dict:
        return {
            "graph": self.profile.describe(),
            "activation_outlier_ratio": round(self.outlier_ratio, 2) if self.outlier_ratio is not None else None,
            "chosen": self.chosen.recipe.name if self.chosen else None,
            "fp32_p50_ms": self.fp32_p50_ms,
            "ranking_settings": {"batch": 1, "threads": 1, "iterations": RANKING.iterations, "rounds": RANKING.rounds},
            "runtime": self.runtime.label(),
            "attempts": [a.describe(self.fp32_p50_ms) for a in self.attempts],
        }


@dataclass(frozen=True)
class _Judging:
    """What every attempt is quantized from and judged on."""

    source: ModelSource
    calibration: dict[str, np.ndarray]
    validation: Validation
    fp32_out: dict[str, np.ndarray]
    sequences: set[str]  # outputs judged by their decoded sequence too (fidelity.sequence_outputs)
    runtime: RuntimeChoice = ONNXRUNTIME  # the runtime the artifact ships with: judged as it runs there

    def judge(self, int8_path: Path) -> GuardReport:
        validation = self.validation
        if self.runtime.name == ONNXRUNTIME.name:
            session, judged_on = ort_session(int8_path), validation.judged_on
        else:
            session = create_session(int8_path, CHECK, self.runtime)
            judged_on = f"{validation.judged_on} ({compiled_precision(session)})"
        int8_out = run_all_outputs(session, validation.inputs)
        return judge(self.fp32_out, int8_out, validation.labels, validation.tolerance, judged_on, self.sequences)


def compiled_precision(session: object) -> str:
    """What the judged run really computed in: a precision hint is only a hint (OpenVINO compiles --precision
    f16 as f32 on a CPU without f16 arithmetic), so the record says what the compiled model reports."""
    return f"OpenVINO compiled it as {getattr(session, 'precision', None) or 'an unreported precision'}"


def _attempt(recipe: Recipe, judging: _Judging, staged: Path) -> Attempt:
    started = time.perf_counter()
    attempt = Attempt(recipe, 0.0)
    try:
        if not isinstance(recipe.config, QuantConfig):
            raise EdgeportError(f"recipe {recipe.name!r} does not quantize")
        attempt.config = recipe.config
        attempt.result = quantize(judging.source, judging.calibration, attempt.config, staged, SILENT)
        attempt.guard = judging.judge(staged)
    except EdgeportError as exc:  # a recipe the graph cannot take: recorded, the next one is tried
        attempt.error = str(exc)
    except Exception as exc:  # onnxruntime refusing the recipe's output (its own exception types)
        attempt.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    attempt.seconds = time.perf_counter() - started
    return attempt


def _fallback(best: Attempt, judging: _Judging, staged: Path, progress: Progress) -> Attempt:
    """No recipe is within tolerance: keep the most sensitive layers of the most faithful one in float
    (sensitivity ranking, bisection: quantize/strategy/fallback.py), so that the result is faithful with the
    sensitive part named, rather than a miss."""
    assert best.config is not None
    recipe = Recipe(f"{best.recipe.name}+fallback", best.config, best.recipe.why + "; sensitive layers kept in float")
    started = time.perf_counter()
    attempt = Attempt(recipe, 0.0, best.config)
    try:
        attempt.result, report = quantize_with_fallback(
            judging.source, judging.calibration, best.config, staged, judging.validation, progress
        )
        attempt.fallback = {k: v for k, v in report.describe().items() if k != "tensors"}  # the ranking: --explain
        layers = len(report.sensitivity)
        if layers and len(report.excluded) >= layers:  # an "int8" model with every layer in float is no answer
            attempt.result = None
            attempt.error = f"within tolerance only with all {layers} layers in float: no faithful int8 model"
        else:
            attempt.guard = judging.judge(staged)
    except EdgeportError as exc:
        attempt.error = str(exc)
    attempt.seconds = time.perf_counter() - started
    return attempt


def _one_run(fp32_path: Path, validation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What one measured run is fed: one sample in either .npz layout, or a whole batch where the model
    fixes its batch size (the first samples, repeated when there are fewer)."""
    layout = model_layout(fp32_path, validation)
    fixed = fixed_batch(ort_session(fp32_path)) if layout == BATCH_FIRST else None
    if not fixed or fixed == 1:
        return first_feed(validation, layout)
    take = np.resize(np.arange(min(fixed, len(next(iter(validation.values()))))), fixed)
    return {name: np.ascontiguousarray(array[take]) for name, array in validation.items()}


def _rank(
    outcome: AutoOutcome,
    fp32_path: Path,
    faithful: list[Attempt],
    validation: dict[str, np.ndarray],
    runtime: RuntimeChoice,
    progress: Progress,
) -> None:
    """Measure the faithful recipes interleaved with fp32 (one alone too: whether int8 pays at all), all
    on ``runtime``: on OpenVINO, fp32 runs at its default precision (bf16 on CPUs with AMX), so int8 must
    beat that baseline."""
    sample = _one_run(fp32_path, validation)
    models = {"fp32": fp32_path, **{a.recipe.name: a.result.path for a in faithful if a.result}}
    settings = RANKING if len(faithful) > 1 else CHECK
    with progress.task("auto: measure against fp32", total=settings.rounds) as advance:
        results = measure_interleaved(models, settings, sample, advance, runtimes=dict.fromkeys(models, runtime))
    outcome.fp32_p50_ms = results["fp32"].stats["p50_ms"]
    for attempt in faithful:
        attempt.p50_ms = results[attempt.recipe.name].stats["p50_ms"]


def run_recipes(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    auto: AutoConfig,
    validation: Validation,
    staging: Path,
    progress: Progress = SILENT,
    runtime: RuntimeChoice = ONNXRUNTIME,
) -> AutoOutcome:
    """Try the recipes for ``source``'s graph, each judged on ``validation``; ``chosen`` is the fastest
    within tolerance; when none is, the most faithful one with its sensitive layers in float, else the
    most faithful (the caller fails the command then). Each recipe inherits ``auto``'s ``reduce_range``,
    decided where auto's settings were built."""
    if source.onnx_path is None:
        raise EdgeportError("backend auto reads a fp32 ONNX file; none was given")
    graph = onnx.load(str(source.onnx_path), load_external_data=False)
    profile = graph_profile(graph)
    outcome = AutoOutcome(profile, runtime=runtime)
    fp32_out = run_all_outputs(ort_session(source.onnx_path), validation.inputs)
    judging = _Judging(source, calibration, validation, fp32_out, sequence_outputs(graph), runtime)
    if not profile.conv_dominant:  # outlier channels: a reason to try smoothed recipes too
        outcome.outlier_ratio = worst_outlier_ratio(source.onnx_path, calibration)
    recipes = recipes_for(profile, auto, outcome.outlier_ratio)
    with progress.task("auto: try recipes", total=len(recipes)) as advance:
        for index, recipe in enumerate(recipes):
            attempt = _attempt(recipe, judging, staging / f"recipe-{index}.onnx")
            outcome.attempts.append(attempt)
            advance(1)
            if attempt.guard and attempt.guard.within_tolerance and profile.conv_dominant:
                break  # static per-channel first: a later recipe cannot be faster on a conv net
    judged = [a for a in outcome.attempts if a.guard and a.result]
    faithful = [a for a in judged if a.guard and a.guard.within_tolerance]
    if not faithful and judged:
        best = min(judged, key=lambda a: a.guard.shortfall() if a.guard else float("inf"))
        outcome.attempts.append(_fallback(best, judging, staging / "fallback.onnx", progress))
        judged.append(outcome.attempts[-1])
        faithful = [a for a in outcome.attempts[-1:] if a.guard and a.guard.within_tolerance]
    if faithful:
        _rank(outcome, source.onnx_path, faithful, validation.inputs, runtime, progress)
        outcome.chosen = min(faithful, key=lambda a: a.p50_ms or float("inf"))
    else:
        outcome.chosen = min(judged, key=lambda a: a.guard.shortfall() if a.guard else float("inf"), default=None)
    return outcome
