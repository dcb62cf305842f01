"""Measurements on a pool of devices, several devices at once and never two measurements on one device.

Each device is a Ray custom resource of one unit (``edgeport-device:NAME``) and each measurement a Ray
task that holds its device's unit while it runs: Ray, not this module, guarantees one measurement per
device, also between commands that share a cluster. Without an address the pool starts a local Ray
instance that declares every device's unit; a cluster (``--ray-address``) declares them on the node that
reaches each device (``ray start --resources '{"edgeport-device:NAME": 1}'``).

A device that stops answering mid-measurement (benchmarks.ssh_device: DeviceUnreachable) is marked down
with its error and the measurement goes to another device of the pool (all of one kind, devices.py);
what finished before stays finished. A failure of the measurement itself (the model cannot run) is that
measurement's result and is not repeated elsewhere.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgeport.benchmarks.pool.devices import PoolDevice
from edgeport.core.ray_instance import import_ray, start_or_join
from edgeport.errors import BenchmarkError, ConfigError, DeviceUnreachable, EdgeportError

RESOURCE_PREFIX = "edgeport-device:"

# What runs on a device: a function of the device and keyword arguments (defined at module level, so that
# Ray can send it to its worker), returning what the measurement found.
Work = Callable[..., Any]


def resource_of(device: PoolDevice) -> str:
    return RESOURCE_PREFIX + device.name


def on_device(device: PoolDevice, work: Work, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: ``work`` on ``device``, its failure sorted into the device's and the measurement's."""
    try:
        return {"ok": True, "value": work(device, **kwargs)}
    except DeviceUnreachable as exc:
        return {"ok": False, "down": True, "error": str(exc)}
    except EdgeportError as exc:
        return {"ok": False, "down": False, "error": str(exc)}


@dataclass
class Job:
    key: str
    work: Work
    kwargs: dict[str, Any]
    pin: str | None = None  # only this device (the gate's later measurements join its first one's samples)
    counted: bool = True  # a measurement (a probe is not): counted in the device's summary


