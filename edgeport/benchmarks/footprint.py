"""What a model costs beside its warm latency: memory and cold start, per model and runtime.

A warm latency loop says nothing about the memory a process keeps or about the first seconds of a
service. Both are measured here in fresh processes, one per cold start, by the same single-file runner
that measures on edge devices (remote_runner.cold_starts), so that two models or two runtimes compared
in one command never share one figure: each process's peak is its own. Per cold start: the resident
memory before the session (interpreter, numpy, the runtime's import, the inputs), the session's
creation, the first run, a few more runs, then the process's peak resident memory (VmHWM: what
`/usr/bin/time -v` reports as maximum resident set size). The model's own cost is the peak minus the
memory before the session. onnxruntime is measured with its CPU memory arena (its default: it keeps what
it allocated, about twice the model) and without it. The model file may be in the OS page cache: a
cold start here is a fresh process, not a cold disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeport.benchmarks import remote_runner
from edgeport.benchmarks.records import ONNXRUNTIME, BenchSettings, RuntimeChoice
from edgeport.benchmarks.runner_files import INPUTS, SETTINGS, runner_files
from edgeport.benchmarks.session import Feeds, Shapes, create_session, model_feeds
from edgeport.core.progress import SILENT, Progress
from edgeport.core.scratch import scratch_folder
from edgeport.errors import BenchmarkError, ConfigError

if TYPE_CHECKING:
    from edgeport.benchmarks.ssh_device import RemoteDevice

COLD_STARTS = 5  # fresh processes per model and runtime: enough for a median and a visible spread
MAX_COLD_STARTS = 100
_MISSING_PACKAGE = 3  # remote_runner's exit code when numpy or the runtime is not installed
_NUMBERS = ("session_create_ms", "first_inference_ms", "warm_median_ms", "peak_rss_mb")


def check_cold_starts(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COLD_STARTS:
        raise ConfigError(f"--cold-starts must be an integer from 1 to {MAX_COLD_STARTS}, got {count!r}")


def arena_settings(runtime: RuntimeChoice) -> tuple[bool | None, ...]:
    """The memory settings a footprint covers on ``runtime``: onnxruntime with its CPU arena (its default)
    and without; OpenVINO as it comes (None: no such setting)."""
    return (True, False) if runtime.name == "ort" else (None,)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values)}


def _checked(data: Any, where: str, count: int) -> list[dict[str, Any]]:
    """The runner's cold starts, each with finite non-negative figures, exactly ``count`` of them."""
    starts = data.get("cold_starts") if isinstance(data, dict) else None
    if not isinstance(starts, list) or len(starts) != count:
        raise BenchmarkError(f"{where}: the footprint answer is unusable: expected {count} cold starts")
    for start in starts:
        figures = [start.get(key) if isinstance(start, dict) else None for key in _NUMBERS]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < float("inf") for v in figures):
            raise BenchmarkError(f"{where}: the footprint answer is unusable: a cold start lacks {', '.join(_NUMBERS)}")
    return starts


def summarize_footprint(
    starts: list[dict[str, Any]], runtime: RuntimeChoice, arena: bool | None, environment: dict
) -> dict[str, Any]:
    """The record a result file keeps: medians with their range over the cold starts, and every start."""
    before = [s["rss_before_session_mb"] for s in starts if s.get("rss_before_session_mb") is not None]
    return {
        "runtime": runtime.name,
        "precision": runtime.precision,
        "cpu_mem_arena": arena,
        "cold_starts": len(starts),
        "peak_rss_mb": _spread([s["peak_rss_mb"] for s in starts]),
        # None where the platform does not say a process's current memory (no /proc)
        "rss_before_session_mb": _spread(before) if len(before) == len(starts) else None,
        "model_rss_mb": _spread([s["peak_rss_mb"] - b for s, b in zip(starts, before, strict=True)])
        if len(before) == len(starts)
        else None,
        "session_create_ms": _spread([s["session_create_ms"] for s in starts]),
        "first_inference_ms": _spread([s["first_inference_ms"] for s in starts]),
        "cold_start_ms": _spread([s["session_create_ms"] + s["first_inference_ms"] for s in starts]),
        "warm_median_ms": median(s["warm_median_ms"] for s in starts),
        "precision_used": starts[0].get("precision_used"),
        "environment": environment,
        "starts": starts,
    }


