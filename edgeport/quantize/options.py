"""The dispatch on backend names: a mapping of settings (project file, command line, search point) to
the typed config of the backend it names, with errors that name the option and what was expected.

Above the backends (it lists their config types), below everything that builds a quantization.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgeport.core.project_file import ERROR_TYPE
from edgeport.errors import ConfigError
from edgeport.quantize.backends import list_backends
from edgeport.quantize.config import (
    AUTO,
    DEFAULT_BACKEND,
    NO_QUANTIZATION,
    PROJECT_DEFAULT_BACKEND,
    AutoConfig,
    NoQuantization,
    QuantConfig,
    QuantSettings,
)
from edgeport.quantize.registry import BACKENDS
from edgeport.quantize.tolerance import TOLERANCE_KEYS


def config_types() -> dict[str, type[QuantSettings]]:
    """Every backend's config type by backend name, plus ``none`` and ``auto`` (a choice among recipes)."""
    backends: dict[str, type[QuantSettings]] = {name: BACKENDS[name].config_type for name in list_backends()}
    return {NO_QUANTIZATION: NoQuantization, **backends, AUTO: AutoConfig}


def option_names() -> list[str]:
    """Every setting some backend honours, and the tolerance's keys (the searchable ``quantize.*``
    parameters)."""
    return sorted({name for kind in config_types().values() for name in kind.model_fields} | set(TOLERANCE_KEYS))


def _choices(kind: type[BaseModel], field: str) -> list[str]:
    annotation = kind.model_fields[field].annotation
    return [str(a) for arg in get_args(annotation) or (annotation,) for a in (get_args(arg) or (arg,))]


def _message(kind: type[QuantSettings], error: Any) -> str:
    field = str(error["loc"][0]) if error["loc"] else "backend"
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        backend = kind.model_fields["backend"].default
        return (
            f"backend {backend!r} does not support option {field!r} (got {value!r}); "
            f"it supports {', '.join(kind.options())}"
        )
    if error["type"] == "literal_error":
        allowed = [c for c in _choices(kind, field) if c not in ("True", "False", "bool")]
        return f"quantization {field} {value!r} is not one of {', '.join(allowed)}"
    return f"quantization {field}: {error['msg']} (got {value!r})"


def _detail(loc: tuple, value: Any, message: str) -> InitErrorDetails:
    # PydanticCustomError formats its message with {placeholders}: escape the braces a value may hold.
    escaped = message.replace("{", "{{").replace("}", "}}")
    return {"type": PydanticCustomError(ERROR_TYPE, escaped), "loc": loc, "input": value}


def _refuse(loc: tuple, value: Any, message: str) -> ValidationError:
    return ValidationError.from_exception_data("quantize", [_detail(loc, value, message)])


def _without_idle_options(
    data: Mapping[str, Any], kind: type[QuantSettings], types: dict[str, type[QuantSettings]]
) -> dict[str, Any]:
    """``data`` without other backends' options left at their defaults: a default asks nothing of the
    backend, and project files list every option (the shipped example does) whatever the backend."""
    defaults: dict[str, list[Any]] = {}
    for other in types.values():
        for name, info in other.model_fields.items():
            defaults.setdefault(name, []).append(info.default)
    return {
        key: value
        for key, value in data.items()
        if key in kind.model_fields or not any(_same(value, d) for d in defaults.get(key, ()))
    }


def _same(value: Any, default: Any) -> bool:
    value = tuple(value) if isinstance(value, list) else value  # TOML arrays for tuple defaults
    return type(value) is type(default) and value == default


def validate_project_table(data: Mapping[str, Any] | QuantSettings) -> QuantSettings:
    """A project file's quantize table (``[run.quantize]``, a search's point): as ``validate_quant_config``,
    but without ``backend`` it is auto's unless it sets, away from its default, an option auto does not
    take; then the static backend it was written for (DEFAULT_BACKEND), as before auto was the default."""
    if isinstance(data, QuantSettings) or not isinstance(data, Mapping) or "backend" in data:
        return validate_quant_config(data)
    types = config_types()
    auto = types[PROJECT_DEFAULT_BACKEND]
    own = _without_idle_options(data, auto, types)
    written_for_auto = all(key in auto.model_fields or key in TOLERANCE_KEYS for key in own)
    return validate_quant_config({**data, "backend": PROJECT_DEFAULT_BACKEND if written_for_auto else DEFAULT_BACKEND})


def validate_quant_config(data: Mapping[str, Any] | QuantSettings) -> QuantSettings:
    """The typed config for ``data`` (a mapping with an optional ``backend``).

    Raises pydantic's ValidationError whose messages name the option and what was expected, so a
    caller nesting this in a larger schema (the project file) keeps the field's full location.
    """
    if isinstance(data, QuantSettings):
        return data
    if not isinstance(data, Mapping):
        raise _refuse((), data, f"quantization settings must be a table, got {data!r}")
    backend = data.get("backend", DEFAULT_BACKEND)
    types = config_types()
    if backend not in types:
        choices = ", ".join(name for name in types if name != NO_QUANTIZATION)
        raise _refuse(("backend",), backend, f"quantization backend {backend!r} is not one of {choices}")
    kind = types[backend]
    try:
        return kind.model_validate({**_without_idle_options(data, kind, types), "backend": backend})
    except ValidationError as exc:
        details = [_detail(e["loc"], e.get("input"), _message(kind, e)) for e in exc.errors()]
        raise ValidationError.from_exception_data("quantize", details) from None


def quant_config(**options: Any) -> QuantSettings:
    """A typed config from keyword options (the CLI's and the Python API's way in); ConfigError if invalid."""
    try:
        return validate_quant_config(options)
    except ValidationError as exc:
        raise ConfigError(exc.errors()[0]["msg"]) from exc


def build_quant_config(options: Mapping[str, Any] | QuantSettings, cpu: dict) -> tuple[QuantConfig, str]:
    """A quantizing config with ``reduce_range`` decided for ``cpu`` (``QuantConfig.resolved``), and the
    reason for its value: where a quantization's settings are built, once."""
    config = options if isinstance(options, QuantSettings) else quant_config(**options)
    if not isinstance(config, QuantConfig):
        choices = ", ".join(name for name in config_types() if name != NO_QUANTIZATION)
        raise ConfigError(
            f"quantization backend {config.backend!r} is a search candidate (the fp32 model), not a backend; "
            f"expected one of {choices}"
        )
    return config.resolved(cpu)


__all__ = [
    "build_quant_config",
    "config_types",
    "option_names",
    "quant_config",
    "validate_project_table",
    "validate_quant_config",
]
