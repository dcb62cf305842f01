"""PyTorch latency with the same statistics as the onnxruntime runner, so the two compare.

Lives outside ``edgeport.benchmarks`` because it needs torch; torch.ao-quantized models run
with the quantized engine they were built for (``torch.backends.quantized.engine``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeport.benchmarks.fingerprint import environment_fingerprint
from edgeport.benchmarks.records import BenchResult, BenchSettings
from edgeport.benchmarks.remote_runner import peak_rss_mb
from edgeport.benchmarks.rounds import split_counts
from edgeport.errors import BenchmarkError


def measure_torch(
    model: Callable[[Any], Any],
    inputs: np.ndarray,
    settings: BenchSettings | None = None,
    engine: str | None = None,
    label: str = "torch model",
) -> BenchResult:
    """Latency of ``model(inputs)`` in PyTorch on the CPU, ``settings.threads`` intra-op threads."""
    import torch

    settings = settings or BenchSettings()
    if engine is not None:
        if engine not in torch.backends.quantized.supported_engines:
            raise BenchmarkError(
                f"quantized engine {engine!r} is not available "
                f"({', '.join(torch.backends.quantized.supported_engines)})"
            )
        torch.backends.quantized.engine = engine
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    x = torch.from_numpy(np.ascontiguousarray(inputs))
    samples: list[float] = []
    try:
        with torch.inference_mode():
            start = time.perf_counter_ns()
            model(x)
            first_ms = (time.perf_counter_ns() - start) / 1e6
            for _ in range(settings.warmup):
                model(x)
            for _ in range(settings.iterations):  # exactly the count asked for
                start = time.perf_counter_ns()
                model(x)
                samples.append((time.perf_counter_ns() - start) / 1e6)
    except Exception as exc:  # a model that fails at run time
        raise BenchmarkError(f"{label}: PyTorch inference failed ({exc})") from exc
    finally:
        torch.set_num_threads(previous_threads)
    environment = {**environment_fingerprint(), "torch": torch.__version__}
    sizes = split_counts(settings.iterations, settings.rounds)  # the rounds the statistics resample
    settings_used = {
        **settings.to_dict(),
        "provider": "pytorch-cpu",
        "engine": engine,
        "inputs": "given",
        "rounds_run": len(sizes),
        "round_sizes": sizes,
    }
    return BenchResult(
        label, "", settings_used, environment, samples, first_inference_ms=first_ms, peak_rss_mb=peak_rss_mb()
    )
