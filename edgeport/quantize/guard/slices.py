"""Every part of an output judged, not only the large one.

An output whose parts differ in scale (a detector's box coordinates of 0-320 beside class scores of 0-1
in one tensor) is also judged part by part along its feature axis (``slice_fidelity``). One int8 scale
for the whole tensor can destroy the small part (every score exactly 0 or 1.255, box recall 0.49) while
the cosine, dominated by the large part, stays at 0.9994.

A module of its own: finding the feature axis (scales, position axes) is a job apart from the whole-output
metrics of ``fidelity.py``, and neither needs the other.
"""

from __future__ import annotations

import numpy as np

from edgeport.quantize.tolerance import SLICE_MAX_ERROR

FEATURE_AXIS_MAX = 4096  # a longer axis is positions (anchors, pixels), never features
MIN_SLICE_VALUES = 8  # a slice's range from fewer values (a [N, D] output on 2 samples) is chance
# Slices are judged only where the output has parts of different scales: sorted by range, two neighbouring
# slices at least this factor apart (boxes of 0-320 beside scores of 0-1: 320). Slice scales that run on
# without a break (an embedding's units, 0.001 to 0.025 in MiniLM's pooler) are one part: uniform int8 noise
# that the cosine accepts would still swamp the smallest of them, and the cosine judges such an output.
SLICE_GAP = 10.0
# Neighbouring slices this correlated (median over neighbours) make a position axis (rows, columns, time
# steps, anchors: each slice holds every feature), not a feature axis: slicing along it judges rows of a
# map, and a row of flat background would fail a faithful model.
POSITIONAL_CORRELATION = 0.8
POSITIONAL_SAMPLE_VALUES = 1 << 20  # the correlations are read on the first samples, up to this many values
WORST_SLICES = 5


def _positional(reference: np.ndarray, axis: int) -> bool:
    """Whether neighbouring slices along ``axis`` move together (median Pearson correlation of slice i and
    i + 1, on the first samples): rows of a map, steps of a sequence, anchors, each holding every feature."""
    per_sample = max(1, reference[:1].size)
    first = reference[: max(1, POSITIONAL_SAMPLE_VALUES // per_sample)]
    slices = np.moveaxis(first, axis, 0).reshape(first.shape[axis], -1)
    if slices.shape[1] < 2:
        return False
    centred = slices - slices.mean(1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    pairs = norms[:-1] * norms[1:]
    valid = pairs > 0
    if not valid.any():
        return False
    correlation = (centred[:-1] * centred[1:]).sum(1)[valid] / pairs[valid]
    return bool(np.median(correlation) >= POSITIONAL_CORRELATION)


def _slice_ranges(reference: np.ndarray, axis: int) -> np.ndarray:
    others = tuple(a for a in range(reference.ndim) if a != axis)
    return reference.max(axis=others) - reference.min(axis=others)


def feature_axis(reference: np.ndarray) -> tuple[int, np.ndarray] | None:
    """The axis along which an output's parts differ in scale, and its slices' fp32 ranges; None when no
    axis does (slicing would add nothing the cosine does not see).

    Candidates: the axes after the samples axis with 2..``FEATURE_AXIS_MAX`` entries, at least
    ``MIN_SLICE_VALUES`` values per slice, that are not position axes (``_positional``: neighbouring
    slices alike). Of those, the one whose non-constant slice ranges, sorted, show the widest break
    between neighbours, kept when that break is at least ``SLICE_GAP``. So [N, anchors, 4+1+classes] and
    [N, 4+classes, anchors] slice the 4+1+classes axis, [N, T, hidden] and [N, H, W, C] the last, [N, C, H, W]
    the channels, and [N, 1, H, W] nothing; parts of one scale, nothing."""
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    if reference.ndim < 2 or not np.isfinite(scale) or scale == 0.0:
        return None
    best: tuple[float, int, np.ndarray] | None = None
    for axis in range(1, reference.ndim):
        length = reference.shape[axis]
        if not 2 <= length <= FEATURE_AXIS_MAX or reference.size // length < MIN_SLICE_VALUES:
            continue
        ranges = _slice_ranges(reference, axis)
        live = ranges[ranges > 1e-6 * scale]
        if len(live) < 2 or _positional(reference, axis):
            continue
        ordered = np.sort(live)
        gap = float(np.max(ordered[1:] / ordered[:-1]))
        if best is None or gap > best[0]:
            best = (gap, axis, ranges)
    if best is None or best[0] < SLICE_GAP:
        return None
    return best[1], best[2]


def slice_fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Each slice of the output along its feature axis (``feature_axis``) judged on its own: relative
    error = RMS(candidate - reference) / RMS(reference) over the slice (the slice's own noise-to-signal
    ratio, as ``sqnr_db`` is the whole output's); constant slices are skipped. ``slice_agreement``: the
    share of slices whose error is at most ``SLICE_MAX_ERROR``, with the axis, the count judged and the
    worst slices (index along the axis, error). Empty when there is nothing to slice: no feature axis, or
    probabilities (every fp32 value in [0, 1], where one int8 scale has a step of at most 1/255, so no
    part can fall below it).

    The slice's RMS, not its range, measures its signal: a detector's class score is near 0 on all but a
    few anchors, so its RMS error over the range stays small (0.02) when int8 rounds every score to 0 or
    1.255 and the mid-range scores that make the detections vanish; over its RMS it is 0.7. Nor its
    spread: a near-constant slice (a saturated tanh unit, 0.99999 on every sample) would fail on any noise."""
    if reference.shape != candidate.shape or reference.ndim < 2 or not len(reference):
        return {}
    if reference.min() >= 0.0 and reference.max() <= 1.0:
        return {}
    found = feature_axis(reference)
    if found is None:
        return {}
    axis, ranges = found
    others = tuple(a for a in range(reference.ndim) if a != axis)
    rms = np.sqrt(np.mean((candidate - reference) ** 2, axis=others))
    signal = np.sqrt(np.mean(reference**2, axis=others))
    live = np.flatnonzero((ranges > 1e-6 * float(np.max(np.abs(reference)))) & (signal > 0))
    error = rms[live] / signal[live]
    holds = error <= SLICE_MAX_ERROR  # NaN never holds
    worst = np.argsort(-np.nan_to_num(error, nan=np.inf), kind="stable")[:WORST_SLICES]
    return {
        "slice_agreement": float(holds.mean()),
        "slice_axis": axis,
        "slices_judged": len(live),
        "worst_slices": [{"index": int(live[i]), "error": float(error[i])} for i in worst],
    }
