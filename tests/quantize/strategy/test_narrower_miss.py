"""auto does not try full static on a transformer once weights-only static, which quantizes a subset of
its layers with the same calibration, missed the tolerance; it does when that recipe was faithful or
never judged, and the manifest says what was skipped and why. And when the fallback is tried: a
faithful NNCF file does not stop it where int8 must pay."""

from __future__ import annotations

from pathlib import Path

from edgeport.benchmarks.speedup import Speedup
from edgeport.core.progress import SILENT
from edgeport.quantize.config import AutoConfig
from edgeport.quantize.guard.judge import GuardReport
from edgeport.quantize.inputs.graph import GraphProfile
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.strategy.attempts import Attempt
from edgeport.quantize.strategy.auto_fallback import fall_back, wants_fallback
from edgeport.quantize.strategy.outcome import AutoOutcome, Plan
from edgeport.quantize.strategy.recipes import nncf_recipe, recipes_for
from edgeport.quantize.strategy.skip_rules import narrower_miss
from edgeport.quantize.strategy.timing import fallback_skip_reason

TRANSFORMER = GraphProfile({"MatMul": 4, "Softmax": 1, "LayerNormalization": 1}, 2, ["scores"], 1)


def _judged(recipe, value: float) -> Attempt:
    check = {"metric": "mean_cosine", "output": "y", "value": value, "required": 0.99, "passed": value >= 0.99}
    guard = GuardReport("mean_cosine", value, 0.99, value >= 0.99, "val", [], [check], [])
    return Attempt(recipe, 1.0, recipe.config, guard=guard)


def test_full_static_follows_weights_only_static_only_when_that_was_faithful():
    weights_only, dynamic, static = recipes_for(TRANSFORMER, AutoConfig())
    assert static.narrower == weights_only.name and weights_only.narrower is None
    why = narrower_miss(static, [_judged(weights_only, 0.907), _judged(dynamic, 0.989)])
    assert why is not None and "static-weight-matmuls" in why and "0.907" in why
    assert narrower_miss(static, [_judged(weights_only, 0.995)]) is None  # faithful: full static may be faster
    assert narrower_miss(static, [Attempt(weights_only, 1.0, error="onnxruntime refused it")]) is None
    assert narrower_miss(dynamic, [_judged(weights_only, 0.5)]) is None  # not a superset of it


def test_conv_nets_have_no_such_pair():
    conv = GraphProfile({"Conv": 20, "Gemm": 1}, 1, [], 0)
    assert all(r.narrower is None for r in recipes_for(conv, AutoConfig()))


def _faithful(recipe, value: float) -> Attempt:
    attempt = _judged(recipe, value)
    attempt.result = QuantResult(Path(f"{recipe.name}.onnx"), recipe.config.backend, 1.0)
    return attempt


def test_a_faithful_nncf_file_does_not_stop_onnxruntimes_fallback_when_int8_must_pay():
    # MiniLM on an AVX2 Zen 3: NNCF's file faithful (0.9911) but slower than fp32; dynamic missed at 0.989 and
    # ran at 0.57x, and with one MatMul in float shipped at 0.60x
    _, dynamic, _ = recipes_for(TRANSFORMER, AutoConfig())
    nncf = nncf_recipe(TRANSFORMER, AutoConfig())
    assert nncf.quantizer == "nncf" and dynamic.quantizer == "onnxruntime"
    attempts = [_judged(dynamic, 0.989), _faithful(nncf, 0.9911)]
    assert wants_fallback(attempts, Plan(must_pay=True, with_nncf=True))
    assert not wants_fallback(attempts, Plan(must_pay=False, with_nncf=True))  # --no-speed-check: speed unknown
    assert wants_fallback([_judged(dynamic, 0.989)], Plan())  # nothing faithful: always
    # an onnxruntime recipe faithful already: the recipes come faster kernels first, no fallback
    assert not wants_fallback([_faithful(dynamic, 0.992), _faithful(nncf, 0.9911)], Plan(must_pay=True))


