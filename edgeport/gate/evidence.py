"""What the gate judges: latency samples from a result file, accuracy and size from a manifest.

Result files: a single BenchResult (`edgeport search`'s benchmark entries), an `edgeport bench -o`
report (A is the artifact; B, when measured with --vs, is the fp32 reference for min_speedup),
or a run folder's latency.json (int8 is the artifact, fp32 the reference). Manifests (a run folder's
manifest.json, `edgeport quantize`'s X.manifest.json, a search's best/manifest.json) are read by
edgeport.core.manifest, whose typed manifest gives the facts the gate needs whichever command wrote it.
Every file carries the schema_version edgeport wrote it with; a file without one, or with a version
this edgeport does not know, is refused rather than read by guesswork.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeport.benchmarks.latency import SCHEMA_VERSION
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice, recorded_runtime
from edgeport.benchmarks.rounds import rounds_of
from edgeport.core.json_files import check_schema_version, read_json
from edgeport.core.manifest import Accuracy, ArtifactManifest, read_manifest
from edgeport.errors import ConfigError
from edgeport.gate.footprint_checks import read_footprints

RESULT_SCHEMA_VERSIONS = (SCHEMA_VERSION,)


@dataclass
class Measurement:
    rounds: np.ndarray  # (rounds, samples per round) in milliseconds, in measurement order
    settings: dict
    environment: dict
    model_sha256: str
    model_path: str
    source: str
    footprint: list[dict] | None = None  # `bench --footprint`'s records, or the gate's own (footprint_checks.py)
    sustained: dict | None = None  # `bench --sustained`'s record: drift, heat, whether the device throttled

    @property
    def samples_ms(self) -> np.ndarray:
        return self.rounds.ravel()

    def extended(self, more: Measurement) -> Measurement:
        """This measurement followed by ``more`` (another measurement of the same model, same round size)."""
        width, extra = self.rounds.shape[1], more.samples_ms
        rounds = np.vstack([self.rounds, extra[: extra.size - extra.size % width].reshape(-1, width)])
        return Measurement(
            rounds,
            self.settings,
            self.environment,
            self.model_sha256,
            self.model_path,
            self.source,
            self.footprint,
            self.sustained,
        )


@dataclass(frozen=True)
class ArtifactFacts:
    """From the manifest: the artifact's hash and size, its fp32 model's hash, and accuracies by split."""

    sha256: str
    size_bytes: int | None = None
    fp32_sha256: str | None = None  # the fp32 model the artifact came from, when the manifest records it
    accuracy: dict[str, Accuracy] = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def from_manifest(cls, manifest: ArtifactManifest, source: str) -> ArtifactFacts:
        artifact = manifest.artifact_file()
        if artifact.sha256 is None:  # parse_manifest refuses such a manifest; a bug if it gets here
            raise RuntimeError(f"internal error: {source} was read without an artifact sha256")
        return cls(artifact.sha256, artifact.size_bytes, manifest.fp32_sha256(), manifest.accuracies(), source)

    def accuracy_split(self, need_fp32: bool) -> tuple[str, Accuracy] | None:
        """The first split with the artifact's accuracy (and the fp32 model's, when ``need_fp32``)."""
        for split in ("test", "validation file", "val"):
            entry = self.accuracy.get(split)
            if entry is not None and entry.artifact is not None and (not need_fp32 or entry.fp32 is not None):
                return split, entry
        return None


def read_artifact_facts(path: str | Path) -> ArtifactFacts:
    """The facts the gate judges from the manifest at ``path``, whichever command wrote it."""
    return ArtifactFacts.from_manifest(read_manifest(path), str(path))


class _Cpu(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str = ""
    machine: str | None = None
    logical_cores: int | None = None
    isa: list[str] = []


class _Environment(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    cpu: _Cpu = _Cpu()


class _Settings(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    batch: int
    threads: int
    rounds: int | None = None
    rounds_run: int | None = None


class _Entry(BaseModel):
    """One benchmark result as edgeport writes it; strict, so strings or booleans are not latencies."""

    model_config = ConfigDict(extra="allow", strict=True)
    samples_ms: list[float] = Field(min_length=1)
    settings: _Settings
    environment: _Environment
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    model_path: str = ""


def _entry(entry, source: str) -> _Entry:
    if isinstance(entry, dict):
        check_schema_version(entry, source, RESULT_SCHEMA_VERSIONS, "benchmark result")
    try:
        return _Entry.model_validate(entry)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(entry)"
        raise ConfigError(f"{source}: not an edgeport benchmark result (field '{field}': {err['msg']})") from exc


def _measurement(entry: _Entry, source: str) -> Measurement:
    samples = np.asarray(entry.samples_ms, dtype=np.float64)
    if not np.all(np.isfinite(samples)) or np.any(samples <= 0):
        raise ConfigError(f"{source}: samples_ms must be positive, finite latencies")
    settings = entry.settings.model_dump()
    return Measurement(
        rounds_of(samples, settings),
        settings,
        entry.environment.model_dump(),
        entry.model_sha256,
        entry.model_path,
        source,
        read_footprints((entry.model_extra or {}).get("footprint"), source),
        _sustained((entry.model_extra or {}).get("sustained"), source),
    )


def _sustained(value: Any, source: str) -> dict | None:
    if value is not None and (not isinstance(value, dict) or not isinstance(value.get("throttled"), bool | None)):
        raise ConfigError(f"{source}: field 'sustained': expected `bench --sustained`'s record with 'throttled'")
    return value


def _runtime(entry: _Entry) -> tuple[Any, Any]:
    """The (runtime, precision) a result was measured on, as recorded (before runtimes existed: onnxruntime)."""
    return recorded_runtime(entry.settings.model_dump())


def _bench_entries(results: list, runtime: str) -> list[tuple[str, Any]]:
    """The roles of an `edgeport bench -o` file's entries: with --vs, A is the artifact and B the fp32
    reference; with --runtime all (entries named by runtime), the entry on the target's runtime is the
    artifact and the others are not used."""
    labels = [e.get("model") if isinstance(e, dict) else None for e in results]
    if "a" in labels or runtime not in labels:
        return [("artifact" if label == "a" else "reference", e) for label, e in zip(labels, results, strict=True)]
    return [("artifact" if label == runtime else "other", e) for label, e in zip(labels, results, strict=True)]


def read_result(
    path: str | Path, batch: int, threads: int, runtime: RuntimeChoice = ONNXRUNTIME
) -> tuple[Measurement, Measurement | None]:
    """The artifact's measurement at ``batch`` and ``threads``, and the fp32 reference's when the file has one;
    both must have been measured on ``runtime`` (and its precision hint): a latency from another runtime
    says nothing about this target."""
    source = str(path)
    data = read_json(path, "result file")
    if "samples_ms" in data:
        candidates = [("artifact", data)]
    elif isinstance(data.get("results"), list):
        check_schema_version(data, source, RESULT_SCHEMA_VERSIONS, "benchmark result")  # `edgeport bench -o`
        candidates = _bench_entries(data["results"], runtime.name)
    elif isinstance(data.get("int8"), dict) and isinstance(data.get("fp32"), dict):
        candidates = [("artifact", data["int8"]), ("reference", data["fp32"])]
    else:
        raise ConfigError(f"{source}: not an edgeport benchmark result (expected samples_ms, results, or int8/fp32)")
    entries = [(role, _entry(e, source)) for role, e in candidates if role != "other"]
    found = {role: e for role, e in entries if (e.settings.batch, e.settings.threads) == (batch, threads)}
    if "artifact" not in found:
        have = sorted({(e.settings.batch, e.settings.threads) for _, e in entries})
        raise ConfigError(
            f"{source}: no measurement at batch {batch}, {threads} thread(s), which the target's budget "
            f"is for; the file has (batch, threads) {have}"
        )
    for role, entry in found.items():
        recorded = _runtime(entry)
        if recorded != (runtime.name, runtime.precision):
            measured = "/".join(filter(None, recorded))
            raise ConfigError(
                f"{source}: the {role} was measured on runtime {measured!r}; the target is for "
                f"{runtime.label()!r}: measure it there (edgeport bench --runtime {runtime.name}) or let the gate "
                "measure (--artifact)"
            )
    reference = _measurement(found["reference"], source) if "reference" in found else None
    return _measurement(found["artifact"], source), reference


def find_manifest(result_path: Path | None, model_path: str | None) -> Path | None:
    """The manifest that belongs with a result or an artifact, by edgeport's file conventions."""
    places = []
    if result_path is not None:
        places.append(Path(result_path).parent / "manifest.json")  # run folder: latency.json beside it
    if model_path:
        model = Path(model_path)
        places += [
            model.with_suffix(".manifest.json"),
            model.parent / f"{model.stem}.manifest.json",
            model.parent / "manifest.json",
        ]
    # os.path.isfile: False, not PermissionError, for a model_path in a folder this user cannot enter
    return next((p for p in places if os.path.isfile(p)), None)