def footprint_settings(settings: BenchSettings, runtime: RuntimeChoice, arena: bool | None, count: int) -> dict:
    """What the runner reads: the measurement's settings on ``runtime``, the arena and the cold starts."""
    extra = {"cold_starts": count} | ({"cpu_mem_arena": arena} if arena is not None else {})
    return {**replace(settings, runtime=runtime).to_dict(), **extra}


def measure_footprint(
    model: str | Path,
    settings: BenchSettings,
    feeds: Mapping[str, np.ndarray],
    runtime: RuntimeChoice,
    arena: bool | None,
    count: int = COLD_STARTS,
    device: RemoteDevice | None = None,
) -> dict[str, Any]:
    """``count`` cold starts of ``model`` on ``runtime``, each a fresh process fed ``feeds``: on this machine,
    or on ``device`` through the same runner (`edgeport bench --remote`)."""
    check_cold_starts(count)
    extra = footprint_settings(settings, runtime, arena, count)
    if device is not None:
        from edgeport.benchmarks.remote import measure_remote_footprint  # ssh's modules only when remote

        data = measure_remote_footprint(model, device, replace(settings, runtime=runtime), feeds, extra)
        where = f"{device.url}: {model}"
    else:
        data = _run_locally(model, feeds, extra, runtime)
        where = str(model)
    starts = _checked(data, where, count)
    return summarize_footprint(starts, runtime, arena, data.get("environment") or {})


def default_footprint(
    model: str | Path,
    settings: BenchSettings,
    feeds: Mapping[str, np.ndarray],
    count: int,
    device: RemoteDevice | None = None,
) -> dict[str, Any]:
    """``count`` cold starts on ``settings.runtime`` at its default memory setting (onnxruntime's arena on),
    as a serving process would run: a search trial's footprint, here or on ``device``."""
    arena = arena_settings(settings.runtime)[0]
    return measure_footprint(model, settings, feeds, settings.runtime, arena, count, device)


def _run_locally(model: str | Path, feeds: Mapping[str, np.ndarray], settings: dict, runtime: RuntimeChoice) -> Any:
    with scratch_folder("footprint") as folder:
        for name, data in runner_files(feeds, settings).items():
            (folder / name).write_bytes(data)
        command = [sys.executable, remote_runner.__file__, str(model), str(folder / SETTINGS)]
        done = subprocess.run([*command, str(folder / INPUTS)], capture_output=True, text=True)
    last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    if done.returncode == _MISSING_PACKAGE:
        raise ConfigError(last)
    if done.returncode != 0:
        raise BenchmarkError(f"{model}: footprint on {runtime.label()} failed: {last}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{model}: the footprint runner's answer is not JSON ({exc})") from exc


def footprints_of(
    models: Mapping[str, Path],
    runtimes: Mapping[str, RuntimeChoice],
    settings: BenchSettings,
    feeds: Feeds | None,
    shapes: Shapes,
    count: int,
    device: RemoteDevice | None = None,
    progress: Progress = SILENT,
) -> dict[str, list[dict[str, Any]]]:
    """Every model's footprint on its runtime (onnxruntime with and without its arena), fed what its
    latency was measured on: ``feeds``, else inputs synthesised as the measurement synthesised them."""
    found: dict[str, list[dict[str, Any]]] = {}
    for label, path in models.items():
        runtime = runtimes[label]
        inputs = model_feeds(create_session(path, settings, ONNXRUNTIME), path, settings, feeds, shapes)
        found[label] = []
        for arena in arena_settings(runtime):
            what = f"footprint of {label} on {runtime.label()}" + ("" if arena is None else f", arena {arena}")
            with progress.task(f"{what}: {count} cold starts", total=1) as advance:
                found[label].append(measure_footprint(path, settings, inputs, runtime, arena, count, device))
                advance(1)
    return found


__all__ = [
    "COLD_STARTS",
    "arena_settings",
    "check_cold_starts",
    "default_footprint",
    "footprint_settings",
    "footprints_of",
    "measure_footprint",
    "summarize_footprint",
]
