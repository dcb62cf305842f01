"""The gate's own measurements on this machine: the artifact, its fp32 reference and its baseline measured
interleaved, round by round; each later call adds a measurement with the next seed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeport.benchmarks.latency import BenchResult, BenchSettings, measure_interleaved
from edgeport.benchmarks.openvino_runtime import openvino_module
from edgeport.benchmarks.rounds import rounds_of
from edgeport.core.progress import Progress
from edgeport.gate.budgets import GateTarget
from edgeport.gate.decide import Check
from edgeport.gate.evidence import Measurement
from edgeport.gate.footprint_checks import measure_for_target
from edgeport.gate.heat import cool_down
from edgeport.gate.request import GateRequest


class Measurer:
    """Measures the artifact (and the fp32 reference) interleaved; later calls add more samples."""

    def __init__(
        self,
        artifact: Path,
        reference: Path | None,
        target: GateTarget,
        request: GateRequest,
        progress: Progress,
    ) -> None:
        self.models = (
            {"artifact": str(artifact)}
            | ({"reference": str(reference)} if reference else {})
            | ({"baseline": str(request.baseline_artifact)} if request.baseline_artifact else {})
        )
        self.settings = BenchSettings(
            batch=target.batch,
            threads=target.threads,
            warmup=request.warmup,
            iterations=request.iterations,
            rounds=request.rounds,
            seed=request.seed,
            runtime=target.runtime_choice,  # measured on the runtime the target ships with
        )
        self.progress = progress
        self.count = 0
        self.prepare(request)

    paired = True  # the models are measured interleaved, round by round

    def prepare(self, request: GateRequest) -> None:
        """Ready to measure, or refused before any measuring: here, the runtime must be installed."""
        if self.settings.runtime.name == "openvino":
            openvino_module()  # not installed: exit 2 with the install command

    def measure(self) -> dict[str, Measurement]:
        self.count += 1
        settings = replace(self.settings, seed=self.settings.seed + self.count - 1)
        with self.progress.task(f"gate measurement {self.count}", total=settings.rounds) as advance:
            results = measure_interleaved(self.models, settings, None, advance)
        return measurements(results, "measured now")

    def cool(self, target: GateTarget) -> Check | None:
        """The target's cool-down on this machine, before the first measurement (gate/heat.py)."""
        return cool_down(target, log=self.progress.log)

    def footprint(self, target: GateTarget) -> list[dict]:
        """The artifact's cold starts as the target deploys it."""
        return measure_for_target(Path(self.models["artifact"]), target, self.settings)

    def close(self) -> None:
        pass


def measurements(results: dict[str, BenchResult], source: str) -> dict[str, Measurement]:
    """Benchmark results as the gate's measurements, by label."""
    return {
        label: Measurement(
            rounds_of(np.asarray(r.samples_ms, dtype=np.float64), r.settings),
            r.settings,
            r.environment,
            r.model_sha256,
            r.model_path,
            source,
        )
        for label, r in results.items()
    }
