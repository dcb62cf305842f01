"""`edgeport bench --sustained SECONDS`: a measurement as long as a device really runs, and what it did to
the device. "The ranking at minute 1 is not the ranking at minute 30": a phone went from 196 ms to
about 400 ms over 30 minutes as it heated. So the run measures for SECONDS and reports each model's
drift, the p50 of its last rounds over the p50 of its first (a fifth of the rounds each), with a 95%
interval from resampling those rounds; the platform's temperature, CPU frequency and throttle counters
before, during (about once a second) and after (telemetry.py; what the platform does not expose is
said); and whether the device throttled, in which case the result is flagged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeport.benchmarks.records import BenchResult
from edgeport.benchmarks.rounds import rounds_of
from edgeport.benchmarks.telemetry import SAMPLE_EVERY_S, read_telemetry, throttling
from edgeport.errors import ConfigError

MAX_SUSTAINED_S = 24 * 3600
MIN_ROUNDS_FOR_INTERVAL = 3  # rounds in each of the first and last fifths before an interval means anything
BOOTSTRAP = 2000


def check_sustained(seconds: float | None) -> None:
    if seconds is not None and not 1 <= seconds <= MAX_SUSTAINED_S:
        raise ConfigError(f"--sustained must be a number of seconds from 1 to {MAX_SUSTAINED_S}, got {seconds!r}")


@dataclass
class TelemetryLog:
    """Readings before, during (at most one per SAMPLE_EVERY_S, taken between rounds) and after a run."""

    before: dict[str, Any] = field(default_factory=read_telemetry)
    during: list[dict[str, Any]] = field(default_factory=list)
    after: dict[str, Any] | None = None

    def on_round(self, advance: Callable[[int], None]) -> Callable[[int], None]:
        """``advance`` (the progress bar's), which also takes a reading when one is due."""

        def step(n: int) -> None:
            advance(n)
            last = self.during[-1]["time_s"] if self.during else self.before["time_s"]
            if time.monotonic() - last >= SAMPLE_EVERY_S:
                self.during.append(read_telemetry())

        return step

    def finish(self) -> None:
        self.after = read_telemetry()


def device_logs(telemetry: dict[str, dict[str, Any]]) -> dict[str, TelemetryLog]:
    """Each model's telemetry as a device read it during its sustained run (remote_runner.py, checked by
    remote_answer.py), as the logs this machine keeps of its own runs."""
    return {
        label: TelemetryLog(before=readings["before"], during=list(readings["during"]), after=readings["after"])
        for label, readings in telemetry.items()
    }


def drift_of(result: BenchResult, seed: int = 0) -> dict[str, Any]:
    """The p50 of the last fifth of the rounds over the p50 of the first fifth, with a 95% bootstrap
    interval over those rounds' medians (None with fewer than MIN_ROUNDS_FOR_INTERVAL rounds a side)."""
    rounds = rounds_of(np.asarray(result.samples_ms, dtype=np.float64), result.settings)
    medians = np.median(rounds, axis=1)
    side = max(1, len(medians) // 5)
    first, last = medians[:side], medians[-side:]
    ratio = float(np.median(last) / np.median(first))
    interval = None
    if side >= MIN_ROUNDS_FOR_INTERVAL:
        rng = np.random.default_rng(seed)
        a = np.median(rng.choice(first, (BOOTSTRAP, side)), axis=1)
        b = np.median(rng.choice(last, (BOOTSTRAP, side)), axis=1)
        low, high = np.percentile(b / a, [2.5, 97.5])
        interval = [float(low), float(high)]
    return {
        "rounds": len(medians),
        "rounds_each_side": side,
        "first_p50_ms": float(np.median(first)),
        "last_p50_ms": float(np.median(last)),
        "last_over_first": ratio,
        "last_over_first_ci": interval,
    }


def sustained_record(result: BenchResult, log: TelemetryLog, seconds: float, seed: int = 0) -> dict[str, Any]:
    """What a result file keeps of a sustained run: the drift, the telemetry, the throttling verdict."""
    after = log.after or read_telemetry()
    throttled, why = throttling(log.before, after)
    temperatures = [r["temperature_c"] for r in (log.before, *log.during, after) if r["temperature_c"] is not None]
    return {
        "seconds": seconds,
        "drift": drift_of(result, seed),
        "throttled": throttled,
        "throttled_why": why,
        "temperature_c": {
            "before": log.before["temperature_c"],
            "max": max(temperatures, default=None),
            "after": after["temperature_c"],
        },  # fmt: skip
        "cpu_mhz": {"before": log.before["cpu_mhz"], "after": after["cpu_mhz"]},
        "not_exposed": log.before["missing"],
        "readings": [{k: r[k] for k in ("time_s", "temperature_c", "cpu_mhz")} for r in log.during],
    }


def drift_line(label: str, record: dict[str, Any]) -> str:
    """``A: last/first p50 1.02x [0.98, 1.06] over 60 s (30 rounds; 6 a side)``"""
    drift = record["drift"]
    ci = drift["last_over_first_ci"]
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else " (too few rounds for an interval)"
    return (
        f"{label}: p50 of the last rounds over the first {drift['last_over_first']:.2f}x{interval} over "
        f"{record['seconds']:g} s ({drift['rounds']} rounds, {drift['rounds_each_side']} a side)"
    )


__all__ = ["TelemetryLog", "check_sustained", "device_logs", "drift_line", "drift_of", "sustained_record"]
