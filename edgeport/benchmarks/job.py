"""``edgeport bench``: a sweep over batch sizes and thread counts, optionally A/B against a second model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgeport.benchmarks.compare import compare
from edgeport.benchmarks.latency import (
    SCHEMA_VERSION,
    BenchResult,
    BenchSettings,
    create_session,
    measure_interleaved,
    resolve_provider,
    synthesize_inputs,
)
from edgeport.benchmarks.openvino_runtime import openvino_module
from edgeport.benchmarks.options import check_given_inputs, check_threads, split_runtime, thread_warnings
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.session import BATCH_AXIS, Feeds, Shapes, batch_of_shapes, check_synthetic_size
from edgeport.benchmarks.ssh_device import RemoteDevice
from edgeport.core.artifacts import atomic_write_json, check_output_file
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import BenchmarkError, ConfigError


def _measure_remote(
    models: dict[str, Path], settings: BenchSettings, feeds: Feeds | None, shapes: Shapes, device: RemoteDevice
) -> dict[str, BenchResult]:
    """Each model on the device in turn, with inputs made here (the device needs no model parsing)."""
    from edgeport.benchmarks.remote import measure_remote

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
    """Every runtime this machine can measure on (onnxruntime always; OpenVINO with its extra)."""
    from edgeport.benchmarks.openvino_runtime import openvino_version

    return ["ort"] + (["openvino"] if openvino_version() else [])


def _models(
    model: str,
    vs: str | None,
    inputs_path: str | None,
    output: str | None,
    base: BenchSettings,
    every_runtime: bool,
    openvino_precision: str | None,
    local: bool = True,
) -> tuple[dict[str, Path], dict[str, RuntimeChoice]]:
    """The models to measure by label (a, and b with --vs, or one per installed runtime with --runtime all)
    and the runtime each runs on, checked with the output file and the provider before minutes of
    measuring."""
    if every_runtime:
        names = installed_runtimes()
        models = {name: Path(model) for name in names}
        runtimes = {name: RuntimeChoice(name, openvino_precision if name == "openvino" else None) for name in names}
    else:
        models, runtimes = {"a": Path(model)}, {"a": base.runtime_choice}
        if vs:
            other, choice = split_runtime(vs)
            models["b"], runtimes["b"] = Path(other), choice or base.runtime_choice
    for path in models.values():
        if not path.is_file():
            raise BenchmarkError(f"{path}: model file not found")
    if output:
        check_output_file(output, (model, vs, inputs_path), "result file")
    if any(r.name == "ort" for r in runtimes.values()):
        resolve_provider(base.provider)
    if local and any(r.name == "openvino" for r in runtimes.values()):
        openvino_module()  # exits 2 naming the extra to install, before anything is measured
    return models, runtimes


def _given_inputs(inputs_path: str, model: Path, base: BenchSettings) -> tuple[Feeds, int]:
    """What --inputs feeds each run, and its batch size: batch-first arrays as they are (every sample in
    one batch), per-sample feeds (data/feeds.py) their first sample, one complete input."""
    from edgeport.data.feeds import PER_SAMPLE, feed_batch, feed_layout, first_feed, session_shapes
    from edgeport.data.model_inputs import load_model_inputs

    shapes = session_shapes(create_session(model, base, ONNXRUNTIME))  # the signature, as onnxruntime reads it
    arrays = load_model_inputs(inputs_path, list(shapes), "benchmark")[0]
    if feed_layout(shapes, arrays, inputs_path, "benchmark input", BenchmarkError) == PER_SAMPLE:
        feed = first_feed(arrays, PER_SAMPLE)
        return feed, feed_batch(shapes, feed)
    return arrays, len(next(iter(arrays.values())))


def _batch_of_shapes(model: Path, base: BenchSettings, shapes: Shapes) -> int:
    """Without --batch: the batch the --shapes give for inputs whose first axis is the batch, else 1."""
    if not shapes:
        return 1
    return batch_of_shapes(create_session(model, base, ONNXRUNTIME), shapes) or 1


def _measure(
    models: dict[str, Path],
    settings: BenchSettings,
    feeds: Feeds | None,
    shapes: Shapes,
    device: RemoteDevice | None,
    progress: Progress,
    runtimes: dict[str, RuntimeChoice],
) -> dict[str, BenchResult]:
    """One batch and thread setting: interleaved on this machine, or each model in turn on ``device``."""
    if device is not None:
        if len({r for r in runtimes.values()}) > 1:
            raise BenchmarkError("--remote measures one runtime per command: drop --runtime all or B's @runtime")
        progress.log(f"measuring on {device.destination}: batch {settings.batch}, {settings.threads} thread(s)")
        return _measure_remote(models, settings, feeds, shapes, device)
    with progress.task(f"batch {settings.batch}, {settings.threads} thread(s)", total=settings.rounds) as advance:
        paths = {k: str(v) for k, v in models.items()}
        return measure_interleaved(paths, settings, feeds, advance, shapes=shapes, runtimes=runtimes)


def _report(model: str, vs: str | None, results: list, comparisons: list, warnings: list, output: str | None) -> dict:
    """The result file's content (see docs/bench.md), written to ``output`` when given."""
    report = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "vs": vs,
        "results": results,
        "comparisons": comparisons,
        "warnings": warnings,
    }
    if output:
        atomic_write_json(Path(output), report)
    return report


