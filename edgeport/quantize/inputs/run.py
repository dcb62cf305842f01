"""Running an ONNX model on inputs: every output on every sample, in either feed layout (data/feeds.py).

Shared by the guard (fp32 against int8), the transforms (activation ranges for smoothing) and the
recipes' ranking, so it sits below all of them. Where each output keeps its samples is found by
running the model (output_axes.py); the outputs come back samples first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import onnxruntime as ort

from edgeport.data.feeds import BATCH_FIRST, iter_feeds, pad_feed, sample_count
from edgeport.quantize.inputs.output_axes import (
    OutputPlan,
    SampleOutputs,
    fixed_batch,
    join_samples,
    not_per_sample,
    output_plan,
    sample_axes,
)

# What one run of a model with an open batch axis is fed at most, in bytes of input: the batch is chosen
# from the inputs' size per sample. Activations take many times the input's size, so 256 images of
# 800x608 (1.5 GB of input) in one run took gigabytes; 64 MB is 11 of those images, and still every
# sample of small inputs (256 digits of 8x8 are 64 KB).
RUN_INPUT_BYTES = 64 * 2**20


# Set while another process computes on the same cores (NNCF's child, strategy/ahead.py): see ort_session.
_CORES_SHARED: ContextVar[bool] = ContextVar("edgeport_cores_shared", default=False)


@contextmanager
def cores_shared() -> Iterator[None]:
    """Within it, ``ort_session`` makes sessions whose threads do not spin-wait between ops."""
    token = _CORES_SHARED.set(True)
    try:
        yield
    finally:
        _CORES_SHARED.reset(token)


def ort_session(path: str | os.PathLike, optimized_to: str | None = None, *, spinning: bool | None = None):
    """An onnxruntime session on the CPU that runs a model on data, not one that is timed (benchmarks/session.py
    makes those). ``spinning``: whether its threads spin-wait between ops, onnxruntime's default; by default
    they do, except within ``cores_shared``.

    Where NNCF quantizes in a child process beside this one, two processes' spin-waiting threads took the
    cores from each other's work: on MiniLM (AMD EPYC Zen 3, 2 cores) the recipes and NNCF together took about
    5 s less without it. Alone, spinning pays: auto on openwakeword's speech embedding took 8% longer without."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # fatal only: the NCHWc "hardware specific" notice is expected here, and a model that fails on the
    # given inputs would log its own coloured error line before edgeport's one-line error says the same
    options.log_severity_level = 4
    if not (not _CORES_SHARED.get() if spinning is None else spinning):
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_to:
        options.optimized_model_filepath = optimized_to
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_batch(inputs: dict[str, np.ndarray], batch: int = 256) -> int:
    """Samples per run of a model with an open batch axis: at most ``batch``, and at most
    ``RUN_INPUT_BYTES`` of input (at least one sample)."""
    count = max(sample_count(inputs), 1)
    per_sample = sum(a.nbytes for a in inputs.values()) / count
    return max(1, min(batch, int(RUN_INPUT_BYTES // max(per_sample, 1))))


def iter_run_outputs(
    session, inputs: dict[str, np.ndarray], batch: int = 256, *, plan: OutputPlan
) -> Iterator[dict[str, np.ndarray]]:
    """Each run's outputs by name, as the runs go (``run_all_outputs`` joins them; a caller that reduces
    them as they come never holds them all): chunks as ``run_all_outputs`` makes them, the outputs of a
    fixed batch's padding dropped."""
    names = [o.name for o in session.get_outputs()]
    step = plan.per_run or run_batch(inputs, batch)
    fixed = plan.per_run if plan.layout == BATCH_FIRST else None  # chunks of exactly this many, padded
    for chunk in iter_feeds(inputs, plan.layout, step):
        real = sample_count(chunk)
        if fixed and real < fixed:
            chunk = pad_feed(chunk, fixed)
        outputs = {}
        for name, value in zip(names, session.run(None, chunk), strict=True):
            value = np.asarray(value)
            axis = plan.axes.get(name)
            if fixed and real < fixed and axis is not None and axis < value.ndim and value.shape[axis] == fixed:
                value = np.take(value, np.arange(real), axis=axis)  # the padding's outputs dropped
            outputs[name] = value
        yield outputs


def run_all_outputs(
    session,
    inputs: dict[str, np.ndarray],
    batch: int = 256,
    source: str = "the inputs",
    *,
    dtype: Any = np.float64,
    plan: OutputPlan | None = None,
) -> SampleOutputs:
    """Every output on every sample, by output name, samples on the first axis, as ``dtype``.

    Batch-first inputs run in chunks of at most ``batch`` samples (fewer for large inputs: ``run_batch``);
    a model with a fixed batch size gets chunks of exactly that size (the last one padded with repeats
    of its final sample, whose outputs are dropped). Per-sample feeds (feeds.py) run one sample at a
    time, each slice a complete input, and the outputs are stacked. Each output is joined along the axis
    that holds its samples (output_axes.py: a time-major [T, N, C] output comes back [N, T, C]); an
    output without one is joined on axis 0 and named in ``not_per_sample(result)``. ``plan``: the
    output plan of another session of the same model (the reference runtime reuses onnxruntime's)."""
    plan = plan or output_plan(session, inputs, source)
    names = [o.name for o in session.get_outputs()]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for outputs in iter_run_outputs(session, inputs, batch, plan=plan):
        for name, value in outputs.items():
            parts[name].append(value)
    joined = {name: join_samples(name, values, plan, source, dtype) for name, values in parts.items()}
    return SampleOutputs(joined, frozenset(n for n in names if plan.axes.get(n) is None))


def run_outputs(session, inputs: dict[str, np.ndarray], batch: int = 256) -> np.ndarray:
    """The first output on every sample (see ``run_all_outputs``)."""
    return next(iter(run_all_outputs(session, inputs, batch).values()))


__all__ = [
    "RUN_INPUT_BYTES",
    "cores_shared",
    "fixed_batch",
    "iter_run_outputs",
    "not_per_sample",
    "ort_session",
    "run_all_outputs",
    "run_batch",
    "run_outputs",
    "sample_axes",
]
