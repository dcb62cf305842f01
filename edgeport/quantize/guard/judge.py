"""The fidelity guard on every quantization: an int8 model outside its tolerance is never a success.

Fidelity is judged on inputs the calibration did not see: the validation file, else a held-back
part of the calibration file (the report says which). There is always a tolerance, and it judges
every output: a mean cosine of at least ``min_cosine`` (default ``DEFAULT_MIN_COSINE``) between the
fp32 and int8 outputs (on each sample's flattened output, so a hidden state or an embedding is judged
as a vector, never by its argmax). With labels, the labelled classifier output (the first, the one
labels are checked against) is judged instead by top-1: at most ``max_drop`` (default
``DEFAULT_MAX_DROP``) points below fp32; every other output is still held to the cosine. Labels only
ever add a check: a second output int8 destroys fails with them as it does without.

An output the graph marks as a sequence of class scores (``fidelity.sequence_outputs``: Softmax or
LogSoftmax over the last axis of [samples, T, C], a CTC recognizer's output) is also judged by what
it means: at least ``DEFAULT_MIN_SEQUENCE_AGREEMENT`` of the samples must decode (greedy CTC) to the
same sequence as fp32, whatever the tolerance above says. The tolerance and its defaults live in
quantize/tolerance.py (named here too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx

from edgeport.benchmarks.records import RuntimeChoice
from edgeport.errors import ConfigError
from edgeport.quantize.guard.fidelity import fidelity, is_classifier, sequence_outputs
from edgeport.quantize.guard.verify import verify_with_outputs
from edgeport.quantize.tolerance import (
    DEFAULT_MAX_DROP,
    DEFAULT_MIN_COSINE,
    DEFAULT_MIN_SEQUENCE_AGREEMENT,
    Tolerance,
    default_tolerance,
)

# Without a validation file, this share of the calibration samples is held back to judge fidelity.
HOLD_BACK_FRACTION = 0.25


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
    tolerance has ``max_drop``, the worst cosine of every other output, then one per sequence output),
    ``failed`` names the ones that failed."""

    metric: str  # "top1_accuracy" (points, labels), "mean_cosine" (worst output) or "sequence_agreement"
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
        named = check is not None and check["output"] and (metric == "sequence_agreement" or len(self.outputs) > 1)
        where = f" on output {check['output']!r}" if named and check is not None else ""
        text = f"{metric} {value:.4g}{unit}{where}"
        return text if required is None else f"{text}, required >= {required:.4g}{unit}"

    def shortfall(self) -> float:
        """How far the worst check falls short of its requirement, on a 0..1 scale (0 when within
        tolerance): comparable across metrics, to rank models none of which is within tolerance."""
        return max((_shortfall(c) for c in self.checks), default=0.0)


def _shortfall(check: dict) -> float:
    scale = 100.0 if check["metric"] == "top1_accuracy" else 1.0  # points; cosine and shares are 0..1
    return max(0.0, check["required"] - check["value"]) / scale if check["value"] == check["value"] else float("inf")


def _headline(checks: list[dict]) -> dict:
    """The check a one-line verdict leads with: the one that misses by most, else the tolerance's own."""
    failed = [c for c in checks if not c["passed"]]
    return max(failed, key=_shortfall) if failed else checks[0]


def _check(metric: str, output: str | None, value: float, required: float) -> dict:
    return {"metric": metric, "output": output, "value": value, "required": required, "passed": value >= required}


def judge(
    fp32: dict[str, np.ndarray],
    int8: dict[str, np.ndarray],
    labels: np.ndarray | None,
    tolerance: Tolerance,
    judged_on: str,
    sequence_outputs: set[str] | frozenset[str] = frozenset(),
) -> GuardReport:
    """Compare every output of the int8 model with the fp32 one's on the same held-out inputs.

    ``sequence_outputs``: the outputs the graph marks as sequences of class scores
    (``fidelity.sequence_outputs(model)``); each must also keep its decoded sequence."""
    outputs = [{"name": name, **fidelity(fp32[name], int8[name], sequence=name in sequence_outputs)} for name in fp32]
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
    """``fidelity.sequence_outputs`` of the model at ``fp32_path`` (its graph only: no external data)."""
    return sequence_outputs(onnx.load(str(fp32_path), load_external_data=False))


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
    return report, judge(fp32, int8, labels, tolerance, judged_on, graph_sequence_outputs(fp32_path))


@dataclass(frozen=True)
class HeldOut:
    """Calibration inputs and the inputs fidelity is judged on, never the same samples."""

    calibration: dict[str, np.ndarray]
    calibration_labels: np.ndarray | None
    validation: dict[str, np.ndarray]
    validation_labels: np.ndarray | None
    judged_on: str


def hold_back(calibration: dict[str, np.ndarray], labels: np.ndarray | None, source: str) -> HeldOut:
    """Split the last ``HOLD_BACK_FRACTION`` of the calibration samples off for the fidelity check."""
    count = len(next(iter(calibration.values())))
    if count < 2:
        raise ConfigError(
            f"{source}: {count} calibration sample: give --val, or at least 2 samples so that some can "
            "be held back to check the int8 model on inputs it was not calibrated on"
        )
    held = max(1, int(round(count * HOLD_BACK_FRACTION)))
    keep = count - held
    return HeldOut(
        {k: v[:keep] for k, v in calibration.items()},
        labels[:keep] if labels is not None else None,
        {k: v[keep:] for k, v in calibration.items()},
        labels[keep:] if labels is not None else None,
        f"the last {held} of {count} samples of {source}, held back from calibration",
    )


__all__ = [
    "DEFAULT_MAX_DROP",
    "DEFAULT_MIN_COSINE",
    "DEFAULT_MIN_SEQUENCE_AGREEMENT",
    "HOLD_BACK_FRACTION",
    "GuardReport",
    "HeldOut",
    "Tolerance",
    "Validation",
    "default_tolerance",
    "graph_sequence_outputs",
    "hold_back",
    "judge",
    "verify_and_judge",
]
