"""How many calibration samples ort-static runs at once, and keeps at once, within a memory budget.

onnxruntime's calibrators keep what every run produced until the end of a ``collect_data`` call: the
histogram methods (entropy, percentile) every intermediate tensor of every run, MinMax two reductions
per tensor. And one run of the calibration session holds about every intermediate tensor of its batch
at once (graph optimisations off, a ReduceMin and a ReduceMax reading each tensor). Calibrated in
batches of 32 in one call, a ViT-S (97 MB) peaked at 19.9 GB and an 800x608 detector was killed.

So the calibration set goes through in chunks: ``quantize_static``'s own ``CalibStridedMinMax`` loop
calls ``collect_data`` once per chunk (the reader's ``set_range``, inputs/calibration.py), and each call
merges its chunk into the running result and drops the chunk's tensors:

- MinMax merges minima and maxima: the ranges are identical to one call's, whatever the chunks.
- Percentile widens and adds its histograms of absolute values, bins as wide as the first chunk's:
  thresholds within the spread between two calibration sets of the same size (tests measure it).
- Entropy goes through twice (``write_entropy_ranges``): first every tensor's minimum and maximum, then
  histograms over exactly the range one call over every sample would have used, so each chunk's counts
  add up to that one histogram and the thresholds are the same. (Merged the way onnxruntime merges
  chunks, the histograms kept the first chunk's bin width, ended up with more, finer bins, and the
  divergence search over them picked thresholds 5-18% tighter; kept in one call, the calibrator held
  every tensor of every sample: 0.28 GB per sample on a ViT-S.) The ranges go to onnxruntime's
  calibration cache file, which ``quantize_static`` then reads instead of calibrating.

``CalibMaxIntermediateOutputs`` is not used: onnxruntime's MinMax calibrator drops what it collected
when that limit is hit without computing the ranges first.

The sizes are measured, not fixed: one sample goes through a session that outputs every tensor the
calibrator reads (onnxruntime's own histogram augmentation), and the sum of their bytes sets how many
samples one run (the batch) and one chunk may hold within ``BUDGET``. For MinMax, which keeps two
reductions per tensor, the chunk is then smaller than it needs to be, at no cost to the ranges; a run's
working set is about the same for every method.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeport.data.feeds import BATCH_FIRST, Layout

if TYPE_CHECKING:
    from onnxruntime.quantization import CalibrationDataReader

# Bytes of intermediate tensors one calibration run, and one chunk of runs, may hold. The peak is about
# twice this above the model and its copies (the session's arena keeps its largest run; numpy copies
# while a histogram is made): a ViT-S (88 MB, 279 MB of tensors per sample, so one sample per run)
# calibrated 96 samples at 1.5 GiB, minmax or percentile, against 14.6 GiB in one batch-32 call.
# Tests set it lower.
BUDGET = 512 * 2**20


@dataclass(frozen=True)
class CalibrationPlan:
    """Samples per session run (``batch``) and per ``collect_data`` call (``chunk``, a multiple of
    ``batch`` unless it is every sample); ``pad``: a short last batch is filled up with repeats of its
    last sample; ``sample_bytes``: the measured intermediate bytes of one sample (None: not measured)."""

    batch: int
    chunk: int
    pad: bool
    sample_bytes: int | None

    def report(self) -> dict:
        return {
            "calibration_batch": self.batch,
            "calibration_chunk": self.chunk,
            "calibration_sample_bytes": self.sample_bytes,
        }


@dataclass(frozen=True)
class BatchRules:
    """What the model and the method allow: the layout of the calibration arrays, the batch size the
    model fixes (None: any), the calibration method (minmax, entropy, percentile) and the largest batch."""

    layout: Layout
    fixed: int | None
    method: str
    max_batch: int


def plan_calibration(sample_bytes: int | None, samples: int, rules: BatchRules, budget: int = 0) -> CalibrationPlan:
    """The batch and chunk for ``samples`` samples of ``sample_bytes`` each within ``budget`` (0: ``BUDGET``).

    A per-sample slice is one complete input, its batch size already inside it: one per run. A batch
    size the model fixes must be met (a short last batch padded). Otherwise as many samples as fit the
    budget, at least one. ORT's histogram collector stacks every batch of a chunk into one array, so a
    short last batch breaks it ("inhomogeneous shape"): padded too, which adds at most ``batch - 1``
    repeats of one sample to a histogram of every calibration value, and nothing to a min/max range."""
    budget = budget or BUDGET
    fits = max(1, budget // sample_bytes) if sample_bytes else 1
    if rules.layout != BATCH_FIRST:
        batch, pad = 1, False
    elif rules.fixed:
        batch, pad = rules.fixed, True
    else:
        batch, pad = max(1, min(rules.max_batch, fits, samples)), rules.method != "minmax"
    chunk = min(max(batch, fits // batch * batch), samples)
    return CalibrationPlan(batch, chunk, pad, sample_bytes)


def default_op_types(op_types: list[str] | None) -> list[str]:
    """The op types ``quantize_static`` calibrates for ``op_types_to_quantize=op_types``."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return op_types or sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def measure_sample_bytes(
    prepared: Path,
    feed: dict[str, np.ndarray],
    samples_in_feed: int,
    op_types: list[str] | None,
    scratch: Path | None = None,
) -> int | None:
    """Bytes of every tensor onnxruntime's calibrator reads, per sample, for ``feed`` (``samples_in_feed``
    samples) through ``prepared``; None when that session cannot be made or run (the calibration proper
    then reports why, or works without the estimate). Its scratch files go into ``scratch``, by default
    beside ``prepared``."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    probe = Path(scratch or Path(prepared).parent) / "sample-bytes.onnx"
    try:
        calibrator = create_calibrator(
            Path(prepared),
            default_op_types(op_types),
            augmented_model_path=str(probe),
            calibrate_method=CalibrationMethod.Percentile,  # its augmentation: every tensor an output
        )
        outputs = calibrator.infer_session.run(None, feed)
        del calibrator
        total = sum(output.nbytes for output in outputs if isinstance(output, np.ndarray))
    except Exception:  # onnxruntime and onnx raise their own types; the estimate is optional
        return None
    finally:
        for scratch in probe.parent.glob(probe.name + "*"):  # the model and any external data file
            with contextlib.suppress(OSError):  # else it goes with the staging folder
                scratch.unlink()
    return max(1, math.ceil(total / samples_in_feed))


def write_entropy_ranges(prepared: Path, reader: CalibrationDataReader, op_types: list[str] | None, path: Path) -> None:
    """onnxruntime's entropy calibration of ``prepared`` on ``reader``'s samples, chunk by chunk (``len``
    and ``set_range`` as inputs/calibration.py's reader has them), written to ``path`` in onnxruntime's
    calibration cache format: the same ranges as one ``collect_data`` over every sample, in the memory
    of one chunk (the module's text)."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import HistogramCollector, create_calibrator, save_tensors_data

    augmented = Path(prepared).with_name("entropy-augmented.onnx")  # scratch, beside the prepared model
    calibrator = create_calibrator(
        Path(prepared),
        default_op_types(op_types),
        augmented_model_path=str(augmented),
        calibrate_method=CalibrationMethod.Entropy,
    )
    names = [output.name for output in calibrator.infer_session.get_outputs()]
    wanted = calibrator.tensors_to_calibrate or set()
    extremes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    reader.set_range(0, len(reader))
    while inputs := reader.get_next():  # pass 1: the range of every tensor over every sample
        for name, value in zip(names, calibrator.infer_session.run(None, inputs), strict=True):
            if name in wanted:
                extremes[name] = _widened(extremes.get(name), np.asarray(value))
    calibrator.collector = collector = HistogramCollector(
        method="entropy",
        symmetric=calibrator.symmetric,
        num_bins=calibrator.num_bins,
        num_quantized_bins=calibrator.num_quantized_bins,
        percentile=calibrator.percentile,
        scenario=calibrator.scenario,
    )
    for name, (low, high) in extremes.items():  # what one call over every sample would start from
        threshold = np.array(max(abs(low), abs(high)), dtype=low.dtype)
        # the threshold as a 0-d array of the tensor's dtype, exactly what onnxruntime's collector passes
        empty = np.empty(0, dtype=low.dtype)
        hist, edges = np.histogram(empty, calibrator.num_bins, range=(-threshold, threshold))  # type: ignore[arg-type]
        collector.histogram_dict[name] = (hist, edges, low, high, threshold)
    for chunk in range(len(reader)):  # pass 2: each chunk's counts added within that fixed range
        reader.set_range(chunk, chunk + 1)
        with contextlib.redirect_stdout(io.StringIO()):  # a line per chunk from the collector
            calibrator.collect_data(reader)
    save_tensors_data(calibrator.compute_data(), path)
    del calibrator
    for scratch in augmented.parent.glob(augmented.name + "*"):
        with contextlib.suppress(OSError):  # else it goes with the staging folder
            scratch.unlink()


def _widened(seen: tuple[np.ndarray, np.ndarray] | None, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (min, max) of ``seen`` and ``value`` as onnxruntime's collector computes them (NaN ignored; 0
    for an empty tensor)."""
    if value.size:
        low, high = np.nanmin(value), np.nanmax(value)
    else:
        low = high = np.array(0, dtype=value.dtype)
    if seen is None:
        return low, high
    return min(seen[0], low), max(seen[1], high)
