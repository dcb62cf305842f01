"""QuantConfig: every quantization setting, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgeport.errors import ConfigError

FORMATS = ("qdq", "qoperator")
TENSOR_TYPES = ("uint8", "int8")
# ORT's fourth method, "distribution", computes float8 scales; used for int8 it ruined accuracy here
# (45% top-1 agreement on the digits CNN), so it is not offered.
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
ENGINES = ("x86", "fbgemm", "qnnpack", "onednn")


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize. Defaults suit x86 with VNNI: U8 activations, S8 per-channel weights, QDQ.

    On this machine ORT's own default (S8 activations) left most convolutions unfused and ran at
    0.80 of fp32 on resnet18, while U8S8 ran at 0.31 (AMD EPYC Zen5 with AVX-512 VNNI, batch 1, one thread).
    """

    backend: str = "ort-static"
    format: str = "qdq"
    per_channel: bool = True
    activation_type: str = "uint8"
    weight_type: str = "int8"
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    reduce_range: bool = False
    calibration_method: str = "minmax"
    calibration_samples: int = 256
    percentile: float = 99.999
    exclude_nodes: tuple[str, ...] = field(default=())
    exclude_op_types: tuple[str, ...] = field(default=())
    engine: str = "x86"
    qat_epochs: int = 2
    qat_lr: float = 5e-4

    def __post_init__(self) -> None:
        from edgeport.quant_backends.registry import list_backends

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"quantization {name} {value!r} is not one of {', '.join(allowed)}")

        choice("backend", tuple(list_backends()))
        choice("format", FORMATS)
        choice("activation_type", TENSOR_TYPES)
        choice("weight_type", TENSOR_TYPES)
        choice("calibration_method", CALIBRATION_METHODS)
        choice("engine", ENGINES)
        if not isinstance(self.calibration_samples, int) or self.calibration_samples <= 0:
            raise ConfigError(
                f"quantization calibration_samples must be a positive integer, got {self.calibration_samples!r}"
            )
        if not isinstance(self.qat_epochs, int) or self.qat_epochs <= 0:
            raise ConfigError(f"quantization qat_epochs must be a positive integer, got {self.qat_epochs!r}")
        if not 0 < self.qat_lr < float("inf"):
            raise ConfigError(f"quantization qat_lr must be > 0, got {self.qat_lr!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"quantization percentile must be in (50, 100], got {self.percentile!r}")
        for name in ("per_channel", "symmetric_activations", "symmetric_weights", "reduce_range"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"quantization {name} must be true or false, got {getattr(self, name)!r}")
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes))
        object.__setattr__(self, "exclude_op_types", tuple(self.exclude_op_types))

    def describe(self) -> dict:
        data = asdict(self)
        data["exclude_nodes"] = list(self.exclude_nodes)
        data["exclude_op_types"] = list(self.exclude_op_types)
        return data
