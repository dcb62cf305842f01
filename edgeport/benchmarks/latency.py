"""ONNX Runtime CPU latency: warm-up, fixed threads, fixed iterations, raw samples kept."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeport.artifacts import sha256_file
from edgeport.benchmarks.fingerprint import environment_fingerprint
from edgeport.benchmarks.remote_runner import peak_rss_mb, timed_runs
from edgeport.benchmarks.rounds import round_sizes, split_counts
from edgeport.benchmarks.stats import summarize
from edgeport.errors import BenchmarkError

SCHEMA_VERSION = 1
_OPT_LEVELS = ("disable", "basic", "extended", "all")
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")


@dataclass(frozen=True)
class BenchSettings:
    batch: int = 1
    threads: int = 1
    warmup: int = 50
    iterations: int = 500
    rounds: int = 10
    optimization_level: str = "all"
    seed: int = 0
    provider: str = "cpu"
    duration_s: float | None = None  # when set, measure for this long instead of a fixed count
    warmup_s: float | None = None  # when set, warm up for this long instead of ``warmup`` runs

    def __post_init__(self) -> None:
        from edgeport.errors import ConfigError

        for name in ("batch", "threads", "iterations", "rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"benchmark {name} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"benchmark warmup must be a non-negative integer, got {self.warmup!r}")
        if self.provider not in (*PROVIDERS, "auto"):
            raise ConfigError(f"benchmark provider {self.provider!r} is not one of {', '.join((*PROVIDERS, 'auto'))}")
        # `not 0 < x < inf` also refuses NaN: "--duration nan" would otherwise measure nothing, "inf" forever.
        if self.warmup_s is not None and not 0 < self.warmup_s < float("inf"):
            raise ConfigError(f"benchmark warm-up must be a positive, finite number of seconds, got {self.warmup_s!r}")
        if self.duration_s is not None and not 0 < self.duration_s < float("inf"):
            raise ConfigError(
                f"benchmark duration must be a positive, finite number of seconds, got {self.duration_s!r}"
            )
        if self.optimization_level not in _OPT_LEVELS:
            raise ConfigError(
                f"benchmark optimization_level {self.optimization_level!r} is not one of {', '.join(_OPT_LEVELS)}"
            )


@dataclass
class BenchResult:
    model_path: str
    model_sha256: str
    settings: dict
    environment: dict
    samples_ms: list[float]
    stats: dict = field(init=False)
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

    def to_dict(self, with_samples: bool = True) -> dict:
        data = asdict(self)
        if not with_samples:
            data.pop("samples_ms")
        return data


def resolve_provider(name: str) -> str:
    """The onnxruntime provider for ``name``; refuses one this machine does not have (no silent fallback)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if name == "auto":
        return next(PROVIDERS[p] for p in AUTO_ORDER if PROVIDERS[p] in available)
    if PROVIDERS[name] not in available:
        have = ", ".join(k for k, v in PROVIDERS.items() if v in available)
        raise BenchmarkError(
            f"provider {name!r} ({PROVIDERS[name]}) is not available in this onnxruntime; available here: {have}"
        )
    return PROVIDERS[name]


def create_session(path: str | os.PathLike, settings: BenchSettings):
    import onnxruntime as ort

    if not Path(path).is_file():
        raise BenchmarkError(f"{path}: model file not found")
    provider = resolve_provider(settings.provider)
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.optimization_level]
    try:
        return ort.InferenceSession(str(path), options, providers=[provider])
    except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
        raise BenchmarkError(f"{path}: onnxruntime cannot load the model ({exc})") from exc


