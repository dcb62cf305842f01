"""``edgeport quantize`` with ``--backend auto`` (the default for ONNX models): every recipe of
``quantize.strategy.recipes`` in order, each judged by the guard on held-out inputs, the faithful ones
measured side by side, the fastest kept. Every attempt is recorded for the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
from edgeport.quantize.strategy.ahead import started_ahead
from edgeport.quantize.strategy.attempts import Attempt, fallback_attempt, float_head, screen, try_recipe
from edgeport.quantize.strategy.judging import Judging, judging_for
from edgeport.quantize.strategy.recipes import GraphProfile, Recipe, graph_profile, recipes_for
from edgeport.quantize.strategy.skip_rules import narrower_miss, races_a_faithful, twin_was_faithful
from edgeport.quantize.strategy.timing import CHECK, SHIP_CONFIDENCE, budgeted, fallback_skip_reason, one_run
from edgeport.quantize.transforms.smoothing import worst_outlier_ratio

# Ranking faithful recipes needs a clear ordering, not a release figure: short, interleaved, batch 1.
RANKING = BenchSettings(batch=1, threads=1, warmup=20, iterations=300, rounds=5)


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


def _may_pay(
    outcome: AutoOutcome,
    fp32_path: Path,
    best: Attempt,
    validation: dict[str, np.ndarray],
    runtime: RuntimeChoice,
    progress: Progress,
) -> bool:
    """Whether ``best`` (every layer int8) runs faster than fp32 at all, and than every faithful file already
    made (NNCF's): measured side by side, and recorded on it. Keeping layers in float only slows it down."""
    if best.result is None:
        return False
    sample = one_run(fp32_path, validation)
    rivals = {a.recipe.name: a.result.path for a in outcome.attempts if a.faithful and a.result is not None}
    models = {"fp32": fp32_path, best.recipe.name: best.result.path, **{f"faithful {n}": p for n, p in rivals.items()}}
    settings = budgeted(CHECK, fp32_path, sample)
    with progress.task("auto: does int8 pay at all", total=settings.rounds) as advance:
        results = measure_interleaved(models, settings, sample, advance, runtimes=dict.fromkeys(models, runtime))
    speedup = speedup_of(results[best.recipe.name], results["fp32"])
    outcome.fp32_p50_ms = speedup.fp32_p50_ms
    best.measured(speedup)  # read against this fp32 run
    mine = results[best.recipe.name]
    against = {f"{n}'s file on {runtime.label()}": speedup_of(mine, results[f"faithful {n}"]) for n in rivals}
    outcome.fallback_skipped = fallback_skip_reason(best.recipe.name, speedup, against)
    return outcome.fallback_skipped is None


def wants_fallback(attempts: list[Attempt], plan: Plan) -> bool:
    """Whether the most faithful onnxruntime recipe is tried again with its sensitive layers in float: when no
    recipe is faithful, or when int8 must pay and no onnxruntime recipe is (the recipes come in order, faster
    kernels first). A faithful NNCF file does not end the search: on MiniLM (AMD EPYC Zen 3, AVX2) it ran at
    0.90x fp32 on onnxruntime and 1.13x on OpenVINO, so the command exited 1, while onnxruntime's dynamic, just
    outside tolerance (0.989), ran at 0.57x and with one MatMul in float shipped at 0.60x. ``_may_pay`` first
    measures whether the missed recipe, every layer int8, beats fp32 and the faithful files."""
    if not any(a.faithful for a in attempts):
        return True
    return plan.must_pay and not any(a.faithful and a.recipe.quantizer == "onnxruntime" for a in attempts)


def _fall_back(outcome: AutoOutcome, judging: Judging, staging: Path, plan: Plan, progress: Progress) -> None:
    """The most faithful onnxruntime recipe (whose quantized layers the sensitivity ranking names by their fp32
    nodes) again with its most sensitive layers in float, into ``outcome.attempts``; nothing when none was judged
    or int8 cannot pay. A recipe dropped on a calibration subset is calibrated in full first (enough, if that
    makes it faithful)."""
    own = [a for a in outcome.attempts if a.recipe.quantizer == "onnxruntime" and a.guard and (a.result or a.screened)]
    if not own:
        return
    best = min(own, key=lambda a: a.guard.shortfall() if a.guard else float("inf"))
    if best.result is None:  # screened: its file was never made
        if any(a.faithful for a in outcome.attempts):  # a full calibration to race a faithful file from that far
            outcome.fallback_skipped = f"{best.recipe.name} was clearly outside tolerance and a faithful file exists"
            return
        best = try_recipe(best.recipe, judging, staging / "fallback-base.onnx")
        outcome.attempts.append(best)
        if best.guard is None or best.faithful:
            return
    source = judging.source.onnx_path
    assert source is not None  # judging_for refuses a source without one
    if plan.must_pay and not _may_pay(outcome, source, best, judging.validation.inputs, outcome.runtime, progress):
        return
    outcome.attempts.append(fallback_attempt(best, judging, staging / "fallback.onnx", progress))


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


def run_recipes(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    auto: AutoConfig,
    validation: Validation,
    staging: Path,
    progress: Progress = SILENT,
    runtime: RuntimeChoice = ONNXRUNTIME,
    plan: Plan = Plan(),
) -> AutoOutcome:
    """Try the recipes for ``source``'s graph, each judged on ``validation``; ``chosen`` is the fastest
    within tolerance (``fastest_faithful``: a tie on speed never makes two same-seed runs differ); when none
    is, the most faithful one with its sensitive layers in float, else the most faithful (the caller fails
    the command then). Each recipe inherits ``auto``'s ``reduce_range``, decided where auto's settings were
    built."""
    with reuse(staging / "reuse"):  # each recipe and fallback step pre-processes and calibrates once
        return _run_recipes(source, calibration, auto, validation, staging, progress, runtime, plan)


def _try_recipes(
    outcome: AutoOutcome, recipes: list[Recipe], judging: Judging, staging: Path, progress: Progress
) -> None:
    """Each recipe in order into ``outcome.attempts``, or into ``outcome.skipped`` with why it was not tried
    (NNCF's quantization started in a child process meanwhile, where that pays: strategy/ahead.py)."""
    profile = outcome.profile
    with (
        progress.task("auto: try recipes", total=len(recipes)) as advance,
        started_ahead(recipes, judging, lambda index: staging / f"recipe-{index}.onnx") as ahead,
    ):
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
            attempt = try_recipe(recipe, judging, staging / f"recipe-{index}.onnx", ahead.get(recipe.name))
            outcome.attempts.append(attempt)
            head = float_head(attempt, judging, staging / f"recipe-{index}-float-head.onnx")
            if head is not None:  # missed on a part of an output: once more with the output's head in float
                outcome.attempts.append(head)
                attempt = head
            advance(1)
            if attempt.guard and attempt.guard.within_tolerance and profile.conv_dominant:
                done.add(recipe.quantizer)  # static per-channel first: its later recipes cannot be faster


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
    judging = judging_for(source, calibration, validation, runtime)
    assert source.onnx_path is not None  # judging_for refuses a source without one
    profile = graph_profile(onnx.load(str(source.onnx_path), load_external_data=False))
    outcome = AutoOutcome(profile, runtime=runtime, judging=judging, ranked_later=plan.ranked_later)
    if not profile.conv_dominant:  # outlier channels: a reason to try smoothed recipes too
        outcome.outlier_ratio = worst_outlier_ratio(source.onnx_path, calibration)
    recipes = recipes_for(profile, auto, outcome.outlier_ratio, plan.with_nncf)
    _try_recipes(outcome, recipes, judging, staging, progress)
    if wants_fallback(outcome.attempts, plan):
        _fall_back(outcome, judging, staging, plan, progress)
    faithful = [a for a in outcome.attempts if a.faithful]
    judged = [a for a in outcome.attempts if a.guard and a.result]
    # one faithful recipe needs no ranking (the speed check, if on, measures it next); ranked with the runtime,
    # every faithful file is measured on every installed runtime (payoff.py), the most faithful listed first
    if len(faithful) > 1 and not plan.ranked_later:
        _rank(outcome, source.onnx_path, faithful, validation.inputs, runtime, progress)  # sets chosen
    elif faithful:
        outcome.chosen = fastest_faithful(faithful)
    else:
        outcome.chosen = min(judged, key=lambda a: a.guard.shortfall() if a.guard else float("inf"), default=None)
    return outcome
