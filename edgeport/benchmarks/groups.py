"""What one ``edgeport bench`` sweep measures: the batch sizes with what each run is fed (--inputs at
--batch, or synthetic inputs), and one group per batch and thread setting, filled by the measurement."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.benchmarks.latency import BenchResult, BenchSettings, create_session
from edgeport.benchmarks.records import ONNXRUNTIME
from edgeport.benchmarks.request import BenchRequest
from edgeport.benchmarks.session import Feeds, batch_of_shapes
from edgeport.benchmarks.sustained import TelemetryLog
from edgeport.core.progress import Progress
from edgeport.errors import BenchmarkError, ConfigError


@dataclass
class MeasureGroup:
    """One batch and thread setting: what it measured, the footprints, the telemetry, the device it ran on."""

    batch: int
    settings: BenchSettings
    feeds: Feeds | None
    measured: dict[str, BenchResult] = dataclasses.field(default_factory=dict)
    footprints: dict[str, list] = dataclasses.field(default_factory=dict)
    logs: dict[str, TelemetryLog] = dataclasses.field(default_factory=dict)  # sustained: each model's telemetry
    device: str | None = None  # the pool device that measured it


def measure_groups(request: BenchRequest, batches: dict[int, Feeds | None]) -> list[MeasureGroup]:
    """One group per batch and thread setting (with --sustained: measured for that long)."""
    groups = []
    for batch, feeds in batches.items():
        for thread_count in request.threads:
            settings = dataclasses.replace(request.settings, batch=batch, threads=thread_count)
            if request.sustained:  # measure for that long, reading the platform's heat as it goes
                settings = dataclasses.replace(settings, duration_s=request.sustained)
            groups.append(MeasureGroup(batch, settings, feeds))
    return groups


def _given_inputs(
    inputs_path: str, model: Path, base: BenchSettings, batches: Sequence[int] | None, progress: Progress
) -> dict[int, Feeds]:
    """What --inputs feeds each run, per batch size measured. Batch-first arrays: batch N takes the file's
    first N samples (repeated when it holds fewer), at --batch (default 1, or the batch the model fixes);
    a file of 100 samples is not a batch of 100. Per-sample feeds (data/feeds.py): the first sample, one
    complete input, whose batch it fixes. Says what it measures."""
    # Imported here, for --inputs alone: the edgeport.data package imports scikit-learn (its splits), which
    # every other `edgeport bench` would load at start-up for nothing.
    from edgeport.data.feeds import PER_SAMPLE, feed_batch, feed_layout, first_feed, sample_count, session_shapes
    from edgeport.data.model_inputs import load_model_inputs

    shapes = session_shapes(create_session(model, base, ONNXRUNTIME))  # the signature, as onnxruntime reads it
    arrays = load_model_inputs(inputs_path, list(shapes), "benchmark")[0]
    count = sample_count(arrays)
    if feed_layout(shapes, arrays, inputs_path, "benchmark input", BenchmarkError) == PER_SAMPLE:
        feed = first_feed(arrays, PER_SAMPLE)
        batch = feed_batch(shapes, feed)
        if batches is not None and list(batches) != [batch]:
            raise ConfigError(
                f"--batch: {inputs_path} holds one complete input per sample (batch {batch} each); "
                f"drop --batch, or give batch-first arrays"
            )
        progress.log(f"--inputs {inputs_path}: {count} complete input(s); measuring the first (batch {batch})")
        return {batch: feed}
    fixed = _fixed_batch(shapes)
    if batches is None:
        batches = [fixed or 1]
    elif fixed and any(b != fixed for b in batches):
        raise ConfigError(f"--batch: {model} fixes its batch at {fixed}; use --batch {fixed} or leave it out")
    feeds = {}
    for batch in batches:
        take = np.resize(np.arange(count), batch)  # the first samples, repeated when the file holds fewer
        feeds[batch] = {name: np.ascontiguousarray(array[take]) for name, array in arrays.items()}
    repeated = " (repeated)" if max(batches) > count else ""
    progress.log(
        f"--inputs {inputs_path}: {count} sample(s); measuring batch {', '.join(map(str, batches))} from the first "
        f"{min(max(batches), count)}{repeated} (--batch N sets it)"
    )
    return feeds


def _fixed_batch(shapes: dict) -> int | None:
    """The batch size every input with a leading axis fixes, when they agree (None: an open batch)."""
    leading = {shape[0] for shape in shapes.values() if shape}
    if len(leading) == 1:
        (size,) = leading
        if isinstance(size, int) and size > 0:
            return size
    return None


def batches_to_measure(request: BenchRequest, model: Path, progress: Progress) -> dict[int, Feeds | None]:
    """The batch sizes to sweep, each with what it is fed (None: synthetic inputs): --inputs at --batch
    (``_given_inputs``); without --inputs or --batch, the batch the --shapes give for inputs whose first axis
    is the batch, else 1."""
    if request.inputs_path is not None:
        return dict(_given_inputs(request.inputs_path, model, request.settings, request.batches, progress))
    if request.batches is not None:
        return dict.fromkeys(request.batches)
    if not request.shapes:
        return {1: None}
    return {batch_of_shapes(create_session(model, request.settings, ONNXRUNTIME), request.shapes) or 1: None}
