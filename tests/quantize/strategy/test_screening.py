"""A static recipe on a large calibration set is first calibrated on a subset; it is dropped there only
when its fidelity is clearly outside the tolerance: the whole interval of its worst mean cosine errs
twice what the tolerance allows. A recipe that may pass is calibrated in full; nothing is dropped on
one unlucky number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.quantize.config import AutoConfig
from edgeport.quantize.guard.judge import GuardReport, Validation
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy.attempts import screen
from edgeport.quantize.strategy.auto import run_recipes
from edgeport.quantize.strategy.judging import judging_for
from edgeport.quantize.strategy.recipes import recipes_for
from edgeport.quantize.strategy.screening import MIN_SAMPLES, SUBSET, clearly_outside, worth_screening
from edgeport.quantize.tolerance import Tolerance


def _report(value: float, sd: float, samples: int, required: float = 0.99) -> GuardReport:
    output = {"name": "y", "mean_cosine": value, "cosine_sd": sd, "samples": samples}
    check = {"metric": "mean_cosine", "output": "y", "value": value, "required": required, "passed": value >= required}
    return GuardReport("mean_cosine", value, required, value >= required, "val", [output], [check], [])


def test_only_a_whole_interval_far_outside_drops_a_recipe():
    assert clearly_outside(_report(0.90, 0.01, 64)) is not None  # errs 0.10 where 0.01 is allowed
    assert clearly_outside(_report(0.985, 0.001, 64)) is None  # outside, but not by twice the allowed error
    # 0.97 on average, but its interval reaches 0.981: not clearly outside on so few, so spread samples
    assert clearly_outside(_report(0.97, 0.03, 8)) is None
    assert clearly_outside(_report(0.97, 0.03, 400)) is not None
    assert clearly_outside(_report(0.995, 0.001, 64)) is None  # within tolerance
    top1 = GuardReport("top1_accuracy", 50.0, 99.0, False, "val", [], [], [])
    assert clearly_outside(top1) is None  # only the cosine screens: points are judged on the full set
    reason = clearly_outside(_report(0.90, 0.01, 64))
    assert reason is not None and f"{SUBSET}-sample calibration subset" in reason and "0.9" in reason


def test_only_static_recipes_on_a_large_calibration_set_are_screened():
    assert worth_screening("ort-static", MIN_SAMPLES) and not worth_screening("ort-static", MIN_SAMPLES - 1)
    assert not worth_screening("ort-dynamic", 1000) and not worth_screening("nncf", 1000)


def _outlier_model(folder: Path, outlier: float) -> tuple[Path, dict, dict]:
    """y = x W where x's channel 0 is ``outlier`` times the others but W ignores it: one activation scale
    for the whole of x rounds every channel that matters to zero."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(16, 8)).astype(np.float32)
    weight[0] = 0.0
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "outlier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "outlier.onnx"
    onnx.save(model, path)

    def feeds(n: int) -> dict:
        x = rng.normal(size=(n, 16)).astype(np.float32)
        x[:, 0] *= outlier
        return {"x": x}

    return path, feeds(64), feeds(64)


def _judging(path: Path, calibration: dict, validation: dict):
    checked = Validation(validation, None, Tolerance(min_cosine=0.99), "val")
    return judging_for(ModelSource(onnx_path=path), calibration, checked)


def test_a_recipe_clearly_outside_on_the_subset_is_not_calibrated_in_full(tmp_path):
    path, calibration, validation = _outlier_model(tmp_path, outlier=1e5)
    judging = _judging(path, calibration, validation)
    static = next(r for r in recipes_for(_profile(path), AutoConfig()) if r.config.backend == "ort-static")
    dropped = screen(static, judging, tmp_path / "subset.onnx")
    assert dropped is not None and dropped.result is None and dropped.screened
    assert dropped.guard is not None and not dropped.guard.within_tolerance
    assert dropped.recipe is static and dropped.config is static.config  # recorded as the recipe, not the subset
    assert dropped.describe(None)["screened"] == dropped.screened


def test_a_recipe_that_may_pass_is_calibrated_in_full(tmp_path):
    path, calibration, validation = _outlier_model(tmp_path, outlier=1.0)  # no outlier: static is faithful
    judging = _judging(path, calibration, validation)
    static = next(r for r in recipes_for(_profile(path), AutoConfig()) if r.config.backend == "ort-static")
    assert screen(static, judging, tmp_path / "subset.onnx") is None
    few = judging_for(judging.source, {"x": calibration["x"][: MIN_SAMPLES - 1]}, judging.validation)
    assert screen(static, few, tmp_path / "few.onnx") is None  # too few samples to be worth a subset run


def test_auto_records_the_dropped_recipe_and_still_falls_back_from_the_most_faithful(tmp_path):
    path, calibration, validation = _outlier_model(tmp_path, outlier=1e5)
    checked = Validation(validation, None, Tolerance(min_cosine=0.99), "val")
    outcome = run_recipes(ModelSource(onnx_path=path), calibration, AutoConfig(), checked, tmp_path / "staging")
    described = outcome.describe()["attempts"]
    first = next(a for a in described if a["recipe"] == "static-weight-matmuls")
    assert first["screened"] and "calibration subset" in first["screened"], described
    assert "static-per-channel" in outcome.skipped  # the full static is skipped after its narrower one missed
    assert all(a.result is None for a in outcome.attempts if a.screened)
    # nothing is faithful and the screened recipe is (one of) the most faithful: calibrated in full, then the
    # fallback starts from that file
    full = [a for a in outcome.attempts if a.recipe.name == "static-weight-matmuls" and not a.screened]
    assert len(full) == 1 and full[0].result is not None
    assert any(a.recipe.name == "static-weight-matmuls+fallback" for a in outcome.attempts)
    assert outcome.chosen is not None and outcome.chosen.result is not None  # a file was made: never a screened one


def _profile(path: Path):
    from edgeport.quantize.inputs.graph import graph_profile

    return graph_profile(onnx.load(str(path)))
