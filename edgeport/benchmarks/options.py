"""The options of ``edgeport bench``, parsed and checked before any work: batch and thread lists,
--shape (``N`` for the batch axis), ``--vs FILE@runtime``, and the combinations refused rather than ignored."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from edgeport.benchmarks.records import RUNTIMES, RuntimeChoice
from edgeport.benchmarks.session import BATCH_AXIS, Shapes
from edgeport.core.bench_defaults import MAX_REMOTE_THREADS, MAX_THREADS_PER_CORE
from edgeport.errors import ConfigError


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option} expects comma-separated integers such as 1,8, got {text!r}") from exc
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{option} values must be positive integers, got {text!r}")
    return values


def _dim(text: str, axis: int) -> int:
    # `N` as the first axis: the batch axis, filled by each --batch value (a sweep over a model whose
    # other axes are dynamic too); session.BATCH_AXIS stands for it until then.
    if axis == 0 and text == "n":
        return BATCH_AXIS
    return int(text)


def parse_shapes(items: tuple[str, ...]) -> Shapes:
    shapes = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(_dim(d, axis) for axis, d in enumerate(dims.lower().split("x")))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 and d != BATCH_AXIS for d in shape):
            raise ConfigError(f"--shape expects name=1x3x32x32 (or name=Nx3x32x32 to take --batch), got {item!r}")
        shapes[name] = shape
    return shapes


def split_runtime(text: str) -> tuple[str, RuntimeChoice | None]:
    """``B.onnx@openvino/bf16`` -> (``B.onnx``, that runtime); a plain path -> (path, None). A file that
    exists under the whole text is that file, even when its name ends in ``@ort``."""
    if Path(text).is_file():
        return text, None
    path, at, spec = text.rpartition("@")
    if not at or spec.split("/")[0] not in RUNTIMES:
        return text, None
    name, _, precision = spec.partition("/")
    return path, RuntimeChoice(name, precision or None)


def check_threads(threads: Sequence[int], remote: bool) -> None:
    """--threads within MAX_THREADS_PER_CORE per logical core here, or MAX_REMOTE_THREADS on a remote device
    (its cores are unknown before connecting): beyond that a run measures contention, if it ends at all."""
    limit = MAX_REMOTE_THREADS if remote else MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    where = "for a remote device" if remote else f"here ({MAX_THREADS_PER_CORE} per logical core)"
    too_many = [t for t in threads if t > limit]
    if too_many:
        raise ConfigError(f"--threads {too_many[0]} is more than the {limit} allowed {where}")


def check_given_inputs(inputs_path: str | None, shapes: Shapes) -> None:
    """--inputs fixes every shape but the batch (its samples fill --batch): a --shape beside it would be
    ignored, so it is refused instead."""
    if inputs_path is None:
        return
    if shapes:
        raise ConfigError("--shape: the arrays of --inputs fix every input's shape; drop --shape or --inputs")


def thread_warnings(threads: Sequence[int], remote: bool) -> list[str]:
    """Thread counts above this machine's logical cores (not known for a remote device)."""
    if remote:
        return []
    cores = os.cpu_count() or 1
    return [
        f"{t} threads is more than the {cores} logical cores here; latency will suffer from contention"
        for t in threads
        if t > cores
    ]
