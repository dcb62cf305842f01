"""ONNX Runtime CPU latency: warm-up, fixed threads, fixed iterations, raw samples kept."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgeport.benchmarks.fingerprint import environment_fingerprint
from edgeport.benchmarks.stats import summarize
from edgeport.errors import BenchmarkError

SCHEMA_VERSION = 1
_OPT_LEVELS = ("disable", "basic", "extended", "all")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
           "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


@dataclass(frozen=True)
class BenchSettings:
    batch: int = 1
    threads: int = 1
    warmup: int = 50
    iterations: int = 500
    rounds: int = 10
    optimization_level: str = "all"
    seed: int = 0

    def __post_init__(self) -> None:
        from edgeport.errors import ConfigError

        for name in ("batch", "threads", "iterations", "rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"benchmark {name} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"benchmark warmup must be a non-negative integer, got {self.warmup!r}")
        if self.optimization_level not in _OPT_LEVELS:
            raise ConfigError(f"benchmark optimization_level {self.optimization_level!r} is not one of "
                              f"{', '.join(_OPT_LEVELS)}")


@dataclass
class BenchResult:
    model_path: str
    model_sha256: str
    settings: dict
    environment: dict
    samples_ms: list[float]
    stats: dict = field(init=False)
    session_create_ms: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.stats = summarize(self.samples_ms)

    def to_dict(self, with_samples: bool = True) -> dict:
        data = asdict(self)
        if not with_samples:
            data.pop("samples_ms")
        return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_session(path: str | os.PathLike, settings: BenchSettings):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[settings.optimization_level]
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
        raise BenchmarkError(f"{path}: onnxruntime cannot load the model ({exc})") from exc


def synthesize_inputs(session, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Random inputs matching the model's signature; symbolic batch axes take ``batch``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in session.get_inputs():
        if arg.type not in _DTYPES:
            raise BenchmarkError(f"input {arg.name!r} has type {arg.type}, which cannot be synthesised")
        shape = []
        for axis, dim in enumerate(arg.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif axis == 0:
                shape.append(batch)
            else:
                raise BenchmarkError(f"input {arg.name!r} has a dynamic axis {axis} ({dim!r}); give real inputs")
        dtype = _DTYPES[arg.type]
        if np.issubdtype(dtype, np.floating):
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[arg.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[arg.name] = rng.integers(0, 100, shape).astype(dtype)
    return feeds


def _timed_runs(session, feeds: dict, count: int) -> list[float]:
    run, samples = session.run, []
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        run(None, feeds)
        samples.append((clock() - start) / 1e6)
    return samples


def measure_interleaved(models: dict[str, str | os.PathLike], settings: BenchSettings,
                        inputs: dict[str, np.ndarray] | None = None,
                        on_round: Callable[[int], None] = lambda n: None) -> dict[str, BenchResult]:
    """Measure several models in one process, alternating between them round by round.

    Interleaving spreads slow drifts of the machine (frequency, other load) over all
    models instead of letting them land on whichever model happened to run last.
    """
    sessions, created_ms, feeds = {}, {}, {}
    for label, path in models.items():
        start = time.perf_counter()
        sessions[label] = create_session(path, settings)
        created_ms[label] = (time.perf_counter() - start) * 1e3
        feeds[label] = inputs if inputs is not None else synthesize_inputs(sessions[label], settings.batch,
                                                                           settings.seed)
    samples: dict[str, list[float]] = {label: [] for label in models}
    try:
        for label, session in sessions.items():
            _timed_runs(session, feeds[label], settings.warmup)
        per_round = max(1, settings.iterations // settings.rounds)
        for round_index in range(settings.rounds):
            for label, session in sessions.items():
                samples[label] += _timed_runs(session, feeds[label], per_round)
            on_round(1)
    except Exception as exc:
        raise BenchmarkError(f"inference failed while benchmarking ({exc})") from exc
    environment = environment_fingerprint()
    return {label: BenchResult(str(path), _sha256(Path(path)), {**asdict(settings), "provider": "cpu"},
                               environment, samples[label], session_create_ms=created_ms[label])
            for label, path in models.items()}


def measure_latency(path: str | os.PathLike, settings: BenchSettings = BenchSettings(),
                    inputs: dict[str, np.ndarray] | None = None) -> BenchResult:
    return measure_interleaved({"model": path}, settings, inputs)["model"]
