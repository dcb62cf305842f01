"""The fidelity guard on every quantization: an int8 model outside its tolerance is never a success.

Fidelity is judged on inputs the calibration did not see: the validation file, else a held-back
part of the calibration file (the report says which). There is always a tolerance, and it judges
every output: a mean cosine of at least ``min_cosine`` (default ``DEFAULT_MIN_COSINE``) between the
fp32 and int8 outputs (on each sample's flattened output, so a hidden state or an embedding is judged
as a vector, never by its argmax). With labels, the labelled classifier output (the first, the one
labels are checked against) is judged instead by top-1: at most ``max_drop`` (default
``DEFAULT_MAX_DROP``) points below fp32; every other output is still held to the cosine. Labels only
ever add a check: a second output int8 destroys fails with them as it does without.

An output that is a sequence of class scores (a CTC recognizer's [samples, T, C]: the graph makes it
with a Softmax / LogSoftmax or a linear head, ``heads.sequence_outputs``, and its fp32 values have a
CTC blank, ``fidelity.ctc_blank``) is also judged by what it means: at least
``DEFAULT_MIN_SEQUENCE_AGREEMENT`` of the samples must decode (greedy CTC, that blank dropped) to the
same sequence as fp32, whatever the tolerance above says.

Every other output whose parts differ in scale (``slices.slice_fidelity``: a detector's box
coordinates beside its class scores in one tensor) is also judged slice by slice along its feature
axis: at least ``DEFAULT_MIN_SLICE_AGREEMENT`` of its slices must hold (RMS error at most
``SLICE_MAX_ERROR`` of the slice's fp32 RMS), so that one int8 scale that wipes out the small part
fails although the cosine, dominated by the large part, stays high. Outputs judged by a decision (the
labelled output's top-1, a decoded sequence) are not sliced. The tolerance and its defaults live in
quantize/tolerance.py (named here too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Set
from dataclasses import dataclass, field

import numpy as np
import onnx

from edgeport.benchmarks.records import RuntimeChoice
from edgeport.errors import ConfigError
from edgeport.quantize.guard.fidelity import fidelity, is_classifier
from edgeport.quantize.guard.heads import sequence_heads, sequence_outputs
from edgeport.quantize.guard.padding import padding_mask, without_padding
from edgeport.quantize.guard.slices import slice_fidelity
from edgeport.quantize.guard.verify import verify_with_outputs
from edgeport.quantize.inputs.output_axes import not_per_sample
from edgeport.quantize.tolerance import (
    DEFAULT_MAX_DROP,
    DEFAULT_MIN_COSINE,
    DEFAULT_MIN_SEQUENCE_AGREEMENT,
    DEFAULT_MIN_SLICE_AGREEMENT,
    SLICE_MAX_ERROR,
    Tolerance,
    default_tolerance,
)


@dataclass(frozen=True)
class Validation:
    """What an int8 model is judged on: held-out inputs (never the calibration samples), their labels
    (None: every output judged by cosine), the tolerance, and where the inputs came from."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    tolerance: Tolerance
    judged_on: str = ""


@dataclass
class GuardReport:
    """The verdict on one int8 model: its metric, the value required, and fidelity per output.

    ``metric`` / ``value`` / ``required`` are the headline: the check that misses by most, else the
    tolerance's own metric. ``checks`` lists every check made (top-1 on the labelled output when the
    tolerance has ``max_drop``, the worst cosine of every other output, one per sequence output, then the
    worst slice agreement of the sliced outputs, its ``details`` naming the axis and the worst slices),
    ``failed`` names the ones that failed."""

    metric: str  # "top1_accuracy" (points), "mean_cosine" (worst output), "sequence_agreement" or "slice_agreement"
    value: float
    required: float
    within_tolerance: bool
    judged_on: str  # which inputs: the validation file, or the held-back calibration samples
    outputs: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # {metric, output, value, required, passed}
    failed: list[str] = field(default_factory=list)  # "sequence_agreement (output 'y')", ...

    def describe(self) -> dict:
        return dataclasses.asdict(self)

    def line(self) -> str:
        verdict = "within tolerance" if self.within_tolerance else "OUTSIDE TOLERANCE"
        headline = _headline(self.checks) if self.checks else None
        parts = [f"{verdict}: {self._measured(self.metric, self.value, self.required, headline)}"]
        for check in self.checks:  # the other checks, briefly: which passed, which also failed
            if check is not headline:
                measured = self._measured(check["metric"], check["value"], None, check)
                required = f"{check['required']:.4g}{'%' if check['metric'] == 'top1_accuracy' else ''}"
                parts.append(f"{measured} ok" if check["passed"] else f"{measured} (>= {required}) also FAILED")
        return "; ".join(parts) + f" ({self.judged_on})"

    def _measured(self, metric: str, value: float, required: float | None, check: dict | None) -> str:
        unit = "%" if metric == "top1_accuracy" else ""
        own = metric in ("sequence_agreement", "slice_agreement")
        named = check is not None and check["output"] and (own or len(self.outputs) > 1)
        where = f" on output {check['output']!r}" if named and check is not None else ""
        details = check.get("details") if check is not None and not check["passed"] else None
        if metric == "slice_agreement" and details and details["worst"]:  # where a failed one fails most
            worst = details["worst"][0]
            where += f" (axis {details['axis']}; worst slice {worst['index']}: error {worst['error']:.2g})"
        text = f"{metric} {value:.4g}{unit}{where}"
        return text if required is None else f"{text}, required >= {required:.4g}{unit}"

    def shortfall(self) -> float:
        """How far the worst check falls short of its requirement, on a 0..1 scale (0 when within
        tolerance): comparable across metrics, to rank models none of which is within tolerance."""
        return max((_shortfall(c) for c in self.checks), default=0.0)

    def margin(self) -> float:
        """How far the tightest check clears its requirement, on ``shortfall``'s scale (negative when it
        misses): ranks faithful models that are tied on speed."""
        return min((_margin(c) for c in self.checks), default=0.0)


