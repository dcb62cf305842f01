"""``edgeport bench``: a sweep over batch sizes and thread counts, optionally A/B against a second model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgeport.benchmarks.compare import compare
from edgeport.benchmarks.footprint import footprints_of
from edgeport.benchmarks.groups import MeasureGroup, batches_to_measure, measure_groups
from edgeport.benchmarks.latency import (
    SCHEMA_VERSION,
    measure_interleaved,
    resolve_provider,
)
from edgeport.benchmarks.openvino_runtime import openvino_module, openvino_version
from edgeport.benchmarks.options import split_runtime, thread_warnings
from edgeport.benchmarks.pool.bench import measure_groups_on_pool
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.remote import measure_remote_models
from edgeport.benchmarks.request import BenchRequest, TorchModel
from edgeport.benchmarks.session import BATCH_AXIS, check_synthetic_size
from edgeport.benchmarks.sustained import TelemetryLog, device_logs, sustained_record
from edgeport.benchmarks.torch_latency import measure_torch
from edgeport.core.artifacts import atomic_write_json, check_output_file
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import BenchmarkError, ConfigError

__all__ = ["BenchRequest", "TorchModel", "installed_runtimes", "run_bench"]


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
    if request.remote is None and request.pool is None and any(r.name == "openvino" for r in runtimes.values()):
        openvino_module()  # exits 2 naming the extra to install, before anything is measured
    return models, runtimes


def _measure(
    group: MeasureGroup,
    models: dict[str, Path],
    request: BenchRequest,
    progress: Progress,
    runtimes: dict[str, RuntimeChoice],
) -> None:
    """One batch and thread setting: interleaved on this machine, or each model in turn on the request's
    remote device. Sustained: the telemetry, read between rounds here, or the device's own."""
    device, settings = request.remote, group.settings
    if device is not None:
        if len(set(runtimes.values())) > 1:
            raise BenchmarkError("--remote measures one runtime per command: drop --runtime all or B's @runtime")
        progress.log(f"measuring on {device.destination}: batch {settings.batch}, {settings.threads} thread(s)")
        group.measured, telemetry = measure_remote_models(models, settings, group.feeds, request.shapes, device)
        group.logs = device_logs(telemetry)
        return
    log = TelemetryLog() if request.sustained else None
    with progress.task(f"batch {settings.batch}, {settings.threads} thread(s)", total=settings.rounds) as advance:
        paths = {k: str(v) for k, v in models.items()}
        step = log.on_round(advance) if log is not None else advance
        group.measured = measure_interleaved(
            paths, settings, group.feeds, step, shapes=request.shapes, runtimes=runtimes
        )
    if log is not None:
        log.finish()  # the models were measured round by round together: one log for all of them
        group.logs = dict.fromkeys(group.measured, log)


def _report(
    request: BenchRequest, model: str, results: list, comparisons: list, warnings: list, pool: list | None = None
) -> dict:
    """The result file's content (see docs/bench.md), written to the request's output file when given."""
    report = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "vs": request.vs,
        "results": results,
        "comparisons": comparisons,
        "warnings": warnings,
        **({"pool": pool} if pool is not None else {}),
    }
    if request.output:
        atomic_write_json(Path(request.output), report)
    return report


def _measure_here(
    group: MeasureGroup, models: dict[str, Path], request: BenchRequest, progress: Progress, runtimes: dict
) -> None:
    """One group on this machine (or the request's remote device), its footprints and heat with it."""
    # --shape is used as given; the batch fills the other inputs (session.synthesize_inputs)
    _measure(group, models, request, progress, runtimes)
    if request.footprint:  # memory and cold start, fresh processes fed what the latency was measured on
        device, count = request.remote, request.footprint
        group.footprints = footprints_of(
            models, runtimes, group.settings, group.feeds, request.shapes, count, device, progress
        )


def _results(group: MeasureGroup) -> list[dict]:
    where, seconds = ({"device": group.device} if group.device else {}), group.settings.duration_s or 0.0
    return [
        {
            "model": label,
            **where,
            **result.to_dict(),
            **({"footprint": group.footprints[label]} if group.footprints else {}),
            **({"sustained": sustained_record(result, group.logs[label], seconds)} if label in group.logs else {}),
        }
        for label, result in group.measured.items()
    ]


def run_bench(request: BenchRequest, progress: Progress = SILENT) -> dict:
    """The sweep over the request's batches and threads, and its report (the result file's content):
    MODEL alone, A against B with --vs, or with --runtime all MODEL on every installed runtime, each
    compared with onnxruntime. A --torch request measures the PyTorch model instead (run_torch_bench);
    with a pool, each setting is measured on a device of its own, several at once (pool/bench.py)."""
    if request.torch is not None:
        return run_torch_bench(request, request.torch)
    if request.model is None:
        raise ConfigError("give MODEL.onnx (or --torch SPEC --weights W.safetensors)")
    models, runtimes = _models(request, request.model)
    warnings = thread_warnings(request.threads, request.remote is not None or request.pool is not None)
    groups = measure_groups(request, batches_to_measure(request, next(iter(models.values())), progress))
    pool_summary = None
    if request.pool is not None:
        pool_summary = measure_groups_on_pool(request.pool, groups, models, runtimes, request, progress)
    else:
        for group in groups:
            _measure_here(group, models, request, progress, runtimes)
    results, comparisons = [], []
    for group in groups:
        results += _results(group)
        first, *others = list(group.measured)  # A against B; with --runtime all, onnxruntime against each other
        for other in others:
            a, b = group.measured[first], group.measured[other]
            # round by round on this machine; a remote device runs A, then B (both on the group's one device)
            found = compare(
                a.samples_ms,
                b.samples_ms,
                a.settings,
                b.settings,
                paired=request.remote is None and request.pool is None,
                seed=group.settings.seed,
                margin=request.margin,
            )
            labels = {"a": first, "b": other} if request.runtimes else {}
            where = {"device": group.device} if group.device else {}
            comparisons.append({"batch": group.batch, "threads": group.settings.threads, **where, **labels, **found})
    warnings += emulation_warnings(results)
    return _report(request, str(next(iter(models.values()))), results, comparisons, warnings, pool_summary)


def emulation_warnings(results: list[dict]) -> list[str]:
    """One warning per device whose results were measured under user-mode emulation (qemu-user)."""
    emulated = sorted(
        {r.get("device") or r["settings"].get("remote") or "this machine" for r in results
         if r["environment"].get("cpu", {}).get("emulated")}
    )  # fmt: skip
    return [
        f"{where}: measured under emulation (another CPU's Python on this kernel, such as qemu-user): these "
        "timings are the emulator's, not the board's"
        for where in emulated
    ]


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
