"""The gate's measurements on a device pool (``edgeport gate --pool``).

The first measurement runs on whichever device of the pool is free (on another one if that device goes
down); every later one (while a check is inconclusive) and the footprint run on that same device, so every
sample the gate pools or compares comes from one device. When that device goes down after the first
measurement, its samples cannot be joined with another device's: the gate starts measuring again, from
the first measurement, on another device (measure.py), and fails only when no device is left. The models are
measured in turn on the device, not interleaved, so the fp32 reference is compared unpaired.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeport.benchmarks.latency import BenchSettings
from edgeport.benchmarks.pool.bench import measure_setting, open_pool
from edgeport.benchmarks.pool.devices import PoolDevice
from edgeport.benchmarks.pool.dispatch import DevicePool, Work
from edgeport.benchmarks.remote import remote_telemetry
from edgeport.errors import BenchmarkError, ConfigError
from edgeport.gate.budgets import GateTarget
from edgeport.gate.decide import Check
from edgeport.gate.evidence import Measurement
from edgeport.gate.footprint_checks import measure_for_target
from edgeport.gate.heat import cool_down
from edgeport.gate.load import required
from edgeport.gate.measurer import Measurer, measurements
from edgeport.gate.request import GateRequest


def cool_device(device: PoolDevice, target: GateTarget) -> Check | None:
    """Work for the pool: the target's cool-down on ``device``, read over ssh, holding the device meanwhile
    (nothing else may warm it)."""
    first = remote_telemetry(device.remote)
    if first["temperature_c"] is None:
        raise ConfigError(
            f"device {device.name}: the target asks for a cool-down, but the device exposes no temperature: "
            f"{first['missing'][0]}"
        )
    return cool_down(target, log=lambda _: None, read=lambda: remote_telemetry(device.remote))


def gate_footprint(device: PoolDevice, artifact: Path, target: GateTarget, settings: BenchSettings) -> list[dict]:
    """Work for the pool: the artifact's cold starts on ``device`` as ``target`` deploys it."""
    return measure_for_target(artifact, target, settings, device.remote)


class DeviceLost(BenchmarkError):
    """The device the gate's measurements are pinned to went down after the first of them."""


class PoolMeasurer(Measurer):
    paired = False  # each model in turn on the device

    pool: DevicePool
    device: str | None = None  # the device every measurement after the first runs on

    def prepare(self, request: GateRequest) -> None:
        """The pool started and its devices probed for the target's runtime (this machine needs none)."""
        self.pool = open_pool(required(request.pool, "--pool"), {self.settings.runtime.name}, self.progress)

    def _run(self, key: str, work: Work, kwargs: dict[str, Any]) -> Any:
        self.pool.submit(key, work, kwargs, pin=self.device)
        while True:
            for outcome in self.pool.wait():
                if outcome.ok:
                    self.device = outcome.device
                    return outcome.value
                if self.device is not None and self.device in self.pool.down:
                    raise DeviceLost(f"device {self.device} went down ({self.pool.down[self.device]})")
                raise BenchmarkError(outcome.error)

    def restart(self) -> None:
        """Measure from the start, on whichever device is free: the lost device's samples are dropped."""
        self.device, self.count = None, 0

    def measure(self) -> dict[str, Measurement]:
        self.count += 1
        settings = replace(self.settings, seed=self.settings.seed + self.count - 1)
        self.progress.log(f"gate measurement {self.count} on {self.device or 'a device of the pool'}")
        models = {label: Path(path) for label, path in self.models.items()}
        kwargs = {
            "models": models,
            "runtimes": dict.fromkeys(models, settings.runtime),
            "settings": settings,
            "feeds": None,
            "shapes": {},
            "cold_starts": None,
        }
        measured, _, _ = self._run("measure", measure_setting, kwargs)
        return measurements(measured, f"measured on device {self.device}")

    def cool(self, target: GateTarget) -> Check | None:
        """The cool-down on a device of the pool, which the measurements then stay on."""
        if target.idle_temperature_c is None:
            return None
        self.progress.log(
            f"cooling down a device of the pool to {target.idle_temperature_c:g} C + {target.cool_down_c:g}"
        )
        return self._run("cool", cool_device, {"target": target})

    def footprint(self, target: GateTarget) -> list[dict]:
        kwargs = {"artifact": Path(self.models["artifact"]), "target": target, "settings": self.settings}
        return self._run("footprint", gate_footprint, kwargs)

    def close(self) -> None:
        self.pool.close()