def _margin(check: dict) -> float:
    scale = 100.0 if check["metric"] == "top1_accuracy" else 1.0  # points; cosine and shares are 0..1
    return (check["value"] - check["required"]) / scale if check["value"] == check["value"] else float("-inf")


def _shortfall(check: dict) -> float:
    return max(0.0, -_margin(check))


def _headline(checks: list[dict]) -> dict:
    """The check a one-line verdict leads with: the one that misses by most, else the tolerance's own."""
    failed = [c for c in checks if not c["passed"]]
    return max(failed, key=_shortfall) if failed else checks[0]


def _check(metric: str, output: str | None, value: float, required: float) -> dict:
    return {"metric": metric, "output": output, "value": value, "required": required, "passed": value >= required}


def _slice_check(outputs: list[dict], min_agreement: float) -> dict | None:
    """The worst slice agreement of the sliced outputs, with where it fails (axis, worst slices)."""
    sliced = [o for o in outputs if "slice_agreement" in o]
    if not sliced:
        return None
    worst = min(sliced, key=lambda o: o["slice_agreement"])
    check = _check("slice_agreement", worst["name"], worst["slice_agreement"], min_agreement)
    check["details"] = {
        "axis": worst["slice_axis"],
        "slices": worst["slices_judged"],
        "max_error": SLICE_MAX_ERROR,
        "worst": worst["worst_slices"],
    }
    return check


