"""`edgeport run` never ships a student that distillation made worse than its no-KD twin (chosen on val)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeport.exporter import read_metadata
from edgeport.run.select import choose_student
from edgeport.stages.train import TrainedModel
from tests.helpers import TINY_RUN

ROOT = Path(__file__).resolve().parents[2]


def _trained(val_accuracy: float, kd: bool) -> TrainedModel:
    from edgeport.distill import KDConfig

    return TrainedModel(None, None, Path("x"), "0" * 64, 1, val_accuracy, [], KDConfig(4.0, 0.9) if kd else None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kd", "plain", "chosen"),
    [(90.0, 95.0, "student_no_kd"), (95.0, 90.0, "student"), (92.5, 92.5, "student"), (80.0, None, "student")],
)
def test_the_student_with_the_better_validation_accuracy_ships(kd, plain, chosen):
    distilled, baseline = _trained(kd, True), (_trained(plain, False) if plain is not None else None)
    shipped, choice = choose_student(distilled, baseline)
    assert choice.chosen == chosen
    assert shipped is (baseline if chosen == "student_no_kd" else distilled)
    assert ("worse" in choice.reason) == (chosen == "student_no_kd")


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
    better = "student_no_kd" if accuracy["student_no_kd"]["val"] > accuracy["student"]["val"] else "student"
    assert choice["exported"] == better
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
