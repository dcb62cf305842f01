"""Does distillation pay? KD against plain cross-entropy for three small students, over 5 seeds.

For each seed (data split, initial weights, shuffling) the default teacher is trained once, then each
student is trained three times from the same initial weights: plain cross-entropy (edgeport's no-KD
baseline), KD with the standardised-logit loss (the default) and KD with the classic Hinton loss.
Reported: mean test accuracy, and the paired difference KD - CE with a 95% t-interval over seeds.
Goal (issue "distillation that pays"): the default KD mean at least the CE baseline's for every
student, and at least +1 point for one. Appends a table to perf/RESULTS.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from perf_common import append_results, verdict
from scipy import stats

from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.config import RunConfig
from edgeport.distill import accuracy, predict_logits
from edgeport.stages import build_teacher, prepare_data, train_student

STUDENTS = ("cnn:width=1,depth=2", "cnn:width=0.5,depth=3", "cnn:width=1,depth=3")
SEEDS = (0, 1, 2, 3, 4)
ARMS = ("ce", "standardized", "hinton")


def _interval(diffs: np.ndarray) -> str:
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return f"{diffs.mean():+.2f} [{diffs.mean() - half:+.2f}, {diffs.mean() + half:+.2f}]"


def _scores(seed: int, folder: Path) -> dict:
    """Test accuracy of every student under every arm for one seed."""
    base = RunConfig(seed=seed)
    prepared = prepare_data(base.data, seed)
    teacher = build_teacher(base, prepared, folder / "teacher.safetensors").model
    logits = predict_logits(teacher, prepared.splits.train.x).astype(np.float32)
    test = prepared.splits.test
    scores = {}
    for student in STUDENTS:
        for arm in ARMS:
            section = {"model": student, "kd_loss": "hinton" if arm == "hinton" else "standardized"}
            config = RunConfig.model_validate({"seed": seed, "student": section})
            trained = train_student(config, prepared, folder / "s.safetensors", None if arm == "ce" else logits)
            scores[(student, arm)] = accuracy(predict_logits(trained.model, test.x), test.y)
            print(f"seed {seed} {student} {arm}: {scores[(student, arm)]:.2f}", file=sys.stderr)
    return scores


def main() -> int:
    torch.set_num_threads(1)
    cpu = cpu_fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        per_seed = [_scores(seed, Path(tmp)) for seed in SEEDS]
    rows = []
    verdicts = []
    for student in STUDENTS:
        acc = {arm: np.array([s[(student, arm)] for s in per_seed]) for arm in ARMS}
        gain = acc["standardized"] - acc["ce"]
        verdicts.append(gain.mean())
        rows.append(
            f"| {student} | {acc['ce'].mean():.2f} | {acc['standardized'].mean():.2f} | {_interval(gain)} | "
            f"{acc['hinton'].mean():.2f} | {_interval(acc['hinton'] - acc['ce'])} |"
        )
    ok = min(verdicts) >= 0 and max(verdicts) >= 1
    append_results(
        "Distillation against plain cross-entropy, 5 seeds",
        "kd_students.py",
        f"CPU {cpu.get('model')} (accuracies do not depend on it). Default teacher and data (digits 8x8 "
        f"upscaled to 32, train/val/test 70/15/15), student 12 epochs, T=4, alpha=0.9; seeds {list(SEEDS)}. "
        "Test top-1 %, mean over seeds; KD - CE: paired difference, 95% t-interval.",
        [
            "| student | CE (no KD) | KD, standardized logits (default) | KD - CE | KD, Hinton loss | KD - CE |",
            "|---|---:|---:|---|---:|---|",
            *rows,
        ],
        [f"Goal: default KD >= CE for every student and >= +1 point for one: {verdict(ok)}", ""],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