def judge(
    fp32: dict[str, np.ndarray],
    int8: dict[str, np.ndarray],
    labels: np.ndarray | None,
    tolerance: Tolerance,
    judged_on: str,
    sequence_outputs: Set[str] | Mapping[str, int] = frozenset(),
    padding: np.ndarray | None = None,
) -> GuardReport:
    """Compare every output of the int8 model with the fp32 one's on the same held-out inputs.

    ``sequence_outputs``: the outputs the graph allows to be sequences of class scores
    (``heads.sequence_outputs(model)``: each is one when its fp32 values have a CTC blank), or the
    sequence heads with their blank (``heads.sequence_heads(model, fp32)``); each must also keep its
    decoded sequence. Every output neither top-1 nor a sequence judges is also judged slice by slice.
    ``padding``: the inputs' mask of real positions (``padding.padding_mask``); padding positions of
    outputs laid out like it are left out (guard/padding.py)."""
    blanks = sequence_outputs if isinstance(sequence_outputs, Mapping) else {}
    # an output that holds no samples axis (one value per run: a ReduceMean over everything, a per-batch
    # constant) is compared as one vector: no per-sample cosine, top-1, sequence or slice is defined on it
    whole = not_per_sample(fp32) | not_per_sample(int8)
    fp32 = {name: (value.reshape(1, -1) if name in whole else value) for name, value in fp32.items()}
    int8 = {name: (value.reshape(1, -1) if name in whole else value) for name, value in int8.items()}
    left_out = {}
    for name in fp32 if padding is not None else ():
        if name not in whole:
            fp32[name], left_out[name] = without_padding(fp32[name], padding)
            int8[name], _ = without_padding(int8[name], padding)
    outputs = [
        {
            "name": name,
            **fidelity(
                fp32[name],
                int8[name],
                sequence=name in sequence_outputs and name not in whole,
                blank=blanks.get(name),
            ),
            **({"per_sample": False} if name in whole else {}),
            **({"padding_positions_left_out": left_out[name]} if left_out.get(name) else {}),
        }
        for name in fp32
    ]
    checks = []
    by_top1 = None  # the output the labels judge; every other one is judged by cosine
    if tolerance.max_drop is not None:
        by_top1 = next(iter(fp32))
        checks.append(_top1_check(by_top1, fp32[by_top1], int8[by_top1], labels, tolerance.max_drop))
    by_cosine = [o for o in outputs if o["name"] != by_top1]
    if by_cosine:
        assert tolerance.min_cosine is not None
        worst = min(by_cosine, key=lambda o: o["mean_cosine"])
        checks.append(_check("mean_cosine", worst["name"], worst["mean_cosine"], tolerance.min_cosine))
    for output in outputs:
        if "sequence_agreement" in output:
            agreement = output["sequence_agreement"]
            checks.append(_check("sequence_agreement", output["name"], agreement, tolerance.min_sequence_agreement))
    for output in outputs:  # what a decision (top-1, a decoded sequence) does not judge, judged part by part
        if output["name"] != by_top1 and "sequence_agreement" not in output and output["name"] not in whole:
            output.update(slice_fidelity(fp32[output["name"]], int8[output["name"]]))
    sliced = _slice_check(outputs, tolerance.min_slice_agreement)
    if sliced is not None:
        checks.append(sliced)
    failed = [c for c in checks if not c["passed"]]
    headline = _headline(checks)
    return GuardReport(
        headline["metric"],
        headline["value"],
        headline["required"],
        not failed,
        judged_on,
        outputs,
        checks,
        [f"{c['metric']} (output {c['output']!r})" for c in failed],
    )


def _top1_check(name: str, fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray | None, max_drop: float) -> dict:
    """Top-1 of the labelled classifier output, at most ``max_drop`` points below fp32's."""
    if labels is None or not is_classifier(fp32):
        raise ConfigError(
            "max_accuracy_drop needs labels (y) and a classifier output ([samples, classes]); "
            "use min_cosine for other models"
        )
    fp32_top1 = float((fp32.argmax(1) == labels).mean() * 100)
    int8_top1 = float((int8.argmax(1) == labels).mean() * 100)
    return _check("top1_accuracy", name, int8_top1, fp32_top1 - max_drop)


def graph_sequence_outputs(fp32_path) -> set[str]:
    """``heads.sequence_outputs`` of the model at ``fp32_path`` (its graph only: no external data): the
    outputs that may be sequences of class scores; ``judge`` keeps those whose fp32 values have a blank."""
    return sequence_outputs(onnx.load(str(fp32_path), load_external_data=False))


def graph_sequence_heads(fp32_path, fp32: Mapping[str, np.ndarray]) -> dict[str, int]:
    """``heads.sequence_heads`` of the model at ``fp32_path`` on its ``fp32`` outputs: name -> blank."""
    return sequence_heads(onnx.load(str(fp32_path), load_external_data=False), fp32)


def verify_and_judge(
    int8_path,
    fp32_path,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None,
    tolerance: Tolerance,
    judged_on: str,
    runtime: RuntimeChoice | None = None,
) -> tuple[dict, GuardReport]:
    """The int8 model's verification report and the guard's verdict, from one run of each model;
    ``runtime`` (a benchmarks RuntimeChoice): the int8 model is judged as that runtime runs it."""
    report, fp32, int8 = verify_with_outputs(int8_path, fp32_path, inputs, labels, runtime)
    if report.get("judged_on_precision"):  # a precision hint is a request: say what the runtime compiled
        judged_on = f"{judged_on} (OpenVINO compiled it as {report['judged_on_precision']})"
    sequences = graph_sequence_heads(fp32_path, fp32)
    return report, judge(fp32, int8, labels, tolerance, judged_on, sequences, padding_mask(inputs))


__all__ = [
    "DEFAULT_MAX_DROP",
    "DEFAULT_MIN_COSINE",
    "DEFAULT_MIN_SEQUENCE_AGREEMENT",
    "DEFAULT_MIN_SLICE_AGREEMENT",
    "GuardReport",
    "Tolerance",
    "Validation",
    "default_tolerance",
    "graph_sequence_heads",
    "graph_sequence_outputs",
    "judge",
    "verify_and_judge",
]
