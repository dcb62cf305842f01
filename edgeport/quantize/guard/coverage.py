"""Which compute layers of an int8 file really run as integer kernels, as a runtime runs it.

QuantizeLinear/DequantizeLinear pairs in the file say what a quantizer asked for; whether a layer runs int8
is the runtime's decision: onnxruntime fuses DQ -> Conv -> Q into QLinearConv only where its kernels allow,
and OpenVINO runs NNCF's file of a PP-LCNet classifier with all 33 layers in u8 where onnxruntime ran none
of them (its HardSwish between the pairs blocked every fusion: 2.8x fp32's p50 there, 0.72x on OpenVINO).
So the count is made on onnxruntime (every artifact) and, for an artifact that ships on OpenVINO, on
OpenVINO's compiled model as well.
"""

from __future__ import annotations

import os
from collections import Counter

import onnx

from edgeport.benchmarks.openvino_runtime import OpenVinoSession
from edgeport.core.scratch import scratch_folder
from edgeport.errors import CheckFailedError
from edgeport.quantize.inputs.calibration import QUANTIZED_OPS
from edgeport.quantize.inputs.graph import COMPUTE_LAYERS, RECURRENT_FLOAT, RECURRENT_INTEGER, iter_nodes
from edgeport.quantize.inputs.run import ort_session

# Compute ops whose float form after ORT optimisation means "this layer did not become int8"; the attention
# ops hold a transformer's activation x activation MatMuls, which stay in float (transforms/attention_fusion.py).
FLOAT_COMPUTE = {
    "Conv",
    "Gemm",
    "MatMul",
    "FusedConv",
    "FusedGemm",
    "FusedMatMul",
    "NhwcFusedConv",
    "MultiHeadAttention",
    "Attention",
}
INTEGER_COMPUTE = {
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "QGemm",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "NhwcQLinearConv",
}


def int8_coverage(int8_path: str | os.PathLike) -> dict:
    """Share of the compute layers (Conv/Gemm/MatMul and the recurrent LSTM/GRU/RNN) that run as integer
    kernels after ORT_ENABLE_ALL, unfused ones named.

    Layers inside If/Loop/Scan subgraphs count too (``in_subgraphs`` says how many sat there);
    ``quantized_nodes`` counts every node only a quantized model has (Q/DQ, integer kernels).
    """
    integer_ops, float_ops = INTEGER_COMPUTE | RECURRENT_INTEGER, FLOAT_COMPUTE | RECURRENT_FLOAT
    with scratch_folder("coverage") as tmp:
        optimized = os.path.join(tmp, "optimized.onnx")
        ort_session(int8_path, optimized)
        graph = onnx.load(optimized).graph
    nodes = list(iter_nodes(graph))
    integer = [n for n, _ in nodes if n.op_type in integer_ops]
    floating = [n for n, _ in nodes if n.op_type in float_ops]
    nested = sum(1 for n, depth in nodes if depth > 0 and n.op_type in integer_ops | float_ops)
    total = len(integer) + len(floating)
    return {
        "integer_kernels": len(integer),
        "float_kernels": len(floating),
        "share": len(integer) / total if total else 0.0,
        "in_subgraphs": nested,
        "quantized_nodes": sum(1 for n, _ in nodes if n.op_type in QUANTIZED_OPS | integer_ops),
        "integer_ops": dict(sorted(Counter(n.op_type for n in integer).items())),
        "unfused": [f"{n.name or '(unnamed)'} ({n.op_type})" for n in floating],
    }


def require_quantized(coverage: dict) -> None:
    """An "int8" file in which nothing was quantized is a failed check, never a success."""
    if coverage["quantized_nodes"]:
        return
    layers = coverage["float_kernels"]
    where = (
        f"; {coverage['in_subgraphs']} of its {layers} {COMPUTE_LAYERS} layer(s) sit inside If/Loop/Scan "
        "subgraphs, which the quantizer does not enter"
        if coverage["in_subgraphs"]
        else f" (it has {layers} {COMPUTE_LAYERS} layer(s))"
    )
    raise CheckFailedError(
        f"nothing was quantized: the output has no QuantizeLinear/DequantizeLinear or integer nodes{where}"
    )


# OpenVINO CPU plugin layer types that carry a model's compute (its grouped and depthwise convolutions are
# "Convolution" too), and the runtime precisions that mean integer kernels.
OPENVINO_COMPUTE = {"Convolution", "Deconvolution", "FullyConnected", "MatMul", "RNNSeq", "RNNCell"}
OPENVINO_INTEGER = {"u8", "i8"}


def openvino_coverage(session: OpenVinoSession, onnx_path: str | os.PathLike) -> dict:
    """``int8_coverage``'s count on OpenVINO: the compute layers of ``session``'s compiled model (compiled
    as the artifact ships: its precision hint) and the precision each runs at (its ``runtimePrecision``).
    Float ones are named by the ONNX nodes (of ``onnx_path``) that OpenVINO fused into them, joined by "+";
    it renames some (a Conv folded with its BatchNormalization keeps only the latter's name), and a layer
    with no ONNX name left keeps OpenVINO's."""
    nodes = {n.name for n, _ in iter_nodes(onnx.load(str(onnx_path), load_external_data=False).graph)}
    layers = []
    for op in session.compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        if kind in OPENVINO_COMPUTE:
            original = info["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in info else []
            name = "+".join(n for n in original if n in nodes) or op.get_friendly_name()
            layers.append((name, kind, info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"))
    integer = [layer for layer in layers if layer[2] in OPENVINO_INTEGER]
    floating = [layer for layer in layers if layer[2] not in OPENVINO_INTEGER]
    return {
        "runtime": "openvino",
        "precision_used": session.precision,
        "integer_kernels": len(integer),
        "float_kernels": len(floating),
        "share": len(integer) / len(layers) if layers else 0.0,
        "integer_ops": dict(sorted(Counter(kind for _, kind, _ in integer).items())),
        "unfused": [f"{name} ({kind}, {precision_run})" for name, kind, precision_run in floating],
    }
