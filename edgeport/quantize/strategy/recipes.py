"""``auto``: read the graph, try a short ordered list of quantization recipes, keep the fastest faithful one.

A conv net quantizes best as static QDQ with per-channel weights (fused integer convolutions); a
transformer encoder does not: its activation x activation MatMuls (attention scores) and its mask
arithmetic have ranges that one calibrated scale cannot hold, and quantizing them destroyed a BERT
encoder's embeddings (mean cosine 0.57 on held-out sentences). So the graph is read first:

- conv-dominant: static per-channel QDQ, and the same with the classifier head in float: a head as
  small as a 128x10 Gemm gains nothing from int8 and pays the conversions around it. Which is faster
  depends on the CPU (the digits student cnn:width=4,depth=2 ran int8 at 1.14x fp32 with its head
  quantized and 0.80x with it in float on an AMD EPYC Zen 1, at 0.67x either way on a Zen 3), so both
  are judged and the faster faithful one kept; dynamic int8 only if neither is within tolerance;
- MatMul-dominant (attention, LayerNorm/Softmax, integer token inputs): static int8 on the
  weight-bearing MatMul/Gemm only (activation x activation MatMuls and everything else in float),
  dynamic int8, and full static QDQ last; when the calibration activations have outlier channels,
  the first two again after SmoothQuant smoothing (quantize/transforms/smoothing.py).

When the runtime is being chosen among several installed ones and NNCF is installed, NNCF's own
post-training int8 (its transformer scheme on attention graphs, its defaults elsewhere) is one more
recipe: on OpenVINO it is often the fastest faithful int8 (all-MiniLM-L6-v2 on an AVX-512 VNNI EPYC:
0.53x onnxruntime fp32 against 0.58x for onnxruntime's best recipe), on onnxruntime rarely.

Every attempt is checked by the guard on held-out inputs; when more than one is within tolerance
they are measured side by side with edgeport's own harness and the fastest wins. Conv-dominant
graphs stop onnxruntime's recipes at the first one within tolerance, save the one that races it
(``Recipe.races``): static per-channel is the fastest of the rest there (resnet18: 0.32x fp32 versus
ConvInteger's slower dynamic kernels); another quantizer's recipe is still tried, since its file may
run faster on another runtime.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgeport.quantize.backends.nncf_onnx import NncfConfig
from edgeport.quantize.config import AutoConfig, QuantSettings
from edgeport.quantize.inputs.graph import WEIGHT_OPS, GraphProfile, graph_profile
from edgeport.quantize.options import quant_config
from edgeport.quantize.transforms.smoothing import DEFAULT_ALPHA, OUTLIER_RATIO

SMOOTHED_PREFIX = "smooth-"  # a recipe named smooth-X is recipe X after SmoothQuant smoothing


@dataclass(frozen=True)
class Recipe:
    name: str
    config: QuantSettings
    why: str
    # a recipe that quantizes a subset of what this one does, with the same calibration: when it already
    # misses the tolerance, quantizing more is not tried (auto skips this one and says why)
    narrower: str | None = None
    # the recipe this one races on speed: tried even when that one is faithful on a conv net (where a
    # quantizer's later recipes are otherwise skipped), and the faster of the two faithful ones is kept
    races: str | None = None

    @property
    def quantizer(self) -> str:
        """The library that makes its file: "nncf", or "onnxruntime" for the ort-* backends."""
        return "nncf" if self.config.backend == "nncf" else "onnxruntime"


def recipes_for(profile: GraphProfile, auto: AutoConfig, outlier_ratio: float | None = None) -> list[Recipe]:
    """onnxruntime's ordered attempts for a graph (auto tries ``nncf_recipe`` after them where NNCF is one more
    quantizer); each inherits auto's shared settings (``reduce_range`` as decided where auto's settings were
    built). ``outlier_ratio``: the calibration activations' worst channel over median channel
    (smoothing.worst_outlier_ratio); from ``OUTLIER_RATIO`` up, SmoothQuant-smoothed versions of the encoder
    recipes are tried as well."""
    return _onnxruntime_recipes(profile, auto, outlier_ratio)


def nncf_recipe(profile: GraphProfile, auto: AutoConfig) -> Recipe:
    """NNCF's own int8 (its model type from the same graph analysis as onnxruntime's recipes)."""
    kind = (  # NncfConfig's model_type "auto" reads the same attention MatMuls
        "its transformer scheme (ModelType.TRANSFORMER: SmoothQuant, its ignored patterns, mixed preset)"
        if profile.activation_matmuls
        else "its defaults (FastBiasCorrection)"
    )
    config = NncfConfig(
        reduce_range=auto.reduce_range,
        calibration_samples=auto.calibration_samples,
        exclude_nodes=auto.exclude_nodes,
    )
    return Recipe("nncf", config, f"NNCF's post-training int8, {kind}: the quantizer of OpenVINO")


def _onnxruntime_recipes(profile: GraphProfile, auto: AutoConfig, outlier_ratio: float | None) -> list[Recipe]:
    shared = {
        "reduce_range": auto.reduce_range,
        "calibration_samples": auto.calibration_samples,
        "exclude_nodes": auto.exclude_nodes,
    }
    static = Recipe(
        "static-per-channel",
        quant_config(backend="ort-static", **shared),
        "static QDQ, u8 activations, s8 per-channel weights: fused integer kernels",
    )
    dynamic = Recipe(
        "dynamic",
        quant_config(backend="ort-dynamic", **shared),
        "int8 weights, activations quantized per input at run time: no calibrated ranges to go wrong",
    )
    if profile.conv_dominant:
        if not profile.classifier_head:
            return [static, dynamic]
        head = Recipe(
            "static-float-classifier",
            static.config.model_copy(
                update={"exclude_nodes": tuple(auto.exclude_nodes) + tuple(profile.classifier_head)}
            ),
            static.why + "; the classifier head after the last convolution (pooling, its Gemm) kept in float: a head "
            "that small gains little from int8 and pays the conversions around it",
            races=static.name,
        )
        return [static, head, dynamic]
    keep_float = sorted(set(profile.op_counts) - set(WEIGHT_OPS))
    weights_only = Recipe(
        "static-weight-matmuls",
        quant_config(
            backend="ort-static",
            **{**shared, "exclude_nodes": tuple(auto.exclude_nodes) + tuple(profile.activation_matmuls)},
            exclude_op_types=tuple(keep_float),
        ),
        "static int8 on weight-bearing MatMul/Gemm only; attention score MatMuls and the mask path in float",
    )
    # full static quantizes every layer weights-only static does and the attention and normalisation paths
    # besides: a transformer's weights-only static outside tolerance makes it a wasted quantization
    recipes = [weights_only, dynamic, dataclasses.replace(static, narrower=weights_only.name)]
    if outlier_ratio is not None and outlier_ratio >= OUTLIER_RATIO:
        why = f"; activation outliers ({outlier_ratio:.0f}x the median channel) migrated into the weights first"
        recipes += [
            Recipe(
                f"{SMOOTHED_PREFIX}{r.name}", r.config.model_copy(update={"smooth_alpha": DEFAULT_ALPHA}), r.why + why
            )
            for r in (weights_only, dynamic)
        ]
    return recipes


__all__ = ["SMOOTHED_PREFIX", "WEIGHT_OPS", "GraphProfile", "Recipe", "graph_profile", "nncf_recipe", "recipes_for"]
