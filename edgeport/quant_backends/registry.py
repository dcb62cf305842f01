"""The QuantBackend interface and its registry.

A backend turns a fp32 ONNX model plus calibration inputs into an int8 ONNX
file. Backends register themselves with ``@register_backend``; ``list_backends``
feeds the CLI's choices and the tests' parametrisation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from edgeport.progress import SILENT, Progress
from edgeport.registry import Registry

if TYPE_CHECKING:
    from edgeport.quant_backends.config import QuantConfig


@dataclass(frozen=True)
class QuantResult:
    path: Path
    backend: str
    seconds: float
    report: dict = field(default_factory=dict)


class QuantBackend(Protocol):
    name: str

    def quantize(self, fp32_path: str | os.PathLike, calibration: dict[str, np.ndarray],
                 config: "QuantConfig", output_path: str | os.PathLike,
                 progress: Progress = SILENT) -> QuantResult:
        """Write an int8 ONNX model to ``output_path``; ``calibration`` maps input names to arrays."""
        ...


BACKENDS: Registry = Registry("quantization backend")


def register_backend(name: str) -> Callable:
    """Register a backend class under ``name`` (also set as its ``name`` attribute)."""
    def decorate(cls):
        cls.name = name
        return BACKENDS.register(name)(cls)
    return decorate


def _load_builtin_backends() -> None:
    from edgeport.quant_backends import ort_static  # noqa: F401  (registers itself)


def list_backends() -> list[str]:
    _load_builtin_backends()
    return sorted(BACKENDS)


def get_backend(name: str) -> QuantBackend:
    from edgeport.errors import ConfigError

    _load_builtin_backends()
    if name not in BACKENDS:
        raise ConfigError(f"unknown quantization backend {name!r}; expected one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]()
