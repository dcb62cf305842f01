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
from edgeport.errors import EdgeportError
from edgeport.quantize.apply import quantize
from edgeport.quantize.config import AutoConfig, QuantConfig
from edgeport.quantize.guard.heads import sequence_outputs
from edgeport.quantize.guard.judge import GuardReport, Validation, judge
from edgeport.quantize.inputs.run import ort_session, run_all_outputs
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy.fallback import quantize_with_fallback
from edgeport.quantize.strategy.payoff import CHECK, PAYS_BELOW, budgeted, one_run
from edgeport.quantize.strategy.recipes import SMOOTHED_PREFIX, GraphProfile, Recipe, graph_profile, recipes_for
from edgeport.quantize.transforms.smoothing import worst_outlier_ratio

# Ranking faithful recipes needs a clear ordering, not a release figure: short, interleaved, batch 1.
RANKING = BenchSettings(batch=1, threads=1, warmup=20, iterations=300, rounds=5)


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
    judging: Judging | None = None  # the fp32 reference every recipe was judged against (not recorded)
    ranking: BenchSettings | None = None  # the settings the faithful recipes were measured with
    fallback_skipped: str | None = None  # why the fallback was not tried (int8 could not pay)

    def describe(self) -> dict:
        return {
            "graph": self.profile.describe(),
            "activation_outlier_ratio": round(self.outlier_ratio, 2) if self.outlier_ratio is not None else None,
            "chosen": self.chosen.recipe.name if self.chosen else None,
            "fp32_p50_ms": self.fp32_p50_ms,
            "ranking_settings": {
                "batch": 1,
                "threads": 1,
                "iterations": (self.ranking or RANKING).iterations,
                "rounds": (self.ranking or RANKING).rounds,
            },
            "runtime": self.runtime.label(),
            "attempts": [a.describe(self.fp32_p50_ms) for a in self.attempts],
            "fallback_skipped": self.fallback_skipped,
        }


@dataclass(frozen=True)
class Judging:
    """What every attempt is quantized from and judged on (``judging_for``)."""

    source: ModelSource
    calibration: dict[str, np.ndarray]
    validation: Validation
    fp32_out: dict[str, np.ndarray]
    sequences: set[str]  # outputs judged by their decoded sequence too (heads.sequence_outputs)
    runtime: RuntimeChoice = ONNXRUNTIME  # the runtime the artifact ships with: judged as it runs there

    def judge(self, int8_path: Path) -> GuardReport:
        validation = self.validation
        if self.runtime.name == ONNXRUNTIME.name:
            session, judged_on = ort_session(int8_path), validation.judged_on
        else:
            session = create_session(int8_path, CHECK, self.runtime)
            judged_on = f"{validation.judged_on} ({compiled_precision(session)})"
        return self.judge_outputs(run_all_outputs(session, validation.inputs), judged_on)

    def judge_outputs(self, outputs: dict[str, np.ndarray], judged_on: str | None = None) -> GuardReport:
        """The verdict on any model's ``outputs`` on the validation inputs, against the fp32 ones."""
        validation = self.validation
        where = judged_on or validation.judged_on
        return judge(self.fp32_out, outputs, validation.labels, validation.tolerance, where, self.sequences)


def judging_for(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    validation: Validation,
    runtime: RuntimeChoice = ONNXRUNTIME,
) -> Judging:
    """The fp32 outputs on the validation inputs (onnxruntime: the reference), once, with the graph's
    sequence heads: every verdict on ``source`` compares against these."""
    if source.onnx_path is None:
        raise EdgeportError("backend auto reads a fp32 ONNX file; none was given")
    graph = onnx.load(str(source.onnx_path), load_external_data=False)
    fp32_out = run_all_outputs(ort_session(source.onnx_path), validation.inputs)
    return Judging(source, calibration, validation, fp32_out, sequence_outputs(graph), runtime)


def compiled_precision(session: object) -> str:
    """What the judged run really computed in: a precision hint is only a hint (OpenVINO compiles --precision
    f16 as f32 on a CPU without f16 arithmetic), so the record says what the compiled model reports."""
    return f"OpenVINO compiled it as {getattr(session, 'precision', None) or 'an unreported precision'}"


def _attempt(recipe: Recipe, judging: Judging, staged: Path) -> Attempt:
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


def _twin_was_faithful(recipe: Recipe, attempts: list[Attempt]) -> bool:
    """A SmoothQuant-smoothed recipe whose plain twin is already within tolerance: smoothing changes the
    weights, not the kernels, so it cannot be faster, and trying it would only cost a quantization."""
    if not recipe.name.startswith(SMOOTHED_PREFIX):
        return False
    twin = recipe.name.removeprefix(SMOOTHED_PREFIX)
    return any(a.recipe.name == twin and a.guard is not None and a.guard.within_tolerance for a in attempts)


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


def _float_head(attempt: Attempt, judging: Judging, staged: Path) -> Attempt | None:
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
    return _attempt(Recipe(f"{attempt.recipe.name}+float-head", config, why), judging, staged)


