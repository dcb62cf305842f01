"""``edgeport search --budget``: gate the chosen artifact (best/) against a target of a budget file.

The target is resolved before any work, so a wrong --target is refused up front; the gate itself
runs at the end, on the chosen trial's own benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeport.core.artifacts import atomic_write_json
from edgeport.errors import ConfigError
from edgeport.gate import GateRequest, run_gate
from edgeport.gate.run_gate import target_for_settings
from edgeport.search.options import SearchOptions
from edgeport.search.space import Candidate


@dataclass(frozen=True)
class GateTarget:
    budget: Path  # --budget
    target: str  # --target, or the one target the budget file defines for the search's batch and threads


def resolve_gate_target(
    candidates: list[Candidate], options: SearchOptions, measures_footprint: bool = False
) -> GateTarget | None:
    """The target to gate on (None without --budget); every candidate must be measured at its batch and threads,
    and with its footprint (``measures_footprint``: the search constrains memory or cold start) when the target
    budgets one."""
    if options.gate_budget is None:
        return None
    settings = {(c.config.bench.batch, c.config.bench.threads) for c in candidates}
    if len(settings) > 1:
        raise ConfigError(f"--budget gates one target, but the space varies bench batch/threads {sorted(settings)}")
    batch, threads = settings.pop()
    budget = options.gate_budget
    # measured elsewhere (a remote device, a pool's): the gate checks the hardware the result names
    where = options.remote or (options.pool.describe() if options.pool else None)
    name, target = target_for_settings(
        budget, options.gate_target, batch, threads, "this search", where, measures_footprint
    )
    if options.pool is not None and target.min_speedup is not None:
        raise ConfigError(
            f"{budget}: target {name!r} has min_speedup, which compares the chosen trial with its fp32 trial on "
            "one device, but --pool measures trials on several: gate best/ afterwards with `edgeport gate "
            "--pool ... --artifact best/model.onnx --reference FP32.onnx`"
        )
    return GateTarget(budget, name)


def gate_chosen(folder: Path, trials: list[dict], chosen: str | None, gate: GateTarget) -> dict | None:
    """Gate best/ with the chosen trial's own benchmark; the fp32 trial of the same student is the reference."""
    if chosen is None:
        return None
    trial = next(t for t in trials if t["id"] == chosen)
    fp32 = next(
        (
            t
            for t in trials
            if t["status"] == "ok"
            and t["metrics"]["kind"] == "onnx-fp32"
            and t["artifacts"]["fp32_onnx"] == trial["artifacts"]["fp32_onnx"]
        ),
        None,
    )
    report = run_gate(
        GateRequest(
            budget=gate.budget,
            target=gate.target,
            result=Path(trial["artifacts"]["benchmark"]),
            artifact=folder / "best" / "model.onnx",
            manifest=folder / "best" / "manifest.json",
            reference_result=Path(fp32["artifacts"]["benchmark"]) if fp32 else None,
        )
    )
    atomic_write_json(folder / "gate.json", report)
    return report