@dataclass(frozen=True)
class Outcome:
    """One measurement's end: its value, or the error that ended it; the device it ran on."""

    key: str
    device: str | None
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class DevicePool:
    """Submit measurements, collect their outcomes; every device runs at most one at a time."""

    def __init__(
        self,
        devices: Sequence[PoolDevice],
        ray_address: str | None = None,
        num_cpus: int = 1,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.ray = import_ray("--pool")
        self.devices = {d.name: d for d in devices}
        self.log = log
        resources = {resource_of(d): 1.0 for d in devices}
        self.connected_here = start_or_join(self.ray, ray_address, num_cpus, resources)
        missing = [d.name for d in devices if self.ray.cluster_resources().get(resource_of(d), 0) < 1]
        if missing:
            self.close()
            example = '{"' + resource_of(self.devices[missing[0]]) + '": 1}'
            raise ConfigError(
                f"the Ray cluster has no resource for device(s) {', '.join(missing)}: start the node that reaches "
                f"each one with `ray start --address {ray_address or 'ADDRESS'} --resources '{example}'`"
            )
        # num_cpus=0: a measurement waits on its device, it takes no CPU of the Ray node
        self._task = self.ray.remote(num_cpus=0, max_retries=0)(on_device)
        self.down: dict[str, str] = {}  # device -> why it was marked down
        self.counts = dict.fromkeys(self.devices, 0)  # measurements each device finished
        self._started = dict.fromkeys(self.devices, 0)  # measurements each device was given
        self.probes: dict[str, Any] = {}  # what each device's probe answered (probe())
        self._queue: deque[Job] = deque()
        self._running: dict[Any, tuple[Job, str]] = {}  # Ray handle -> (job, device)

    # -- submitting and collecting -------------------------------------------------------------------
    def submit(
        self, key: str, work: Work, kwargs: dict[str, Any], pin: str | None = None, counted: bool = True
    ) -> None:
        if pin is not None and pin not in self.devices:
            raise ConfigError(f"no device {pin!r} in the pool")
        self._queue.append(Job(key, work, kwargs, pin, counted))
        self._dispatch()  # on a free device now, if there is one

    def pending(self) -> int:
        """Measurements submitted and not yet collected."""
        return len(self._queue) + len(self._running)

    def free_devices(self) -> list[str]:
        """Devices up and idle, the least used first: work spreads evenly over devices of one kind."""
        busy = {name for _, name in self._running.values()}
        free = [n for n in self.devices if n not in busy and n not in self.down]
        return sorted(free, key=lambda n: self._started[n])

    def _dispatch(self) -> None:
        for name in self.free_devices():
            job = next((j for j in self._queue if j.pin in (None, name)), None)
            if job is None:
                continue
            self._queue.remove(job)
            device = self.devices[name]
            task = self._task.options(resources={resource_of(device): 1})
            self._running[task.remote(device, job.work, job.kwargs)] = (job, name)
            self._started[name] += job.counted

    def _stranded(self) -> list[Outcome]:
        """Queued jobs no device that is up can take: each ends with every down device's error."""
        up = set(self.devices) - set(self.down)
        stranded = [j for j in self._queue if (j.pin is not None and j.pin not in up) or not up]
        for job in stranded:
            self._queue.remove(job)
        why = "; ".join(f"{name}: {error}" for name, error in self.down.items())
        return [Outcome(j.key, None, error=f"no device of the pool is left to measure on ({why})") for j in stranded]

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Start what free devices can take, then wait for at least one measurement to end (or be stranded);
        with ``timeout``, at most that many seconds (then possibly nothing ended)."""
        self._dispatch()
        ended = self._stranded()
        if ended or not self._running:
            return ended
        ready, _ = self.ray.wait(list(self._running), num_returns=1, timeout=timeout)
        for handle in ready:
            job, name = self._running.pop(handle)
            ended += self._settle(job, name, handle)
        return ended

    def _settle(self, job: Job, name: str, handle: Any) -> list[Outcome]:
        try:
            answer = self.ray.get(handle)
        except Exception as exc:  # the Ray worker died: the measurement failed, the device may be fine
            return [Outcome(job.key, name, error=f"Ray task failed: {type(exc).__name__}: {exc}")]
        if answer["ok"]:
            self.counts[name] += job.counted
            return [Outcome(job.key, name, value=answer["value"])]
        if not answer["down"]:
            return [Outcome(job.key, name, error=answer["error"])]
        self.down[name] = answer["error"]
        self.log(f"device {name} is down ({answer['error']}); its measurement goes to another device")
        self._queue.appendleft(job)  # first in line: it has waited longest
        return []

    # -- the pool as a whole ------------------------------------------------------------------------
    def probe(self, work: Work, kwargs: dict[str, Any]) -> dict[str, str]:
        """``work`` (a probe) once on every device, in parallel; a device that fails it is marked down.
        Refused when no device passes. The probes' answers by device."""
        for name in self.devices:
            self.submit(f"probe:{name}", work, kwargs, pin=name, counted=False)
        answers = {}
        while self.pending():
            for outcome in self.wait():
                name = outcome.key.removeprefix("probe:")
                if outcome.ok:
                    answers[name] = outcome.value
                elif name not in self.down:
                    self.down[name] = outcome.error or "probe failed"
                    self.log(f"device {name} is left out: {outcome.error}")
        if not answers:
            raise BenchmarkError(
                "no device of the pool can measure: " + "; ".join(f"{n}: {e}" for n, e in self.down.items())
            )
        self.probes = answers
        return answers

    def summary(self) -> list[dict[str, Any]]:
        """Each device: where it is, whether it is up (else why not) and how many measurements it finished."""
        return [
            {
                "name": name,
                "url": device.remote.url,
                "tags": dict(device.tags),
                "state": "down" if name in self.down else "up",
                "error": self.down.get(name),
                "measurements": self.counts[name],
            }
            for name, device in self.devices.items()
        ]

    def close(self) -> None:
        if self.connected_here:
            self.ray.shutdown()
            self.connected_here = False
