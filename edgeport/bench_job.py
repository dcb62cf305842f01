"""``edgeport bench``: a sweep over batch sizes and thread counts, optionally A/B against a second model."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from edgeport.artifacts import atomic_write_json, check_output_file
from edgeport.benchmarks.compare import compare
from edgeport.benchmarks.latency import SCHEMA_VERSION, BenchSettings, measure_interleaved, resolve_provider
from edgeport.errors import BenchmarkError, ConfigError
from edgeport.progress import SILENT, Progress


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option} expects comma-separated integers such as 1,8, got {text!r}") from exc
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{option} values must be positive integers, got {text!r}")
    return values


def parse_shapes(items: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise ConfigError(f"--shape expects name=1x3x32x32, got {item!r}")
        shapes[name] = shape
    return shapes


def _measure_remote(models: dict[str, Path], settings: BenchSettings, feeds, shapes, remote) -> dict:
    """Each model on the device in turn, with inputs made here (the device needs no model parsing)."""
    from edgeport.benchmarks.latency import create_session, synthesize_inputs
    from edgeport.benchmarks.remote import measure_remote

    measured = {}
    for label, path in models.items():
        inputs = (
            feeds
            if feeds is not None
            else synthesize_inputs(create_session(path, settings), settings.batch, settings.seed, shapes)
        )
        measured[label] = measure_remote(path, remote, settings, inputs)
    return measured


def run_bench(
    model: str,
    vs: str | None,
    batches: list[int],
    threads: list[int],
    base: BenchSettings,
    shapes: dict[str, tuple[int, ...]],
    inputs_path: str | None,
    output: str | None,
    progress: Progress = SILENT,
    remote=None,
    margin: float = 0.0,
) -> dict:
    """``remote``: a RemoteTarget to measure on instead of this machine. ``margin``: see compare()."""
    models = {"a": Path(model)}
    if vs:
        models["b"] = Path(vs)
    for path in models.values():
        if not path.is_file():
            raise BenchmarkError(f"{path}: model file not found")
    if output:
        check_output_file(output, (model, vs, inputs_path), "result file")  # before minutes of measuring
    resolve_provider(base.provider)  # refuse a missing provider before any work
    cores = os.cpu_count() or 1
    warnings = (
        []
        if remote is not None
        else [
            f"{t} threads is more than the {cores} logical cores here; latency will suffer from contention"
            for t in threads
            if t > cores
        ]
    )
    feeds = None
    if inputs_path is not None:
        from edgeport.benchmarks.latency import create_session
        from edgeport.data.model_inputs import load_model_inputs

        names = [arg.name for arg in create_session(models["a"], base).get_inputs()]
        feeds, _ = load_model_inputs(inputs_path, names, "benchmark")
        batches = [len(next(iter(feeds.values())))]  # real inputs fix the batch size
    results, comparisons = [], []
    for batch in batches:
        for thread_count in threads:
            settings = dataclasses.replace(base, batch=batch, threads=thread_count)
            batch_shapes = {k: (batch, *v[1:]) for k, v in shapes.items()}
            if remote is not None:
                progress.log(f"measuring on {remote.destination}: batch {batch}, {thread_count} thread(s)")
                measured = _measure_remote(models, settings, feeds, batch_shapes, remote)
            else:
                with progress.task(f"batch {batch}, {thread_count} thread(s)", total=settings.rounds) as advance:
                    measured = measure_interleaved(
                        {k: str(v) for k, v in models.items()}, settings, feeds, advance, shapes=batch_shapes
                    )
            results.append({"model": "a", **measured["a"].to_dict()})
            if "b" in measured:
                results.append({"model": "b", **measured["b"].to_dict()})
                comparisons.append(
                    {
                        "batch": batch,
                        "threads": thread_count,
                        # round by round on this machine; a remote device runs A, then B
                        **compare(
                            measured["a"].samples_ms,
                            measured["b"].samples_ms,
                            measured["a"].settings,
                            measured["b"].settings,
                            paired=remote is None,
                            seed=base.seed,
                            margin=margin,
                        ),
                    }
                )
    report = {
        "schema_version": SCHEMA_VERSION,
        "model": str(models["a"]),
        "vs": str(models.get("b")) if vs else None,
        "results": results,
        "comparisons": comparisons,
        "warnings": warnings,
    }
    if output:
        atomic_write_json(Path(output), report)
    return report


def run_torch_bench(
    spec: str,
    weights: str,
    num_classes: int | None,
    engine: str | None,
    batches: list[int],
    threads: list[int],
    base: BenchSettings,
    shapes: dict[str, tuple[int, ...]],
    inputs_path: str | None,
    output: str | None,
) -> dict:
    """The same sweep for a PyTorch model (fp32 weights from safetensors), with the same statistics."""
    from edgeport.data.model_inputs import load_model_inputs
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import load_weights
    from edgeport.torch_bench import measure_torch

    if output:
        check_output_file(output, (weights, inputs_path), "result file")
    if inputs_path is not None:
        x = load_model_inputs(inputs_path, ["input"], "benchmark")[0]["input"]
        batches = [len(x)]
    elif set(shapes) == {"input"}:
        x = np.random.default_rng(base.seed).standard_normal(shapes["input"]).astype(np.float32)
    else:
        raise ConfigError("a torch model needs its input: --shape input=1x3x32x32 or --inputs data.npz")
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
    report = {
        "schema_version": SCHEMA_VERSION,
        "model": f"torch {spec} ({weights})",
        "vs": None,
        "results": results,
        "comparisons": [],
        "warnings": [],
    }
    if output:
        atomic_write_json(Path(output), report)
    return report
