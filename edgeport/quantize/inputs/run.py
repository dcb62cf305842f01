"""Running an ONNX model on inputs: every output on every sample, in either feed layout (data/feeds.py).

Shared by the guard (fp32 against int8), the transforms (activation ranges for smoothing) and the
recipes' ranking, so it sits below all of them.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from edgeport.data.feeds import BATCH_FIRST, feed_layout, iter_feeds, join_outputs, session_shapes


def ort_session(path: str | os.PathLike, optimized_to: str | None = None):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # fatal only: the NCHWc "hardware specific" notice is expected here, and a model that fails on the
    # given inputs would log its own coloured error line before edgeport's one-line error says the same
    options.log_severity_level = 4
    if optimized_to:
        options.optimized_model_filepath = optimized_to
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fixed_batch(session) -> int | None:
    """The batch size the model's first input fixes, or None when its batch axis is dynamic."""
    first = session.get_inputs()[0].shape
    return first[0] if first and isinstance(first[0], int) and first[0] > 0 else None


def run_all_outputs(
    session, inputs: dict[str, np.ndarray], batch: int = 256, source: str = "the inputs"
) -> dict[str, np.ndarray]:
    """Every output on every sample, by output name, samples on the first axis. Batch-first inputs run in
    chunks; a model with a fixed batch size gets chunks of exactly that size (the last one padded with
    repeats of its final sample, whose outputs are dropped). Per-sample feeds (feeds.py) run one sample
    at a time, each slice a complete input, and the outputs are stacked."""
    layout = feed_layout(session_shapes(session), inputs, source)
    fixed = fixed_batch(session) if layout == BATCH_FIRST else None
    names = [o.name for o in session.get_outputs()]
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for chunk in iter_feeds(inputs, layout, fixed or batch):
        real = len(next(iter(chunk.values()))) if fixed else None  # None: keep every row
        if fixed and real is not None and real < fixed:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], fixed - real, axis=0)]) for k, v in chunk.items()}
        for name, value in zip(names, session.run(None, chunk), strict=True):
            value = np.asarray(value)
            outputs[name].append(value[:real] if real is not None else value)
    return {name: join_outputs(parts, layout).astype(np.float64) for name, parts in outputs.items()}


def run_outputs(session, inputs: dict[str, np.ndarray], batch: int = 256) -> np.ndarray:
    """The first output on every sample (see ``run_all_outputs``)."""
    return next(iter(run_all_outputs(session, inputs, batch).values()))
