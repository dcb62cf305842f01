"""A trial's record: what the trial store keeps for one candidate, and what reports and the objective read.

Every record is built by ``trial_record``, so the candidate's index is stored under the same key
("position": the trials' order and the last tie-break of the choice) whatever the outcome.
``to_dict`` gives the JSON the store writes; its keys are the store's columns, so search folders
written before keep resuming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the store reads records without importing the space's dependencies
    from edgeport.search.space import Candidate

Status = Literal["ok", "failed", "pruned"]
STATUSES: tuple[Status, ...] = ("ok", "failed", "pruned")


@dataclass(frozen=True)
class TrialRecord:
    id: str
    position: int  # the candidate's index in the expanded space
    params: dict[str, Any]
    status: Status
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"trial status {self.status!r} is not one of {', '.join(STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "params": self.params,
            "status": self.status,
            "metrics": self.metrics,
            "artifacts": self.artifacts,
            "timings": self.timings,
            "error": self.error,
        }


def trial_record(
    candidate: Candidate,
    status: Status,
    *,
    error: str | None = None,
    metrics: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
) -> TrialRecord:
    """The record of ``candidate``'s trial: measured (ok), failed at a stage, or pruned by halving."""
    return TrialRecord(
        id=candidate.id,
        position=candidate.index,
        params=candidate.params,
        status=status,
        metrics=metrics or {},
        artifacts=artifacts or {},
        timings=timings or {},
        error=error,
    )
