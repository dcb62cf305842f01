"""What distillation bought, with an interval over seeds (``student.kd_seeds``, ``--kd-seeds N``).

One split's difference between the KD and the no-KD student is mostly noise on a small test set (270
digits: one image is 0.37 points) and one seed's initialisation. With N seeds the KD and no-KD
students are trained N times each from the same initial weights per seed (seeds seed .. seed+N-1; the
data split and the teacher stay those of the run), and the gain is the mean paired difference in
test accuracy with a 95% t-interval over seeds. The run's own pair is the first seed; the extra
students are evaluated and discarded (only the run's pair has checkpoints in the run folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from edgeport.config import RunConfig
from edgeport.core.progress import SILENT, Progress
from edgeport.core.scratch import scratch_folder
from edgeport.distill import accuracy, predict_logits
from edgeport.stages.data import PreparedData
from edgeport.stages.train import TrainedModel, train_student


@dataclass
class KDGain:
    per_seed: list[dict] = field(default_factory=list)  # seed, then val/test accuracy of both students

    def describe(self) -> dict:
        gains = np.array([row["kd_test"] - row["no_kd_test"] for row in self.per_seed])
        interval = None
        if len(gains) > 1:
            half = float(stats.t.ppf(0.975, len(gains) - 1) * gains.std(ddof=1) / np.sqrt(len(gains)))
            interval = [float(gains.mean() - half), float(gains.mean() + half)]
        return {
            "seeds": len(gains),
            "mean_test_points": float(gains.mean()),
            "interval95_test_points": interval,
            "per_seed": self.per_seed,
        }

    def line(self) -> str:
        summary = self.describe()
        if summary["interval95_test_points"] is None:
            return f"distillation changed test accuracy by {summary['mean_test_points']:+.2f} points (one seed)"
        low, high = summary["interval95_test_points"]
        return (
            f"distillation changed test accuracy by {summary['mean_test_points']:+.2f} points on average over "
            f"{summary['seeds']} seeds (95% interval {low:+.2f} to {high:+.2f})"
        )


def _scores(model: TrainedModel, prepared: PreparedData) -> tuple[float, float]:
    splits = prepared.splits
    return (
        accuracy(predict_logits(model.model, splits.val.x), splits.val.y),
        accuracy(predict_logits(model.model, splits.test.x), splits.test.y),
    )


def _row(seed: int, kd: TrainedModel, plain: TrainedModel, prepared: PreparedData) -> dict:
    (kd_val, kd_test), (plain_val, plain_test) = _scores(kd, prepared), _scores(plain, prepared)
    return {"seed": seed, "kd_val": kd_val, "no_kd_val": plain_val, "kd_test": kd_test, "no_kd_test": plain_test}


def kd_gain(
    config: RunConfig,
    prepared: PreparedData,
    t_logits: np.ndarray,
    first: tuple[TrainedModel, TrainedModel],
    progress: Progress = SILENT,
) -> KDGain:
    """The run's KD/no-KD pair plus ``student.kd_seeds - 1`` more pairs on the following seeds."""
    gain = KDGain([_row(config.seed, *first, prepared)])
    with scratch_folder("kd-seeds") as scratch:
        for seed in range(config.seed + 1, config.seed + config.student.kd_seeds):
            seeded = config.model_copy(update={"seed": seed})
            kd = train_student(
                seeded, prepared, Path(scratch) / "kd.safetensors", t_logits, progress, f"KD seed {seed}"
            )
            plain = train_student(
                seeded, prepared, Path(scratch) / "ce.safetensors", None, progress, f"no-KD seed {seed}"
            )
            gain.per_seed.append(_row(seed, kd, plain, prepared))
    return gain
