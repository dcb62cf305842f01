"""Per-tensor quantization error in one pass, in the spirit of onnxruntime's ``qdq_loss_debug``.

The QDQ int8 model is run once on a few validation samples with both sides of every
QuantizeLinear -> DequantizeLinear pair exposed as outputs: the float tensor and what int8 gives
back. A weight's error is its DequantizeLinear output against the fp32 model's initializer. Each
quantized tensor gets an SQNR (dB, higher is better); the ranking, worst first, is what
``--explain`` prints and what the fallback returns to float, layer by layer, by bisection.

Dynamic quantization (``MatMulInteger``/``ConvInteger`` fed by ``DynamicQuantizeLinear``) has no such
pairs: its weights are int8 initializers read by the integer op, and each activation is quantized at run
time from its own range. A weight is dequantized with its scale and zero point; an activation is exposed
and quantized here exactly as the ONNX spec defines DynamicQuantizeLinear, one sample at a time (how
it runs at batch 1). Without this every layer of a dynamic model scored alike, and the fallback kept
layers in float in graph order instead of the worst first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.core.scratch import scratch_folder
from edgeport.data.feeds import sample_count
from edgeport.quantize.guard.owners import made_by, source_name
from edgeport.quantize.inputs.graph import dequantize, dequantize_constant
from edgeport.quantize.inputs.output_axes import OutputPlan, join_samples, output_plan
from edgeport.quantize.inputs.run import iter_run_outputs

SAMPLES = 32  # a few batches: the ranking, not a metric to report
# The exposed values (as onnxruntime returns them, float32) one run may hold, and so how many samples are read:
# fewer (at least 2) where their values take more. They are reduced run by run, never held together: every
# activation of the PP-OCRv4 detector on 16 images, held as float64, peaked the fallback at 15 GiB, and the
# 2 samples of an 800x608 PicoDet took 22 of the ranking's 29 s to join (AMD EPYC Zen 3). MiniLM's 32
# sentences take about 0.15 GiB and keep all 32.
EXPOSED_BYTES = 2**29


@dataclass(frozen=True)
class _Measure:
    """One quantized activation: the float tensor and what int8 gives back (None: it is quantized here as
    DynamicQuantizeLinear does at run time), with the activation the quantizer folded into the pair
    applied to the float side first."""

    reference: str
    quantized: str | None
    before: Callable[[np.ndarray], np.ndarray]


@dataclass
class _Error:
    """Sums of squares of signal and noise over the samples read so far."""

    signal: float = 0.0
    noise: float = 0.0

    def add(self, reference: np.ndarray, quantized: np.ndarray) -> None:
        reference = np.asarray(reference, np.float64)
        self.signal += float(np.sum(reference * reference))
        self.noise += float(np.sum((reference - quantized) ** 2))

    def sqnr_db(self) -> float:
        if self.noise == 0:
            return float("inf")
        return float(10 * np.log10(self.signal / self.noise)) if self.signal > 0 else float("-inf")


def _sqnr(reference: np.ndarray, quantized: np.ndarray) -> float:
    error = _Error()
    error.add(reference, quantized)
    return error.sqnr_db()


def _exposed_errors(model: onnx.ModelProto, measures: list[_Measure], inputs: dict, source: str) -> list[float]:
    """The SQNR of each measure, over the first ``SAMPLES`` samples or as many as fit ``EXPOSED_BYTES`` (at
    least 2), judged by the first sample's exposed values; the tensors are made graph outputs of ``model``
    and reduced run by run."""
    import onnxruntime as ort

    graph = model.graph
    names = {m.reference for m in measures} | {m.quantized for m in measures if m.quantized}
    for name in names - {o.name for o in graph.output}:
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    errors = [_Error() for _ in measures]
    with scratch_folder("sensitivity") as tmp:
        exposed = tmp / "exposed.onnx"
        onnx.save(model, str(exposed))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every pair
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # one thread: the same sums, so the same ranking, every run
        session = ort.InferenceSession(str(exposed), options, providers=["CPUExecutionProvider"])
        # in chunks or one sample at a time, as the inputs' layout (feeds.py) and a fixed batch need
        plan = output_plan(session, {k: v[:SAMPLES] for k, v in inputs.items()}, source)
        available = min(SAMPLES, sample_count(inputs))
        done, count, per_run = 0, available, 1
        while done < count:
            chunk = {k: v[done : done + min(per_run, count - done)] for k, v in inputs.items()}
            for outputs in iter_run_outputs(session, chunk, per_run, plan=plan):
                for measure, error in zip(measures, errors, strict=True):
                    _accumulate(measure, error, outputs, plan, source)
                if not done:  # the first sample's values: how many samples fit, and how many one run takes
                    per_sample = max(1, sum(outputs[name].nbytes for name in names))
                    count = min(available, max(2, EXPOSED_BYTES // per_sample))
                    per_run = max(1, EXPOSED_BYTES // per_sample)
            done += sample_count(chunk)
    return [error.sqnr_db() for error in errors]


def _accumulate(measure: _Measure, error: _Error, outputs: dict, plan: OutputPlan, source: str) -> None:
    if measure.quantized is not None:
        error.add(measure.before(outputs[measure.reference]), outputs[measure.quantized])
        return
    # DynamicQuantizeLinear quantizes each run's tensor: one sample at a time, samples first
    values = join_samples(measure.reference, [outputs[measure.reference]], plan, source, np.float32)
    error.add(values, _dynamic_round_trip(values))


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _folded_activations(
    fp32_model: onnx.ModelProto, int8_readers: dict, constants: dict, int8_graph: onnx.GraphProto
) -> dict:
    """Tensor -> the Relu/Clip the quantizer folded into its QuantizeLinear (the int8 range starts at the
    activation's bound instead). The float side of such a pair is the pre-activation output: compared as
    it is, a Conv + Relu read about 3 dB where it is really 30; the activation is applied to it first."""
    int8_activations = {op: {n.output[0] for n in int8_graph.node if n.op_type == op} for op in ("Relu", "Clip")}
    constants = {**constants}
    for node in fp32_model.graph.node:  # torch exports Clip bounds as Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    folded = {}
    for node in fp32_model.graph.node:
        if node.op_type not in ("Relu", "Clip") or not node.input:
            continue
        if node.output[0] in int8_activations[node.op_type] or any(
            r.op_type == node.op_type for r in int8_readers.get(node.input[0], [])
        ):
            continue  # still in the int8 graph (reading a DequantizeLinear output, say): nothing was folded
        # the quantized tensor keeps the producer's output name, or takes the activation's (ORT's QDQ)
        names = (node.input[0], node.output[0])
        if node.op_type == "Relu":
            folded.update(dict.fromkeys(names, _relu))
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}  # opset < 11: min/max
        bounds = [attributes.get("min", -np.inf), attributes.get("max", np.inf)]
        for index, name in enumerate(node.input[1:3]):
            if name in constants:
                bounds[index] = float(constants[name])
            elif name:  # a computed bound: unknown here, compare unclipped
                break
        else:
            low, high = bounds
            folded.update(dict.fromkeys(names, lambda x, low=low, high=high: np.clip(x, low, high)))
    return folded


def tensor_errors(
    int8_path: str | os.PathLike, fp32_path: str | os.PathLike, inputs: dict[str, np.ndarray]
) -> list[dict]:
    """Every quantized tensor of the int8 model with its SQNR and the nodes that read it, worst first."""
    model = onnx.load(str(int8_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    fp32_model = onnx.load(str(fp32_path))
    fp32_weights = {i.name: numpy_helper.to_array(i) for i in fp32_model.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}  # tensor -> the nodes that read it, built once
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    fp32_nodes = {n.name for n in fp32_model.graph.node}

    def read_by(tensor: str) -> list[str]:
        return [source_name(n, fp32_nodes) for n in readers.get(tensor, []) if n.op_type != "QuantizeLinear"]

    rows, pairs = _dynamic_weights(graph, constants, fp32_weights, read_by), []
    dynamic = [n for n in graph.node if n.op_type == "DynamicQuantizeLinear"]
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            original = fp32_weights.get(node.input[0].removesuffix("_quantized"))
            if original is not None and original.shape == constants[node.input[0]].shape:
                sqnr = _sqnr(original, dequantize_constant(node, constants))
                rows.append(
                    {
                        "tensor": node.input[0].removesuffix("_quantized"),
                        "kind": "weight",
                        "sqnr_db": sqnr,
                        "read_by": read_by(node.output[0]),
                    }
                )
        elif node.op_type == "QuantizeLinear" and node.input[0] not in constants:
            dequant = next((n for n in readers.get(node.output[0], []) if n.op_type == "DequantizeLinear"), None)
            if dequant is not None:
                pairs.append((node.input[0], dequant.output[0]))
    folded = _folded_activations(fp32_model, readers, fp32_weights, graph)
    # each DynamicQuantizeLinear's input against what the integer op reads back; each pair's two sides
    measures = [_Measure(node.input[0], None, _same) for node in dynamic]
    measures += [_Measure(name, dequant, folded.get(name, _same)) for name, dequant in pairs]
    readers_of = [node.output[0] for node in dynamic] + [dequant for _, dequant in pairs]
    # a pair's tensor is also the output of the layer that made it: onnxruntime's QDQ quantizer keeps it
    # quantized while either that layer or a reader is (the PicoDet-like tensor between two Convs stayed
    # int8 with its reader in float); a dynamic input is quantized by its reader alone
    producers = {out: node for node in graph.node for out in node.output}
    makers: list[list[str]] = [[] for _ in dynamic]
    makers += [made_by(name, producers, constants, fp32_nodes) for name, _ in pairs]
    errors = _exposed_errors(model, measures, inputs, str(int8_path))
    for measure, sqnr, read, made in zip(measures, errors, readers_of, makers, strict=True):
        rows.append({"tensor": measure.reference, "kind": "activation", "sqnr_db": sqnr, "read_by": read_by(read)})
        if made:
            rows[-1]["made_by"] = made
    for row in rows:  # 0.01 dB: noise-level differences must not reorder the ranking (graph order breaks ties)
        row["sqnr_db"] = round(row["sqnr_db"], 2)
    ranked = sorted(rows, key=lambda row: row["sqnr_db"])
    for row in ranked:  # JSON has no infinity: an exact tensor (no quantization noise) is null
        row["sqnr_db"] = row["sqnr_db"] if np.isfinite(row["sqnr_db"]) else None
    return ranked


def _fp32_weight(name: str, fp32_weights: dict) -> np.ndarray | None:
    """The fp32 initializer an int8 one was made from (a Gemm's B transposed for its MatMul: transposed)."""
    base = name.removesuffix("_quantized")
    if base in fp32_weights:
        return fp32_weights[base]
    original = fp32_weights.get(base.removesuffix("_Transposed"))
    return original.T if base.endswith("_Transposed") and original is not None and original.ndim == 2 else None


def _dynamic_weights(graph: onnx.GraphProto, constants: dict, fp32_weights: dict, read_by) -> list[dict]:
    """The int8 weights an integer op reads directly (dynamic quantization), each dequantized with the scale
    the quantizer stored beside it, per output channel (the last axis of a MatMul's B, the first of a
    Conv's W) when the scale is a vector."""
    rows = []
    for node in graph.node:
        if node.op_type not in ("MatMulInteger", "ConvInteger") or len(node.input) < 2:
            continue
        name = node.input[1]
        original = _fp32_weight(name, fp32_weights)
        scale = constants.get(name.removesuffix("_quantized") + "_scale")
        if name not in constants or original is None or scale is None or original.shape != constants[name].shape:
            continue
        zero = constants.get(node.input[3]) if len(node.input) > 3 else None
        axis = -1 if node.op_type == "MatMulInteger" else 0
        rows.append(
            {
                "tensor": name.removesuffix("_quantized"),
                "kind": "weight",
                "sqnr_db": _sqnr(original, dequantize(constants[name], scale, zero, axis)),
                "read_by": read_by(name),
            }
        )
    return rows


def _dynamic_round_trip(values: np.ndarray) -> np.ndarray:
    """ONNX DynamicQuantizeLinear then dequantization, per sample (the first axis): uint8 over the range
    [min(x, 0), max(x, 0)], zero point rounded half to even and saturated."""
    flat = values.astype(np.float64).reshape(len(values), -1) if values.ndim > 1 else values.reshape(1, -1)
    low = np.minimum(flat.min(axis=1, keepdims=True), 0.0)
    high = np.maximum(flat.max(axis=1, keepdims=True), 0.0)
    scale = (high - low) / 255.0
    scale = np.where(scale == 0, 1.0, scale)  # an all-zero sample quantizes exactly
    zero = np.clip(np.round(-low / scale), 0, 255)
    q = np.clip(np.round(flat / scale) + zero, 0, 255)
    return ((q - zero) * scale).reshape(values.shape)


def layer_ranking(errors: list[dict], layers: list[str]) -> list[dict]:
    """Each layer scored by the worst SQNR among the quantized tensors it reads or makes, worst first: a
    static (QDQ) tensor stays quantized until the layer that makes it and every layer that reads it are in
    float, so each is charged with it (the first layer of ``made_by``)."""
    scores = {layer: float("inf") for layer in layers}
    for row in errors:
        sqnr = row["sqnr_db"] if row["sqnr_db"] is not None else float("inf")
        maker = next((name for name in row.get("made_by", []) if name in scores), None)
        for layer in [*row["read_by"], *([maker] if maker else [])]:
            if layer in scores:
                scores[layer] = min(scores[layer], sqnr)
    ranked = sorted(scores.items(), key=lambda item: item[1])
    return [{"layer": k, "sqnr_db": v if np.isfinite(v) else None} for k, v in ranked]
