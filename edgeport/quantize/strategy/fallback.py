"""Accuracy-aware fallback: keep the layers that quantize worst in float until the int8 model is
within tolerance of the fp32 model, in few re-quantizations.

Sensitivity, ONNX backends: one pass over the first int8 model with every quantized tensor exposed
(``sensitivity.tensor_errors``); a layer scores the worst SQNR among the tensors it reads. Torch
backends (module names, no shared tensor names): the quality of the int8 model with only that layer
in float. The ranking is then searched: the smallest k such that the k worst layers in float bring
the model within tolerance, found by an exponential search from the worst layer then bisection (about
2 log2(k) + 1 re-quantizations for k layers); where the worst layers in float barely help, every layer in
float is tried early, so that a hopeless fallback ends in three. Every step is recorded.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgeport.core.progress import SILENT, Progress
from edgeport.errors import ConfigError
from edgeport.quantize.apply import backend_for, check_exclusions, run_backend
from edgeport.quantize.backends.ort_reuse import reuse
from edgeport.quantize.config import OrtConfig, QuantConfig
from edgeport.quantize.guard.judge import Tolerance, Validation, graph_sequence_outputs, judge
from edgeport.quantize.guard.padding import padding_mask
from edgeport.quantize.guard.sensitivity import layer_ranking, tensor_errors
from edgeport.quantize.inputs.run import ort_session, run_all_outputs
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.source import ModelSource
from edgeport.quantize.transforms.smoothing import smoothed_model

ONNX_LAYER_OPS = {"Conv", "Gemm", "MatMul", "ConvTranspose"}


@dataclass
class FallbackReport:
    metric: str
    fp32: float
    tolerance: float
    steps: list[dict] = field(default_factory=list)
    sensitivity: list[dict] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    within_tolerance: bool = False
    quantizations: int = 0  # how many times the backend ran (the first full one too, unless given made)
    seconds: dict = field(default_factory=dict)  # the first quantization, and the sensitivity ranking
    tensors: list[dict] = field(default_factory=list)  # per-tensor SQNR ranking (ONNX backends), worst first

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def layer_candidates(source: ModelSource, needs: str) -> list[str]:
    """Names a backend can exclude: ONNX node names, or torch module names of conv/linear layers."""
    if needs == "onnx":
        graph = onnx.load(str(source.onnx_path), load_external_data=False).graph
        return [n.name for n in graph.node if n.op_type in ONNX_LAYER_OPS and n.name]
    from torch import nn  # torch backends only: the ONNX path never loads torch

    return [
        name
        for name, module in source.torch_model.named_modules()
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
    ]


def _check_request(
    known: list[str], allowed: list[str] | None, tolerance: Tolerance, val_labels: np.ndarray | None
) -> None:
    unknown = sorted(set(allowed or ()) - set(known))
    if unknown:
        raise ConfigError(
            f"fallback layer(s) {', '.join(unknown)} not found; the model's layers are {', '.join(known)}"
        )
    if tolerance.max_drop is not None and val_labels is None:
        raise ConfigError(
            "max_accuracy_drop needs validation labels (y in the --val file); use min_cosine for models without labels"
        )


def quantize_with_fallback(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    config: QuantConfig,
    output_path: str | Path,
    validation: Validation,
    progress: Progress = SILENT,
    allowed: list[str] | None = None,
    first: QuantResult | None = None,
) -> tuple[QuantResult, FallbackReport]:
    """``allowed`` limits which layers may fall back to float (default: every conv/linear layer). With
    ``smooth_alpha``, the model is smoothed once (quantize/transforms/smoothing.py) and the whole fallback,
    sensitivity included, runs on the smoothed model, which computes the same function. ``first``: the
    model ``config`` already made from ``source`` (auto's recipe), judged as the first step instead of
    quantizing it again; the count of quantizations leaves it out."""
    if not isinstance(config, OrtConfig) or config.smooth_alpha is None:
        trial = _Trial(source, calibration, config, Path(output_path), first)
        return _with_fallback(trial, validation, progress, allowed)
    if source.onnx_path is None:
        raise ConfigError("smooth_alpha rewrites a fp32 ONNX file; none was given")
    with smoothed_model(source.onnx_path, calibration, config, output_path) as (staged, plain, smoothing):
        trial = _Trial(ModelSource(staged), calibration, plain, Path(output_path))
        result, report = _with_fallback(trial, validation, progress, allowed)
    return dataclasses.replace(result, report={**result.report, "smoothing": smoothing}), report


@dataclass(frozen=True)
class _Trial:
    """What every re-quantization of the fallback starts from."""

    source: ModelSource
    calibration: dict[str, np.ndarray]
    config: QuantConfig
    output_path: Path
    first: QuantResult | None = None  # already quantized with ``config``, nothing more excluded


def _with_fallback(
    trial: _Trial, validation: Validation, progress: Progress, allowed: list[str] | None
) -> tuple[QuantResult, FallbackReport]:
    source, calibration, output_path, first = trial.source, trial.calibration, trial.output_path, trial.first
    val_inputs, val_labels, tolerance = validation.inputs, validation.labels, validation.tolerance
    backend, config = backend_for(trial.config)
    check_exclusions(source, config)
    known = layer_candidates(source, backend.needs)
    _check_request(known, allowed, tolerance, val_labels)
    if source.onnx_path is None:
        raise ConfigError("the fallback judges a fp32 ONNX file; none was given")
    fp32_all = run_all_outputs(ort_session(source.onnx_path), val_inputs)
    sequences = graph_sequence_outputs(source.onnx_path)
    padding = padding_mask(val_inputs)
    if tolerance.max_drop is not None:
        fp32_out = next(iter(fp32_all.values()))
        fp32_quality = float((fp32_out.argmax(1) == val_labels).mean() * 100)
        report = FallbackReport("top1_accuracy", fp32_quality, fp32_quality - tolerance.max_drop)
    else:
        assert tolerance.min_cosine is not None  # Tolerance.__post_init__ fills it in
        report = FallbackReport("mean_cosine", 1.0, tolerance.min_cosine)

    with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".fallback-") as tmp, reuse(Path(tmp) / "reuse"):

        def attempt(excluded: list[str], name: str) -> tuple[float, bool, QuantResult, list[str]]:
            """The tolerance's own metric (the first check: top-1, else the worst cosine), whether every
            check of the guard passed (every other output, decoded sequences included), the model, and
            the checks that failed."""
            staged = Path(tmp) / f"{name}.onnx"
            if not excluded and first is not None:
                result = dataclasses.replace(first, path=Path(shutil.copyfile(first.path, staged)))
            else:
                report.quantizations += 1
                step = config.model_copy(update={"exclude_nodes": tuple(config.exclude_nodes) + tuple(excluded)})
                result = run_backend(backend, source, calibration, step, staged, SILENT)
            int8_all = run_all_outputs(ort_session(result.path), val_inputs)
            guard = judge(fp32_all, int8_all, val_labels, tolerance, "", sequences, padding)
            return guard.checks[0]["value"], guard.within_tolerance, result, guard.failed

        started = time.perf_counter()
        quality, within, best, failed = attempt([], "full")
        report.seconds["first_quantization"] = round(time.perf_counter() - started, 3)
        report.steps.append({"excluded": [], report.metric: quality, "within_tolerance": within, "failed": failed})
        if not within:
            candidates = [c for c in known if c not in config.exclude_nodes and (allowed is None or c in allowed)]
            started = time.perf_counter()
            ranked = _ranked(backend.needs, candidates, attempt, best, source, val_inputs, report, progress)
            report.seconds["sensitivity"] = round(time.perf_counter() - started, 3)
            within, best = _fewest_in_float(ranked, attempt, report, progress)
        report.within_tolerance = within
        shutil.move(best.path, output_path)
    final = dataclasses.replace(
        best, path=output_path, report={**best.report, "fallback_excluded": list(report.excluded)}
    )
    return final, report


def _ranked(needs, candidates, attempt, full, source, val_inputs, report, progress) -> list[str]:
    """The candidate layers, worst quantized first."""
    if needs == "onnx":
        report.tensors = tensor_errors(full.path, source.onnx_path, val_inputs)
        report.sensitivity = layer_ranking(report.tensors, candidates)
        return [row["layer"] for row in report.sensitivity]
    with progress.task("layer sensitivity", total=len(candidates)) as advance:
        for index, candidate in enumerate(candidates):
            score, *_ = attempt([candidate], f"sensitivity-{index}")
            report.sensitivity.append({"layer": candidate, report.metric: score})
            advance(1)
    return [row["layer"] for row in sorted(report.sensitivity, key=lambda row: -row[report.metric])]


def _fewest_in_float(ranked: list[str], attempt, report: FallbackReport, progress) -> tuple[bool, QuantResult]:
    """The fewest worst-ranked layers in float that bring the model within tolerance (all of them if
    none do): ``report.excluded``, whether the model is within tolerance, and the model.

    An exponential search from the worst layer (1, 2, 4, ... in float until one is within tolerance), then
    bisection between the last miss and that hit: about 2 log2(k) + 1 re-quantizations for an answer of k
    layers, against log2(layers) for plain bisection. The answer is usually a handful of layers when the
    ranking is right (one of MiniLM's 49 MatMuls: 1 step instead of 6). When the worst layers in float so
    far (2, then 4, ... while growing) closed less than half of the gap to the tolerance (``_hopeless_so_far``),
    every layer in float is tried next, once: where even that misses, the search ends there (a PicoDet
    layout detector's quantized elementwise ops kept it at mean cosine 0.41 with all 102 convolutions in
    float, which took 8 re-quantizations, 54 s, to learn; now 3). Where it reaches the tolerance, the
    exponential search goes on below it, one re-quantization dearer."""
    low, high, found = 0, len(ranked), None  # k = low misses; k = high reaches it (measured once ``found``)
    k, growing, probed, taken = min(1, high), True, False, 0
    with progress.task("fallback", total=2 * max(1, len(ranked).bit_length()) + 1) as advance:
        while True:
            quality, within, result, failed = attempt(ranked[:k], f"step-{k}")
            step = {"excluded": ranked[:k], report.metric: quality, "within_tolerance": within, "failed": failed}
            report.steps.append(step)
            taken += 1
            advance(1, layers_in_float=k)
            if within:
                high, found = k, (True, result)
                growing = growing and probed and k == len(ranked)  # only the far end's hit keeps it growing
            elif k == high:  # even every candidate in float misses: the best effort is all of them
                found = (False, result)
                break
            else:
                low = k
            if found is not None and high - low <= 1:
                break
            if growing and not probed and low >= 2 and 2 * low < high and _hopeless_so_far(report):
                k, probed = high, True  # the far end, once: can any number of layers in float reach it?
            elif found is None:  # nothing within tolerance yet: double, up to every candidate
                k = min(2 * low, high)
            elif growing and 2 * low < high:  # only the far end is: double below it
                k = 2 * low
            else:  # halve the bracket
                growing, k = False, (low + high + 1) // 2
        advance(0, total=taken)  # the bar's total was a bound: it ends full
    report.excluded = ranked[:high]
    return found


def _hopeless_so_far(report: FallbackReport) -> bool:
    """Whether the layers put in float so far (the worst ranked) closed less than half of the gap between
    the fully quantized model (the first step) and the tolerance; True where that cannot be read (the
    miss was another check's, or there is no first step)."""
    if len(report.steps) < 2 or report.steps[0]["excluded"]:
        return True
    first, last = report.steps[0][report.metric], report.steps[-1][report.metric]
    gap = report.tolerance - first
    return gap <= 0 or last - first < 0.5 * gap


def fallback_miss(report: FallbackReport) -> str:
    """The plain statement that the returned model is outside tolerance."""
    final = report.steps[-1][report.metric]
    others = ", ".join(report.steps[-1].get("failed") or []) or "another of the guard's checks"
    why = (
        f"{report.metric} {final:.4g} < required {report.tolerance:.4g}"
        if final < report.tolerance
        else f"{others} failed"  # the guard's other checks: other outputs, decoded sequences (guard.judge)
    )
    return f"the int8 model misses the tolerance: {why} even with {len(report.excluded)} layer(s) kept in float"
