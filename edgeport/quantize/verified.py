"""The one verified quantization: auto, plain or with fallback, then judged, then the lineage written.

Both ``edgeport quantize`` (quantize/job.py) and the run/search stage (stages/quantize.py) call
``quantize_verified``; what they add around it (a manifest, a run folder) is theirs.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from edgeport.benchmarks.openvino_runtime import OpenVinoSession, compiled_models_cached, openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import QuantizationError
from edgeport.exporter.metadata import write_metadata
from edgeport.quantize.apply import quantize
from edgeport.quantize.backends.nncf_onnx import nncf_installed
from edgeport.quantize.config import AutoConfig, QuantConfig
from edgeport.quantize.guard.coverage import openvino_coverage
from edgeport.quantize.guard.judge import GuardReport, verify_and_judge
from edgeport.quantize.guard.verify import verify_with_outputs
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.request import QuantizeRequest, QuantOutcome
from edgeport.quantize.strategy.auto import run_recipes
from edgeport.quantize.strategy.fallback import FallbackReport, quantize_with_fallback
from edgeport.quantize.strategy.judging import Judging, judging_for
from edgeport.quantize.strategy.options import Option
from edgeport.quantize.strategy.outcome import AutoOutcome, Plan
from edgeport.quantize.strategy.payoff import Candidates, Payoff, measure_payoff
from edgeport.quantize.strategy.timing import one_run


def quantize_verified(request: QuantizeRequest, progress: Progress = SILENT) -> QuantOutcome:
    """Quantize ``request.source`` to ``request.output``, verify the int8 model and judge it.

    - backend ``auto``: every recipe is judged on the request's inputs and tolerance; the chosen one's
      verdict is that judgement, reused as is (the same model, inputs, tolerance and runtime would give
      the same verdict again), and the model is verified once more only for the report (checker,
      coverage, second runtime), after the speed check, of the file that ships;
    - ``request.fallback`` (an explicit tolerance): sensitive layers kept in float until within it;
    - otherwise the backend once.
    Every int8 model, whichever way it was made, is judged exactly once, and gets its lineage
    (``request.lineage`` with the applied backend and settings hash) before it is judged, so the file
    judged is the file shipped. An int8 model outside its tolerance is returned with that verdict, never
    raised: the caller says so (``guard.within_tolerance``). OpenVINO compiles each file once for the
    whole job (``compiled_models_cached``): the guard, the verification and the speed check run the same
    files on it several times."""
    with compiled_models_cached():
        return _quantize_verified(request, progress)


def _quantize_verified(request: QuantizeRequest, progress: Progress) -> QuantOutcome:
    # auto's recipes are staged beside the output and kept until the speed check chose among them
    with tempfile.TemporaryDirectory(dir=Path(request.output).parent, prefix=".auto-") as staging:
        return _quantize_staged(request, Path(staging), progress)


def _quantize_staged(request: QuantizeRequest, staging: Path, progress: Progress) -> QuantOutcome:
    fallback: FallbackReport | None = None
    auto: AutoOutcome | None = None
    guard: GuardReport | None = None
    config = request.config
    judged_on = request.judged_on()
    if isinstance(config, AutoConfig):
        auto, (result, config, guard) = _auto(request, judged_on, staging, progress)
    elif request.fallback:
        allowed = list(request.fallback_layers) if request.fallback_layers is not None else None
        validation = request.validation
        result, fallback = quantize_with_fallback(
            request.source, request.calibration, config, request.output, validation, progress, allowed
        )
    else:
        result = quantize(request.source, request.calibration, config, request.output, progress)
    _stamp(request, config)
    verification: dict | None = None
    if guard is None:  # judged now: the speed check weighs a faithful file only
        verification, guard = _judged(request, judged_on, None)
    payoff = _payoff(request, judged_on, guard, auto, progress) if request.speed_check else None
    if auto is not None and payoff is not None and payoff.int8_model != "int8":
        # another faithful recipe's file ran fastest on its runtime: that file is the artifact
        chosen = auto.faithful_files()[payoff.int8_model]
        assert chosen.result is not None and chosen.config is not None and chosen.guard is not None
        os.replace(chosen.result.path, request.output)
        auto.chosen, result = chosen, dataclasses.replace(chosen.result, path=Path(request.output))
        config, guard = chosen.config, chosen.guard
        _stamp(request, config)
    if verification is None:  # auto's verdict stands; the report is made once, of the file that is the artifact
        verification, guard = _judged(request, judged_on, guard)
    if payoff is not None and payoff.ships and "coverage_on_runtime" not in verification:
        _count_where_it_ships(verification, request.output, payoff.runtime)
    return QuantOutcome(result, config, verification, guard, fallback, auto, payoff)


def _count_where_it_ships(verification: dict, int8_path, runtime: RuntimeChoice) -> None:
    """The int8 coverage on the runtime the artifact ships on, where that is not onnxruntime (whose count
    the report has): NNCF's file of a PP-LCNet classifier shipped on OpenVINO with 33 of 33 layers in u8
    there and 0 of 33 on onnxruntime, which the report alone said."""
    if runtime.name != ONNXRUNTIME.name:
        session = OpenVinoSession(int8_path, threads=1, precision=runtime.precision)
        verification["coverage_on_runtime"] = openvino_coverage(session, int8_path)


def _weighed_everywhere(request: QuantizeRequest) -> bool:
    """Whether the speed check judges and times the int8 files on every installed runtime (it chooses the
    runtime, and a second one is installed)."""
    return request.speed_check and request.choose_runtime and bool(openvino_version())


def _stamp(request: QuantizeRequest, config: QuantConfig) -> None:
    """The lineage written into the int8 file, with the applied backend and settings hash."""
    lineage = dataclasses.replace(request.lineage, kind="onnx-int8", backend=config.backend, quant=config.short_hash())
    write_metadata(request.output, lineage)


def _payoff(
    request: QuantizeRequest, judged_on: str, guard: GuardReport, auto: AutoOutcome | None, progress: Progress
) -> Payoff:
    """Whether the int8 model ships: faithful and faster than fp32 on the request's runtime (auto's ranking
    measured both already); when not, the options a user could ship instead, judged and measured."""
    fp32 = request.source.onnx_path
    if fp32 is None:
        raise QuantizationError("the int8 model is measured against a fp32 ONNX file; none was given")
    validation = dataclasses.replace(request.validation, judged_on=judged_on)
    chosen = auto.chosen if auto is not None else None
    measured = chosen.speedup() if chosen is not None else None
    reference: list[Judging] = [auto.judging] if auto is not None and auto.judging is not None else []

    def judge_outputs(outputs: dict) -> GuardReport:  # the fp32 reference is computed only when needed
        if not reference:
            reference.append(judging_for(request.source, request.calibration, validation, request.runtime))
        return reference[0].judge_outputs(outputs)

    paths = {"fp32": Path(fp32), "int8": Path(request.output)}
    judged = {}
    if auto is not None and auto.ranked_later:  # every faithful recipe's file is weighed on every runtime
        others = auto.faithful_files()
        paths.update({name: a.result.path for name, a in others.items() if a.result is not None})
        judged = {Option(name, request.runtime): (True, a.guard.line()) for name, a in others.items() if a.guard}
    sample = one_run(Path(fp32), validation.inputs)
    candidates = Candidates(paths, sample, validation.inputs, judge_outputs, judged)
    return measure_payoff(candidates, guard, request.runtime, measured, progress, request.choose_runtime)


def _judged(request: QuantizeRequest, judged_on: str, guard: GuardReport | None) -> tuple[dict, GuardReport]:
    """The verification report, and the guard's verdict: auto's, or judged now."""
    fp32 = request.source.onnx_path
    if fp32 is None:
        raise QuantizationError("the int8 model is verified against a fp32 ONNX file; none was given")
    validation = request.validation
    if guard is not None:  # auto's verdict; the report still names the runtime it was judged on
        # a faithful file whose runtime is being chosen is judged on every runtime by the speed check: not here too
        everywhere = guard.within_tolerance and _weighed_everywhere(request)
        report = verify_with_outputs(
            request.output, fp32, validation.inputs, validation.labels, request.runtime, second_runtimes=not everywhere
        )[0]
        return report, guard
    return verify_and_judge(
        request.output, fp32, validation.inputs, validation.labels, validation.tolerance, judged_on, request.runtime
    )


def _auto(
    request: QuantizeRequest, judged_on: str, staging: Path, progress: Progress
) -> tuple[AutoOutcome, tuple[QuantResult, QuantConfig, GuardReport]]:
    """Backend "auto": the recipes, judged on the request's inputs; the chosen one moved to ``output``,
    with its config and verdict. Where the speed check chooses the runtime among several installed ones,
    NNCF's int8 (when installed) is one more recipe, and the faithful recipes are measured there, each file
    on every runtime, instead of here."""
    if not isinstance(request.config, AutoConfig):
        raise QuantizationError(f"backend {request.config.backend!r} is not auto")
    validation = dataclasses.replace(request.validation, judged_on=judged_on)
    output = Path(request.output)
    ranked_later = _weighed_everywhere(request)
    outcome = run_recipes(
        request.source,
        request.calibration,
        request.config,
        validation,
        staging,
        progress,
        request.runtime,
        Plan(must_pay=request.speed_check, with_nncf=ranked_later and nncf_installed(), ranked_later=ranked_later),
    )
    chosen = outcome.chosen
    # a chosen recipe was judged (run_recipes chooses among those), so it has its config and verdict
    if chosen is None or chosen.result is None or chosen.config is None or chosen.guard is None:
        errors = "; ".join(f"{a.recipe.name}: {a.error}" for a in outcome.attempts)
        raise QuantizationError(f"{request.source.onnx_path}: no quantization recipe worked ({errors})")
    os.replace(chosen.result.path, output)
    return outcome, (dataclasses.replace(chosen.result, path=output), chosen.config, chosen.guard)


__all__ = ["quantize_verified"]
