"""``edgeport quantize`` with ``--backend auto`` (the default for ONNX models): every recipe of
``quant_backends.recipes`` in order, each judged by the guard on held-out inputs, the faithful ones
measured side by side, the fastest kept. Every attempt is recorded for the manifest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.errors import EdgeportError
from edgeport.progress import SILENT, Progress
from edgeport.quant_backends import ModelSource, QuantConfig, QuantResult, quantize
from edgeport.quant_backends.feeds import first_feed, model_layout
from edgeport.quant_backends.guard import GuardReport, Tolerance, judge
from edgeport.quant_backends.recipes import AutoConfig, GraphProfile, Recipe, graph_profile, recipes_for
from edgeport.quant_backends.smoothing import worst_outlier_ratio
from edgeport.quant_backends.verify import ort_session, run_all_outputs

# Ranking faithful recipes needs a clear ordering, not a release figure: short, interleaved, batch 1.
RANKING = BenchSettings(batch=1, threads=1, warmup=20, iterations=300, rounds=5)


@dataclass
class Attempt:
    recipe: Recipe
    seconds: float
    config: QuantConfig | None = None  # the recipe's config with reduce_range decided for the CPU
    result: QuantResult | None = None
    guard: GuardReport | None = None
    error: str | None = None
    p50_ms: float | None = None

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
        }


@dataclass
class AutoOutcome:
    profile: GraphProfile
    attempts: list[Attempt] = field(default_factory=list)
    chosen: Attempt | None = None
    fp32_p50_ms: float | None = None
    outlier_ratio: float | None = None  # calibration activations: worst channel max / median channel max

    def describe(self) -> dict:
        return {
            "graph": self.profile.describe(),
            "activation_outlier_ratio": round(self.outlier_ratio, 2) if self.outlier_ratio is not None else None,
            "chosen": self.chosen.recipe.name if self.chosen else None,
            "fp32_p50_ms": self.fp32_p50_ms,
            "ranking_settings": {"batch": 1, "threads": 1, "iterations": RANKING.iterations, "rounds": RANKING.rounds},
            "attempts": [a.describe(self.fp32_p50_ms) for a in self.attempts],
        }


def _attempt(recipe, source, calibration, staged: Path, fp32_out, validation, labels, tolerance, judged_on, cpu):
    started = time.perf_counter()
    attempt = Attempt(recipe, 0.0)
    try:
        attempt.config, _ = recipe.config.resolved(cpu)
        attempt.result = quantize(source, calibration, attempt.config, staged, SILENT)
        int8_out = run_all_outputs(ort_session(staged), validation)
        attempt.guard = judge(fp32_out, int8_out, labels, tolerance, judged_on)
    except EdgeportError as exc:  # a recipe the graph cannot take: recorded, the next one is tried
        attempt.error = str(exc)
    except Exception as exc:  # onnxruntime refusing the recipe's output (its own exception types)
        attempt.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    attempt.seconds = time.perf_counter() - started
    return attempt


def _rank(outcome: AutoOutcome, fp32_path: Path, faithful: list[Attempt], validation: dict, progress) -> None:
    sample = first_feed(validation, model_layout(fp32_path, validation))  # one sample, in either .npz layout
    models = {"fp32": fp32_path, **{a.recipe.name: a.result.path for a in faithful if a.result}}
    with progress.task("auto: rank faithful recipes", total=RANKING.rounds) as advance:
        results = measure_interleaved(models, RANKING, sample, advance)
    outcome.fp32_p50_ms = results["fp32"].stats["p50_ms"]
    for attempt in faithful:
        attempt.p50_ms = results[attempt.recipe.name].stats["p50_ms"]


def run_recipes(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    validation: dict[str, np.ndarray],
    labels: np.ndarray | None,
    auto: AutoConfig,
    tolerance: Tolerance,
    judged_on: str,
    staging: Path,
    cpu: dict,
    progress: Progress = SILENT,
) -> AutoOutcome:
    """Try the recipes for ``source``'s graph; ``chosen`` is the fastest within tolerance, else the most
    faithful one (the caller fails the command then)."""
    assert source.onnx_path is not None
    profile = graph_profile(onnx.load(str(source.onnx_path), load_external_data=False))
    outcome = AutoOutcome(profile)
    fp32_out = run_all_outputs(ort_session(source.onnx_path), validation)
    if not profile.conv_dominant:  # outlier channels: a reason to try smoothed recipes too
        outcome.outlier_ratio = worst_outlier_ratio(source.onnx_path, calibration)
    recipes = recipes_for(profile, auto, outcome.outlier_ratio)
    with progress.task("auto: try recipes", total=len(recipes)) as advance:
        for index, recipe in enumerate(recipes):
            staged = staging / f"recipe-{index}.onnx"
            attempt = _attempt(
                recipe, source, calibration, staged, fp32_out, validation, labels, tolerance, judged_on, cpu
            )
            outcome.attempts.append(attempt)
            advance(1)
            if attempt.guard and attempt.guard.within_tolerance and profile.conv_dominant:
                break  # static per-channel first: a later recipe cannot be faster on a conv net
    faithful = [a for a in outcome.attempts if a.guard and a.guard.within_tolerance]
    if len(faithful) > 1:
        _rank(outcome, source.onnx_path, faithful, validation, progress)
        outcome.chosen = min(faithful, key=lambda a: a.p50_ms or float("inf"))
    elif faithful:
        outcome.chosen = faithful[0]
    else:
        judged = [a for a in outcome.attempts if a.guard]
        outcome.chosen = max(judged, key=lambda a: a.guard.value if a.guard else -1.0, default=None)
    return outcome
