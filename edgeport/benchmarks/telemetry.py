"""What the platform says about heat: CPU temperature, CPU frequency and thermal throttling, read from
Linux's sysfs where it exposes them. A figure the platform does not expose is None and named in
``missing``, never guessed (a virtual machine usually exposes none of them; /proc/cpuinfo's "cpu MHz"
is the nominal clock there, so it is not read).

- temperature: the hottest of /sys/class/thermal/thermal_zone*/temp (millidegrees Celsius);
- frequency: the mean of /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq (kHz), as MHz;
- throttling: the sum of /sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count (x86 counters of
  the times the CPU slowed itself for heat).

Standard library only: remote.py sends this file to a device beside the runner, which reads the device's
own telemetry during a sustained run there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SYS = Path("/sys")
THERMAL = "class/thermal"
CPUS = "devices/system/cpu"


def _numbers(paths: list[Path]) -> list[float]:
    values = []
    for path in paths:
        try:
            values.append(float(path.read_text().strip()))
        except (OSError, ValueError):  # a zone that cannot be read right now (some drivers refuse): skipped
            continue
    return values


def read_telemetry(root: Path = SYS) -> dict[str, Any]:
    """One reading: ``temperature_c``, ``cpu_mhz``, ``throttle_count`` (each None where not exposed),
    ``missing`` (what is not exposed, as a user would look for it) and the monotonic ``time_s``."""
    temps = _numbers(sorted((root / THERMAL).glob("thermal_zone*/temp")))
    freqs = _numbers(sorted((root / CPUS).glob("cpu[0-9]*/cpufreq/scaling_cur_freq")))
    throttles = _numbers(sorted((root / CPUS).glob("cpu[0-9]*/thermal_throttle/*_throttle_count")))
    missing = []
    if not temps:
        missing.append(f"temperature ({root / THERMAL} has no readable thermal_zone*/temp)")
    if not freqs:
        missing.append(f"CPU frequency ({root / CPUS}/cpu*/cpufreq does not exist)")
    if not throttles:
        missing.append("thermal throttle counters (cpu*/thermal_throttle)")
    return {
        "time_s": time.monotonic(),
        "temperature_c": max(temps) / 1000.0 if temps else None,
        "cpu_mhz": sum(freqs) / len(freqs) / 1000.0 if freqs else None,
        "throttle_count": int(sum(throttles)) if throttles else None,
        "missing": missing,
    }


# A drop of the mean CPU frequency larger than this between the start and the end of a run is read as
# throttling (heat or power), where the platform exposes the frequency.
FREQUENCY_DROP = 0.10


def throttling(before: dict[str, Any], after: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether the CPU throttled between two readings, and why it is believed; None when the platform
    exposes neither throttle counters nor the CPU frequency (then nothing can be said)."""
    if before["throttle_count"] is not None and after["throttle_count"] is not None:
        more = after["throttle_count"] - before["throttle_count"]
        if more > 0:
            return True, f"the CPU's thermal throttle counters rose by {more} during the run"
    if before["cpu_mhz"] and after["cpu_mhz"] is not None:
        drop = 1 - after["cpu_mhz"] / before["cpu_mhz"]
        if drop > FREQUENCY_DROP:
            change = f"{before['cpu_mhz']:.0f} -> {after['cpu_mhz']:.0f} MHz"
            return True, f"the mean CPU frequency fell {drop * 100:.0f}% ({change})"
    if before["throttle_count"] is None and before["cpu_mhz"] is None:
        return None, "not known: the platform exposes neither thermal throttle counters nor the CPU frequency"
    return False, "no throttle counter rose and the CPU frequency held"


SAMPLE_EVERY_S = 1.0  # a sustained run reads the telemetry at most this often, between rounds


def sustained_rounds(run_round: Callable[[], list], seconds: float) -> tuple[list[int], list, dict[str, Any]]:
    """`bench --sustained` on a device (the runner sends this file beside itself): ``run_round`` (one round's
    samples) again and again until ``seconds`` have passed (at least once), with this machine's telemetry
    before, between rounds (at most once per SAMPLE_EVERY_S) and after: the heat that matters is the board's."""
    log: dict[str, Any] = {"before": read_telemetry(), "during": []}
    deadline = time.monotonic() + seconds
    sizes: list[int] = []
    samples: list = []
    while not sizes or time.monotonic() < deadline:
        measured = run_round()
        samples += measured
        sizes.append(len(measured))
        last = log["during"][-1]["time_s"] if log["during"] else log["before"]["time_s"]
        if time.monotonic() - last >= SAMPLE_EVERY_S:
            log["during"].append(read_telemetry())
    log["after"] = read_telemetry()
    return sizes, samples, log


__all__ = ["FREQUENCY_DROP", "SAMPLE_EVERY_S", "read_telemetry", "sustained_rounds", "throttling"]