def run_bench(
    model: str,
    vs: str | None,
    batches: list[int] | None,
    threads: list[int],
    base: BenchSettings,
    shapes: Shapes,
    inputs_path: str | None,
    output: str | None,
    progress: Progress = SILENT,
    remote: RemoteDevice | None = None,
    margin: float = 0.0,
    every_runtime: bool = False,
    openvino_precision: str | None = None,
) -> dict:
    """``batches``: the --batch values, None when not given (then the batch the --shapes give, else 1).
    ``remote``: the device to measure on instead of this machine. ``margin``: see compare().
    ``every_runtime`` (--runtime all): ``model`` on every installed runtime, compared with onnxruntime."""
    check_threads(threads, remote)
    check_given_inputs(inputs_path, batches, shapes)
    models, runtimes = _models(model, vs, inputs_path, output, base, every_runtime, openvino_precision, remote is None)
    warnings = thread_warnings(threads, remote)
    feeds = None
    if inputs_path is not None:
        feeds, given_batch = _given_inputs(inputs_path, next(iter(models.values())), base)
        batches = [given_batch]  # real inputs fix the batch size
    elif batches is None:
        batches = [_batch_of_shapes(next(iter(models.values())), base, shapes)]
    results, comparisons = [], []
    for batch in batches:
        for thread_count in threads:
            settings = dataclasses.replace(base, batch=batch, threads=thread_count)
            # --shape is used as given; the batch fills the other inputs (session.synthesize_inputs)
            measured = _measure(models, settings, feeds, shapes, remote, progress, runtimes)
            results += [{"model": label, **result.to_dict()} for label, result in measured.items()]
            first, *others = list(measured)  # A against B; with --runtime all, onnxruntime against each other
            for other in others:
                a, b = measured[first], measured[other]
                # round by round on this machine; a remote device runs A, then B
                paired = remote is None
                found = compare(
                    a.samples_ms, b.samples_ms, a.settings, b.settings, paired=paired, seed=base.seed, margin=margin
                )
                labels = {"a": first, "b": other} if every_runtime else {}
                comparisons.append({"batch": batch, "threads": thread_count, **labels, **found})
    return _report(str(next(iter(models.values()))), vs, results, comparisons, warnings, output)


def _torch_input(shapes: Shapes, inputs_path: str | None, seed: int) -> np.ndarray:
    """The --torch model's input: the --inputs array, or random values of --shape input=...'s shape."""
    from edgeport.data.model_inputs import load_model_inputs

    if inputs_path is not None:
        return load_model_inputs(inputs_path, ["input"], "benchmark")[0]["input"]
    if set(shapes) != {"input"}:
        raise ConfigError("a torch model needs its input: --shape input=1x3x32x32 or --inputs data.npz")
    shape = [1 if d == BATCH_AXIS else d for d in shapes["input"]]  # N: resized to each --batch below
    check_synthetic_size("input", shape, np.float32)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run_torch_bench(
    spec: str,
    weights: str,
    num_classes: int | None,
    engine: str | None,
    batches: list[int] | None,
    threads: list[int],
    base: BenchSettings,
    shapes: dict[str, tuple[int, ...]],
    inputs_path: str | None,
    output: str | None,
) -> dict:
    """The same sweep for a PyTorch model (fp32 weights from safetensors), with the same statistics.
    A torch model declares no batch axis: --batch resizes the first axis of --shape input=... (without
    --batch that axis is the batch)."""
    from edgeport.benchmarks.torch_latency import measure_torch
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import load_weights

    check_threads(threads, None)
    check_given_inputs(inputs_path, batches, shapes)
    if output:
        check_output_file(output, (weights, inputs_path), "result file")
    x = _torch_input(shapes, inputs_path, base.seed)
    batches = [len(x)] if inputs_path is not None or batches is None else batches
    for batch in batches:
        check_synthetic_size("input", [batch, *x.shape[1:]], x.dtype)
    model = build_model(
        ModelSpec.parse(spec), x.shape[1] if x.ndim == 4 else None, num_classes, x.shape[2] if x.ndim == 4 else None
    )
    load_weights(model, weights)
    model.eval()
    results = []
    for batch in batches:
        feed = x if inputs_path is not None else np.resize(x, (batch, *x.shape[1:]))
        for thread_count in threads:
            settings = dataclasses.replace(base, batch=batch, threads=thread_count)
            measured = measure_torch(model, feed, settings, engine=engine, label=spec)
            results.append({"model": "a", **measured.to_dict()})
    return _report(f"torch {spec} ({weights})", None, results, [], [], output)
