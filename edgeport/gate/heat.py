"""Heat in the gate: a result measured while the device throttled does not pass, and a target may ask the
gate to let the device cool before it measures.

A target's ``idle_temperature_c`` (the device's temperature at rest, as its owner measured it) turns
the cool-down on: before measuring, the gate waits until the hottest thermal zone is within
``cool_down_c`` degrees of it (default 5), reading about once a second, for at most
``cool_down_timeout_s`` (default 300). A device still warmer then fails the ``cool_down`` check: its
latency would be a warm device's. A machine that exposes no temperature cannot honour the request:
the gate refuses it up front (exit 2) instead of measuring as if it had.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeport.benchmarks.telemetry import SYS, read_telemetry
from edgeport.errors import ConfigError
from edgeport.gate.budgets import GateTarget
from edgeport.gate.decide import Check

POLL_S = 1.0


def throttled_check(sustained: dict[str, Any] | None) -> list[Check]:
    """A failing ``throttling`` check for a result its own sustained run flagged (bench --sustained)."""
    if not sustained or sustained.get("throttled") is not True:
        return []
    why = str(sustained.get("throttled_why") or "the run flagged it")
    return [Check("throttling", "none while measuring", None, "", None, "fail", f"measured while throttled: {why}")]


def check_cool_down_possible(name: str, target: GateTarget, root: Path = SYS) -> None:
    """Refuse, before anything is measured, a cool-down this machine cannot check."""
    if target.idle_temperature_c is None:
        return
    reading = read_telemetry(root)
    if reading["temperature_c"] is None:
        raise ConfigError(
            f"target {name!r} asks for a cool-down to {target.idle_temperature_c:g} C + {target.cool_down_c:g}, but "
            f"this machine exposes no temperature: {reading['missing'][0]}"
        )


def cool_down(
    target: GateTarget,
    root: Path = SYS,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
    read: Callable[[], dict[str, Any]] | None = None,
) -> Check | None:
    """Wait for the device to cool to the target's idle temperature + cool_down_c; the ``cool_down`` check
    (pass: cool enough, after how long; fail: still warm at the time limit). None without a cool-down.
    ``read``: the device's telemetry (a pool's device, read over ssh); default: this machine's, under ``root``."""
    idle = target.idle_temperature_c
    if idle is None:
        return None
    if read is None:
        read = lambda: read_telemetry(root)  # noqa: E731
    limit = idle + target.cool_down_c
    start = time.monotonic()
    reading = read()
    while reading["temperature_c"] is not None and reading["temperature_c"] > limit:
        waited = time.monotonic() - start
        if waited >= target.cool_down_timeout_s:
            return Check(
                "cool_down",
                f"<= {limit:g} C",
                reading["temperature_c"],
                "C",
                None,
                "fail",
                f"still {reading['temperature_c']:.1f} C after {waited:.0f} s "
                f"(idle {idle:g} C + {target.cool_down_c:g})",
            )
        if not int(waited) % 10:
            log(f"cooling down: {reading['temperature_c']:.1f} C, waiting for {limit:g} C")
        sleep(POLL_S)
        reading = read()
    if reading["temperature_c"] is None:
        raise ConfigError(f"the temperature stopped being readable while cooling down: {reading['missing'][0]}")
    waited = time.monotonic() - start
    reason = (
        f"{reading['temperature_c']:.1f} C after {waited:.0f} s of cooling (idle {idle:g} C + {target.cool_down_c:g})"
    )
    return Check("cool_down", f"<= {limit:g} C", reading["temperature_c"], "C", None, "pass", reason)


__all__ = ["check_cool_down_possible", "cool_down", "throttled_check"]
