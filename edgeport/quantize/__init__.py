"""Quantization backends: each turns a fp32 model into a verified int8 ONNX artifact."""

from __future__ import annotations

from edgeport.errors import ConfigError, QuantizationError
from edgeport.quantize.config import (
    OrtConfig,
    QuantConfig,
    QuantSettings,
    build_quant_config,
    config_types,
    option_names,
    quant_config,
    validate_quant_config,
)
from edgeport.quantize.registry import QuantBackend, QuantResult, get_backend, list_backends, register_backend
from edgeport.quantize.source import ModelSource, TrainingData


def _listing(names, limit: int = 12) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_exclusions(source: ModelSource, config: QuantConfig) -> None:
    """Refuse an excluded node, module or op type the model does not have: ignoring it silently would
    quantize exactly what the user asked to keep in float."""
    excluded_op_types = config.exclude_op_types if isinstance(config, OrtConfig) else ()
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
    import onnx

    from edgeport.quantize.inputs.graph import iter_nodes

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
    """The backend ``config`` is typed for, and the config with ``reduce_range = "auto"`` decided for
    this machine's CPU."""
    backend = get_backend(config.backend)
    if not isinstance(config, backend.config_type):
        raise ConfigError(
            f"backend {backend.name!r} takes a {backend.config_type.__name__}, got {type(config).__name__}; "
            "build configs with quant_config(backend=..., ...)"
        )
    if config.reduce_range == "auto":
        from edgeport.benchmarks import cpu_fingerprint

        config, _ = config.resolved(cpu_fingerprint())
    return backend, config


def quantize(source, calibration, config: QuantSettings, output_path, progress=None) -> QuantResult:
    """Quantize ``source`` (a ModelSource, or a fp32 ONNX path) with the backend ``config`` is typed for."""
    from edgeport.core.progress import SILENT

    backend, config = backend_for(config)
    if not isinstance(source, ModelSource):
        source = ModelSource(onnx_path=source)
    if backend.needs == "onnx" and source.onnx_path is None:
        raise QuantizationError(f"backend {backend.name!r} quantizes a fp32 ONNX file; none was given")
    check_exclusions(source, config)
    if isinstance(config, OrtConfig) and config.smooth_alpha is not None:
        return _smoothed(backend, source, calibration, config, output_path, progress or SILENT)
    return run_backend(backend, source, calibration, config, output_path, progress or SILENT)


def _smoothed(backend: QuantBackend, source: ModelSource, calibration, config: OrtConfig, output_path, progress):
    """Migrate activation outliers into the weights first (SmoothQuant), then quantize the smoothed model."""
    import dataclasses

    from edgeport.quantize.transforms.smoothing import smoothed_model

    assert source.onnx_path is not None
    with progress.task("smooth activation outliers", total=1) as advance:
        with smoothed_model(source.onnx_path, calibration, config, output_path) as (staged, plain, report):
            advance(1)
            result = run_backend(backend, ModelSource(staged), calibration, plain, output_path, progress)
    return dataclasses.replace(result, report={**result.report, "smoothing": report})


def run_backend(backend: QuantBackend, source, calibration, config, output_path, progress) -> QuantResult:
    """The backend's int8 model with its quantization parameters checked: invalid activation scales
    repaired (left in float, listed in the report under ``repaired``), invalid weight scales refused."""
    import dataclasses

    from edgeport.quantize.transforms.params_check import repair_quant_params

    result = backend.quantize(source, calibration, config, output_path, progress)
    repairs = repair_quant_params(result.path)
    return dataclasses.replace(result, report={**result.report, "repaired": repairs}) if repairs else result


__all__ = [
    "backend_for",
    "build_quant_config",
    "check_exclusions",
    "config_types",
    "ModelSource",
    "QuantBackend",
    "QuantConfig",
    "QuantResult",
    "QuantSettings",
    "get_backend",
    "list_backends",
    "option_names",
    "quant_config",
    "quantize",
    "register_backend",
    "run_backend",
    "TrainingData",
    "validate_quant_config",
]
