"""PyTorch -> ONNX export with validation against PyTorch.

The names are loaded on first use: ``onnx_export`` imports torch (several seconds), which the ONNX-only
paths (``edgeport quantize MODEL.onnx``, the torch-free runners) never need, though they read the
lineage metadata kept in ``metadata``.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "OnnxLineage": "metadata",
    "read_metadata": "metadata",
    "write_metadata": "metadata",
    "EXPORTERS": "onnx_export",
    "ExportResult": "onnx_export",
    "export_onnx": "onnx_export",
    "onnx_predict": "onnx_export",
    "predict_on": "predict",
    "write_onnx": "onnx_export",
    "scrub_model": "scrub",
    "scrub_onnx": "scrub",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = sorted(_WHERE)
