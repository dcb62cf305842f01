"""Keep onnxruntime from fusing a residual Add into SkipLayerNormalization where that kernel is the slower.

onnxruntime's session fuses ``Add -> LayerNormalization`` into its SkipLayerNormalization contrib op
(a level-2 optimization, on by default). Its CPU kernel is a scalar loop with a division per element, the
LayerNormalization kernel it replaces is vectorised: 32 tokens x 384 channels took 80 us fused against
16 us as Add + LayerNormalization (Intel Xeon, AVX-512, onnxruntime 1.32, one thread), and in
all-MiniLM-L6-v2's dynamic int8 the twelve fused nodes took 1.0 of 4.5 ms. The fusion matches ``Add``
only; the same sum written as ``Sum`` (ONNX's n-ary addition, same broadcasting, same result) is left
alone and costs what Add costs (16.3 us against 16.0 us). That took MiniLM's dynamic int8 from 0.58x to
0.47x fp32's p50; its outputs move by float rounding only (the two kernels round the normalisation apart).

Whether the fused kernel is slower is measured here, on this onnxruntime and CPU, once per process and
width: an onnxruntime whose kernel is fast keeps its fusion. Applied to onnxruntime's int8 files, after
quantization (a QDQ graph's Add read by a QuantizeLinear is not the pattern and stays as it is).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NOTE = "layernorm_unfused"
ROWS = 32  # tokens in the timed sum; per-element costs, so the ratio hardly depends on it
RUNS, ROUNDS = 200, 5
MARGIN = 0.8  # kept apart only where that is clearly faster: at most 0.8x the fused kernel's time


def residual_adds(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The Add nodes whose sum only a LayerNormalization reads, as its input: what onnxruntime fuses."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {output.name for output in graph.output}
    found = []
    for node in graph.node:
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or node.output[0] in outputs:
            continue
        read = readers.get(node.output[0], [])
        if len(read) == 1 and read[0].op_type == "LayerNormalization" and read[0].input[0] == node.output[0]:
            found.append(node)
    return found


def _sum_then_layernorm(op: str, width: int) -> bytes:
    rng = np.random.default_rng(0)
    tensors = [numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), n) for n in ("g", "b")]
    shape = [1, ROWS, width]
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "y"], ["s"]), helper.make_node("LayerNormalization", ["s", "g", "b"], ["o"])],
        "residual",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y")],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, shape)],
        tensors,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@functools.cache
def kernel_times_us(width: int) -> tuple[float, float]:
    """(Add + LayerNormalization as onnxruntime fuses it, Sum + LayerNormalization) per run, in us: the
    fastest round's median, the two sessions alternating round by round, one thread."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((1, ROWS, width)).astype(np.float32) for n in ("x", "y")}
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    sessions = [
        ort.InferenceSession(_sum_then_layernorm(op, width), options, ["CPUExecutionProvider"]) for op in ("Add", "Sum")
    ]
    best = [float("inf")] * 2
    for _ in range(ROUNDS):
        for i, session in enumerate(sessions):
            session.run(None, feed)
            times = []
            for _ in range(RUNS):
                start = time.perf_counter()
                session.run(None, feed)
                times.append(time.perf_counter() - start)
            best[i] = min(best[i], float(np.median(times)) * 1e6)
    return best[0], best[1]


def _width(graph: onnx.GraphProto, layernorm_scale: str) -> int | None:
    for tensor in graph.initializer:
        if tensor.name == layernorm_scale:
            return int(np.prod(tensor.dims)) if tensor.dims else None
    return None


def keep_layernorm_unfused(path) -> dict:
    """Rewrite the residual Adds of the model at ``path`` as Sum, in place, where onnxruntime's fused kernel
    measures slower here; what was done, for the backend's report ({} for a graph without such Adds)."""
    model = onnx.load(str(path), load_external_data=False)  # only op types change: the data stays where it is
    adds = residual_adds(model.graph)
    if not adds:
        return {}
    layernorm = {n.input[0]: n for n in model.graph.node if n.op_type == "LayerNormalization"}
    width = _width(model.graph, layernorm[adds[0].output[0]].input[1])
    if width is None:
        return {NOTE: "not measured: the LayerNormalization's scale is not a constant"}
    fused, apart = kernel_times_us(width)
    measured = f"Add + LayerNormalization {fused:.0f} us fused by onnxruntime, {apart:.0f} us kept apart"
    if apart > MARGIN * fused:
        return {NOTE: f"not applied: {measured} ({ROWS}x{width})"}
    for node in adds:
        node.op_type = "Sum"
    onnx.save(model, str(path))
    return {NOTE: f"{len(adds)} residual Add written as Sum: {measured} ({ROWS}x{width})"}


__all__ = ["NOTE", "keep_layernorm_unfused", "kernel_times_us", "residual_adds"]
