"""All int8 work: a fp32 model to a verified int8 ONNX artifact. This module is the front door.

- config: the typed settings (``QuantSettings`` and its per-backend types) and ``quant_config(...)``,
  the tolerance (``Tolerance``, ``ToleranceSettings``);
- backends: ``list_backends()``, ``get_backend(name)``; adding one is one module in ``backends/`` plus
  its line in ``backends/__init__.py``;
- ``quantize(source, calibration, config, output)``: one backend, nothing judged;
- ``quantize_verified(QuantizeRequest) -> QuantOutcome``: auto, plain or with fallback, verified and
  judged by the guard, the lineage written; ``edgeport quantize`` and ``edgeport run``/``search`` use it.

Importing this package stays cheap: ``edgeport.config`` (and so ``edgeport.gate``'s users) imports
``quantize.config`` through it, and must not pay for onnxruntime or torch. The functions below that
reach the backends, the guard or the strategies are therefore thin wrappers importing their module
on first call, and the request records are loaded on first use (``__getattr__``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgeport.core.progress import SILENT, Progress
from edgeport.quantize.config import (
    AutoConfig,
    NoQuantization,
    OrtConfig,
    QuantConfig,
    QuantSettings,
    TorchConfig,
)
from edgeport.quantize.registry import QuantBackend, QuantResult, register_backend
from edgeport.quantize.source import ModelSource, TrainingData
from edgeport.quantize.tolerance import Tolerance, ToleranceSettings

if TYPE_CHECKING:
    import os

    import numpy as np

    from edgeport.quantize.request import QuantizeRequest, QuantOutcome

# Loaded on first use: request.py imports edgeport.benchmarks (numpy, scipy).
_LAZY = {"QuantizeRequest": "edgeport.quantize.request", "QuantOutcome": "edgeport.quantize.request"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def list_backends() -> list[str]:
    from edgeport.quantize import backends  # start-up time: the backends import onnxruntime

    return backends.list_backends()


def get_backend(name: str) -> QuantBackend:
    from edgeport.quantize import backends  # start-up time: the backends import onnxruntime

    return backends.get_backend(name)


def config_types() -> dict[str, type[QuantSettings]]:
    from edgeport.quantize import options  # start-up time: options lists the backends

    return options.config_types()


def option_names() -> list[str]:
    from edgeport.quantize import options  # start-up time: options lists the backends

    return options.option_names()


def validate_quant_config(data: Mapping[str, Any] | QuantSettings) -> QuantSettings:
    from edgeport.quantize import options  # start-up time: options lists the backends

    return options.validate_quant_config(data)


def validate_project_table(data: Mapping[str, Any] | QuantSettings) -> QuantSettings:
    from edgeport.quantize import options  # start-up time: options lists the backends

    return options.validate_project_table(data)


def quant_config(**settings: Any) -> QuantSettings:
    from edgeport.quantize import options  # start-up time: options lists the backends

    return options.quant_config(**settings)


def build_quant_config(settings: Mapping[str, Any] | QuantSettings, cpu: dict) -> tuple[QuantConfig, str]:
    from edgeport.quantize import options  # start-up time: options lists the backends

    return options.build_quant_config(settings, cpu)


def quantize(
    source: ModelSource | str | os.PathLike,
    calibration: dict[str, np.ndarray],
    config: QuantSettings,
    output_path: str | os.PathLike,
    progress: Progress = SILENT,
) -> QuantResult:
    """One backend applied (quantize/apply.py): exclusions checked, smoothing, parameters repaired."""
    from edgeport.quantize import apply  # start-up time: onnxruntime

    return apply.quantize(source, calibration, config, output_path, progress)


def quantize_verified(request: QuantizeRequest, progress: Progress = SILENT) -> QuantOutcome:
    """The verified quantization (quantize/verified.py): see its docstring for what is judged when."""
    from edgeport.quantize import verified  # start-up time: onnxruntime, the guard, the strategies

    return verified.quantize_verified(request, progress)


__all__ = [
    "AutoConfig",
    "ModelSource",
    "NoQuantization",
    "OrtConfig",
    "QuantBackend",
    "QuantConfig",
    "QuantOutcome",
    "QuantResult",
    "QuantSettings",
    "QuantizeRequest",
    "Tolerance",
    "ToleranceSettings",
    "TorchConfig",
    "TrainingData",
    "build_quant_config",
    "config_types",
    "get_backend",
    "list_backends",
    "option_names",
    "quant_config",
    "quantize",
    "quantize_verified",
    "register_backend",
    "validate_project_table",
    "validate_quant_config",
]
