"""The QuantBackend interface and its registry.

A backend turns a fp32 model (a fp32 ONNX file, or a torch module for the torch backends, as
its ``needs`` says) plus calibration inputs into an int8 ONNX file. Backends register
themselves with ``@register_backend`` and declare their settings as a ``config_type`` (a
``QuantConfig`` subclass, see ``quantize.config``) that the project file, the CLI and the
search validate against; ``list_backends`` feeds `edgeport list`, that validation and the tests'
parametrisation.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgeport.core.progress import SILENT, Progress
from edgeport.core.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from edgeport.quantize.config import QuantConfig
    from edgeport.quantize.source import ModelSource


@dataclass(frozen=True)
class QuantResult:
    path: Path
    backend: str
    seconds: float
    report: dict = field(default_factory=dict)
    torch_model: Any = None  # torch backends keep the quantized nn.Module for PyTorch benchmarks


class QuantBackend(Protocol):
    name: str
    needs: str  # "onnx" (reads source.onnx_path) or "torch" (reads source.torch_model)
    config_type: type[QuantConfig]  # the settings it honours: an option outside them is refused

    def quantize(
        self,
        source: ModelSource,
        calibration: dict[str, np.ndarray],
        config: QuantConfig,
        output_path: str | os.PathLike,
        progress: Progress = SILENT,
    ) -> QuantResult:
        """Write an int8 ONNX model to ``output_path``; ``calibration`` maps input names to arrays."""
        ...


def op_summary(path: str | os.PathLike) -> dict:
    """Counts of the quantization nodes in a written int8 model (for the backend's report)."""
    import onnx

    from edgeport.quantize.inputs.graph import iter_nodes

    ops = Counter(n.op_type for n, _ in iter_nodes(onnx.load(str(path)).graph))
    return {
        "quantize_linear_nodes": ops.get("QuantizeLinear", 0),
        "dequantize_linear_nodes": ops.get("DequantizeLinear", 0),
        "op_counts": dict(sorted(ops.items())),
    }


BACKENDS: Registry = Registry("quantization backend")


def register_backend(name: str) -> Callable:
    """Register a backend class under ``name`` (also set as its ``name`` attribute)."""

    def decorate(cls):
        cls.name = name
        return BACKENDS.register(name)(cls)

    return decorate


def _load_builtin_backends() -> None:
    from edgeport.quantize.backends import ort_dynamic, ort_static, torch_fx, torch_pt2e  # noqa: F401  (register)


def list_backends() -> list[str]:
    _load_builtin_backends()
    return sorted(BACKENDS)


def get_backend(name: str) -> QuantBackend:
    from edgeport.errors import ConfigError

    _load_builtin_backends()
    if name not in BACKENDS:
        raise ConfigError(f"unknown quantization backend {name!r}; expected one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]()
