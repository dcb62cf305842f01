"""One backend applied to one model: the excluded names checked against the model, activation
outliers smoothed first when asked (SmoothQuant), the int8 model's quantization parameters repaired.

No tolerance here: ``quantize.verified`` judges what this returns.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

from edgeport.benchmarks import cpu_fingerprint
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import ConfigError, EdgeportError, QuantizationError
from edgeport.quantize.backends import get_backend
from edgeport.quantize.config import OrtConfig, QuantConfig, QuantSettings
from edgeport.quantize.inputs.graph import iter_nodes
from edgeport.quantize.inputs.model_check import failure_reason
from edgeport.quantize.registry import QuantBackend, QuantResult
from edgeport.quantize.source import ModelSource
from edgeport.quantize.transforms.params_check import repair_quant_params
from edgeport.quantize.transforms.smoothing import smoothed_model


def _listing(names: Iterable[str], limit: int = 12) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:limit]) + (f", ... ({len(ordered)} in all)" if len(ordered) > limit else "")


def check_exclusions(source: ModelSource, config: QuantConfig) -> None:
    """Refuse an excluded node, module or op type the model does not have: ignoring it silently would
    quantize exactly what the user asked to keep in float."""
    excluded_op_types = getattr(config, "exclude_op_types", ())  # onnxruntime's and NNCF's configs
    if not config.exclude_nodes and not excluded_op_types:
        return
    backend = get_backend(config.backend)
    if backend.needs == "torch" and source.torch_model is not None:
        modules = {name for name, _ in source.torch_model.named_modules() if name}
        unknown = [n for n in config.exclude_nodes if n not in modules]
        if unknown:
            raise ConfigError(
                f"exclude node(s) {', '.join(map(repr, unknown))}: the torch model has no such module; "
                f"its modules: {_listing(modules)}"
            )
        return
    nodes = [n for n, _ in iter_nodes(onnx.load(str(source.onnx_path), load_external_data=False).graph)]
    names, op_types = {n.name for n in nodes if n.name}, {n.op_type for n in nodes}
    unknown = [n for n in config.exclude_nodes if n not in names]
    if unknown:
        raise ConfigError(
            f"exclude node(s) {', '.join(map(repr, unknown))}: {source.onnx_path} has no node of that "
            f"name; its nodes: {_listing(names)}"
        )
    unknown = [t for t in excluded_op_types if t not in op_types]
    if unknown:
        raise ConfigError(
            f"exclude op type(s) {', '.join(map(repr, unknown))}: {source.onnx_path} has no such op; "
            f"its op types: {_listing(op_types)}"
        )


def backend_for(config: QuantSettings) -> tuple[QuantBackend, QuantConfig]:
    """The backend ``config`` is typed for, and the config. A quantization's settings have
    ``reduce_range`` decided where they are built (``options.build_quant_config``); a config built
    by hand through the Python API (``quant_config(...)``, reduce_range left at "auto") has it decided
    here, by the same ``QuantConfig.resolved``, for this machine's CPU."""
    backend = get_backend(config.backend)
    if not isinstance(config, backend.config_type):
        raise ConfigError(
            f"backend {backend.name!r} takes a {backend.config_type.__name__}, got {type(config).__name__}; "
            "build configs with quant_config(backend=..., ...)"
        )
    if config.reduce_range == "auto":
        config, _ = config.resolved(cpu_fingerprint())
    return backend, config


def quantize(
    source: ModelSource | str | os.PathLike,
    calibration: dict[str, np.ndarray],
    config: QuantSettings,
    output_path: str | os.PathLike,
    progress: Progress = SILENT,
) -> QuantResult:
    """Quantize ``source`` (a ModelSource, or a fp32 ONNX path) with the backend ``config`` is typed for.

    Whatever goes wrong inside is an ``EdgeportError``: a third-party exception (onnxruntime's shape
    inference, quantizer or session, onnx's checker, numpy, torch) becomes one ``QuantizationError``
    line naming the model and the backend, so ``--backend auto`` records the recipe as failed and
    moves on, and the command line never shows a traceback."""
    backend, resolved = backend_for(config)
    if not isinstance(source, ModelSource):
        source = ModelSource(onnx_path=Path(source))
    if backend.needs == "onnx" and source.onnx_path is None:
        raise QuantizationError(f"backend {backend.name!r} quantizes a fp32 ONNX file; none was given")
    with backend_failures(backend, source):
        check_exclusions(source, resolved)
        if isinstance(resolved, OrtConfig) and resolved.smooth_alpha is not None:
            return _smoothed(backend, source, calibration, resolved, output_path, progress)
        return run_backend(backend, source, calibration, resolved, output_path, progress)


@contextmanager
def backend_failures(backend: QuantBackend, source: ModelSource) -> Iterator[None]:
    """A third-party exception raised inside becomes one ``QuantizationError`` line naming the model and
    the backend; an ``EdgeportError`` passes as it is (wrapped once, where it was raised)."""
    try:
        yield
    except EdgeportError:
        raise
    except Exception as exc:  # onnxruntime, onnx, numpy and torch raise their own types
        raise QuantizationError(
            f"{_model_name(source)}: backend {backend.name!r} failed ({type(exc).__name__}: {failure_reason(exc)})"
        ) from exc


def _model_name(source: ModelSource) -> str:
    if source.onnx_path is not None:
        return str(source.onnx_path)
    model = source.torch_model
    return f"the torch model {type(model).__name__}" if model is not None else "the model"


def _smoothed(
    backend: QuantBackend,
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    config: OrtConfig,
    output_path: str | os.PathLike,
    progress: Progress,
) -> QuantResult:
    """Migrate activation outliers into the weights first (SmoothQuant), then quantize the smoothed model."""
    if source.onnx_path is None:
        raise QuantizationError(f"backend {backend.name!r}: smoothing rewrites a fp32 ONNX file; none was given")
    with progress.task("smooth activation outliers", total=1) as advance:
        with smoothed_model(source.onnx_path, calibration, config, output_path) as (staged, plain, report):
            advance(1)
            # third-party failures are named after the user's model by quantize(), not the staged copy
            result = _checked(backend, ModelSource(staged), calibration, plain, output_path, progress)
    return dataclasses.replace(result, report={**result.report, "smoothing": report})


def run_backend(
    backend: QuantBackend,
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    config: QuantConfig,
    output_path: str | os.PathLike,
    progress: Progress,
) -> QuantResult:
    """The backend's int8 model with its quantization parameters checked: invalid activation scales
    repaired (left in float, listed in the report under ``repaired``), invalid weight scales refused."""
    with backend_failures(backend, source):
        return _checked(backend, source, calibration, config, output_path, progress)


def _checked(
    backend: QuantBackend,
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    config: QuantConfig,
    output_path: str | os.PathLike,
    progress: Progress,
) -> QuantResult:
    result = backend.quantize(source, calibration, config, output_path, progress)
    repairs = repair_quant_params(result.path)
    return dataclasses.replace(result, report={**result.report, "repaired": repairs}) if repairs else result


__all__ = ["backend_failures", "backend_for", "check_exclusions", "quantize", "run_backend"]
