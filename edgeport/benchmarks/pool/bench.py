"""``edgeport bench --pool``: each batch and thread setting measured on a device of the pool, several
devices at once. A setting's models (A and B of --vs) are measured on one device, so a comparison never
pairs samples from two devices; the report says which device measured what and which went down."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeport.benchmarks.footprint import default_footprint, footprints_of
from edgeport.benchmarks.latency import BenchResult, BenchSettings
from edgeport.benchmarks.pool.devices import PoolChoice, load_devices, select_devices
from edgeport.benchmarks.pool.dispatch import DevicePool
from edgeport.benchmarks.records import RuntimeChoice
from edgeport.benchmarks.remote import measure_remote, measure_remote_models, probe_remote
from edgeport.benchmarks.session import Feeds, Shapes
from edgeport.benchmarks.sustained import device_logs
from edgeport.core.progress import Progress
from edgeport.errors import BenchmarkError

if TYPE_CHECKING:
    from edgeport.benchmarks.groups import MeasureGroup
    from edgeport.benchmarks.pool.devices import PoolDevice
    from edgeport.benchmarks.request import BenchRequest


def probe_device(device: PoolDevice, runtimes: list[str]) -> str:
    """Work for DevicePool.probe: the device reachable, with numpy and each runtime (remote.probe_remote)."""
    return probe_remote(device.remote, frozenset(runtimes))


def open_pool(choice: PoolChoice, runtimes: Iterable[str], progress: Progress, num_cpus: int = 1) -> DevicePool:
    """The pool's devices of the chosen kind with ``runtimes``, started on Ray and probed (a device that
    fails its probe is left out; none left: refused)."""
    needed = sorted(set(runtimes))
    devices = select_devices(load_devices(choice.devices_file), choice.tags, needed, choice.devices_file)
    pool = DevicePool(devices, choice.ray_address, num_cpus, progress.log)
    try:
        pool.probe(probe_device, {"runtimes": needed})
    except BaseException:
        pool.close()
        raise
    return pool


def measure_setting(
    device: PoolDevice,
    models: Mapping[str, Path],
    runtimes: Mapping[str, RuntimeChoice],
    settings: BenchSettings,
    feeds: Feeds | None,
    shapes: Shapes,
    cold_starts: int | None,
) -> tuple[dict[str, BenchResult], dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Work for the pool: one setting's models on ``device``, each in turn, their footprints there and, for a
    sustained run, the device's telemetry during each."""
    measured, telemetry = measure_remote_models(models, settings, feeds, shapes, device.remote)
    found = footprints_of(models, runtimes, settings, feeds, shapes, cold_starts, device.remote) if cold_starts else {}
    return measured, found, telemetry


def measure_model(
    device: PoolDevice, model: str, settings: BenchSettings, inputs: dict[str, Any], cold_starts: int
) -> tuple[BenchResult, list[float], dict[str, Any] | None]:
    """Work for the pool (a search's trial): ``model`` on ``device``, the wall-clock window of the measurement,
    and with ``cold_starts`` its footprint there on its runtime's default memory setting."""
    started = time.time()
    result = measure_remote(model, device.remote, settings, inputs)
    window = [started, time.time()]
    footprint = default_footprint(model, settings, inputs, cold_starts, device.remote) if cold_starts else None
    return result, window, footprint


def measure_groups_on_pool(
    choice: PoolChoice,
    groups: list[MeasureGroup],
    models: Mapping[str, Path],
    runtimes: Mapping[str, RuntimeChoice],
    request: BenchRequest,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Fill every group from the pool; the pool's devices with their state and count at the end."""
    if len({*runtimes.values()}) > 1:
        raise BenchmarkError("--pool measures one runtime per command: drop --runtime all or B's @runtime")
    pool = open_pool(choice, {r.name for r in runtimes.values()}, progress)
    try:
        up = len(pool.devices) - len(pool.down)
        progress.log(f"measuring {len(groups)} setting(s) on {up} device(s) of {choice.describe()}")
        jobs = [
            (
                str(index),
                measure_setting,
                {
                    "models": dict(models),
                    "runtimes": dict(runtimes),
                    "settings": group.settings,
                    "feeds": group.feeds,
                    "shapes": request.shapes,
                    "cold_starts": request.footprint,
                },
            )
            for index, group in enumerate(groups)
        ]
        failed = []
        with progress.task("settings on the pool", total=len(jobs)) as advance:
            for key, work, kwargs in jobs:
                pool.submit(key, work, kwargs)
            while pool.pending():
                for outcome in pool.wait():
                    group = groups[int(outcome.key)]
                    if outcome.ok:
                        group.measured, group.footprints, telemetry = outcome.value
                        group.logs, group.device = device_logs(telemetry), outcome.device
                    else:
                        failed.append(f"batch {group.batch}, {group.settings.threads} thread(s): {outcome.error}")
                    advance(1)
        if failed:
            raise BenchmarkError(f"{len(failed)} of {len(groups)} setting(s) failed on the pool: {failed[0]}")
        return pool.summary()
    finally:
        pool.close()
