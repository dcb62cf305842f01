"""``edgeport bench``: a sweep over batch sizes and thread counts, optionally A/B against a second model."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeport.benchmarks.compare import compare
from edgeport.benchmarks.footprint import footprints_of
from edgeport.benchmarks.latency import (
    SCHEMA_VERSION,
    BenchResult,
    BenchSettings,
    create_session,
    measure_interleaved,
    resolve_provider,
    synthesize_inputs,
)
from edgeport.benchmarks.openvino_runtime import openvino_module, openvino_version
from edgeport.benchmarks.options import split_runtime, thread_warnings
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.remote import measure_remote
from edgeport.benchmarks.request import BenchRequest, TorchModel
from edgeport.benchmarks.session import BATCH_AXIS, Feeds, Shapes, batch_of_shapes, check_synthetic_size
from edgeport.benchmarks.ssh_device import RemoteDevice
from edgeport.benchmarks.sustained import TelemetryLog, sustained_record
from edgeport.benchmarks.torch_latency import measure_torch
from edgeport.core.artifacts import atomic_write_json, check_output_file
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import BenchmarkError, ConfigError

__all__ = ["BenchRequest", "TorchModel", "installed_runtimes", "run_bench"]


def _measure_remote(
    models: dict[str, Path], settings: BenchSettings, feeds: Feeds | None, shapes: Shapes, device: RemoteDevice
) -> dict[str, BenchResult]:
    """Each model on the device in turn, with inputs made here (the device needs no model parsing)."""
    measured = {}
    for label, path in models.items():
        inputs = (
            feeds
            if feeds is not None
            # synthesised from the model's signature as onnxruntime reads it: the host needs no OpenVINO
            else synthesize_inputs(create_session(path, settings, ONNXRUNTIME), settings.batch, settings.seed, shapes)
        )
        measured[label] = measure_remote(path, device, settings, inputs)
    return measured


def installed_runtimes() -> list[str]:
    """The names of every runtime this machine can measure on (onnxruntime always; OpenVINO with its extra)."""
    return [ONNXRUNTIME.name] + (["openvino"] if openvino_version() else [])


def _models(request: BenchRequest, model: str) -> tuple[dict[str, Path], dict[str, RuntimeChoice]]:
    """The models to measure by label (a, and b with --vs, or one per installed runtime with --runtime all)
    and the runtime each runs on, checked with the output file and the provider before minutes of
    measuring."""
    base = request.settings
    if request.runtimes:
        installed = installed_runtimes()
        runtimes = {r.name: r for r in request.runtimes if r.name in installed}
        models = {name: Path(model) for name in runtimes}
    else:
        models, runtimes = {"a": Path(model)}, {"a": base.runtime}
        if request.vs:
            other, choice = split_runtime(request.vs)
            models["b"], runtimes["b"] = Path(other), choice or base.runtime
    for path in models.values():
        if not path.is_file():
            raise BenchmarkError(f"{path}: model file not found")
    if request.output:
        check_output_file(request.output, (model, request.vs, request.inputs_path), "result file")
    if ONNXRUNTIME.name in {r.name for r in runtimes.values()}:
        resolve_provider(base.provider)
    if request.remote is None and any(r.name == "openvino" for r in runtimes.values()):
        openvino_module()  # exits 2 naming the extra to install, before anything is measured
    return models, runtimes


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


def _measure(
    models: dict[str, Path],
    settings: BenchSettings,
    feeds: Feeds | None,
    request: BenchRequest,
    progress: Progress,
    runtimes: dict[str, RuntimeChoice],
    log: TelemetryLog | None = None,
) -> dict[str, BenchResult]:
    """One batch and thread setting: interleaved on this machine, or each model in turn on the request's
    remote device. ``log``: a sustained run's telemetry, read between rounds."""
    device = request.remote
    if device is not None:
        if len(set(runtimes.values())) > 1:
            raise BenchmarkError("--remote measures one runtime per command: drop --runtime all or B's @runtime")
        progress.log(f"measuring on {device.destination}: batch {settings.batch}, {settings.threads} thread(s)")
        return _measure_remote(models, settings, feeds, request.shapes, device)
    with progress.task(f"batch {settings.batch}, {settings.threads} thread(s)", total=settings.rounds) as advance:
        paths = {k: str(v) for k, v in models.items()}
        step = log.on_round(advance) if log is not None else advance
        return measure_interleaved(paths, settings, feeds, step, shapes=request.shapes, runtimes=runtimes)


def _report(request: BenchRequest, model: str, results: list, comparisons: list, warnings: list) -> dict:
    """The result file's content (see docs/bench.md), written to the request's output file when given."""
    report = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "vs": request.vs,
        "results": results,
        "comparisons": comparisons,
        "warnings": warnings,
    }
    if request.output:
        atomic_write_json(Path(request.output), report)
    return report


def _batches(request: BenchRequest, model: Path, progress: Progress) -> dict[int, Feeds | None]:
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


