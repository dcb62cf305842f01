"""`edgeport run` never ships a student that distillation made worse than its no-KD twin beyond chance (on val)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeport.exporter import read_metadata
from edgeport.run.select import choose_student
from edgeport.stages.train import TrainedModel
from tests.helpers import TINY_RUN

ROOT = Path(__file__).resolve().parents[2]


class _Answers(torch.nn.Module):
    """A classifier whose answer for sample i (its input is the number i) is ``answers[i]``."""

    def __init__(self, answers: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("logits", torch.eye(10)[torch.as_tensor(answers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0].long()]


def _trained(answers: np.ndarray, labels: np.ndarray, kd: bool) -> TrainedModel:
    from edgeport.distill import KDConfig

    accuracy = float((answers == labels).mean() * 100)
    model = _Answers(answers)
    return TrainedModel(model, None, Path("x"), "0" * 64, 1, accuracy, [], KDConfig(4.0, 0.9) if kd else None)  # type: ignore[arg-type]


def _students(kd_wrong: int, plain_wrong: int, both_wrong: int = 3, samples: int = 270):
    """Labels, and two students that miss ``kd_wrong`` and ``plain_wrong`` different samples of them plus
    ``both_wrong`` the same ones."""
    labels = np.arange(samples) % 10
    kd, plain = labels.copy(), labels.copy()
    kd[:both_wrong] = plain[:both_wrong] = (labels[:both_wrong] + 1) % 10
    kd[both_wrong : both_wrong + kd_wrong] += 1
    plain[both_wrong + kd_wrong : both_wrong + kd_wrong + plain_wrong] += 1
    x = np.arange(samples, dtype=np.float32)[:, None]
    return x, labels, _trained(kd % 10, labels, True), _trained(plain % 10, labels, False)


def test_students_one_validation_image_apart_keep_the_distilled_one_and_say_it_is_noise():
    x, y, distilled, baseline = _students(kd_wrong=2, plain_wrong=1)  # 98.89% against 99.26%, as on digits
    assert baseline.val_accuracy > distilled.val_accuracy
    shipped, choice = choose_student(distilled, baseline, x, y)
    assert shipped is distilled and choice.chosen == "student" and choice.within_noise
    assert "within noise" in choice.reason and "exact McNemar test on the 3 of 270 samples" in choice.reason
    assert choice.describe()["paired_test"]["p_value"] == 1.0  # 2 against 1 of 3: chance alone, exactly


def test_the_no_kd_student_ships_when_it_is_better_beyond_chance():
    x, y, distilled, baseline = _students(kd_wrong=12, plain_wrong=1)  # 12 against 1: p = 0.0034
    shipped, choice = choose_student(distilled, baseline, x, y)
    assert shipped is baseline and choice.chosen == "student_no_kd" and not choice.within_noise
    assert "worse beyond noise" in choice.reason
    assert choice.paired is not None and choice.paired.p_value == pytest.approx(2 * 14 / 2**13)


@pytest.mark.parametrize(("kd_wrong", "plain_wrong"), [(1, 5), (2, 2), (0, 0)])
def test_the_distilled_student_ships_when_it_is_at_least_as_good(kd_wrong, plain_wrong):
    x, y, distilled, baseline = _students(kd_wrong, plain_wrong)
    shipped, choice = choose_student(distilled, baseline, x, y)
    assert shipped is distilled and not choice.within_noise and "at least" in choice.reason


def test_without_a_baseline_the_distilled_student_ships():
    x, y, distilled, _ = _students(1, 1)
    shipped, choice = choose_student(distilled, None, x, y)
    assert shipped is distilled and choice.paired is None and "--skip-no-kd" in choice.reason


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeport.cli", "run", *args], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


def test_kd_seeds_needs_the_baseline(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(TINY_RUN.format(student_epochs=1))
    done = _run("--config", str(config), "--out", str(tmp_path / "runs"), "--kd-seeds", "3", "--skip-no-kd")
    assert done.returncode == 2 and "student.kd_seeds" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_run_exports_the_student_it_chose_and_reports_the_gain_over_seeds(tmp_path):
    # 2 student epochs against a 2-epoch teacher: on this split KD scored below plain cross-entropy on val
    config = tmp_path / "run.toml"
    config.write_text(TINY_RUN.format(student_epochs=2))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeport.cli",
            "run",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "runs"),
            "--kd-seeds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode in (0, 1), done.stderr
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((folder / "manifest.json").read_text())
    accuracy, choice = manifest["metrics"]["accuracy"], manifest["lineage"]["student_choice"]
    # the no-KD student ships only when better beyond chance on validation (exact McNemar test)
    test = choice["paired_test"]
    better = "student_no_kd" if test["b_only"] > test["a_only"] and test["p_value"] < test["alpha"] else "student"
    assert choice["exported"] == better
    assert choice["within_noise"] == (
        better == "student" and accuracy["student_no_kd"]["val"] > accuracy["student"]["val"]
    )
    # the fp32 ONNX is the chosen student: same predictions, and its metadata names that checkpoint
    assert accuracy["fp32_onnx"]["val"] == pytest.approx(accuracy[better]["val"], abs=0.5)
    checkpoint = folder / ("student-nokd.safetensors" if better == "student_no_kd" else "student.safetensors")
    from edgeport.core.artifacts import sha256_file

    assert read_metadata(folder / "student.fp32.onnx")["student_sha256"] == sha256_file(checkpoint)
    assert choice["reason"] in (folder / "report.md").read_text()
    if better == "student_no_kd":
        assert "distillation made this student worse" in done.stdout
    # the gain over seeds: the run's own pair first, then seed 1; the interval brackets the mean
    seeds = manifest["metrics"]["kd_gain_over_seeds"]
    assert [row["seed"] for row in seeds["per_seed"]] == [0, 1]
    first = seeds["per_seed"][0]
    assert first["kd_test"] == pytest.approx(accuracy["student"]["test"])
    assert first["no_kd_test"] == pytest.approx(accuracy["student_no_kd"]["test"])
    gains = [row["kd_test"] - row["no_kd_test"] for row in seeds["per_seed"]]
    assert seeds["mean_test_points"] == pytest.approx(sum(gains) / 2)
    low, high = seeds["interval95_test_points"]
    assert low <= seeds["mean_test_points"] <= high
    assert "over 2 seeds" in (folder / "report.md").read_text()


def test_the_kd_loss_is_part_of_the_student_cache_key_and_kd_seeds_is_not():
    from edgeport.config import RunConfig
    from edgeport.search.plan import student_stage

    def key(**student) -> str:
        return student_stage(RunConfig.model_validate({"student": student}), "teacher", "data").key

    assert key() != key(kd_loss="hinton")  # a student distilled another way is another student
    assert key() == key(kd_seeds=5)  # how the gain is reported does not change the student
