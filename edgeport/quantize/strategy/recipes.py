"""``auto``: read the graph, try a short ordered list of quantization recipes, keep the fastest faithful one.

A conv net quantizes best as static QDQ with per-channel weights (fused integer convolutions); a
transformer encoder does not: its activation x activation MatMuls (attention scores) and its mask
arithmetic have ranges that one calibrated scale cannot hold, and quantizing them destroyed a BERT
encoder's embeddings (mean cosine 0.57 on held-out sentences). So the graph is read first:

- conv-dominant: static per-channel QDQ, then dynamic int8 if that misses the tolerance;
- MatMul-dominant (attention, LayerNorm/Softmax, integer token inputs): static int8 on the
  weight-bearing MatMul/Gemm only (activation x activation MatMuls and everything else in float),
  dynamic int8, and full static QDQ last; when the calibration activations have outlier channels,
  the first two again after SmoothQuant smoothing (quantize/transforms/smoothing.py).

Every attempt is checked by the guard on held-out inputs; when more than one is within tolerance
they are measured side by side with edgeport's own harness and the fastest wins. Conv-dominant
graphs stop at the first recipe within tolerance: static per-channel is the fastest route there
(resnet18: 0.32x fp32 versus ConvInteger's slower dynamic kernels), so a second attempt could not win.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx

from edgeport.quantize.config import AutoConfig, QuantSettings
from edgeport.quantize.inputs.graph import iter_nodes
from edgeport.quantize.options import quant_config
from edgeport.quantize.transforms.smoothing import DEFAULT_ALPHA, OUTLIER_RATIO

WEIGHT_OPS = ("MatMul", "Gemm")
SMOOTHED_PREFIX = "smooth-"  # a recipe named smooth-X is recipe X after SmoothQuant smoothing


@dataclass(frozen=True)
class Recipe:
    name: str
    config: QuantSettings
    why: str


@dataclass(frozen=True)
class GraphProfile:
    op_counts: dict[str, int]
    weight_matmuls: int  # MatMul/Gemm with a constant (initializer) operand
    activation_matmuls: list[str]  # MatMul nodes whose operands are both computed (attention)
    integer_inputs: int

    @property
    def conv_dominant(self) -> bool:
        convs = self.op_counts.get("Conv", 0) + self.op_counts.get("ConvTranspose", 0)
        return convs >= self.weight_matmuls and not self.activation_matmuls and not self.integer_inputs

    def describe(self) -> dict:
        return {
            "kind": "conv-dominant" if self.conv_dominant else "matmul-dominant",
            "conv": self.op_counts.get("Conv", 0),
            "weight_matmuls": self.weight_matmuls,
            "activation_matmuls": len(self.activation_matmuls),
            "layer_norms": self.op_counts.get("LayerNormalization", 0),
            "softmax": self.op_counts.get("Softmax", 0),
            "integer_inputs": self.integer_inputs,
        }


def graph_profile(model: onnx.ModelProto) -> GraphProfile:
    graph = model.graph
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    nodes = [n for n, depth in iter_nodes(graph) if depth == 0]
    weight = [n for n in nodes if n.op_type in WEIGHT_OPS and any(i in constants for i in n.input[:2])]
    activation = [n.name for n in nodes if n.op_type == "MatMul" and not any(i in constants for i in n.input[:2])]
    initializers = {i.name for i in graph.initializer}
    integer_types = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)  # token ids, masks: a language model
    integer = [i for i in graph.input if i.name not in initializers and i.type.tensor_type.elem_type in integer_types]
    return GraphProfile(dict(Counter(n.op_type for n in nodes)), len(weight), activation, len(integer))


def recipes_for(profile: GraphProfile, auto: AutoConfig, outlier_ratio: float | None = None) -> list[Recipe]:
    """The ordered attempts for a graph; each inherits auto's shared settings (``reduce_range`` as
    decided where auto's settings were built). ``outlier_ratio``: the
    calibration activations' worst channel over median channel (smoothing.worst_outlier_ratio); from
    ``OUTLIER_RATIO`` up, SmoothQuant-smoothed versions of the encoder recipes are tried as well."""
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
        return [static, dynamic]
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
    recipes = [weights_only, dynamic, static]
    if outlier_ratio is not None and outlier_ratio >= OUTLIER_RATIO:
        why = f"; activation outliers ({outlier_ratio:.0f}x the median channel) migrated into the weights first"
        recipes += [
            Recipe(
                f"{SMOOTHED_PREFIX}{r.name}", r.config.model_copy(update={"smooth_alpha": DEFAULT_ALPHA}), r.why + why
            )
            for r in (weights_only, dynamic)
        ]
    return recipes
