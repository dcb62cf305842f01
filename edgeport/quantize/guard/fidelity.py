"""How closely an int8 model's outputs follow the fp32 model's, judged on what each output means.

Every output is compared as a vector (cosine, SQNR on each sample's flattened output). Two kinds
of output also mean a decision, and are judged by it:

- class scores ([samples, classes]): the argmax, as top-1 agreement;
- a sequence of class scores ([samples, T, C], T > 1, C > 1, produced by Softmax/LogSoftmax over
  its last axis, as a CTC recognizer's): the greedily decoded sequence (argmax per step, repeats
  collapsed, blank class 0 dropped), as the share of samples whose decoded sequence is identical.
  Cosine alone cannot see it: an int8 CTC recognizer kept a mean cosine near 0.99 while its decoded
  text agreed with fp32 on 9% of lines, because one step whose argmax flips changes the line.

``fidelity`` only sees arrays, so which outputs are sequences comes from the graph
(``sequence_outputs``): the array's shape alone cannot tell [samples, T, C] scores from a
[samples, tokens, hidden] hidden state.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

CTC_BLANK = 0
SEQUENCE_SCORES = {"Softmax", "LogSoftmax"}
# Ops between the Softmax and the graph output that keep "class scores per step" meaning.
SEQUENCE_PASS_THROUGH = {"Transpose", "Identity", "Reshape"}


def is_classifier(output: np.ndarray) -> bool:
    """Scores per class ([samples, classes]): the only outputs whose argmax means a prediction."""
    return output.ndim == 2 and output.shape[1] > 1


def is_sequence(output: np.ndarray) -> bool:
    """Shaped as a sequence of class scores: [samples, T, C] with T > 1 and C > 1."""
    return output.ndim == 3 and output.shape[1] > 1 and output.shape[2] > 1


def ctc_greedy_decode(scores: np.ndarray, blank: int = CTC_BLANK) -> list[tuple[int, ...]]:
    """Greedy CTC decoding of [samples, T, C] scores (probabilities, log-probabilities or logits):
    the argmax of every step, repeats collapsed, ``blank`` dropped; one tuple of classes per sample."""
    best = scores.argmax(-1)
    repeat = np.zeros_like(best, dtype=bool)
    repeat[:, 1:] = best[:, 1:] == best[:, :-1]
    keep = ~repeat & (best != blank)
    return [tuple(int(c) for c in row[mask]) for row, mask in zip(best, keep, strict=True)]


def sequence_agreement(reference: np.ndarray, candidate: np.ndarray, blank: int = CTC_BLANK) -> float:
    """Share (0..1) of samples whose greedily decoded sequence is identical in both."""
    ref, cand = ctc_greedy_decode(reference, blank), ctc_greedy_decode(candidate, blank)
    return float(np.mean([a == b for a, b in zip(ref, cand, strict=True)])) if ref else 1.0


def fidelity(reference: np.ndarray, candidate: np.ndarray, sequence: bool = False) -> dict:
    """How closely ``candidate`` outputs follow ``reference`` ones (rows are samples; cosine on each
    sample's flattened output). Top-1 agreement only for classifier-shaped outputs: the argmax of a
    hidden state or a feature map means nothing. With ``sequence`` (the graph says the output is
    class scores per step) and a [samples, T, C] shape, ``sequence_agreement`` too."""
    classifier = is_classifier(reference)
    ref = reference.reshape(len(reference), -1)
    cand = candidate.reshape(len(candidate), -1)
    noise = float(np.mean((cand - ref) ** 2))
    signal = float(np.mean(ref**2))
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, (ref * cand).sum(1) / np.maximum(norms, 1e-30), 1.0)
    result = {
        "max_abs_diff": float(np.abs(cand - ref).max()),
        "mean_cosine": float(cosine.mean()),
        "sqnr_db": float(10 * np.log10(signal / noise)) if noise > 0 else float("inf"),
    }
    if classifier:
        result["top1_agreement"] = float((cand.argmax(1) == ref.argmax(1)).mean() * 100.0)
    if sequence and is_sequence(reference) and candidate.shape == reference.shape:
        result["sequence_agreement"] = sequence_agreement(reference, candidate)
        result["step_agreement"] = float((reference.argmax(-1) == candidate.argmax(-1)).mean())
    return result


# --- which outputs are sequences of class scores: read from the graph --------------------------------


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _leading_dims(model: onnx.ModelProto) -> dict[str, object]:
    """The first dimension (a number, or a symbolic name) of every tensor ONNX shape inference can place."""
    try:
        graph = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:  # onnx raises its C++ errors as plain exceptions: nothing known
        return {}
    found: dict[str, object] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        if dims:
            found[value.name] = dims[0].dim_param or (dims[0].dim_value if dims[0].HasField("dim_value") else None)
    return found


def _batch_first(model: onnx.ModelProto, output: str, leading: dict[str, object]) -> bool:
    """False when the output's first axis is known to be one of the first input's later axes (a
    time-major [T, N, C] output of a model fed [N, T, ...]); True otherwise (a Reshape may rename it)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    first_output = leading.get(output)
    if not inputs or first_output in (None, ""):
        return True
    dims = [
        d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in inputs[0].type.tensor_type.shape.dim
    ]
    return not dims or first_output == dims[0] or first_output not in dims[1:]


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every tensor whose type declares a shape; ONNX shape inference fills in the rest
    (on the graph alone: external data is not needed, and a graph it cannot infer keeps what it has)."""

    def collect(graph: onnx.GraphProto) -> dict[str, int]:
        found = {}
        for value in (*graph.input, *graph.value_info, *graph.output):
            tensor = value.type.tensor_type
            if value.type.HasField("tensor_type") and tensor.HasField("shape"):
                found[value.name] = len(tensor.shape.dim)
        for init in graph.initializer:
            found[init.name] = len(init.dims)
        return found

    ranks = collect(model.graph)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # onnx raises its C++ errors as plain exceptions; keep the declared ranks
        return ranks
    return {**collect(inferred.graph), **ranks}


def _reshape_shapes(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The constant shape inputs of the graph's Reshape nodes (small: never a weight)."""
    wanted = {n.input[1] for n in model.graph.node if n.op_type == "Reshape" and len(n.input) > 1}
    values = {}
    for init in model.graph.initializer:
        if init.name in wanted and init.data_location != onnx.TensorProto.EXTERNAL:
            values[init.name] = numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in wanted:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _attr(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _scores_axes(
    chain: list[onnx.NodeProto], rank: int, classes: int, constants: dict[str, np.ndarray], ranks: dict[str, int]
) -> tuple[int, int, int] | None:
    """Follow (batch axis, class axis, rank) from the Softmax's output through ``chain`` (graph
    order); None when a step loses track of them."""
    batch = 0
    for node in chain:
        if node.op_type == "Transpose":
            perm = [int(p) for p in _attr(node, "perm", list(range(rank - 1, -1, -1)))]
            batch, classes = perm.index(batch), perm.index(classes)
        elif node.op_type == "Reshape":
            # [N * T, C] -> [N, T, C] or [N, T, C] -> [0, -1, C]: a reshape keeps the meaning only when the
            # class axis is last and the batch axis first before it; its rank comes from its shape input.
            if classes != rank - 1 or batch != 0:
                return None
            shape = constants.get(node.input[1]) if len(node.input) > 1 else None
            new_rank = int(shape.size) if shape is not None else ranks.get(node.output[0])
            if new_rank is None or new_rank < 2:
                return None
            rank, classes = new_rank, new_rank - 1
    return batch, classes, rank


def sequence_outputs(model: onnx.ModelProto) -> set[str]:
    """Names of the graph outputs that are sequences of class scores, [batch, T, C]: produced by a
    Softmax or LogSoftmax, directly or through Transpose / Identity / Reshape, with the softmax axis
    ending up last and the batch axis first (a time-major [T, batch, C] output is not one: its first
    axis is not the samples). A CTC recognizer's output is one; a feature map, a per-pixel
    probability map (Sigmoid), a classifier's [batch, classes] or a Softmax over the channels of an
    image ([batch, C, H, W]) is not. Outputs of the top-level graph only."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    constants = _reshape_shapes(model)
    default_axis = 1 if _default_opset(model) < 13 else -1
    ranks: dict[str, int] | None = None
    leading: dict[str, object] | None = None
    found = set()
    for output in graph.output:
        chain: list[onnx.NodeProto] = []
        node = producers.get(output.name)
        while node is not None and node.op_type in SEQUENCE_PASS_THROUGH:
            chain.insert(0, node)
            node = producers.get(node.input[0])
        if node is None or node.op_type not in SEQUENCE_SCORES:
            continue
        if ranks is None:
            ranks = _ranks(model)
        rank = ranks.get(node.input[0])
        axis = int(_attr(node, "axis", default_axis))
        if rank is None or rank < 2:
            continue  # the class axis cannot be placed: not judged as a sequence
        axis = axis + rank if axis < 0 else axis
        # Before opset 13, Softmax flattens axes [axis:] into one: per-step class scores only when
        # that is the last axis alone. From 13 on, any axis holds the classes (Transposes may follow).
        if axis != rank - 1 and _default_opset(model) < 13:
            continue
        axes = _scores_axes(chain, rank, axis, constants, ranks)
        if axes is None:
            continue
        batch, classes, final_rank = axes
        if batch == 0 and classes == final_rank - 1 == 2 and ranks.get(output.name, final_rank) == 3:
            leading = _leading_dims(model) if leading is None else leading
            if _batch_first(model, output.name, leading):  # the Softmax's axis 0 may be time, not samples
                found.add(output.name)
    return found