def run_bench(request: BenchRequest, progress: Progress = SILENT) -> dict:
    """The sweep over the request's batches and threads, and its report (the result file's content):
    MODEL alone, A against B with --vs, or with --runtime all MODEL on every installed runtime, each
    compared with onnxruntime. A --torch request measures the PyTorch model instead (run_torch_bench)."""
    if request.torch is not None:
        return run_torch_bench(request, request.torch)
    if request.model is None:
        raise ConfigError("give MODEL.onnx (or --torch SPEC --weights W.safetensors)")
    models, runtimes = _models(request, request.model)
    warnings = thread_warnings(request.threads, request.remote)
    batches = _batches(request, next(iter(models.values())), progress)
    results, comparisons = [], []
    for batch, feeds in batches.items():
        for thread_count in request.threads:
            settings = dataclasses.replace(request.settings, batch=batch, threads=thread_count)
            if request.sustained:  # measure for that long, reading the platform's heat as it goes
                settings = dataclasses.replace(settings, duration_s=request.sustained)
            log = TelemetryLog() if request.sustained else None
            # --shape is used as given; the batch fills the other inputs (session.synthesize_inputs)
            measured = _measure(models, settings, feeds, request, progress, runtimes, log)
            found = {}
            if request.footprint:  # memory and cold start, fresh processes fed what the latency was measured on
                device, count = request.remote, request.footprint
                found = footprints_of(models, runtimes, settings, feeds, request.shapes, count, device, progress)
            if log is not None:
                log.finish()
            results += [
                {
                    "model": label,
                    **result.to_dict(),
                    **({"footprint": found[label]} if found else {}),
                    **({"sustained": sustained_record(result, log, settings.duration_s or 0.0)} if log else {}),
                }
                for label, result in measured.items()
            ]
            first, *others = list(measured)  # A against B; with --runtime all, onnxruntime against each other
            for other in others:
                a, b = measured[first], measured[other]
                # round by round on this machine; a remote device runs A, then B
                found = compare(
                    a.samples_ms,
                    b.samples_ms,
                    a.settings,
                    b.settings,
                    paired=request.remote is None,
                    seed=settings.seed,
                    margin=request.margin,
                )
                labels = {"a": first, "b": other} if request.runtimes else {}
                comparisons.append({"batch": batch, "threads": thread_count, **labels, **found})
    return _report(request, str(next(iter(models.values()))), results, comparisons, warnings)


def _torch_input(request: BenchRequest) -> np.ndarray:
    """The --torch model's input: the --inputs array, or random values of --shape input=...'s shape."""
    # Imported here: the edgeport.data package imports scikit-learn (see _given_inputs).
    from edgeport.data.model_inputs import load_model_inputs

    if request.inputs_path is not None:
        return load_model_inputs(request.inputs_path, ["input"], "benchmark")[0]["input"]
    if set(request.shapes) != {"input"}:
        raise ConfigError("a torch model needs its input: --shape input=1x3x32x32 or --inputs data.npz")
    shape = [1 if d == BATCH_AXIS else d for d in request.shapes["input"]]  # N: resized to each --batch below
    check_synthetic_size("input", shape, np.float32)
    return np.random.default_rng(request.settings.seed).standard_normal(shape).astype(np.float32)


def run_torch_bench(request: BenchRequest, torch_model: TorchModel) -> dict:
    """The same sweep for a PyTorch model (fp32 weights from safetensors), with the same statistics.
    A torch model declares no batch axis: --batch resizes the first axis of --shape input=... (without
    --batch that axis is the batch)."""
    # `edgeport bench --torch` only: edgeport.models imports torch, which nothing else here needs (and
    # benchmarks must import without it: the remote runner, CI gates; see [tool.importlinter]).
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import load_weights

    if request.output:
        check_output_file(request.output, (torch_model.weights, request.inputs_path), "result file")
    x = _torch_input(request)
    if request.inputs_path is not None:  # as for ONNX models: --batch (default 1) samples of the file
        batches = list(request.batches or [1])
    else:
        batches = [len(x)] if request.batches is None else list(request.batches)
    for batch in batches:
        check_synthetic_size("input", [batch, *x.shape[1:]], x.dtype)
    channels, size = (x.shape[1], x.shape[2]) if x.ndim == 4 else (None, None)
    model = build_model(ModelSpec.parse(torch_model.spec), channels, torch_model.num_classes, size)
    load_weights(model, torch_model.weights)
    model.eval()
    results = []
    for batch in batches:
        if request.inputs_path is not None:
            feed = np.ascontiguousarray(x[np.resize(np.arange(len(x)), batch)])
        else:
            feed = np.resize(x, (batch, *x.shape[1:]))
        for thread_count in request.threads:
            settings = dataclasses.replace(request.settings, batch=batch, threads=thread_count)
            measured = measure_torch(model, feed, settings, engine=torch_model.engine, label=torch_model.spec)
            results.append({"model": "a", **measured.to_dict()})
    return _report(request, f"torch {torch_model.spec} ({torch_model.weights})", results, [], [])
