"""Which student `edgeport run` ships: the distilled one, unless its plain cross-entropy twin is better
beyond chance.

Distillation is a means, not a goal: on a student too small for its teacher it can cost accuracy
(measured on digits: cnn:width=1,depth=2 scored 52.2% test with KD against 67.0% without). When the
no-KD baseline was trained (the default), both students are judged on the *validation* split; test
accuracy is never used to choose, so it stays an unbiased estimate of what ships. The no-KD student
ships only when it is better beyond chance: an exact McNemar test on the validation samples where the two
disagree (core/paired.py). Two students one image apart (98.89% against 99.26% of 270 digits) are
within noise, and the distilled student ships with that said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgeport.core.paired import PairedComparison, compare_paired
from edgeport.distill.evaluate import predict_logits
from edgeport.stages.train import TrainedModel

Choice = Literal["student", "student_no_kd"]  # the keys the manifest's accuracy and artifacts use


@dataclass(frozen=True)
class StudentChoice:
    chosen: Choice
    kd_val_accuracy: float
    no_kd_val_accuracy: float | None  # None: the baseline was skipped (--skip-no-kd)
    paired: PairedComparison | None = None  # a = the distilled student, b = the no-KD one, on validation

    @property
    def within_noise(self) -> bool:
        """The no-KD student scored higher on validation, but not beyond chance."""
        plain = self.no_kd_val_accuracy
        return self.chosen == "student" and plain is not None and plain > self.kd_val_accuracy

    @property
    def reason(self) -> str:
        if self.no_kd_val_accuracy is None:
            return "no baseline was trained (--skip-no-kd): the distilled student ships"
        kd, plain = self.kd_val_accuracy, self.no_kd_val_accuracy
        test = f" ({self.paired.text('KD', 'no KD')})" if self.paired is not None else ""
        if self.chosen == "student_no_kd":
            return (
                f"distillation made this student worse beyond noise: validation accuracy {kd:.2f}% with KD against "
                f"{plain:.2f}% without{test}, so the no-KD student ships"
            )
        if self.within_noise:
            return (
                f"the no-KD student's validation accuracy {plain:.2f}% is above the distilled one's {kd:.2f}% but "
                f"within noise{test}, so the distilled student ships"
            )
        return f"the distilled student's validation accuracy {kd:.2f}% is at least the no-KD one's {plain:.2f}%{test}"

    def describe(self) -> dict:
        return {
            "exported": self.chosen,
            "kd_val_accuracy": self.kd_val_accuracy,
            "no_kd_val_accuracy": self.no_kd_val_accuracy,
            "within_noise": self.within_noise,
            "paired_test": self.paired.describe() if self.paired is not None else None,
            "reason": self.reason,
        }


def _correct(model: TrainedModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return predict_logits(model.model, x).argmax(axis=1) == y


def choose_student(
    kd: TrainedModel, baseline: TrainedModel | None, val_x: np.ndarray, val_y: np.ndarray
) -> tuple[TrainedModel, StudentChoice]:
    """The student to export and why: the no-KD ``baseline`` only when it beats the distilled student on
    the validation samples (``val_x``, ``val_y``) beyond chance."""
    if baseline is None:
        return kd, StudentChoice("student", kd.val_accuracy, None)
    paired = compare_paired(_correct(kd, val_x, val_y), _correct(baseline, val_x, val_y))
    if paired.b_better:
        return baseline, StudentChoice("student_no_kd", kd.val_accuracy, baseline.val_accuracy, paired)
    return kd, StudentChoice("student", kd.val_accuracy, baseline.val_accuracy, paired)
