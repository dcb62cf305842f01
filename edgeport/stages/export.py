"""The export stage: the trained student as fp32 ONNX, checked against PyTorch, with its lineage."""

from __future__ import annotations

from pathlib import Path

from edgeport.config import RunConfig
from edgeport.core.artifacts import sha256_json
from edgeport.exporter import ExportResult, OnnxLineage, export_onnx, write_metadata
from edgeport.stages.data import PreparedData
from edgeport.stages.train import TrainedModel


def student_lineage(
    kind: str, config: RunConfig, prepared: PreparedData, teacher_sha256: str, student_sha256: str, **more
) -> OnnxLineage:
    """The ONNX metadata of a student artifact built by `run` or `search` (same keys in both)."""
    return OnnxLineage(
        kind=kind,
        seed=config.seed,
        dataset_sha256=prepared.data.fingerprint(),
        student=config.student.model,
        teacher_sha256=teacher_sha256,
        student_sha256=student_sha256,
        normalization=sha256_json(prepared.norm.describe())[:16],
        **more,
    )


def export_student(
    config: RunConfig, prepared: PreparedData, student: TrainedModel, teacher_sha256: str, path: Path
) -> ExportResult:
    """fp32 ONNX of ``student`` with a dynamic batch axis, its outputs checked against PyTorch on val."""
    splits = prepared.splits
    export = export_onnx(student.model, splits.train.x[:2], path, config.export.exporter, parity_inputs=splits.val.x)
    write_metadata(path, student_lineage("onnx-fp32", config, prepared, teacher_sha256, student.sha256))
    return export
