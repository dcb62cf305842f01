"""Unsigned activations: int8 activation QuantizeLinear/DequantizeLinear pairs rewritten as uint8.

Why: OpenVINO's CPU plugin computes an int8 convolution wrongly when its input is a Concat of signed
int8 activations: the concatenated values reach the convolution clamped to [-128, 127] in real units,
their scale dropped (a two-input Concat -> Conv with scale 16 gave 127 where 2032 was right; 2025.4.1,
2026.2.1 and 2026.4.1 alike, AMD EPYC Zen 3, AVX2). NNCF quantizes signed activations as int8 with zero
point 0 and gives a Concat's inputs one scale, so its int8 PP-OCRv4 detector ran on OpenVINO at a mean
cosine of 0.085 to fp32 where onnxruntime ran the same file at 0.991. With uint8 activations OpenVINO
computes it right (cosine 0.991), and it is the activation type both runtimes' x86 int8 kernels take
(onnxruntime's U8S8: the same detector ran at 1.46x fp32 on onnxruntime instead of 1.70x, interleaved,
batch 1, one thread, same CPU).

The rewrite is exact: a QuantizeLinear to uint8 with zero point z + 128 gives the int8 result plus 128
(clip(round(x / s) + z, -128, 127) + 128 = clip(round(x / s) + z + 128, 0, 255)), and its
DequantizeLinear, with the same zero point, gives the same float back. Weights (constant inputs) keep
int8. The kernels change, not the numbers: on x86 without VNNI, u8 x s8 products of 8-bit weights can
saturate int16 sums, which NNCF's overflow fix (``reduce_range``, on by default on such CPUs) avoids; a
file quantized on a VNNI machine keeps 8-bit weights, so quantize it for such a target with
``reduce_range`` set. A pair whose int8 tensor is a graph output or is read inside an If/Loop/Scan body
stays as it is.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgeport.quantize.transforms.subgraphs import node_outer_reads


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    return {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}


def _int8_zero_point(node: onnx.NodeProto, initializers: dict[str, TensorProto]) -> TensorProto | None:
    """The node's zero point when it is an int8 initializer and the node does not set its own type."""
    if len(node.input) < 3 or any(a.name == "output_dtype" for a in node.attribute):
        return None
    zero = initializers.get(node.input[2])
    return zero if zero is not None and zero.data_type == TensorProto.INT8 else None


def _activation_pairs(graph: onnx.GraphProto) -> list[tuple[onnx.NodeProto, list[onnx.NodeProto]]]:
    """(QuantizeLinear, its DequantizeLinear readers) of every int8 activation that can be rewritten."""
    initializers = {i.name: i for i in graph.initializer}
    constants = _constant_names(graph)
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    kept = {o.name for o in graph.output}.union(*(node_outer_reads(n) for n in graph.node))
    pairs = []
    for quant in graph.node:
        if quant.op_type != "QuantizeLinear" or quant.input[0] in constants or quant.output[0] in kept:
            continue
        if _int8_zero_point(quant, initializers) is None:
            continue
        dequants = readers[quant.output[0]]
        if dequants and all(
            d.op_type == "DequantizeLinear" and _int8_zero_point(d, initializers) is not None for d in dequants
        ):
            pairs.append((quant, dequants))
    return pairs


def unsigned_activations(model: onnx.ModelProto) -> int:
    """Rewrite ``model``'s int8 activation pairs as uint8 in place; return how many pairs changed."""
    graph = model.graph
    pairs = _activation_pairs(graph)
    if not pairs:
        return 0
    initializers = {i.name: i for i in graph.initializer}
    unsigned: dict[str, str] = {}  # int8 zero point -> its uint8 twin (a weight may share the int8 one)
    listed = {i.name for i in graph.input}  # IR < 4 lists every initializer as a graph input too
    taken = listed | {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}

    def twin(name: str) -> str:
        if name not in unsigned:
            shifted = numpy_helper.to_array(initializers[name]).astype(np.int16) + 128
            new = f"{name}_uint8"
            while new in taken:
                new += "_"
            taken.add(new)
            graph.initializer.append(numpy_helper.from_array(shifted.astype(np.uint8), new))
            if name in listed:
                graph.input.append(onnx.helper.make_tensor_value_info(new, TensorProto.UINT8, shifted.shape))
            unsigned[name] = new
        return unsigned[name]

    quantized = set()
    for quant, dequants in pairs:
        for node in (quant, *dequants):
            node.input[2] = twin(node.input[2])
        quantized.add(quant.output[0])
    for info in graph.value_info:
        if info.name in quantized:
            info.type.tensor_type.elem_type = TensorProto.UINT8
    still_read = {name for n in graph.node for name in n.input}.union(*(node_outer_reads(n) for n in graph.node))
    for name in unsigned:
        if name not in still_read:
            graph.initializer.remove(initializers[name])
            for entry in [i for i in graph.input if i.name == name]:
                graph.input.remove(entry)
    return len(pairs)


__all__ = ["unsigned_activations"]
