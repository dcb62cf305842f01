"""The artifact manifest: one versioned schema for the manifest.json files edgeport writes beside an artifact.

Each command keeps its layout on disk (so files written before still read): ``edgeport run`` (a run folder's
manifest.json: ``artifacts.int8_onnx`` is the artifact), ``edgeport quantize`` (X.manifest.json: one
``artifact``) and ``edgeport search`` (best/manifest.json: ``sha256`` at the top and the chosen ``trial``;
the search folder's own manifest.json is a summary, not an artifact manifest). ``ArtifactManifest`` types
the common part and answers the common questions (which file, its fp32 source, accuracy by split); each
command's subclass types its own part. ``read_manifest`` reads any of them; ``check_manifest`` is what a
writer calls right before writing. Light imports only (pydantic): the gate runs without torch.
"""

from __future__ import annotations

import json
import math
from abc import abstractmethod
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from edgeport.core import schemas
from edgeport.core.json_files import check_schema_version, read_json
from edgeport.errors import ConfigError

# The versions each command writes (core/schemas.py)
MANIFEST_SCHEMA_VERSIONS = schemas.MANIFEST_VERSIONS


def _sha256(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise PydanticCustomError("sha256", "must be a sha256 hex digest (64 lowercase hex digits)")
    return value


def _size(value: object) -> int:
    # bool is an int in Python; a JSON true is no size
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PydanticCustomError("size_bytes", "size_bytes must be a non-negative integer")
    return value


def _percent(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("percentage", "accuracy must be a number")
    if not math.isfinite(value) or not 0 <= value <= 100:  # json reads NaN and Infinity
        raise PydanticCustomError("percentage", "accuracy must be a percentage from 0 to 100")
    return float(value)


Sha256 = Annotated[str, PlainValidator(_sha256)]
SizeBytes = Annotated[int, PlainValidator(_size)]
Percent = Annotated[float, PlainValidator(_percent)]


class _Part(BaseModel):
    # extra="allow": the manifests carry much more than the schema types (config, dataset, lineage, ...)
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class FileEntry(_Part):
    """One file a manifest describes."""

    path: str | None = None
    kind: str | None = None  # onnx-int8, onnx-fp32, checkpoint, ...
    sha256: Sha256 | None = None
    size_bytes: SizeBytes | None = None


class Accuracy(_Part):
    """Accuracy in percent on one split: the artifact's, and its fp32 model's when measured."""

    artifact: Percent | None = None
    fp32: Percent | None = None


class ArtifactManifest(_Part):
    """The part every manifest shares, and what every manifest answers about its artifact."""

    command: ClassVar[str]  # the command that wrote it: run, quantize or search
    schema_version: int
    created_utc: str | None = None
    seed: int | None = None
    environment: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    warnings: list[str] = []
    latency: dict[str, Any] | None = None

    @abstractmethod
    def artifact_file(self) -> FileEntry:
        """The artifact this manifest is about."""

    @abstractmethod
    def fp32_sha256(self) -> str | None:
        """The fp32 model the artifact was made from, when the manifest records it."""

    @abstractmethod
    def accuracies(self) -> dict[str, Accuracy]:
        """Accuracy by split ("test", "val", "validation file")."""

    def deploy(self) -> Deploy | None:
        """The runtime and precision the artifact ships on, where the command that wrote it chose one."""
        return None


class _RunAccuracy(_Part):  # by model, then split
    int8_onnx: dict[str, Percent | None] = {}
    fp32_onnx: dict[str, Percent | None] = {}


class _RunMetrics(_Part):
    accuracy: _RunAccuracy = _RunAccuracy()


class RunManifest(ArtifactManifest):
    """``edgeport run``: every file of the run folder; the int8 ONNX is the artifact."""

    command: ClassVar[str] = "run"
    run_id: str | None = None
    artifacts: dict[str, FileEntry]
    metrics: _RunMetrics = _RunMetrics()

    def artifact_file(self) -> FileEntry:
        return self.artifacts["int8_onnx"]

    def fp32_sha256(self) -> str | None:
        fp32 = self.artifacts.get("fp32_onnx")
        return fp32.sha256 if fp32 else None

    def accuracies(self) -> dict[str, Accuracy]:
        int8, fp32 = self.metrics.accuracy.int8_onnx, self.metrics.accuracy.fp32_onnx
        # a split counts when both models were measured on it (the run measures both on val and test)
        return {
            split: Accuracy(artifact=int8[split], fp32=fp32[split])
            for split in ("test", "val")
            if split in int8 and split in fp32
        }


class Deploy(_Part):
    """How an artifact is deployed (``speed.deploy`` of a quantize manifest whose runtime was chosen)."""

    runtime: Literal["ort", "openvino"]
    precision: Literal["f32", "bf16", "f16"] | None = None  # OpenVINO's hint; None: the runtime's default


class _Speed(_Part):
    deploy: Deploy | None = None


class _QuantizeLineage(_Part):
    onnx_sha256: Sha256 | None = None  # quantized from an fp32 ONNX file
    exported_fp32_sha256: Sha256 | None = None  # or from a torch model, exported here


class _Verification(_Part):
    accuracy: dict[str, Percent | None] | None = None  # int8 and fp32, when the validation inputs had labels


class QuantizeManifest(ArtifactManifest):
    """``edgeport quantize``: one int8 artifact and where it came from."""

    command: ClassVar[str] = "quantize"
    artifact: FileEntry
    lineage: _QuantizeLineage = _QuantizeLineage()
    verification: _Verification = _Verification()
    speed: _Speed | None = None  # None: written with the speed check off

    def artifact_file(self) -> FileEntry:
        return self.artifact

    def deploy(self) -> Deploy | None:
        return self.speed.deploy if self.speed is not None else None

    def fp32_sha256(self) -> str | None:
        return self.lineage.onnx_sha256 or self.lineage.exported_fp32_sha256

    def accuracies(self) -> dict[str, Accuracy]:
        measured = self.verification.accuracy
        if measured is None or "int8" not in measured:
            return {}
        return {"validation file": Accuracy(artifact=measured["int8"], fp32=measured.get("fp32"))}


class _SearchLineage(_Part):
    fp32_onnx_sha256: Sha256 | None = None


class _SearchMetrics(_Part):
    val_accuracy: Percent | None = None
    fp32_val_accuracy: Percent | None = None
    test_accuracy: Percent | None = None  # measured after the choice, for the chosen trial


class SearchManifest(ArtifactManifest):
    """``edgeport search``: best/manifest.json, the chosen trial's artifact."""

    command: ClassVar[str] = "search"
    path: str | None = None
    kind: str | None = None  # the artifact's kind: onnx-int8, or onnx-fp32 when fp32 was chosen
    sha256: Sha256
    size_bytes: SizeBytes | None = None
    trial: str
    chosen_because: str | None = None
    lineage: _SearchLineage = _SearchLineage()
    metrics: _SearchMetrics = _SearchMetrics()

    def artifact_file(self) -> FileEntry:
        return FileEntry(path=self.path, kind=self.kind, sha256=self.sha256, size_bytes=self.size_bytes)

    def fp32_sha256(self) -> str | None:
        return self.lineage.fp32_onnx_sha256

    def accuracies(self) -> dict[str, Accuracy]:
        found = {"val": Accuracy(artifact=self.metrics.val_accuracy, fp32=self.metrics.fp32_val_accuracy)}
        if self.metrics.test_accuracy is not None:
            found["test"] = Accuracy(artifact=self.metrics.test_accuracy)
        return found


SCHEMAS: dict[str, type[ArtifactManifest]] = {m.command: m for m in (RunManifest, QuantizeManifest, SearchManifest)}


def _field_error(exc: ValidationError, source: str) -> str:
    """The first problem as one line naming the file, the field and what was expected."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: field '{field}': {err['msg']} (got {err.get('input')!r}){more}"


def _command_of(data: dict) -> str | None:
    """Which command wrote the manifest, by its layout (the files carry no name for it)."""
    artifacts = data.get("artifacts")
    if isinstance(artifacts, dict) and "int8_onnx" in artifacts:
        return "run"
    if isinstance(data.get("artifact"), dict):
        return "quantize"
    if "sha256" in data and "trial" in data:
        return "search"
    return None


def parse_manifest(data: dict, source: str) -> ArtifactManifest:
    """The typed manifest of a JSON object; a one-line ConfigError naming ``source`` and the field otherwise."""
    command = _command_of(data)
    accepted = [MANIFEST_SCHEMA_VERSIONS[command]] if command else MANIFEST_SCHEMA_VERSIONS.values()
    check_schema_version(data, source, accepted, "manifest")
    if command is None:
        raise ConfigError(f"{source}: not an edgeport manifest (from run, quantize or search)")
    try:
        manifest = SCHEMAS[command].model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_field_error(exc, source)) from exc
    if manifest.artifact_file().sha256 is None:
        raise ConfigError(f"{source}: the manifest records no artifact sha256")
    return manifest


def read_manifest(path: str | Path) -> ArtifactManifest:
    """The manifest at ``path``, whichever command wrote it."""
    return parse_manifest(read_json(path, "manifest"), str(path))


def check_manifest(data: dict, source: str) -> dict:
    """What a writer calls right before writing ``data`` to ``source``: ``data`` itself, unchanged, when it
    follows the schema; otherwise the ConfigError ``read_manifest`` would raise reading it back. Checked as
    edgeport.core.artifacts.atomic_write_json writes it (tuples become lists, other objects strings)."""
    parse_manifest(json.loads(json.dumps(data, default=str)), source)
    return data
