"""Release gate: budgets per target, decisions that respect latency noise, CI-friendly reports.

Imports numpy, scipy and onnxruntime only (never torch), so CI runners and edge boards can gate.
"""

from edgeport.gate.budgets import TargetBudget, load_budgets, select_target
from edgeport.gate.run_gate import GateRequest, run_gate

__all__ = ["GateRequest", "TargetBudget", "load_budgets", "run_gate", "select_target"]