def _fallback(best: Attempt, judging: Judging, staged: Path, progress: Progress) -> Attempt:
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
    sample = one_run(fp32_path, validation)
    models = {"fp32": fp32_path, **{a.recipe.name: a.result.path for a in faithful if a.result}}
    settings = budgeted(RANKING if len(faithful) > 1 else CHECK, fp32_path, sample)
    outcome.ranking = settings
    with progress.task("auto: measure against fp32", total=settings.rounds) as advance:
        results = measure_interleaved(models, settings, sample, advance, runtimes=dict.fromkeys(models, runtime))
    outcome.fp32_p50_ms = results["fp32"].stats["p50_ms"]
    for attempt in faithful:
        attempt.p50_ms = results[attempt.recipe.name].stats["p50_ms"]


def _may_pay(
    outcome: AutoOutcome,
    fp32_path: Path,
    best: Attempt,
    validation: dict[str, np.ndarray],
    runtime: RuntimeChoice,
    progress: Progress,
) -> bool:
    """Whether ``best`` (every layer int8) runs faster than fp32 at all: measured, and recorded on it."""
    if best.result is None:
        return False
    sample = one_run(fp32_path, validation)
    models = {"fp32": fp32_path, best.recipe.name: best.result.path}
    settings = budgeted(CHECK, fp32_path, sample)
    with progress.task("auto: does int8 pay at all", total=settings.rounds) as advance:
        results = measure_interleaved(models, settings, sample, advance, runtimes=dict.fromkeys(models, runtime))
    outcome.fp32_p50_ms = results["fp32"].stats["p50_ms"]
    best.p50_ms = results[best.recipe.name].stats["p50_ms"]
    if best.p50_ms <= PAYS_BELOW * outcome.fp32_p50_ms:
        return True
    outcome.fallback_skipped = (
        f"the most faithful recipe ({best.recipe.name}) ran at {best.p50_ms / outcome.fp32_p50_ms:.2f}x fp32's p50 "
        "with every layer int8: keeping layers in float cannot make it pay, so no fallback was tried"
    )
    return False


def _most_faithful(outcome: AutoOutcome, judged: list[Attempt]) -> AutoOutcome:
    outcome.chosen = min(judged, key=lambda a: a.guard.shortfall() if a.guard else float("inf"), default=None)
    return outcome


def run_recipes(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    auto: AutoConfig,
    validation: Validation,
    staging: Path,
    progress: Progress = SILENT,
    runtime: RuntimeChoice = ONNXRUNTIME,
    must_pay: bool = False,
) -> AutoOutcome:
    """Try the recipes for ``source``'s graph, each judged on ``validation``; ``chosen`` is the fastest
    within tolerance; when none is, the most faithful one with its sensitive layers in float, else the
    most faithful (the caller fails the command then). Each recipe inherits ``auto``'s ``reduce_range``,
    decided where auto's settings were built. ``must_pay``: int8 ships only when faster than fp32, so the
    fallback is skipped when the most faithful recipe, every layer int8, is already no faster: keeping
    layers in float cannot make it pay (a detector spent ten minutes on a fallback that could not)."""
    judging = judging_for(source, calibration, validation, runtime)
    assert source.onnx_path is not None  # judging_for refuses a source without one
    profile = graph_profile(onnx.load(str(source.onnx_path), load_external_data=False))
    outcome = AutoOutcome(profile, runtime=runtime, judging=judging)
    if not profile.conv_dominant:  # outlier channels: a reason to try smoothed recipes too
        outcome.outlier_ratio = worst_outlier_ratio(source.onnx_path, calibration)
    recipes = recipes_for(profile, auto, outcome.outlier_ratio)
    with progress.task("auto: try recipes", total=len(recipes)) as advance:
        for index, recipe in enumerate(recipes):
            if _twin_was_faithful(recipe, outcome.attempts):
                advance(1)  # smoothing only buys fidelity: its twin already had it, at the same speed
                continue
            attempt = _attempt(recipe, judging, staging / f"recipe-{index}.onnx")
            outcome.attempts.append(attempt)
            head = _float_head(attempt, judging, staging / f"recipe-{index}-float-head.onnx")
            if head is not None:  # missed on a part of an output: once more with the output's head in float
                outcome.attempts.append(head)
                attempt = head
            advance(1)
            if attempt.guard and attempt.guard.within_tolerance and profile.conv_dominant:
                break  # static per-channel first: a later recipe cannot be faster on a conv net
    judged = [a for a in outcome.attempts if a.guard and a.result]
    faithful = [a for a in judged if a.guard and a.guard.within_tolerance]
    if not faithful and judged:
        best = min(judged, key=lambda a: a.guard.shortfall() if a.guard else float("inf"))
        if must_pay and not _may_pay(outcome, source.onnx_path, best, validation.inputs, runtime, progress):
            return _most_faithful(outcome, judged)
        outcome.attempts.append(_fallback(best, judging, staging / "fallback.onnx", progress))
        judged.append(outcome.attempts[-1])
        faithful = [a for a in outcome.attempts[-1:] if a.guard and a.guard.within_tolerance]
    if faithful:
        _rank(outcome, source.onnx_path, faithful, validation.inputs, runtime, progress)
        outcome.chosen = min(faithful, key=lambda a: a.p50_ms or float("inf"))
    else:
        outcome.chosen = min(judged, key=lambda a: a.guard.shortfall() if a.guard else float("inf"), default=None)
    return outcome
