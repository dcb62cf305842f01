"""Release gate: budgets per target, decisions that respect latency noise, CI-friendly reports.

Imports numpy, scipy and onnxruntime only (never torch), so CI runners and edge boards can gate.
``run_gate`` returns the verdict as its JSON object; ``evaluate_gate`` as a typed ``GateReport``.
"""

from edgeport.gate.budgets import GateTarget, load_budgets, select_target
from edgeport.gate.report import GateReport
from edgeport.gate.run_gate import GateRequest, evaluate_gate, run_gate

__all__ = ["GateReport", "GateRequest", "GateTarget", "evaluate_gate", "load_budgets", "run_gate", "select_target"]
