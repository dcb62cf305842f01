"""SmoothQuant-style migration of activation outliers into the weights, before int8 quantization.

Transformer activations often have a few channels tens of times larger than the rest (LayerNorm
outputs of pretrained encoders, GELU outputs). One int8 scale per tensor, calibrated (static) or
computed per run (dynamic), must then cover the outliers, and every ordinary channel keeps only a
few levels. For a MatMul ``y = x @ W`` with a constant ``W`` [K, N], scaling channel k of ``x`` down
by ``s_k`` and row k of ``W`` up by ``s_k`` leaves ``y`` unchanged in exact arithmetic, and with
``s_k = max|x_k|^alpha / max|W_k|^(1 - alpha)`` (Xiao et al., SmoothQuant, 2023) the difficulty is
shared between the two quantized operands.

Here every activation read by weight-bearing MatMul/Gemm nodes gets one ``Mul`` by ``1/s`` on the
way to those nodes only (other readers, such as a residual Add, keep the original tensor), and the
weights of those nodes are rescaled in place. The fp32 model's outputs are unchanged up to rounding.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeport.quantize.config import OrtConfig
from edgeport.quantize.inputs.run import run_all_outputs
from edgeport.quantize.transforms.subgraphs import node_outer_reads

# Worst channel max over the median channel's, above which auto also tries smoothed recipes. Random-
# weight BERT encoders measure about 3; the outlier features of pretrained transformers are reported at
# 20x to 100x the typical channel (Dettmers et al., LLM.int8(), 2022; Xiao et al., SmoothQuant, 2023).
OUTLIER_RATIO = 20.0
DEFAULT_ALPHA = 0.5  # SmoothQuant's default migration strength for encoder-sized models
C = TypeVar("C", bound=OrtConfig)  # the ORT backends' config, static or dynamic
CHUNK = 16  # calibration samples per run: per-channel maxima are reduced as they come, not stored
SCALE_LIMITS = (1e-4, 1e4)  # a channel that is (nearly) zero on one side must not blow the other up


@dataclass(frozen=True)
class Reader:
    """A weight-bearing node reading the activation: its weight's input rows are the activation's channels."""

    node: onnx.NodeProto
    weight: str
    rows_axis: int  # 0 for MatMul's [K, N] and Gemm's [K, N]; 1 for Gemm with transB ([N, K])


def _readers(model: onnx.ModelProto) -> dict[str, list[Reader]]:
    """Activation name -> the MatMul/Gemm nodes that multiply it by a 2-D weight used by no other node."""
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        # what an If/Loop/Scan body reads counts too: a weight it shares must not be rescaled
        for name in (*node.input, *node_outer_reads(node)):
            uses[name] = uses.get(name, 0) + 1
    groups: dict[str, list[Reader]] = {}
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        activation, weight = node.input[0], node.input[1]
        if activation in weights or weight not in weights or uses[weight] != 1 or len(weights[weight].dims) != 2:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attributes.get("transA", 0):
            continue
        groups.setdefault(activation, []).append(Reader(node, weight, 1 if attributes.get("transB", 0) else 0))
    return groups


def channel_maxima(
    model: onnx.ModelProto, names: list[str], calibration: dict[str, np.ndarray], where: str
) -> dict[str, np.ndarray]:
    """max |x| per channel (last axis) of each named activation over the calibration samples."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in known:
            exposed.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    count = len(next(iter(calibration.values())))
    maxima: dict[str, np.ndarray] = {}
    for start in range(0, count, CHUNK):
        chunk = {k: v[start : start + CHUNK] for k, v in calibration.items()}
        values = run_all_outputs(session, chunk, CHUNK, where)
        for name in names:
            value = np.abs(values[name]).reshape(-1, values[name].shape[-1]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], value) if name in maxima else value
    return maxima


def outlier_ratio(maxima: np.ndarray) -> float:
    """How far the largest channel stands out: its max |x| over the median channel's."""
    median = float(np.median(maxima))
    return float(maxima.max() / median) if median > 0 else 0.0


def worst_outlier_ratio(fp32_path: str | os.PathLike, calibration: dict[str, np.ndarray]) -> float | None:
    """The largest ``outlier_ratio`` among the activations smoothing could treat (None: there are none)."""
    model = onnx.load(str(fp32_path))
    groups = _readers(model)
    if not groups:
        return None
    maxima = channel_maxima(model, sorted(groups), calibration, str(fp32_path))
    return max(outlier_ratio(m) for m in maxima.values())


def _smoothing_scales(act_max: np.ndarray, readers: list[Reader], weights: dict, alpha: float) -> np.ndarray:
    rows = [np.abs(numpy_helper.to_array(weights[r.weight])).max(axis=1 - r.rows_axis) for r in readers]
    weight_max = np.max(rows, axis=0)
    usable = (act_max > 0) & (weight_max > 0)
    scales = np.ones_like(act_max, dtype=np.float64)
    scales[usable] = act_max[usable] ** alpha / weight_max[usable] ** (1 - alpha)
    return np.clip(scales, *SCALE_LIMITS)