def synthesize_inputs(
    session, batch: int, seed: int, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, np.ndarray]:
    """Random inputs matching the model's signature; symbolic batch axes take ``batch``, other
    dynamic axes come from ``shapes`` (name -> full shape)."""
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    names = {arg.name for arg in session.get_inputs()}
    unknown = sorted(set(shapes) - names)
    if unknown:
        raise BenchmarkError(f"--shape names {', '.join(unknown)} are not model inputs ({', '.join(sorted(names))})")
    feeds: dict[str, np.ndarray] = {}
    for arg in session.get_inputs():
        if arg.type not in _DTYPES:
            raise BenchmarkError(f"input {arg.name!r} has type {arg.type}, which cannot be synthesised")
        if arg.name in shapes:
            shape = list(shapes[arg.name])
            if len(shape) != len(arg.shape) or any(
                isinstance(d, int) and d > 0 and d != s for d, s in zip(arg.shape, shape, strict=True)
            ):
                raise BenchmarkError(
                    f"--shape {arg.name}={'x'.join(map(str, shape))} does not fit the model's shape {list(arg.shape)}"
                )
        else:
            shape = []
            for axis, dim in enumerate(arg.shape):
                if isinstance(dim, int) and dim > 0:
                    shape.append(dim)
                elif axis == 0:
                    shape.append(batch)
                else:
                    raise BenchmarkError(
                        f"input {arg.name!r} has a dynamic axis {axis} ({dim!r}); "
                        f"give --shape {arg.name}=... or real inputs"
                    )
        dtype = _DTYPES[arg.type]
        if np.issubdtype(dtype, np.floating):
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[arg.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[arg.name] = rng.integers(0, 100, shape).astype(dtype)
    return feeds


def check_feeds(session, feeds: dict[str, np.ndarray], where: str) -> None:
    """Names, dtypes and ranks of given inputs against the model's signature."""
    expected = {arg.name: arg for arg in session.get_inputs()}
    if set(feeds) != set(expected):
        raise BenchmarkError(f"{where}: inputs {sorted(feeds)} do not match the model's inputs {sorted(expected)}")
    for name, arg in expected.items():
        array = feeds[name]
        dtype = _DTYPES.get(arg.type)
        if dtype is not None and array.dtype != dtype:
            raise BenchmarkError(f"{where}: input {name!r} is {array.dtype}, the model expects {np.dtype(dtype)}")
        if array.ndim != len(arg.shape) or any(
            isinstance(d, int) and d > 0 and d != s for d, s in zip(arg.shape[1:], array.shape[1:], strict=True)
        ):
            raise BenchmarkError(f"{where}: input {name!r} has shape {array.shape}, the model expects {arg.shape}")


def measure_interleaved(
    models: Mapping[str, str | os.PathLike],
    settings: BenchSettings,
    inputs: dict[str, np.ndarray] | None = None,
    on_round: Callable[[int], None] = lambda n: None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> dict[str, BenchResult]:
    """Measure several models in one process, alternating between them round by round.

    Interleaving spreads slow drifts of the machine (frequency, other load) over all
    models instead of letting them land on whichever model happened to run last.
    """
    sessions, created_ms, feeds = {}, {}, {}
    for label, path in models.items():
        start = time.perf_counter()
        sessions[label] = create_session(path, settings)
        created_ms[label] = (time.perf_counter() - start) * 1e3
        if inputs is not None:
            check_feeds(sessions[label], inputs, str(path))
            feeds[label] = inputs
        else:
            feeds[label] = synthesize_inputs(sessions[label], settings.batch, settings.seed, shapes)
    samples: dict[str, list[float]] = {label: [] for label in models}
    first_ms: dict[str, float] = {}

    def warm_up(label: str, share: float) -> None:
        if settings.warmup_s:
            until = time.perf_counter() + settings.warmup_s * share
            while time.perf_counter() < until:
                timed_runs(sessions[label], feeds[label], 10)
        else:
            timed_runs(sessions[label], feeds[label], math.ceil(settings.warmup * share))

    # Two sessions of the very same file can differ by 5-10% for as long as they live (where weights and
    # buffers landed in memory): `bench A --vs A-copy` on a 15 us model gave p50 ratios from 0.88 to 1.11
    # across runs, each run consistent over all its rounds, so no resampling of one session pair can see
    # it (perf/bench_aa.py: the 95% interval contained 1.0 in 3 of 40 runs with one session per model, in
    # 38 of 40 with fresh sessions). A comparison on the CPU therefore takes fresh sessions every round,
    # each warmed up with its share of --warmup: the placement then varies between rounds, which the round
    # statistics account for. Not for other providers, where building a session can take minutes (TensorRT).
    fresh_sessions = len(models) > 1 and resolve_provider(settings.provider) == PROVIDERS["cpu"]
    try:
        for label in sessions:
            first_ms[label] = timed_runs(sessions[label], feeds[label], 1)[0]
            warm_up(label, 1.0)
        # A fixed count is honoured exactly: fewer runs than rounds make that many rounds of one run, else
        # rounds at most one run apart. --duration repeats equal rounds until the time is up.
        deadline = time.perf_counter() + settings.duration_s if settings.duration_s else None
        planned = split_counts(settings.iterations, settings.rounds) if deadline is None else []
        per_round = max(1, settings.iterations // settings.rounds)
        sizes_run: list[int] = []
        while (len(sizes_run) < len(planned)) if deadline is None else (time.perf_counter() < deadline):
            round_index = len(sizes_run)
            count = planned[round_index] if deadline is None else per_round
            # Alternate the order (A B, B A, ...) so that running second in a round favours no model.
            order = list(sessions) if round_index % 2 == 0 else list(reversed(sessions))
            if fresh_sessions and round_index:
                for label in order:
                    sessions[label] = None  # release the old session's memory before the new one takes its own
                    sessions[label] = create_session(models[label], settings)
                    timed_runs(sessions[label], feeds[label], 1)  # the first run of a session allocates
                    warm_up(label, 1.0 / settings.rounds)
            for label in order:
                samples[label] += timed_runs(sessions[label], feeds[label], count)
            sizes_run.append(count)
            on_round(1)
    except BenchmarkError:
        raise
    except Exception as exc:
        raise BenchmarkError(f"inference failed while benchmarking ({exc})") from exc
    environment = environment_fingerprint()
    rss = peak_rss_mb()
    return {
        label: BenchResult(
            str(path),
            sha256_file(path),
            {
                **asdict(settings),
                "rounds_run": len(sizes_run),
                # where the round statistics cut the samples
                "round_sizes": sizes_run,
                "fresh_session_per_round": fresh_sessions,
                "inputs": "given" if inputs is not None else "synthetic",
            },
            environment,
            samples[label],
            session_create_ms=created_ms[label],
            first_inference_ms=first_ms[label],
            peak_rss_mb=rss,
        )
        for label, path in models.items()
    }


def measure_latency(
    path: str | os.PathLike, settings: BenchSettings = BenchSettings(), inputs: dict[str, np.ndarray] | None = None
) -> BenchResult:
    return measure_interleaved({"model": path}, settings, inputs)["model"]
