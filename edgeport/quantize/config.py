"""The quantization config: one validated schema for the project file, the CLI and the backends.

Settings are typed per backend, not checked against name allow-lists: each backend declares its
``config_type`` (a subclass of ``QuantConfig`` below) next to its code, and ``parse_quant_config``
dispatches on ``backend`` to it, the way onnxruntime's ``StaticQuantConfig``/``DynamicQuantConfig``
and torchao's config classes do. An option the backend does not honour is therefore an unknown
field of its type, refused with the options it does support.

Families share bases: ``OrtConfig`` (onnxruntime: per-channel ranges, weight type, op-type
exclusions) and ``TorchConfig`` (torch.ao engines). ``NoQuantization`` (backend ``none``) is the
fp32 model as a search candidate; ``edgeport run`` and ``quantize`` refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgeport.core.project_file import ERROR_TYPE
from edgeport.errors import ConfigError

DEFAULT_BACKEND = "ort-static"
NO_QUANTIZATION = "none"
AUTO = "auto"
TensorType = Literal["uint8", "int8"]
# TOML and JSON give lists: accept them for these tuples despite the strict mode.
Names = Annotated[tuple[str, ...], Strict(False)]


class QuantSettings(BaseModel):
    """The root of every quantization config: which backend, and nothing a backend might ignore."""

    # NaN and Inf are no settings: TOML accepts `nan` and `inf`, and a NaN tolerance passes every check.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    backend: str

    @classmethod
    def options(cls) -> list[str]:
        """The settings this config type honours, besides ``backend``."""
        return sorted(name for name in cls.model_fields if name != "backend")

    def describe(self) -> dict[str, Any]:
        """The backend's settings as recorded in manifests and hashed into artifact metadata. Settings
        added later are left out while unset, so configs that do not use them keep their hashes (and
        the search's cached quantizations still match)."""
        described = self.model_dump(mode="json", exclude=set(GUARD_FIELDS))
        return {k: v for k, v in described.items() if not (k in ADDED_LATER and v is None)}

    def short_hash(self) -> str:
        """The short hash of the settings that artifact metadata records (``edgeport.quant``)."""
        from edgeport.core.artifacts import sha256_json

        return sha256_json(self.describe())[:16]


class NoQuantization(QuantSettings):
    """A search candidate that ships the fp32 model."""

    backend: Literal["none"] = "none"


class QuantConfig(QuantSettings):
    """What every quantizing backend honours."""

    # "auto": 7-bit weights on x86 without VNNI, where 8-bit ones saturate (see quantize/target.py).
    reduce_range: bool | Literal["auto"] = "auto"
    calibration_samples: int = Field(256, gt=0)
    exclude_nodes: Names = ()
    # Accuracy-aware fallback: keep sensitive layers in float until int8 top-1 on the validation split
    # is within this many points of fp32. A guard around the backend, not one of its settings.
    max_accuracy_drop: float | None = Field(None, ge=0)

    def int8_types(self) -> tuple[str, str]:
        """The (activation, weight) integer types the kernels multiply: u8 x s8 unless configured."""
        return "uint8", "int8"

    def resolved(self, cpu: dict) -> tuple[QuantConfig, str]:
        """This config with ``reduce_range`` decided for ``cpu``, and why it has that value."""
        from edgeport.quantize.target import resolve_reduce_range

        value, reason = resolve_reduce_range(self.reduce_range, cpu)
        return self.model_copy(update={"reduce_range": value}), reason


class OrtConfig(QuantConfig):
    """onnxruntime's quantizers (static and dynamic)."""

    per_channel: bool = True
    weight_type: TensorType = "int8"
    exclude_op_types: Names = ()
    # SmoothQuant migration strength (quantize/transforms/smoothing.py): None leaves activations as they are
    smooth_alpha: float | None = Field(None, gt=0, lt=1)


class TorchConfig(QuantConfig):
    """torch.ao's quantizers: the engine picks the kernels' observers and fusions."""

    engine: Literal["x86", "fbgemm", "qnnpack", "onednn"] = "x86"


GUARD_FIELDS: tuple[str, ...] = ("max_accuracy_drop",)
ADDED_LATER: tuple[str, ...] = ("smooth_alpha",)  # see QuantSettings.describe


def config_types() -> dict[str, type[QuantSettings]]:
    """Every backend's config type by backend name, plus ``none`` and ``auto`` (a choice among recipes)."""
    from edgeport.quantize.registry import BACKENDS, list_backends
    from edgeport.quantize.strategy.recipes import AutoConfig

    backends = {name: BACKENDS[name].config_type for name in list_backends()}
    return {NO_QUANTIZATION: NoQuantization, **backends, AUTO: AutoConfig}


def option_names() -> list[str]:
    """Every setting some backend honours (the searchable ``quantize.*`` parameters)."""
    return sorted({name for kind in config_types().values() for name in kind.model_fields})


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
    """A quantizing config with ``reduce_range`` decided for ``cpu``, and the reason for its value."""
    config = options if isinstance(options, QuantSettings) else quant_config(**options)
    if not isinstance(config, QuantConfig):
        choices = ", ".join(name for name in config_types() if name != NO_QUANTIZATION)
        raise ConfigError(
            f"quantization backend {config.backend!r} is a search candidate (the fp32 model), not a backend; "
            f"expected one of {choices}"
        )
    return config.resolved(cpu)


__all__ = [
    "DEFAULT_BACKEND",
    "NO_QUANTIZATION",
    "NoQuantization",
    "OrtConfig",
    "QuantConfig",
    "QuantSettings",
    "TorchConfig",
    "build_quant_config",
    "config_types",
    "option_names",
    "quant_config",
    "validate_quant_config",
]
