"""auto's fallback: the most faithful onnxruntime recipe again with its most sensitive layers in float, tried when
no recipe is faithful or int8 must pay and no onnxruntime recipe is; first measured whether that recipe, every
layer int8, pays at all, except where the runtime choice follows (``Plan.ranked_later``): it weighs the
fallback's own file on every installed runtime. Where NNCF's quantization still runs in its child process
(strategy/ahead.py) when onnxruntime's recipes are done, the fallback is made meanwhile (``early_fallback``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.benchmarks import measure_interleaved
from edgeport.benchmarks.records import RuntimeChoice
from edgeport.benchmarks.speedup import speedup_of
from edgeport.core.progress import Progress
from edgeport.quantize.strategy.attempts import Attempt, fallback_attempt, try_recipe
from edgeport.quantize.strategy.judging import Judging
from edgeport.quantize.strategy.outcome import AutoOutcome, Plan
from edgeport.quantize.strategy.timing import CHECK, budgeted, fallback_skip_reason, one_run


def may_pay(
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
    outside tolerance (0.989), ran at 0.57x and with one MatMul in float shipped at 0.60x. ``may_pay`` first
    measures whether the missed recipe, every layer int8, beats fp32 and the faithful files."""
    if not any(a.faithful for a in attempts):
        return True
    return plan.must_pay and not any(a.faithful and a.recipe.quantizer == "onnxruntime" for a in attempts)


def _base(outcome: AutoOutcome) -> Attempt | None:
    """The most faithful judged onnxruntime recipe (one dropped on a calibration subset included): the one whose
    quantized layers the sensitivity ranking names by their fp32 nodes."""
    own = [a for a in outcome.attempts if a.recipe.quantizer == "onnxruntime" and a.guard and (a.result or a.screened)]
    return min(own, key=lambda a: a.guard.shortfall() if a.guard else float("inf"), default=None)


@dataclass(frozen=True)
class Early:
    """The fallback made before NNCF's answer came (``attempt``), from ``base``."""

    base: Attempt
    attempt: Attempt


def early_fallback(
    outcome: AutoOutcome, judging: Judging, staging: Path, plan: Plan, progress: Progress
) -> Early | None:
    """The fallback made now, once every onnxruntime recipe is judged and while NNCF's child process still runs
    (this process would only wait for it): where NNCF's answer cannot change whether the fallback is tried (int8
    must pay, so a faithful NNCF file does not end the search) and its base has a file (one dropped on a subset
    races a faithful file only where none exists). Nothing is timed meanwhile (``fall_back`` decides, once the
    child has ended). MiniLM (AMD EPYC Zen 3, AVX2): its fallback's 5 s fell within the 9 s this process waited
    for NNCF, and the 5 s of measuring whether dynamic int8 may pay at all were saved."""
    if not plan.must_pay or not wants_fallback(outcome.attempts, plan):
        return None
    base = _base(outcome)
    if base is None or base.result is None or base.guard is None:
        return None
    return Early(base, fallback_attempt(base, judging, staging / "fallback.onnx", progress))


def fall_back(
    outcome: AutoOutcome, judging: Judging, staging: Path, plan: Plan, progress: Progress, early: Early | None = None
) -> None:
    """The most faithful onnxruntime recipe again with its most sensitive layers in float, into
    ``outcome.attempts`` (``early``'s attempt where it was made from that recipe already); nothing when none was
    judged or int8 cannot pay. A recipe dropped on a calibration subset is calibrated in full first (enough, if
    that makes it faithful)."""
    best = _base(outcome)
    if best is None:
        return
    if best.result is None:  # screened: its file was never made
        if any(a.faithful for a in outcome.attempts):  # a full calibration to race a faithful file from that far
            outcome.fallback_skipped = f"{best.recipe.name} was clearly outside tolerance and a faithful file exists"
            return
        best = try_recipe(best.recipe, judging, staging / "fallback-base.onnx")
        outcome.attempts.append(best)
        if best.guard is None or best.faithful:
            return
    made = early.attempt if early is not None and early.base is best else None
    if plan.ranked_later:
        # The runtime choice measures a faithful fallback's very file beside fp32 and every faithful file, on
        # every installed runtime: whether keeping layers in float pays is read there, on the file, not guessed
        # from its base on one runtime here. Measuring first whether the base may pay cost the PP-OCRv4
        # detector more than making its fallback (Intel Xeon, AVX-512 VNNI: 7.7 s against 6.9 s), and its base
        # on onnxruntime says nothing of the fallback's file on OpenVINO.
        outcome.attempts.append(made or fallback_attempt(best, judging, staging / "fallback.onnx", progress))
        return
    source = judging.source.onnx_path
    assert source is not None  # judging_for refuses a source without one
    if plan.must_pay and not may_pay(outcome, source, best, judging.validation.inputs, outcome.runtime, progress):
        return
    outcome.attempts.append(made or fallback_attempt(best, judging, staging / "fallback.onnx", progress))


__all__ = ["Early", "early_fallback", "fall_back", "may_pay", "wants_fallback"]
