"""An attempt's speed is read against the fp32 run it was measured beside: auto measures the most
faithful recipe against fp32 once (does int8 pay at all) and the fallback's model later against another
fp32 run; the manifest must not divide one by the other."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.core.progress import SILENT
from edgeport.quantize import ModelSource, quant_config
from edgeport.quantize.config import AutoConfig
from edgeport.quantize.guard.judge import Tolerance, Validation
from edgeport.quantize.inputs.graph import GraphProfile
from edgeport.quantize.strategy.attempts import Attempt, fallback_attempt, try_recipe
from edgeport.quantize.strategy.judging import judging_for
from edgeport.quantize.strategy.recipes import Recipe, recipes_for


def test_an_attempt_is_read_against_its_own_fp32_run():
    recipe = recipes_for(GraphProfile({"Conv": 3}, 0, [], 0), AutoConfig())[0]
    measured_early = Attempt(recipe, 1.0, p50_ms=9.0, fp32_p50_ms=10.0)
    assert measured_early.describe(fp32_p50=12.0)["p50_over_fp32"] == 0.9  # not 9 / 12
    ranked_with_the_rest = Attempt(recipe, 1.0, p50_ms=9.0)
    assert ranked_with_the_rest.describe(fp32_p50=12.0)["p50_over_fp32"] == 0.75
    assert Attempt(recipe, 1.0).describe(fp32_p50=12.0)["p50_over_fp32"] is None


def _loss_between_layers(path) -> None:
    """x [N, 2, 8, 8] -> Conv (channel gains 1000 and 0.001) -> Add (itself) -> Mul (gains 0.001 and 1000)
    -> y: both output channels of one scale, but the tensors between Conv and Mul are not, and the Add and
    the Mul quantize them per tensor whether the Conv is in float or not."""
    weight = np.zeros((2, 2, 1, 1), np.float32)
    weight[0, 0], weight[1, 1] = 1000.0, 0.001
    gains = np.array([0.001, 1000.0], np.float32).reshape(1, 2, 1, 1)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
            helper.make_node("Add", ["c", "c"], ["d"]),  # not a constant Mul, which onnxruntime folds into the Conv
            helper.make_node("Mul", ["d", "g"], ["y"]),
        ],
        "between",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 8, 8])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(gains, "g")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_fallback_that_misses_with_every_layer_in_float_says_where_the_loss_lies(tmp_path):
    _loss_between_layers(tmp_path / "model.onnx")
    rng = np.random.default_rng(0)
    calib = {"x": rng.standard_normal((32, 2, 8, 8)).astype(np.float32)}
    validation = Validation(
        {"x": rng.standard_normal((16, 2, 8, 8)).astype(np.float32)}, None, Tolerance(min_cosine=0.99)
    )
    judging = judging_for(ModelSource(tmp_path / "model.onnx"), calib, validation)
    config = quant_config(backend="ort-static", per_channel=True)
    best = try_recipe(Recipe("static", config, "static"), judging, tmp_path / "static.onnx")
    assert best.guard is not None and not best.guard.within_tolerance
    attempt = fallback_attempt(best, judging, tmp_path / "fallback.onnx", SILENT)
    assert attempt.result is None and attempt.fallback["excluded"] == ["conv"]
    assert attempt.error.startswith("outside tolerance even with all 1 layer(s) in float (mean_cosine 0")
    assert attempt.error.endswith("the loss is in the quantized ops between them")
