"""The records of a measurement: BenchSettings (what to measure, validated) and BenchResult (what came
out: raw samples, statistics, environment), the shape every result file and manifest stores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgeport.benchmarks.remote_runner import OPT_LEVELS
from edgeport.benchmarks.rounds import round_sizes
from edgeport.benchmarks.stats import summarize
from edgeport.core import schemas
from edgeport.core.bench_defaults import LIBRARY
from edgeport.errors import ConfigError

SCHEMA_VERSION = schemas.BENCH_RESULT
# --provider name -> onnxruntime execution provider
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")
# The runtime that executes the artifact: onnxruntime (with --provider), or OpenVINO reading the ONNX file
RUNTIMES = ("ort", "openvino")
PRECISION_HINTS = ("f32", "bf16", "f16")  # OpenVINO's inference precision hint (--precision)


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime one model of a comparison runs on (``edgeport bench --vs B.onnx@openvino``)."""

    name: str = RUNTIMES[0]
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.name not in RUNTIMES:
            raise ConfigError(f"runtime {self.name!r} is not one of {', '.join(RUNTIMES)}")
        if self.precision is not None and (self.precision not in PRECISION_HINTS or self.name != "openvino"):
            raise ConfigError(
                f"precision {self.precision!r}: a precision hint is one of {', '.join(PRECISION_HINTS)} "
                "and applies to runtime 'openvino'"
            )

    def label(self) -> str:
        return self.name + (f"/{self.precision}" if self.precision else "")


ONNXRUNTIME = RuntimeChoice("ort")  # the default runtime: onnxruntime, at the model's own precision


def recorded_runtime(settings: Mapping[str, Any]) -> tuple[Any, Any]:
    """The (runtime, precision) a stored settings dict names, as BenchSettings.to_dict writes them; results
    written before runtimes existed ran on onnxruntime. Returned as recorded, not as a RuntimeChoice: a file
    may name a runtime this version does not know, which a reader reports rather than refuses."""
    return settings.get("runtime") or ONNXRUNTIME.name, settings.get("precision")


def _positive_seconds(value: float | None, what: str) -> None:
    # `not 0 < x < inf` also refuses NaN: "--duration nan" would otherwise measure nothing, "inf" forever.
    if value is not None and not 0 < value < float("inf"):
        raise ConfigError(f"benchmark {what} must be a positive, finite number of seconds, got {value!r}")


@dataclass(frozen=True)
class BenchSettings:
    batch: int = 1
    threads: int = 1
    warmup: int = LIBRARY.warmup
    iterations: int = LIBRARY.iterations
    rounds: int = LIBRARY.rounds
    optimization_level: str = "all"
    seed: int = 0
    provider: str = "cpu"
    duration_s: float | None = None  # when set, measure for this long instead of a fixed count
    warmup_s: float | None = None  # when set, warm up for this long instead of ``warmup`` runs
    runtime: RuntimeChoice = ONNXRUNTIME  # the runtime, and for OpenVINO its precision hint

    def to_dict(self) -> dict[str, Any]:
        """The settings as result files, manifests and the device runner store them: the runtime as two flat
        fields, ``runtime`` (its name) and ``precision`` (None: the runtime's default), last."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "runtime"}
        return {**data, "runtime": self.runtime.name, "precision": self.runtime.precision}

    def __post_init__(self) -> None:
        for name in ("batch", "threads", "iterations", "rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"benchmark {name} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"benchmark warmup must be a non-negative integer, got {self.warmup!r}")
        if self.provider not in (*PROVIDERS, "auto"):
            raise ConfigError(f"benchmark provider {self.provider!r} is not one of {', '.join((*PROVIDERS, 'auto'))}")
        if not isinstance(self.runtime, RuntimeChoice):
            raise ConfigError(f"benchmark runtime must be a RuntimeChoice, got {self.runtime!r}")
        if self.runtime.name == "openvino" and self.provider not in ("cpu", "auto"):
            raise ConfigError(f"provider {self.provider!r} is onnxruntime's; runtime 'openvino' runs on the CPU")
        _positive_seconds(self.warmup_s, "warm-up")
        _positive_seconds(self.duration_s, "duration")
        if self.optimization_level not in OPT_LEVELS:
            raise ConfigError(
                f"benchmark optimization_level {self.optimization_level!r} is not one of {', '.join(OPT_LEVELS)}"
            )


@dataclass
class BenchResult:
    model_path: str
    model_sha256: str
    settings: dict[str, Any]
    environment: dict[str, Any]
    samples_ms: list[float]
    stats: dict[str, Any] = field(init=False)
    session_create_ms: float = 0.0
    first_inference_ms: float = 0.0
    peak_rss_mb: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Intervals resample whole rounds (benchmarks/rounds.py), as bench --vs and the gate do.
        self.stats = summarize(
            self.samples_ms,
            batch=self.settings.get("batch", 1),
            round_sizes=round_sizes(self.settings, len(self.samples_ms)),
        )

    def followed_by(self, more: BenchResult) -> BenchResult:
        """This measurement's rounds followed by ``more``'s (the same model measured again, the same way):
        one result whose statistics and intervals see every round."""
        sizes = round_sizes(self.settings, len(self.samples_ms)) + round_sizes(more.settings, len(more.samples_ms))
        count = {"iterations": sum(sizes), "rounds": len(sizes), "rounds_run": len(sizes), "round_sizes": sizes}
        count["stopped_early"] = False  # its rounds no longer line up with another result's first ones
        settings = {**self.settings, **count}
        return BenchResult(
            self.model_path,
            self.model_sha256,
            settings,
            self.environment,
            [*self.samples_ms, *more.samples_ms],
            session_create_ms=self.session_create_ms,
            first_inference_ms=self.first_inference_ms,
            peak_rss_mb=max(self.peak_rss_mb, more.peak_rss_mb),
        )

    def to_dict(self, with_samples: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not with_samples:
            data.pop("samples_ms")
        return data
