"""What one gate is asked to judge: the budget and target, the evidence files, and how to decide."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeport.benchmarks.pool.devices import PoolChoice
from edgeport.core.bench_defaults import GATE

MODES = ("ci", "point")


@dataclass
class GateRequest:
    budget: Path
    target: str | None = None
    result: Path | None = None
    artifact: Path | None = None
    manifest: Path | None = None
    baseline: Path | None = None
    baseline_artifact: Path | None = None  # the previous release's ONNX, measured interleaved with --artifact
    reference: Path | None = None  # fp32 ONNX to measure beside --artifact for min_speedup
    reference_result: Path | None = None  # or a result file whose measurement is the fp32 reference
    mode: str = "ci"
    allow_inconclusive: bool = False
    max_extra_measurements: int = 3
    warmup: int = GATE.warmup
    iterations: int = GATE.iterations
    rounds: int = GATE.rounds
    seed: int = 0
    pool: PoolChoice | None = None  # --pool: measure on a device of this pool instead of this machine
    # Files the caller writes after the verdict: refused before anything is read or measured when one is
    # an input of the gate (same file after resolving links) or cannot be written.
    junit: Path | None = None
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY with --github (appended to)

    def inputs(self) -> list[tuple[str, Path]]:
        named = [
            ("--budget", self.budget),
            ("--result", self.result),
            ("--artifact", self.artifact),
            ("--manifest", self.manifest),
            ("--baseline", self.baseline),
            ("--baseline-artifact", self.baseline_artifact),
            ("--reference", self.reference),
            ("the reference result", self.reference_result),
        ]
        return [(what, Path(path)) for what, path in named if path is not None]
