"""The quantization config types: one validated schema for the project file, the CLI and the backends.

Settings are typed per backend, not checked against name allow-lists: each backend declares its
``config_type`` (a subclass of ``QuantConfig`` below) next to its code, and ``quantize.options``
dispatches on ``backend`` to it, the way onnxruntime's ``StaticQuantConfig``/``DynamicQuantConfig``
and torchao's config classes do. An option the backend does not honour is therefore an unknown
field of its type, refused with the options it does support.

Families share bases: ``OrtConfig`` (onnxruntime: per-channel ranges, weight type, op-type
exclusions) and ``TorchConfig`` (torch.ao engines). ``NoQuantization`` (backend ``none``) is the
fp32 model as a search candidate; ``edgeport run`` and ``quantize`` refuse it; ``AutoConfig``
(backend ``auto``) lets edgeport choose among recipes. The guard's tolerance is no setting of any of
them (quantize/tolerance.py). Kept light: ``edgeport.config`` imports this module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from edgeport.core.artifacts import sha256_json
from edgeport.quantize.target import resolve_reduce_range

# ``quant_config(...)`` without ``backend``: the config ``quantize()`` applies, onnxruntime's static int8.
DEFAULT_BACKEND = "ort-static"
# A project file's quantize table without ``backend`` is auto's (recipes tried, the fastest faithful kept,
# as `edgeport quantize` does), unless it sets an option auto does not take (per_channel, format, ...):
# such a table was written for DEFAULT_BACKEND, which it keeps meaning (options.validate_project_table).
PROJECT_DEFAULT_BACKEND = "auto"
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
        """The backend's settings as recorded in manifests and hashed into artifact metadata: every
        field, and only the quantizer's (the guard's tolerance is none of them). The search's stage cache
        carries an explicit version (core.schemas.STAGE_CACHE) for when this set of fields changes."""
        return self.model_dump(mode="json")

    def short_hash(self) -> str:
        """The short hash of the settings that artifact metadata records (``edgeport.quant``)."""
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

    def int8_types(self) -> tuple[str, str]:
        """The (activation, weight) integer types the kernels multiply: u8 x s8 unless configured."""
        return "uint8", "int8"

    def resolved(self, cpu: dict) -> tuple[QuantConfig, str]:
        """This config with ``reduce_range`` decided for ``cpu``, and why it has that value: the one
        place "auto" is decided (``options.build_quant_config`` calls it where a quantization's settings
        are built)."""
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


class AutoConfig(QuantConfig):
    """Let edgeport choose the recipe (ONNX models, quantize/strategy/recipes.py): only what every
    recipe shares can be set."""

    backend: Literal["auto"] = "auto"


__all__ = [
    "AUTO",
    "DEFAULT_BACKEND",
    "PROJECT_DEFAULT_BACKEND",
    "NO_QUANTIZATION",
    "AutoConfig",
    "NoQuantization",
    "OrtConfig",
    "QuantConfig",
    "QuantSettings",
    "TorchConfig",
]
