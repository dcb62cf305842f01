"""The short form of the manifest stored in an ONNX file's metadata_props."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import onnx

from edgeport.exporter.scrub import save_atomic, scrub_model

PREFIX = "edgeport."


@dataclass(frozen=True)
class OnnxLineage:
    """Where an ONNX artifact comes from: the one key set every command writes (unknown: left out)."""

    kind: str  # onnx-fp32 | onnx-int8
    seed: int | None = None
    dataset_sha256: str | None = None
    student: str | None = None  # the student's model spec
    teacher_sha256: str | None = None
    student_sha256: str | None = None
    normalization: str | None = None  # short hash of the input normalisation
    source_sha256: str | None = None  # what it was built from: the fp32 ONNX or the torch weights
    calibration_sha256: str | None = None
    backend: str | None = None
    quant: str | None = None  # short hash of the quantization settings

    def props(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items() if value is not None}


def write_metadata(path: str | os.PathLike, lineage: OnnxLineage) -> None:
    """Set ``edgeport.*`` metadata_props in place (the file's sha256 changes, so do this before hashing).

    Every ONNX file edgeport ships passes through here last, so the file is also scrubbed of tools'
    debug metadata (paths of this machine; see :mod:`edgeport.exporter.scrub`), whichever tool wrote it.
    """
    model = onnx.load(str(path), load_external_data=False)
    scrub_model(model)
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in sorted(lineage.props().items()):
        model.metadata_props.add(key=PREFIX + key, value=str(value))
    save_atomic(model, path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}
