"""Successive halving over students, with training epochs as the resource.

With ``E`` full epochs, factor ``eta`` and ``n`` distinct students there are
``R = min(1 + floor(log_eta(E / min_epochs)), 1 + ceil(log_eta(n)))`` rungs. Rung ``r`` (of the
first ``R - 1``) trains every surviving student for ``E / eta^(R-1-r)`` epochs and keeps the best
``ceil(n_r / eta)`` by validation accuracy; the survivors then go through the normal stages
with the full ``E`` epochs. Every trial of a dropped student is stored as ``pruned``, with the
rung and the accuracy that dropped it. The rungs run once: a resumed search reuses the
survivors the store recorded.
"""

from __future__ import annotations

import math

from edgeport.errors import ConfigError
from edgeport.search.plan import TrialPlan, student_stage
from edgeport.search.record import trial_record
from edgeport.search.settings import SearchSettings


def rung_epochs(full_epochs: int, min_epochs: int, factor: int, students: int) -> list[int]:
    """Epochs of the pruning rungs (the final full-epoch rung is not listed)."""
    if full_epochs <= min_epochs or students <= 1:
        return []
    by_epochs = 1 + int(math.floor(math.log(full_epochs / min_epochs, factor) + 1e-9))
    by_students = 1 + int(math.ceil(math.log(students, factor) - 1e-9))
    rungs = min(by_epochs, by_students)
    return [max(min_epochs, round(full_epochs / factor ** (rungs - 1 - r))) for r in range(rungs - 1)]


def _label(plan: TrialPlan) -> str:
    student = plan.candidate.config.student
    return f"{student.model} T={student.temperature:g} alpha={student.alpha:g} lr={student.lr:g}"


def run_rungs(plans: list[TrialPlan], settings: SearchSettings, scheduler, store) -> tuple[list[TrialPlan], dict]:
    full = plans[0].candidate.config.student.epochs  # one value: run_search refuses a search over it
    by_student: dict[str, list[TrialPlan]] = {}
    for plan in plans:
        by_student.setdefault(plan.student_task().key, []).append(plan)
    schedule = rung_epochs(full, settings.halving_min_epochs, settings.halving_factor, len(by_student))
    rungs: list[dict] = []
    report = {"factor": settings.halving_factor, "full_epochs": full, "students": len(by_student), "rungs": rungs}
    if not schedule:
        report["note"] = "nothing to halve: one student, or too few epochs for a shorter rung"
        return plans, report
    scheduler.build_all([p.chain[0] for p in plans], "teacher")
    survivors = list(by_student)
    for rung, rung_epochs_ in enumerate(schedule, start=1):
        tasks = {}
        for key in survivors:
            plan = by_student[key][0]
            config = plan.candidate.config
            shorter = config.model_copy(update={"student": config.student.model_copy(update={"epochs": rung_epochs_})})
            tasks[key] = student_stage(shorter, plan.chain[0].key, plan.data_key)
        scheduler.build_all(
            list(tasks.values()), f"halving rung {rung}: {len(survivors)} students x {rung_epochs_} epochs"
        )
        scores = {
            key: scheduler.results[t.key]["val_accuracy"] if t.key in scheduler.results else -math.inf
            for key, t in tasks.items()
        }
        keep = math.ceil(len(survivors) / settings.halving_factor)
        ranked = sorted(survivors, key=lambda k: (-scores[k], by_student[k][0].candidate.index))
        for key in ranked[keep:]:
            for plan in by_student[key]:
                error = scheduler.errors.get(tasks[key].key)
                store.add_trial(
                    trial_record(
                        plan.candidate,
                        "pruned" if error is None else "failed",
                        error=f"student: {error}" if error else None,
                        metrics={
                            "pruned_at_rung": rung,
                            "pruned_at_epochs": rung_epochs_,
                            "rung_val_accuracy": None if error else scores[key],
                        },
                    )
                )
        rungs.append(
            {
                "rung": rung,
                "epochs": rung_epochs_,
                "students": len(survivors),
                "kept": keep,
                "val_accuracy": {_label(by_student[k][0]): scores[k] for k in ranked},
            }
        )
        survivors = ranked[:keep]
    kept = set(survivors)
    return [p for p in plans if p.student_task().key in kept], report


def plans_after_rungs(
    todo: list[TrialPlan], settings: SearchSettings, scheduler, store
) -> tuple[list[TrialPlan], dict]:
    """Run the halving rungs once; a resumed search reuses the survivors it recorded."""
    recorded = store.get_meta("halving")
    if recorded is None:
        todo, report = run_rungs(todo, settings, scheduler, store)
        store.set_meta("halving", {"survivors": sorted({p.student_task().key for p in todo}), "report": report})
        return todo, report
    survivors = set(recorded["survivors"])
    new = [p for p in todo if p.student_task().key not in survivors]
    if new and recorded["report"].get("rungs"):
        raise ConfigError(
            "a search with successive halving cannot be widened on resume: its rungs already chose "
            "the students; start a new search for the wider space"
        )
    return [p for p in todo if p.student_task().key in survivors] + new, recorded["report"]
