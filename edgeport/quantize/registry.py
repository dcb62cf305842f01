"""The QuantBackend interface and its registry.

A backend turns a fp32 model (a fp32 ONNX file, or a torch module for the torch backends, as
its ``needs`` says) plus calibration inputs into an int8 ONNX file. Backends register
themselves with ``@register_backend`` and declare their settings as a ``config_type`` (a
``QuantConfig`` subclass, see ``quantize.config``) that the project file, the CLI and the
search validate against. The registry holds no backend itself: ``quantize.backends`` imports each
backend module (one line per backend) and lists them (``list_backends``, ``get_backend``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

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


BACKENDS: Registry = Registry("quantization backend")


class _Named(Protocol):
    name: str


B = TypeVar("B", bound="type[_Named]")


def register_backend(name: str) -> Callable[[B], B]:
    """Register a backend class under ``name`` (also set as its ``name`` attribute)."""

    def decorate(cls: B) -> B:
        cls.name = name
        return BACKENDS.register(name)(cls)

    return decorate
