"""Where a search measures latency: this host, or a remote device over ssh (``--remote``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.benchmarks import BenchSettings, cpu_fingerprint, measure_latency
from edgeport.benchmarks.latency import BenchResult
from edgeport.benchmarks.remote import RemoteTarget, measure_remote, probe_remote


@dataclass
class BenchDevice:
    """The device a search's trials are measured on: this host, or ``remote`` over ssh."""

    remote: RemoteTarget | None
    url: str | None
    probed: str | None = None  # what the remote probe reported: onnxruntime version, machine, CPU

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
        from edgeport.benchmarks.footprint import arena_settings, measure_footprint

        arena = arena_settings(settings.runtime)[0]  # the runtime's default: onnxruntime's arena on
        return measure_footprint(model, settings, inputs, settings.runtime, arena, cold_starts, self.remote)

    def describe(self) -> str:
        return self.url if self.url else f"this host ({cpu_fingerprint()['model']})"
