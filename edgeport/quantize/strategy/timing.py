"""How auto and the ship check time models: short interleaved settings, rounds cut to a time budget on
slow models, and what one timed run is fed."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from edgeport.benchmarks import BenchSettings
from edgeport.benchmarks.speedup import Speedup
from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.data.feeds import BATCH_FIRST, first_feed, model_layout
from edgeport.quantize.inputs.run import fixed_batch, ort_session

# Only whether int8 beats fp32 at all is asked, and which option is fastest: short, interleaved, batch 1.
CHECK = BenchSettings(batch=1, threads=1, warmup=10, iterations=100, rounds=5)

# A measured round of one model takes at most this long: a 50 ms model would otherwise spend 15 s per round
# on 300 iterations, and auto measures several models over several rounds.
ROUND_SECONDS = 1.0


def budgeted(
    settings: BenchSettings, fp32_path: Path, sample: dict[str, np.ndarray], seconds: float = ROUND_SECONDS
) -> BenchSettings:
    """``settings`` with fewer iterations (at least 20) when the fp32 model is slow enough that a round would
    last longer than ``seconds``: the ordering asked for is clear long before, on models that slow."""
    session = ort_session(fp32_path)
    session.run(None, sample)  # the first run pays for allocations
    times = []
    for _ in range(3):
        started = time.perf_counter()
        session.run(None, sample)
        times.append(time.perf_counter() - started)
    per_run = sorted(times)[1]
    iterations = max(20, min(settings.iterations, int(seconds / max(per_run, 1e-6))))
    if iterations >= settings.iterations:
        return settings
    return dataclasses.replace(settings, iterations=iterations, warmup=min(settings.warmup, iterations))


def one_run(fp32_path: Path, validation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What one measured run is fed: one sample in either .npz layout, or a whole batch where the model
    fixes its batch size (the first samples, repeated when there are fewer)."""
    layout = model_layout(fp32_path, validation)
    fixed = fixed_batch(ort_session(fp32_path)) if layout == BATCH_FIRST else None
    if not fixed or fixed == 1:
        return first_feed(validation, layout)
    take = np.resize(np.arange(min(fixed, len(next(iter(validation.values()))))), fixed)
    return {name: np.ascontiguousarray(array[take]) for name, array in validation.items()}


def fallback_skip_reason(recipe: str, vs_fp32: Speedup, vs_faithful: dict[str, Speedup]) -> str | None:
    """Why the fallback of ``recipe`` (measured with every layer int8 against fp32 and against each faithful
    file already made, by name) is not tried, or None: keeping layers in float only slows it down.

    Lenient when nothing is faithful: skipped only when clearly no faster than fp32 (the whole interval above
    the margin; MiniLM's 0.95x [0.90, 1.00] can pay). Strict where a faithful file exists, an answer already
    (faster beyond noise, than fp32 and than that file): the PP-OCRv4 detector's fallback cost a minute in vain
    after its static per-channel, 0.89x [0.80, 1.07] fp32, passed the lenient test beside NNCF's faithful file."""
    low = vs_fp32.ratio_ci[0] if vs_fp32.ratio_ci else vs_fp32.ratio
    if low > PAYS_BELOW:
        return (
            f"the most faithful recipe ({recipe}) ran at {vs_fp32.text()} fp32's p50 with every layer int8: "
            "keeping layers in float cannot make it pay, so no fallback was tried"
        )
    if vs_faithful and not vs_fp32.pays:
        return (
            f"the most faithful onnxruntime recipe ({recipe}) ran at {vs_fp32.text()} fp32's p50 with every layer "
            "int8, not faster beyond noise, and a faithful file exists already: no fallback was tried"
        )
    slower = next((name for name, speedup in vs_faithful.items() if not speedup.pays), None)
    if slower is not None:
        return (
            f"the most faithful onnxruntime recipe ({recipe}), every layer int8, ran at "
            f"{vs_faithful[slower].text()} the p50 of {slower}: not faster, so no fallback was tried"
        )
    return None


__all__ = ["CHECK", "ROUND_SECONDS", "budgeted", "fallback_skip_reason", "one_run"]
