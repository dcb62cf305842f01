"""``edgeport quantize`` with ``--backend auto`` (the default for ONNX models): every recipe of
``quantize.strategy.recipes`` in order, each judged by the guard on held-out inputs, the faithful ones
measured side by side, the fastest kept. Every attempt is recorded for the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.records import ONNXRUNTIME, BenchResult, RuntimeChoice
from edgeport.benchmarks.speedup import speedup_of, tied_with_fastest
from edgeport.core.progress import SILENT, Progress
from edgeport.quantize.backends.ort_reuse import reuse
from edgeport.quantize.config import AutoConfig
from edgeport.quantize.guard.judge import Validation
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy.ahead import Ahead, started_ahead
from edgeport.quantize.strategy.attempts import Attempt, float_head, screen, try_recipe
from edgeport.quantize.strategy.auto_fallback import Early, early_fallback, fall_back, wants_fallback
from edgeport.quantize.strategy.judging import Judging, fp32_onnx, judging_for
from edgeport.quantize.strategy.outcome import AutoOutcome, Plan
from edgeport.quantize.strategy.recipes import Recipe, graph_profile, nncf_recipe, recipes_for
from edgeport.quantize.strategy.skip_rules import narrower_miss, races_a_faithful, twin_was_faithful
from edgeport.quantize.strategy.timing import CHECK, SHIP_CONFIDENCE, budgeted, one_run
from edgeport.quantize.transforms.smoothing import worst_outlier_ratio

# Ranking faithful recipes needs a clear ordering, not a release figure: short, interleaved, batch 1.
RANKING = BenchSettings(batch=1, threads=1, warmup=20, iterations=300, rounds=5)


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
        # at the ship decision's confidence: the speed check reuses the chosen one's (measured again if open)
        attempt.measured(speedup_of(results[attempt.recipe.name], results["fp32"], confidence=SHIP_CONFIDENCE))
    outcome.chosen = fastest_faithful(faithful, results)


def fastest_faithful(faithful: list[Attempt], results: Mapping[str, BenchResult] | None = None) -> Attempt:
    """Of the ``faithful`` attempts (recipe order, faster kernels first) measured in ``results`` (None: not
    here, all tied), the fastest; of those none is clearly faster than (tied_with_fastest), the most faithful
    (the guard's tightest margin), then the earliest. No coin toss between runs: the digits CNN's static
    per-channel and its float-head twin, 0.4 points more accurate, ran at 0.294 and 0.293 ms (Zen 3)."""
    names = [a.recipe.name for a in faithful]
    tied = tied_with_fastest(names, results, SHIP_CONFIDENCE) if results else names
    return max((a for a in faithful if a.recipe.name in tied), key=lambda a: a.guard.margin() if a.guard else 0.0)


def run_recipes(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    auto: AutoConfig,
    validation: Validation,
    staging: Path,
    progress: Progress = SILENT,
    runtime: RuntimeChoice = ONNXRUNTIME,
    plan: Plan | None = None,
) -> AutoOutcome:
    """Try the recipes for ``source``'s graph, each judged on ``validation``; ``chosen`` is the fastest
    within tolerance (``fastest_faithful``: a tie on speed never makes two same-seed runs differ); when none
    is, the most faithful one with its sensitive layers in float, else the most faithful (the caller fails
    the command then). Each recipe inherits ``auto``'s ``reduce_range``, decided where auto's settings were
    built."""
    with reuse(staging / "reuse"):  # each recipe and fallback step pre-processes and calibrates once
        return _run_recipes(source, calibration, auto, validation, staging, progress, runtime, plan or Plan())


def _try_recipes(
    outcome: AutoOutcome,
    recipes: list[Recipe],
    judging: Judging,
    staging: Path,
    progress: Progress,
    ahead: Mapping[str, Ahead],
    meanwhile: Callable[[], Early | None] = lambda: None,
) -> Early | None:
    """Each recipe in order into ``outcome.attempts``, or into ``outcome.skipped`` with why it was not tried.
    A recipe in ``ahead`` was started in a child process (NNCF's, where that pays: strategy/ahead.py); where
    that child still runs when its answer is wanted (NNCF's recipe comes last), ``meanwhile`` is called first
    and what it made is returned."""
    profile = outcome.profile
    early = None
    with progress.task("auto: try recipes", total=len(recipes)) as advance:
        done: set[str] = set()  # quantizers with a faithful recipe on a conv net: their later ones are slower
        for index, recipe in enumerate(recipes):
            if recipe.quantizer in done and not races_a_faithful(recipe, outcome.attempts):
                outcome.skipped[recipe.name] = (
                    f"a conv net: {recipe.quantizer}'s static int8 is within tolerance, and this recipe's "
                    "kernels are slower"
                )
                advance(1)
                continue
            if twin_was_faithful(recipe, outcome.attempts):
                advance(1)  # smoothing only buys fidelity: its twin already had it, at the same speed
                continue
            missed = narrower_miss(recipe, outcome.attempts)
            if missed is not None:
                outcome.skipped[recipe.name] = missed
                advance(1)
                continue
            dropped = screen(recipe, judging, staging / f"recipe-{index}-subset.onnx")
            if dropped is not None:  # clearly outside tolerance on a calibration subset: not calibrated in full
                outcome.attempts.append(dropped)
                advance(1)
                continue
            started = ahead.get(recipe.name)
            if started is not None and not started.done():
                early = meanwhile()
            staged = started.output if started is not None else staging / f"recipe-{index}.onnx"
            attempt = try_recipe(recipe, judging, staged, started)
            outcome.attempts.append(attempt)
            head = float_head(attempt, judging, staging / f"recipe-{index}-float-head.onnx")
            if head is not None:  # missed on a part of an output: once more with the output's head in float
                outcome.attempts.append(head)
                attempt = head
            advance(1)
            if attempt.guard and attempt.guard.within_tolerance and profile.conv_dominant:
                done.add(recipe.quantizer)  # static per-channel first: its later recipes cannot be faster
    return early


def _run_recipes(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    auto: AutoConfig,
    validation: Validation,
    staging: Path,
    progress: Progress,
    runtime: RuntimeChoice,
    plan: Plan,
) -> AutoOutcome:
    model = fp32_onnx(source)
    profile = graph_profile(onnx.load(str(model), load_external_data=False))
    nncf = nncf_recipe(profile, auto) if plan.with_nncf else None
    # NNCF, the slowest recipe, starts first (where a child process pays): the fp32 reference and the outlier
    # ratio are computed meanwhile (MiniLM, AMD EPYC Zen 3: its 29-31 s in the child began 2.2 s sooner)
    with started_ahead(nncf, model, calibration, staging / "recipe-nncf.onnx") as ahead:
        judging = judging_for(source, calibration, validation, runtime)
        outcome = AutoOutcome(profile, runtime=runtime, judging=judging, ranked_later=plan.ranked_later)
        if not profile.conv_dominant:  # outlier channels: a reason to try smoothed recipes too
            outcome.outlier_ratio = worst_outlier_ratio(model, calibration)
        recipes = recipes_for(profile, auto, outcome.outlier_ratio) + ([nncf] if nncf else [])
        early = _try_recipes(  # the fallback, made while NNCF's child process ran
            outcome,
            recipes,
            judging,
            staging,
            progress,
            ahead,
            lambda: early_fallback(outcome, judging, staging, plan, progress),
        )
    if wants_fallback(outcome.attempts, plan):
        fall_back(outcome, judging, staging, plan, progress, early)
    faithful = [a for a in outcome.attempts if a.faithful]
    judged = [a for a in outcome.attempts if a.guard and a.result]
    # one faithful recipe needs no ranking (the speed check, if on, measures it next); ranked with the runtime,
    # every faithful file is measured on every installed runtime (payoff.py), the most faithful listed first
    if len(faithful) > 1 and not plan.ranked_later:
        _rank(outcome, model, faithful, validation.inputs, runtime, progress)  # sets chosen
    elif faithful:
        outcome.chosen = fastest_faithful(faithful)
    else:
        outcome.chosen = min(judged, key=lambda a: a.guard.shortfall() if a.guard else float("inf"), default=None)
    return outcome
