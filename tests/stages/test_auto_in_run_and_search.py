"""Backend "auto" in `edgeport run` and `edgeport search`: the recipes and the guard of `edgeport quantize`,
on the student the pipeline trained, with every attempt and the chosen recipe recorded."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edgeport.benchmarks.openvino_runtime import fp32_openvino_choices
from tests.helpers import TINY_RUN, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeport.cli", *args, "--quiet"], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


def test_run_with_backend_auto_records_its_attempts_and_the_chosen_recipe(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(TINY_RUN.format(student_epochs=2).replace("[run.quantize]", '[run.quantize]\nbackend = "auto"'))
    done = _cli("run", "--config", str(config), "--out", str(tmp_path / "runs"))
    assert done.returncode in (0, 1), done.stderr  # 1 only when the student misses its tolerance
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((folder / "manifest.json").read_text())
    quantization = manifest["lineage"]["quantization"]
    auto = quantization["auto"]
    assert auto["graph"]["kind"] == "conv-dominant"
    chosen = next(a for a in auto["attempts"] if a["recipe"] == auto["chosen"])
    # the manifest describes the config that was applied, not the word "auto"
    assert quantization["backend"] == chosen["backend"] != "auto"
    assert quantization["per_channel"] is True
    assert manifest["guard"]["within_tolerance"] == chosen["within_tolerance"]
    assert manifest["verdict"].startswith("within tolerance" if chosen["within_tolerance"] else "OUTSIDE")
    assert not [p for p in folder.iterdir() if p.name.startswith(".auto-")]  # no staging left behind
    # every installed runtime measured and judged; onnxruntime's int8 row agrees with the guard
    runtimes = manifest["runtimes"]
    rows = {row["label"]: row for row in runtimes["rows"]}
    expected = {"fp32", "int8"}
    if importlib.util.find_spec("openvino"):  # fp32 at f32 and at OpenVINO's default, one where these are one
        expected |= {f"fp32@{choice.label()}" for choice in fp32_openvino_choices()} | {"int8@openvino"}
    assert set(rows) == expected and set(json.loads((folder / "latency.json").read_text())) == expected
    assert rows["int8"]["faithful"] == manifest["guard"]["within_tolerance"]
    assert rows["fp32"]["p50_over_ort_fp32"] == 1.0 and rows["fp32"]["top1_agreement_with_ort"] == 100.0
    assert (
        runtimes["fastest_faithful"]
        == min((r for r in rows.values() if r["faithful"]), key=lambda r: r["p50_ms"])["label"]
    )


def test_search_takes_auto_as_a_backend_and_names_the_chosen_recipe(tmp_path):
    config = tiny_config(tmp_path, '"quantize.backend" = ["auto"]')
    done = _cli("search", "--config", str(config), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("search-")]
    with sqlite3.connect(folder / "search.db") as db:
        metrics = [json.loads(row[0]) for row in db.execute("select metrics from trials where status = 'ok'")]
    static = {"static-per-channel", "static-float-classifier"}  # the faster faithful one of the two, per trial
    assert metrics and all(m["quant_recipe"] in static for m in metrics)
    best = json.loads((folder / "best" / "manifest.json").read_text())
    assert best["lineage"]["quantization"]["recipe"] in static


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_a_run_shipping_on_openvino_is_judged_and_measured_there(tmp_path):
    config = tmp_path / "run.toml"
    text = TINY_RUN.format(student_epochs=1).replace("[run.quantize]", '[run.quantize]\nbackend = "auto"')
    config.write_text(text.replace("[run.bench]", '[run.bench]\nruntime = "openvino"'))
    done = _cli("run", "--config", str(config), "--out", str(tmp_path / "runs"), "--skip-no-kd")
    assert done.returncode in (0, 1), done.stderr
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "int8 run on openvino" in manifest["guard"]["judged_on"]
    assert manifest["verification"]["judged_on_runtime"].startswith("openvino")  # auto's verdict, reused, says where
    assert manifest["lineage"]["quantization"]["auto"]["runtime"] == "openvino"
    assert manifest["latency"]["settings"]["runtime"] == "openvino"  # the headline latency, which the gate reads
    labels = {row["label"] for row in manifest["runtimes"]["rows"]}
    assert {"fp32", "int8", "fp32@ort", "int8@ort"} <= labels
