"""Quantization backends: each turns a fp32 model into a verified int8 ONNX artifact."""

from __future__ import annotations

import dataclasses

from edgeport.errors import ConfigError, QuantizationError
from edgeport.quant_backends.config import QuantConfig
from edgeport.quant_backends.registry import QuantBackend, QuantResult, get_backend, list_backends, register_backend
from edgeport.quant_backends.source import ModelSource, TrainingData


def check_supported_options(backend: QuantBackend, config: QuantConfig) -> None:
    """Refuse a setting the backend would silently ignore."""
    for field in dataclasses.fields(QuantConfig):
        if field.name == "backend" or field.name in backend.options:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        value = getattr(config, field.name)
        if value != default:
            raise ConfigError(
                f"backend {backend.name!r} does not support option {field.name!r} "
                f"(got {value!r}); it supports {', '.join(sorted(backend.options))}"
            )


def build_quant_config(options: dict, cpu: dict) -> tuple[QuantConfig, str]:
    """A validated QuantConfig from user options; ``reduce_range`` may be "auto" (decided by ``cpu``).

    Returns the config and why reduce_range has its value; refuses options the backend ignores.
    """
    from edgeport.quant_backends.target import resolve_reduce_range

    options = dict(options)
    options["reduce_range"], reason = resolve_reduce_range(options.get("reduce_range", "auto"), cpu)
    config = QuantConfig(**options)
    check_supported_options(get_backend(config.backend), config)
    return config, reason


def _listing(names, limit: int = 12) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_exclusions(source: ModelSource, config: QuantConfig) -> None:
    """Refuse an excluded node, module or op type the model does not have: ignoring it silently would
    quantize exactly what the user asked to keep in float."""
    if not config.exclude_nodes and not config.exclude_op_types:
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

    from edgeport.quant_backends.graph import iter_nodes

    nodes = [n for n, _ in iter_nodes(onnx.load(str(source.onnx_path), load_external_data=False).graph)]
    names, op_types = {n.name for n in nodes if n.name}, {n.op_type for n in nodes}
    unknown = [n for n in config.exclude_nodes if n not in names]
    if unknown:
        raise ConfigError(
            f"exclude node(s) {', '.join(map(repr, unknown))}: {source.onnx_path} has no node of that "
            f"name; its nodes: {_listing(names)}"
        )
    unknown = [t for t in config.exclude_op_types if t not in op_types]
    if unknown:
        raise ConfigError(
            f"exclude op type(s) {', '.join(map(repr, unknown))}: {source.onnx_path} has no such op; "
            f"its op types: {_listing(op_types)}"
        )


def quantize(source, calibration, config: QuantConfig, output_path, progress=None) -> QuantResult:
    """Quantize ``source`` (a ModelSource, or a fp32 ONNX path) with the backend named in ``config``."""
    from edgeport.progress import SILENT

    backend = get_backend(config.backend)
    check_supported_options(backend, config)
    if not isinstance(source, ModelSource):
        source = ModelSource(onnx_path=source)
    if backend.needs == "onnx" and source.onnx_path is None:
        raise QuantizationError(f"backend {backend.name!r} quantizes a fp32 ONNX file; none was given")
    check_exclusions(source, config)
    return backend.quantize(source, calibration, config, output_path, progress or SILENT)


__all__ = [
    "build_quant_config",
    "check_exclusions",
    "ModelSource",
    "QuantBackend",
    "QuantConfig",
    "QuantResult",
    "check_supported_options",
    "get_backend",
    "list_backends",
    "quantize",
    "register_backend",
    "TrainingData",
]
