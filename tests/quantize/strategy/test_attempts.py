"""An attempt's speed is read against the fp32 run it was measured beside: auto measures the most
faithful recipe against fp32 once (does int8 pay at all) and the fallback's model later against another
fp32 run; the manifest must not divide one by the other."""

from __future__ import annotations

from edgeport.quantize.config import AutoConfig
from edgeport.quantize.inputs.graph import GraphProfile
from edgeport.quantize.strategy.attempts import Attempt
from edgeport.quantize.strategy.recipes import recipes_for


def test_an_attempt_is_read_against_its_own_fp32_run():
    recipe = recipes_for(GraphProfile({"Conv": 3}, 0, [], 0), AutoConfig())[0]
    measured_early = Attempt(recipe, 1.0, p50_ms=9.0, fp32_p50_ms=10.0)
    assert measured_early.describe(fp32_p50=12.0)["p50_over_fp32"] == 0.9  # not 9 / 12
    ranked_with_the_rest = Attempt(recipe, 1.0, p50_ms=9.0)
    assert ranked_with_the_rest.describe(fp32_p50=12.0)["p50_over_fp32"] == 0.75
    assert Attempt(recipe, 1.0).describe(fp32_p50=12.0)["p50_over_fp32"] is None
