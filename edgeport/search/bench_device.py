"""Where a search measures latency: this host, a remote device over ssh (``--remote``), or a device pool
(``--pool``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.benchmarks import BenchSettings, cpu_fingerprint, measure_latency
from edgeport.benchmarks.footprint import default_footprint
from edgeport.benchmarks.latency import BenchResult
from edgeport.benchmarks.pool.bench import measure_model, open_pool
from edgeport.benchmarks.pool.devices import PoolChoice
from edgeport.benchmarks.pool.dispatch import DevicePool, Outcome
from edgeport.benchmarks.remote import RemoteTarget, measure_remote, probe_remote
from edgeport.core.progress import Progress
from edgeport.errors import ConfigError
from edgeport.search.trial import BenchJob


@dataclass
class BenchDevice:
    """The device a search's trials are measured on: this host, or ``remote`` over ssh."""

    remote: RemoteTarget | None
    url: str | None
    probed: str | None = None  # what the remote probe reported: onnxruntime version, machine, CPU
    parallel = False  # one measurement at a time, alone (PoolBenchDevice: several, on devices of their own)

    @classmethod
    def create(cls, url: str | None, python: str = "python3", ssh_options: tuple[str, ...] = ()) -> BenchDevice:
        return cls(RemoteTarget.parse(url, python, tuple(ssh_options)) if url else None, url)

    def check(self, runtimes: set[str] | frozenset[str] = frozenset({"ort"})) -> None:
        """Refuse a remote device that cannot run the benchmark on ``runtimes`` before the search starts."""
        if self.remote is not None:
            self.probed = probe_remote(self.remote, runtimes)

    def identity(self) -> dict:
        """What a cached latency depends on besides the model and the settings."""
        if self.remote is not None:
            # The resolved ssh://user@host:port, not the --remote text: `--ssh-option Port=...` or
            # `User=...` reach another device (or account) under the same URL.
            return {"remote": self.remote.url, "python": self.remote.python, "device": self.probed}
        import onnxruntime

        return {"cpu": cpu_fingerprint(), "onnxruntime": onnxruntime.__version__}

    def measure(self, model: str | Path, settings: BenchSettings, inputs: dict[str, np.ndarray]) -> BenchResult:
        if self.remote is not None:
            return measure_remote(model, self.remote, settings, inputs)
        return measure_latency(model, settings, inputs)

    def footprint(
        self, model: str | Path, settings: BenchSettings, inputs: dict[str, np.ndarray], cold_starts: int
    ) -> dict:
        """Memory and cold start on the trial's runtime, in fresh processes here or on the remote device."""
        return default_footprint(model, settings, inputs, cold_starts, self.remote)

    def describe(self) -> str:
        return self.url if self.url else f"this host ({cpu_fingerprint()['model']})"

    def summary(self) -> list[dict]:
        """No pool: nothing to say per device."""
        return []

    def close(self) -> None:
        pass


class PoolBenchDevice:
    """A search's trials measured on a device pool (``--pool``): one trial per device, several at once, each
    submitted when its artifact is ready and collected when it ends; builds here do not wait for them."""

    parallel = True

    def __init__(self, choice: PoolChoice, num_cpus: int, progress: Progress) -> None:
        self.choice, self.num_cpus, self.progress = choice, num_cpus, progress
        self.pool: DevicePool | None = None

    def check(self, runtimes: set[str] | frozenset[str] = frozenset({"ort"})) -> None:
        """Start the pool on Ray and probe its devices for ``runtimes`` before the search starts."""
        self.pool = open_pool(self.choice, runtimes, self.progress, self.num_cpus)

    def _pool(self) -> DevicePool:
        if self.pool is None:
            raise ConfigError("the device pool is not open: check() starts it")
        return self.pool

    def identity(self) -> dict:
        """What a cached latency depends on: the kind of device (its tags) and the software the devices run.
        Devices of one kind stand in for each other, so a latency measured on one is reused for all."""
        pool = self._pool()
        kind = next(iter(pool.devices.values())).tags
        return {"pool_tags": dict(kind), "devices": sorted(set(pool.probes.values()))}

    def submit(self, key: str, job: BenchJob) -> None:
        kwargs = {"model": job.model, "settings": job.settings, "inputs": job.inputs, "cold_starts": job.cold_starts}
        self._pool().submit(key, measure_model, kwargs)

    def poll(self, timeout: float | None) -> list[Outcome]:
        return self._pool().wait(timeout)

    def pending(self) -> int:
        return self.pool.pending() if self.pool is not None else 0

    def idle(self) -> int:
        """Devices up with nothing to measure: a trial submitted now starts at once."""
        return len(self.pool.free_devices()) if self.pool is not None else 0

    def summary(self) -> list[dict]:
        return self.pool.summary() if self.pool is not None else []

    def describe(self) -> str:
        if self.pool is None:
            return self.choice.describe()
        up = len(self.pool.devices) - len(self.pool.down)
        return f"{self.choice.describe()}, {up} of {len(self.pool.devices)} device(s) up"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
