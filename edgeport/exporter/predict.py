"""Outputs of a single-input ONNX model on the runtime it ships with: onnxruntime, or OpenVINO at a
precision hint (its CPU default, bf16 on CPUs with AMX, computes other numbers than f32 does), so that an
accuracy is always the one of the runtime that will run the file."""

from __future__ import annotations

import os

import numpy as np

from edgeport.benchmarks.openvino_runtime import OpenVinoSession
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.exporter.onnx_export import onnx_predict


def predict_on(path: str | os.PathLike, x: np.ndarray, runtime: RuntimeChoice = ONNXRUNTIME) -> np.ndarray:
    """The first output on ``x`` (samples first, 256 per run) as ``runtime`` computes it."""
    if runtime.name == ONNXRUNTIME.name:
        return onnx_predict(path, x)
    session = OpenVinoSession(path, threads=1, precision=runtime.precision)
    (name,) = [i.name for i in session.get_inputs()]
    return np.concatenate([np.asarray(session.run(None, {name: x[i : i + 256]})[0]) for i in range(0, len(x), 256)])


__all__ = ["predict_on"]
