"""auto does not try full static on a transformer once weights-only static, which quantizes a subset of
its layers with the same calibration, missed the tolerance; it does when that recipe was faithful or
never judged, and the manifest says what was skipped and why."""

from __future__ import annotations

from edgeport.quantize.config import AutoConfig
from edgeport.quantize.guard.judge import GuardReport
from edgeport.quantize.inputs.graph import GraphProfile
from edgeport.quantize.strategy.attempts import Attempt
from edgeport.quantize.strategy.auto import _narrower_miss
from edgeport.quantize.strategy.recipes import recipes_for

TRANSFORMER = GraphProfile({"MatMul": 4, "Softmax": 1, "LayerNormalization": 1}, 2, ["scores"], 1)


def _judged(recipe, value: float) -> Attempt:
    guard = GuardReport("mean_cosine", value, 0.99, value >= 0.99, "val", [], [], [])
    return Attempt(recipe, 1.0, recipe.config, guard=guard)


def test_full_static_follows_weights_only_static_only_when_that_was_faithful():
    weights_only, dynamic, static = recipes_for(TRANSFORMER, AutoConfig())
    assert static.narrower == weights_only.name and weights_only.narrower is None
    why = _narrower_miss(static, [_judged(weights_only, 0.907), _judged(dynamic, 0.989)])
    assert why is not None and "static-weight-matmuls" in why and "0.907" in why
    assert _narrower_miss(static, [_judged(weights_only, 0.995)]) is None  # faithful: full static may be faster
    assert _narrower_miss(static, [Attempt(weights_only, 1.0, error="onnxruntime refused it")]) is None
    assert _narrower_miss(dynamic, [_judged(weights_only, 0.5)]) is None  # not a superset of it


def test_conv_nets_have_no_such_pair():
    conv = GraphProfile({"Conv": 20, "Gemm": 1}, 1, [], 0)
    assert all(r.narrower is None for r in recipes_for(conv, AutoConfig()))
