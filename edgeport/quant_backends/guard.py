"""The fidelity guard on every quantization: an int8 model outside its tolerance is never a success.

Fidelity is judged on inputs the calibration did not see: the validation file, else a held-back
part of the calibration file (the report says which). There is always a tolerance: with labels, at
most ``DEFAULT_MAX_DROP`` top-1 points below fp32; without, a mean cosine of at least
``DEFAULT_MIN_COSINE`` between the fp32 and int8 outputs, for every output (on each sample's
flattened output, so a hidden state or an embedding is judged as a vector, never by its argmax).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from edgeport.errors import ConfigError
from edgeport.quant_backends.fidelity import fidelity, is_classifier
from edgeport.quant_backends.verify import verify_with_outputs

DEFAULT_MAX_DROP = 1.0  # top-1 points
DEFAULT_MIN_COSINE = 0.99
# Without a validation file, this share of the calibration samples is held back to judge fidelity.
HOLD_BACK_FRACTION = 0.25


@dataclass(frozen=True)
class Tolerance:
    """With labels: at most ``max_drop`` top-1 points below fp32. Without: mean cosine >= ``min_cosine``."""

    max_drop: float | None = None
    min_cosine: float | None = None

    def __post_init__(self) -> None:
        if (self.max_drop is None) == (self.min_cosine is None):
            raise ConfigError("a tolerance is exactly one of max_accuracy_drop (with labels) or min_cosine")
        if self.max_drop is not None and not 0 <= self.max_drop <= 100:  # also refuses NaN
            raise ConfigError(f"max_accuracy_drop must be between 0 and 100 points, got {self.max_drop!r}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"min_cosine must be in [-1, 1], got {self.min_cosine!r}")


def default_tolerance(labels: np.ndarray | None) -> Tolerance:
    return Tolerance(max_drop=DEFAULT_MAX_DROP) if labels is not None else Tolerance(min_cosine=DEFAULT_MIN_COSINE)


@dataclass
class GuardReport:
    """The verdict on one int8 model: its metric, the value required, and fidelity per output."""

    metric: str  # "top1_accuracy" (points, labels) or "mean_cosine" (worst output)
    value: float
    required: float
    within_tolerance: bool
    judged_on: str  # which inputs: the validation file, or the held-back calibration samples
    outputs: list[dict] = field(default_factory=list)

    def describe(self) -> dict:
        return dataclasses.asdict(self)

    def line(self) -> str:
        verdict = "within tolerance" if self.within_tolerance else "OUTSIDE TOLERANCE"
        unit = "%" if self.metric == "top1_accuracy" else ""
        measured = f"{self.metric} {self.value:.4g}{unit}, required >= {self.required:.4g}{unit}"
        return f"{verdict}: {measured} ({self.judged_on})"


def judge(
    fp32: dict[str, np.ndarray],
    int8: dict[str, np.ndarray],
    labels: np.ndarray | None,
    tolerance: Tolerance,
    judged_on: str,
) -> GuardReport:
    """Compare every output of the int8 model with the fp32 one's on the same held-out inputs."""
    outputs = [{"name": name, **fidelity(fp32[name], int8[name])} for name in fp32]
    if tolerance.max_drop is not None:
        first = next(iter(fp32))
        if labels is None or not is_classifier(fp32[first]):
            raise ConfigError(
                "max_accuracy_drop needs labels (y) and a classifier output ([samples, classes]); "
                "use min_cosine for other models"
            )
        fp32_top1 = float((fp32[first].argmax(1) == labels).mean() * 100)
        int8_top1 = float((int8[first].argmax(1) == labels).mean() * 100)
        required = fp32_top1 - tolerance.max_drop
        return GuardReport("top1_accuracy", int8_top1, required, int8_top1 >= required, judged_on, outputs)
    assert tolerance.min_cosine is not None
    worst = min(o["mean_cosine"] for o in outputs)
    return GuardReport("mean_cosine", worst, tolerance.min_cosine, worst >= tolerance.min_cosine, judged_on, outputs)


def verify_and_judge(
    int8_path, fp32_path, inputs: dict[str, np.ndarray], labels: np.ndarray | None, tolerance: Tolerance, judged_on: str
) -> tuple[dict, GuardReport]:
    """The int8 model's verification report and the guard's verdict, from one run of each model."""
    report, fp32, int8 = verify_with_outputs(int8_path, fp32_path, inputs, labels)
    return report, judge(fp32, int8, labels, tolerance, judged_on)


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
