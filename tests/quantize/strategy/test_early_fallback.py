"""auto's fallback made while NNCF's child process still runs (strategy/auto_fallback.py): only where NNCF's
answer cannot change whether it is tried, with real NNCF in a real child process and real onnxruntime recipes;
a faithful one made so is weighed by the runtime choice on its own file, not by measuring its base first."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.core.progress import SILENT
from edgeport.quantize.config import AutoConfig
from edgeport.quantize.guard.judge import Validation
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy import ahead as ahead_module
from edgeport.quantize.strategy import auto_fallback
from edgeport.quantize.strategy.auto import run_recipes
from edgeport.quantize.strategy.outcome import AutoOutcome, Plan
from edgeport.quantize.tolerance import Tolerance
from tests.quantize.strategy.test_narrower_miss import TRANSFORMER, _faithful, _judged

pytest.importorskip("nncf")  # a dev extra: installed by `make test`


def _three_convs(folder: Path) -> tuple[Path, dict, dict]:
    """x -> Conv -> Relu -> Conv -> Relu -> Conv -> y, the second Conv's channel 0 ``1e4`` times the others and
    ignored by the third: one activation scale for the tensor between them rounds every channel of it that
    matters to zero. Every int8 recipe misses (a conv net: no smoothed recipe migrates the outlier into the
    weights); with the two Convs around that tensor in float it is faithful."""
    rng = np.random.default_rng(0)
    w0 = (rng.normal(size=(8, 3, 3, 3)) / 5).astype(np.float32)
    w1 = (rng.normal(size=(8, 8, 3, 3)) / 8).astype(np.float32)
    w1[0] *= 1e4
    w2 = (rng.normal(size=(4, 8, 3, 3)) / 8).astype(np.float32)
    w2[:, 0] = 0.0
    pads = [1, 1, 1, 1]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W0"], ["c0"], name="first", pads=pads),
            helper.make_node("Relu", ["c0"], ["r0"]),
            helper.make_node("Conv", ["r0", "W1"], ["c1"], name="second", pads=pads),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "W2"], ["y"], name="third", pads=pads),
        ],
        "three",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [numpy_helper.from_array(w, f"W{i}") for i, w in enumerate((w0, w1, w2))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "three.onnx"
    onnx.save(model, path)

    def feeds(n: int) -> dict:
        return {"x": rng.normal(size=(n, 3, 8, 8)).astype(np.float32)}

    return path, feeds(32), feeds(32)  # below screening's minimum: every recipe calibrated in full


def test_the_fallback_is_made_while_nncf_still_runs_and_weighed_on_its_own_file(tmp_path, monkeypatch):
    path, calibration, validation = _three_convs(tmp_path)
    events: list[str] = []
    monkeypatch.setattr(ahead_module, "AHEAD_MIN_BYTES", 0)  # this small model too
    monkeypatch.setattr(ahead_module.Ahead, "done", lambda self: False)  # as a slow NNCF would be
    answer = ahead_module.Ahead.result
    monkeypatch.setattr(ahead_module.Ahead, "result", lambda self: events.append("nncf awaited") or answer(self))
    made = auto_fallback.fallback_attempt
    monkeypatch.setattr(auto_fallback, "fallback_attempt", lambda *a: events.append("fallback") or made(*a))
    monkeypatch.setattr(auto_fallback, "may_pay", lambda *a: pytest.fail("its base was measured"))
    checked = Validation(validation, None, Tolerance(min_cosine=0.99), "val")
    plan = Plan(must_pay=True, with_nncf=True, ranked_later=True)
    outcome = run_recipes(ModelSource(onnx_path=path), calibration, AutoConfig(), checked, tmp_path / "s", plan=plan)
    assert events == ["fallback", "nncf awaited"]  # made before NNCF's answer was awaited
    names = [a.recipe.name for a in outcome.attempts]
    assert names == ["static-per-channel", "dynamic", "nncf", "static-per-channel+fallback"], names
    fallback = outcome.attempts[-1]
    assert fallback.faithful and fallback.fallback and sorted(fallback.fallback["excluded"]) == ["second", "third"]
    assert not any(a.faithful for a in outcome.attempts if a is not fallback)
    assert all(a.p50_ms is None for a in outcome.attempts)  # nothing was timed: the runtime choice times the files
    assert not [p for p in (tmp_path / "s").rglob("*.calibration.npz")]  # the child read its feeds and removed them


def _outcome(*attempts) -> AutoOutcome:
    return AutoOutcome(TRANSFORMER, attempts=list(attempts))


def test_the_fallback_is_made_early_only_where_nncf_cannot_change_whether_it_is_tried(monkeypatch):
    from edgeport.quantize.strategy.recipes import nncf_recipe, recipes_for

    weights_only, dynamic, _ = recipes_for(TRANSFORMER, AutoConfig())
    nncf = nncf_recipe(TRANSFORMER, AutoConfig())
    made: list[str] = []
    monkeypatch.setattr(auto_fallback, "fallback_attempt", lambda base, *a: made.append(base.recipe.name) or base)
    must_pay = Plan(must_pay=True, with_nncf=True, ranked_later=True)
    missed = _faithful(dynamic, 0.989)  # a file, outside tolerance
    missed.guard = _judged(dynamic, 0.989).guard
    early = auto_fallback.early_fallback(_outcome(missed), None, Path("s"), must_pay, SILENT)  # type: ignore[arg-type]
    assert early is not None and early.base is missed and made == ["dynamic"]
    # --no-speed-check: a faithful NNCF file would end the search, so its answer is awaited first
    assert auto_fallback.early_fallback(_outcome(missed), None, Path("s"), Plan(with_nncf=True), SILENT) is None  # type: ignore[arg-type]
    # an onnxruntime recipe is faithful: no fallback at all
    faithful = _outcome(missed, _faithful(weights_only, 0.995))
    assert auto_fallback.early_fallback(faithful, None, Path("s"), must_pay, SILENT) is None  # type: ignore[arg-type]
    # the most faithful was dropped on a subset: calibrating it in full races a faithful NNCF file only if none is
    screened = _judged(weights_only, 0.999)
    screened.guard = _judged(weights_only, 0.985).guard
    screened.screened = "clearly outside tolerance on a calibration subset"
    assert auto_fallback.early_fallback(_outcome(screened), None, Path("s"), must_pay, SILENT) is None  # type: ignore[arg-type]
    assert made == ["dynamic"]
    assert nncf.quantizer == "nncf"


def test_a_faithful_early_fallback_is_weighed_on_its_own_file_where_the_runtime_is_chosen(monkeypatch):
    from edgeport.quantize.strategy.recipes import nncf_recipe, recipes_for

    _, dynamic, _ = recipes_for(TRANSFORMER, AutoConfig())
    nncf = nncf_recipe(TRANSFORMER, AutoConfig())
    missed = _faithful(dynamic, 0.989)
    missed.guard = _judged(dynamic, 0.989).guard
    fixed = _faithful(dynamic, 0.991)
    measured: list[str] = []
    monkeypatch.setattr(auto_fallback, "may_pay", lambda _o, _p, best, *a: measured.append(best.recipe.name) or False)
    chosen_later = Plan(must_pay=True, with_nncf=True, ranked_later=True)
    outcome = _outcome(missed, _faithful(nncf, 0.9911))
    # judging and staging are never reached: nothing is quantized again or measured
    auto_fallback.fall_back(outcome, None, None, chosen_later, SILENT, auto_fallback.Early(missed, fixed))  # type: ignore[arg-type]
    assert outcome.attempts[-1] is fixed and measured == []
    # one runtime, no choice to weigh it: whether its base may pay is measured first (here: it may not)
    outcome = _outcome(missed, _faithful(nncf, 0.9911))
    early = auto_fallback.Early(missed, fixed)
    judging = SimpleNamespace(source=ModelSource(onnx_path=Path("m.onnx")), validation=SimpleNamespace(inputs={}))
    auto_fallback.fall_back(outcome, judging, None, Plan(must_pay=True, with_nncf=True), SILENT, early)  # type: ignore[arg-type]
    assert measured == ["dynamic"] and fixed not in outcome.attempts


def test_where_the_runtime_is_chosen_the_fallback_is_made_without_measuring_its_base(monkeypatch):
    """NNCF answered before onnxruntime's recipes were done (no early fallback): where the runtime choice follows,
    the fallback is made at once, faithful or not, and its base is never measured on one runtime first."""
    from edgeport.quantize.strategy.recipes import recipes_for

    _, dynamic, _ = recipes_for(TRANSFORMER, AutoConfig())
    missed = _faithful(dynamic, 0.989)
    missed.guard = _judged(dynamic, 0.989).guard
    hopeless = _judged(dynamic, 0.97)  # outside tolerance even with its layers in float
    measured: list[str] = []
    monkeypatch.setattr(auto_fallback, "may_pay", lambda _o, _p, best, *a: measured.append(best.recipe.name) or True)
    monkeypatch.setattr(auto_fallback, "fallback_attempt", lambda *a: hopeless)
    outcome = _outcome(missed)
    auto_fallback.fall_back(outcome, None, Path("s"), Plan(must_pay=True, ranked_later=True), SILENT)  # type: ignore[arg-type]
    assert outcome.attempts[-1] is hopeless and measured == [] and outcome.fallback_skipped is None
