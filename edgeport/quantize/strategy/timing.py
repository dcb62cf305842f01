"""How auto and the ship check time models: short interleaved settings, rounds cut to a time budget on
slow models, and what one timed run is fed."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from edgeport.benchmarks import BenchSettings
from edgeport.benchmarks.records import BenchResult
from edgeport.benchmarks.rounds import CONFIDENCE
from edgeport.benchmarks.speedup import Speedup, fastest_beyond_noise, speedup_of
from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.data.feeds import BATCH_FIRST, first_feed, model_layout
from edgeport.quantize.inputs.run import fixed_batch, ort_session

# Only whether int8 beats fp32 at all is asked, and which option is fastest: short, interleaved, batch 1.
CHECK = BenchSettings(batch=1, threads=1, warmup=10, iterations=100, rounds=5)

# While the ship decision is open (Speedup.open: the point ratio pays, the interval reaches 1.0), the two it
# weighs are measured again, at most this many times, and joined round by round. The interval's confidence
# is split over every look the decision may take (Bonferroni), as the gate's is: looking again until an
# interval clears 1.0 would otherwise pass a model that is not faster more often than 5% of the time.
EXTRA_LOOKS = 2
SHIP_CONFIDENCE = 1 - (1 - CONFIDENCE) / (1 + EXTRA_LOOKS)

# One model's timed runs, all its rounds together, last about this long (at least 20 runs): a 50 ms model
# would otherwise spend 15 s on the ranking's 300 iterations, and auto measures several models.
MODEL_SECONDS = 1.0


def budgeted(
    settings: BenchSettings, fp32_path: Path, sample: dict[str, np.ndarray], seconds: float = MODEL_SECONDS
) -> BenchSettings:
    """``settings`` with fewer iterations (at least 20, over all rounds) when the fp32 model is slow enough
    that its runs would last longer than ``seconds`` in all: the ordering asked for is clear long before, on
    models that slow, and an open ship decision is measured again (``conclusive``)."""
    session = ort_session(fp32_path, spinning=True)  # as the timed sessions run
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


def conclusive(
    int8: BenchResult, fp32: BenchResult, again: Callable[[], tuple[BenchResult, BenchResult]]
) -> tuple[Speedup, int]:
    """int8 against fp32 at ``SHIP_CONFIDENCE``, measured again (``again``: the two interleaved, as before)
    and joined while the verdict is open, at most ``EXTRA_LOOKS`` times; the speedup and the looks added.

    Why: five short rounds leave one round able to carry the interval past 1.0. The PP-OCRv4 detector's
    NNCF int8 on OpenVINO measured 0.72x [0.56, 0.92] and 0.71x [0.64, 1.15] fp32 on OpenVINO in two runs
    (AMD EPYC Zen 3): one shipped, the other exited 1 with the same file."""
    speedup = speedup_of(int8, fp32, confidence=SHIP_CONFIDENCE)
    looks = 0
    while speedup.open and looks < EXTRA_LOOKS:
        more_int8, more_fp32 = again()
        int8, fp32 = int8.followed_by(more_int8), fp32.followed_by(more_fp32)
        speedup = speedup_of(int8, fp32, confidence=SHIP_CONFIDENCE)
        looks += 1
    return speedup, looks


def settled_int8(
    listed: list[str], results: Mapping[str, BenchResult], again: Callable[[str, str], tuple[BenchResult, BenchResult]]
) -> tuple[str, int]:
    """The int8 option to weigh, of ``listed`` (labels in ``results``, the preferred first), and how many times
    two were measured again to decide it: the first unless another is clearly faster (``fastest_beyond_noise``).
    Where the point-fastest beats it by the margin but the interval is open, the two are measured again
    (``again(fastest, first)``) while it is, as the ship decision is (timing.conclusive): MiniLM once shipped
    NNCF's file at 0.88x fp32 beside onnxruntime's dynamic+fallback at 0.60x, one noisy round having stretched
    their interval (AMD EPYC Zen 3)."""
    first = fastest_beyond_noise(listed, results, SHIP_CONFIDENCE)
    fastest = min(listed, key=lambda label: results[label].stats["p50_ms"])
    if fastest == first:
        return first, 0
    speedup, looks = conclusive(results[fastest], results[first], lambda: again(fastest, first))
    return (fastest if speedup.pays else first), looks


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


__all__ = [
    "CHECK",
    "EXTRA_LOOKS",
    "MODEL_SECONDS",
    "SHIP_CONFIDENCE",
    "budgeted",
    "conclusive",
    "fallback_skip_reason",
    "one_run",
    "settled_int8",
]