def test_the_fallback_beside_a_faithful_file_must_be_faster_beyond_noise():
    # nothing faithful: lenient, only a whole interval above 0.95x fp32 skips it
    assert fallback_skip_reason("dynamic", Speedup(10.0, 9.5, (0.90, 1.00)), {}) is None
    skipped = fallback_skip_reason("static-per-channel", Speedup(10.0, 11.0, (1.02, 1.20)), {})
    assert skipped and "cannot make it pay" in skipped and "1.10x [1.02, 1.20]" in skipped
    # a faithful file exists: the detector's 0.89x [0.80, 1.07] fp32 no longer buys a minute of fallback
    nncf = {"nncf's file on ort": Speedup(13.0, 8.9, (0.60, 0.75))}
    skipped = fallback_skip_reason("static-per-channel", Speedup(10.0, 8.9, (0.80, 1.07)), nncf)
    assert skipped and "a faithful file exists already" in skipped and "cannot make it pay" not in skipped
    # faster than fp32 beyond noise, but not than the faithful file: skipped, the file named
    slower = {"nncf's file on ort": Speedup(6.0, 5.9, (0.90, 1.10))}
    skipped = fallback_skip_reason("dynamic", Speedup(10.0, 5.9, (0.55, 0.62)), slower)
    assert skipped and "nncf's file on ort" in skipped and "not faster" in skipped
    # MiniLM: dynamic at 0.57x fp32 and 0.63x NNCF's file: tried
    faster = {"nncf's file on ort": Speedup(9.0, 5.7, (0.58, 0.68))}
    assert fallback_skip_reason("dynamic", Speedup(10.0, 5.7, (0.54, 0.61)), faster) is None


def test_a_recipe_dropped_on_a_subset_is_not_calibrated_in_full_to_race_a_faithful_file():
    weights_only, _, _ = recipes_for(TRANSFORMER, AutoConfig())
    nncf = nncf_recipe(TRANSFORMER, AutoConfig())
    screened = _judged(weights_only, 0.91)
    screened.screened = "clearly outside tolerance on a calibration subset"
    outcome = AutoOutcome(TRANSFORMER, attempts=[screened, _faithful(nncf, 0.9911)])
    # nothing is quantized or measured: judging and staging are never reached
    fall_back(outcome, None, None, Plan(must_pay=True, with_nncf=True), SILENT)  # type: ignore[arg-type]
    assert len(outcome.attempts) == 2
    assert outcome.fallback_skipped and "static-weight-matmuls" in outcome.fallback_skipped


def test_recipes_tied_on_speed_ship_the_most_faithful_and_a_clearly_faster_one_wins():
    from edgeport.quantize.strategy.auto import fastest_faithful
    from tests.helpers import bench_result

    weights_only, dynamic, static = recipes_for(TRANSFORMER, AutoConfig())
    attempts = [_judged(weights_only, 0.992), _judged(dynamic, 0.996), _judged(static, 0.993)]
    names = [a.recipe.name for a in attempts]
    for seed in range(3):  # all three at one speed: the most faithful, whichever p50 came out lowest
        results = {name: bench_result([5.0] * 5, 3 * seed + k) for k, name in enumerate(names)}
        assert fastest_faithful(attempts, results) is attempts[1]
    assert fastest_faithful(attempts) is attempts[1]  # not measured here (the runtime choice measures them)
    results[names[2]] = bench_result([4.0] * 5, 99)  # clearly faster: it ships, however close its fidelity
    assert fastest_faithful(attempts, results) is attempts[2]
    results[names[2]] = bench_result([5.0] * 5, 99)
    attempts[1:] = [_judged(dynamic, 0.992), _judged(static, 0.992)]  # tied on speed and fidelity: the earliest
    assert fastest_faithful(attempts, results) is attempts[0]
