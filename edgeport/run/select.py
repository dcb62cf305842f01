"""Which student `edgeport run` ships: the distilled one, unless its plain cross-entropy twin is better.

Distillation is a means, not a goal: on a student too small for its teacher it can cost accuracy
(measured on digits: cnn:width=1,depth=2 scored 52.2% test with KD against 67.0% without). When the
no-KD baseline was trained (the default), the student with the higher *validation* accuracy is
exported; test accuracy is never used to choose, so it stays an unbiased estimate of what ships. A
tie keeps the distilled student.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgeport.stages.train import TrainedModel

Choice = Literal["student", "student_no_kd"]  # the keys the manifest's accuracy and artifacts use


@dataclass(frozen=True)
class StudentChoice:
    chosen: Choice
    kd_val_accuracy: float
    no_kd_val_accuracy: float | None  # None: the baseline was skipped (--skip-no-kd)

    @property
    def reason(self) -> str:
        if self.no_kd_val_accuracy is None:
            return "no baseline was trained (--skip-no-kd): the distilled student ships"
        kd, plain = self.kd_val_accuracy, self.no_kd_val_accuracy
        if self.chosen == "student":
            return f"the distilled student's validation accuracy {kd:.2f}% is at least the no-KD one's {plain:.2f}%"
        return (
            f"distillation made this student worse: validation accuracy {kd:.2f}% with KD against {plain:.2f}% "
            "without, so the no-KD student ships"
        )

    def describe(self) -> dict:
        return {
            "exported": self.chosen,
            "kd_val_accuracy": self.kd_val_accuracy,
            "no_kd_val_accuracy": self.no_kd_val_accuracy,
            "reason": self.reason,
        }


def choose_student(kd: TrainedModel, baseline: TrainedModel | None) -> tuple[TrainedModel, StudentChoice]:
    """The student to export and why (validation accuracy only)."""
    if baseline is None:
        return kd, StudentChoice("student", kd.val_accuracy, None)
    if baseline.val_accuracy > kd.val_accuracy:
        return baseline, StudentChoice("student_no_kd", kd.val_accuracy, baseline.val_accuracy)
    return kd, StudentChoice("student", kd.val_accuracy, baseline.val_accuracy)