def smooth_model(
    fp32_path: str | os.PathLike, output_path: str | os.PathLike, calibration: dict[str, np.ndarray], alpha: float
) -> tuple[dict, list[str]]:
    """Write the smoothed model to ``output_path``; return what was done (for the backend report) and the
    nodes that must stay in float: the inserted Mul nodes and the producers of what they smooth, since
    quantizing the Mul's input would quantize the unsmoothed activation, outliers and all."""
    model = onnx.load(str(fp32_path))
    groups = _readers(model)
    if not groups:
        onnx.save(model, str(output_path))
        return {"alpha": alpha, "activations": 0, "worst_outlier_ratio_before": None}, []
    maxima = channel_maxima(model, sorted(groups), calibration, str(fp32_path))
    weights = {i.name: i for i in model.graph.initializer}
    worst_before = max(outlier_ratio(m) for m in maxima.values())
    worst_after, inserted, in_float = 0.0, [], []
    for index, (activation, readers) in enumerate(sorted(groups.items())):
        if maxima[activation].ndim != 1 or maxima[activation].size < 2:
            continue
        scales = _smoothing_scales(maxima[activation].astype(np.float64), readers, weights, alpha)
        worst_after = max(worst_after, outlier_ratio(maxima[activation] / scales))
        for reader in readers:
            array = numpy_helper.to_array(weights[reader.weight]).astype(np.float64)
            shape = (-1, 1) if reader.rows_axis == 0 else (1, -1)
            rescaled = (array * scales.reshape(shape)).astype(numpy_helper.to_array(weights[reader.weight]).dtype)
            weights[reader.weight].CopyFrom(numpy_helper.from_array(rescaled, reader.weight))
        if _fold_into_layer_norm(model.graph, activation, readers, weights, scales):
            continue
        inverse, smoothed = f"edgeport_smooth_{index}_inverse", f"{activation}_smoothed"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / scales).astype(np.float32), inverse))
        # right before its first reader: the activation is computed by then, and the order stays topological
        first = min(i for i, node in enumerate(model.graph.node) if any(node is r.node for r in readers))
        mul = helper.make_node("Mul", [activation, inverse], [smoothed], name=f"edgeport_smooth_{index}")
        model.graph.node.insert(first, mul)
        inserted.append(mul.name)
        producer = next((n for n in model.graph.node if activation in n.output), None)
        if producer is not None and producer.name:  # its quantized output would be the unsmoothed tensor
            in_float.append(producer.name)
        for reader in readers:
            reader.node.input[0] = smoothed
    onnx.save(model, str(output_path))
    report = {
        "alpha": alpha,
        "activations": len(groups),
        "folded_into_layer_norm": len(groups) - len(inserted),
        "worst_outlier_ratio_before": round(worst_before, 2),
        "worst_outlier_ratio_after": round(worst_after, 2),
    }
    return report, inserted + in_float


def _fold_into_layer_norm(graph, activation: str, readers: list[Reader], weights: dict, scales) -> bool:
    """When a LayerNormalization with constant scale and bias produces the activation, divide those by
    ``s`` instead of adding a Mul: in place when only the smoothed nodes read it, else in a copy of the
    LayerNorm that feeds them alone (a residual Add keeps the original). Either way no unsmoothed tensor
    sits between the LayerNorm and the MatMuls, where static quantization would give it one scale."""
    position = next((i for i, n in enumerate(graph.node) if activation in n.output), None)
    if position is None:
        return False
    producer = graph.node[position]
    if producer.op_type != "LayerNormalization" or len(producer.output) != 1:
        return False
    params = [name for name in producer.input[1:3] if name]
    if not all(name in weights for name in params):
        return False
    reader_ids = {id(r.node) for r in readers}
    shared = activation in {o.name for o in graph.output} or any(
        (activation in n.input or activation in node_outer_reads(n)) and id(n) not in reader_ids for n in graph.node
    )
    target = producer
    if shared:
        target = onnx.NodeProto()
        target.CopyFrom(producer)
        target.name = f"{producer.name or activation}_smoothed"
        del target.output[:]
        target.output.append(f"{activation}_smoothed")
        for reader in readers:
            reader.node.input[0] = target.output[0]
    for index, name in enumerate(params, start=1):
        # a fresh initializer: the same gamma may be shared with other LayerNorms (exporters deduplicate)
        value = numpy_helper.to_array(weights[name]).astype(np.float64) / scales
        fresh = f"{target.name or activation}_smoothed_{index}"
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), fresh))
        target.input[index] = fresh
    if shared:  # inserted last: the graph keeps a copy of the message, later edits would not reach it
        graph.node.insert(position + 1, target)
    return True


@contextmanager
def smoothed_model(
    fp32_path: str | os.PathLike, calibration: dict[str, np.ndarray], config: C, output_path: str | os.PathLike
) -> Iterator[tuple[Path, C, dict]]:
    """The smoothed model staged beside ``output_path`` (removed afterwards), the ORT config to quantize
    it with (smoothing done, the nodes that must stay float excluded) and the smoothing report."""
    output = Path(output_path)
    staged = output.with_name(f".{output.name}.smoothed.onnx")
    if config.smooth_alpha is None:
        raise ValueError("smoothed_model needs a config with smooth_alpha set")
    try:
        report, keep = smooth_model(fp32_path, staged, calibration, config.smooth_alpha)
        plain = config.model_copy(update={"smooth_alpha": None, "exclude_nodes": (*config.exclude_nodes, *keep)})
        yield staged, plain, report
    finally:
        staged.unlink(missing_ok=True)
