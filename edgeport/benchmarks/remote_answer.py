"""The remote runner's answer, checked whole before the host believes any of it.

A device is not this process: its runner may be an older or edited copy, its Python may print
something else first, or the device may simply lie. An answer that is `{}` or `[]`, a string where a
number belongs, NaN or negative samples gave KeyError/TypeError tracebacks (NaN ones only after the
result file was written), and 3 samples for `--iterations 50` were accepted and judged by the gate as
if they were 50. So the answer is held to exactly what was asked (remote_runner.run's output) and
refused as one line naming the device and the field.
"""

from __future__ import annotations

import math
from typing import Any

from edgeport.benchmarks.records import BenchSettings
from edgeport.benchmarks.remote_runner import split_counts
from edgeport.errors import BenchmarkError

# Non-negative finite numbers the runner reports besides the samples.
_TIMINGS = ("session_create_ms", "first_inference_ms", "peak_rss_mb")


def _is_number(value: Any) -> bool:
    # bool is an int subclass: `true` is not a latency
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _samples(data: dict[str, Any], expected: int, refuse) -> list[float]:
    samples = data["samples_ms"]
    if not isinstance(samples, list):
        raise refuse("samples_ms", f"expected a list of {expected} numbers, got {type(samples).__name__}")
    if len(samples) != expected:
        raise refuse("samples_ms", f"{len(samples)} samples, but {expected} runs were asked for")
    bad = next((s for s in samples if not (_is_number(s) and s > 0)), None)
    if bad is not None:
        raise refuse("samples_ms", f"every sample must be a finite number of milliseconds > 0, got {bad!r}")
    return [float(s) for s in samples]


def check_answer(data: Any, where: str, settings: BenchSettings, sustained: bool = False) -> dict[str, Any]:
    """``data`` (the runner's parsed JSON) when it is exactly what ``settings`` asked for: every field
    present and of its type, ``settings.iterations`` finite positive samples split into the rounds
    ``split_counts`` makes (``sustained``: equal rounds of iterations/rounds runs, as many as the time
    allowed, and the device's telemetry). ``where`` names the device in the error."""

    def refuse(field: str, why: str) -> BenchmarkError:
        return BenchmarkError(f"{where}: the device's answer is unusable: {field}: {why}")

    if not isinstance(data, dict):
        raise BenchmarkError(f"{where}: the device's answer is not a JSON object (got {type(data).__name__})")
    for key in ("samples_ms", "round_sizes", *_TIMINGS, "environment"):
        if key not in data:
            raise refuse(key, "missing")
    if sustained:
        samples = _sustained_rounds(data, settings, refuse)
    else:
        samples = _samples(data, settings.iterations, refuse)
        expected_rounds = split_counts(settings.iterations, settings.rounds)
        if data["round_sizes"] != expected_rounds or not all(type(s) is int for s in data["round_sizes"]):
            raise refuse("round_sizes", f"expected {expected_rounds}, got {str(data['round_sizes'])[:100]}")
    for key in _TIMINGS:
        if not (_is_number(data[key]) and data[key] >= 0):
            raise refuse(key, f"expected a finite number >= 0, got {str(data[key])[:100]!r}")
    if not isinstance(data["environment"], dict):
        raise refuse("environment", f"expected a JSON object, got {type(data['environment']).__name__}")
    precision = data.get("precision_used")
    if precision is not None and not isinstance(precision, str):
        raise refuse("precision_used", f"expected a name such as f32 or null, got {precision!r}")
    return {**data, "samples_ms": samples, **{key: float(data[key]) for key in _TIMINGS}}


_READING = {"time_s": float, "temperature_c": float | None, "cpu_mhz": float | None, "throttle_count": int | None}


def _sustained_rounds(data: dict[str, Any], settings: BenchSettings, refuse) -> list[float]:
    """A sustained run's samples: equal rounds of iterations/rounds runs (at least one), with the device's
    telemetry readings (telemetry.py: before, during, after), each of its type."""
    size, sizes = max(1, settings.iterations // settings.rounds), data["round_sizes"]
    if not isinstance(sizes, list) or not sizes or any(type(s) is not int or s != size for s in sizes):
        raise refuse("round_sizes", f"expected rounds of {size} runs, got {str(sizes)[:100]}")
    samples = _samples(data, size * len(sizes), refuse)
    log = data.get("telemetry")
    if not isinstance(log, dict) or not isinstance(log.get("during"), list):
        raise refuse("telemetry", "expected readings before, during and after the run")
    for reading in [log.get("before"), log.get("after"), *log["during"]]:
        if not _reading_ok(reading):
            raise refuse("telemetry", f"a reading is not what the runner writes: {str(reading)[:100]}")
    return samples


def _reading_ok(reading: Any) -> bool:
    fine = isinstance(reading, dict) and isinstance(reading.get("missing"), list)
    for key, kind in _READING.items():
        value = reading.get(key) if isinstance(reading, dict) else None
        fine = fine and ((value is None and key != "time_s") or (_is_number(value) and isinstance(value, kind)))
    return fine


def check_reading(reading: Any, where: str) -> dict[str, Any]:
    """One telemetry reading from a device (telemetry.read_telemetry's form), or a one-line refusal."""
    if not _reading_ok(reading):
        raise BenchmarkError(f"{where}: the device's telemetry is unusable: {str(reading)[:100]}")
    return reading
