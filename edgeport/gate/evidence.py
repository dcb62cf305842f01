"""What the gate judges: latency samples from a result file, accuracy and size from a manifest.

Result files: a single BenchResult (`edgeport search`'s benchmark entries), an `edgeport bench -o`
report (A is the artifact; B, when measured with --vs, is the fp32 reference for min_speedup),
or a run folder's latency.json (int8 is the artifact, fp32 the reference). Manifests: a run
folder's manifest.json, `edgeport quantize`'s X.manifest.json, or a search's best/manifest.json.
Every one carries the schema_version edgeport wrote it with; a file without one, or with a version
this edgeport does not know, is refused rather than read by guesswork.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeport.benchmarks.latency import SCHEMA_VERSION
from edgeport.benchmarks.rounds import rounds_of
from edgeport.errors import ConfigError
from edgeport.gate.budgets import refuse_special_file

# The manifest schema versions edgeport writes: edgeport.pipeline.MANIFEST_SCHEMA (run),
# edgeport.quantize_job.MANIFEST_SCHEMA (quantize), edgeport.search.finish.SEARCH_SCHEMA (search's
# best/manifest.json). Not imported: those modules import torch, and the gate must not.
MANIFEST_SCHEMA_VERSIONS = {"run": 1, "quantize": 1, "search": 1}
RESULT_SCHEMA_VERSIONS = (SCHEMA_VERSION,)


@dataclass
class Measurement:
    rounds: np.ndarray  # (rounds, samples per round) in milliseconds, in measurement order
    settings: dict
    environment: dict
    model_sha256: str
    model_path: str
    source: str

    @property
    def samples_ms(self) -> np.ndarray:
        return self.rounds.ravel()

    def extended(self, more: Measurement) -> Measurement:
        """This measurement followed by ``more`` (another measurement of the same model, same round size)."""
        width, extra = self.rounds.shape[1], more.samples_ms
        rounds = np.vstack([self.rounds, extra[: extra.size - extra.size % width].reshape(-1, width)])
        return Measurement(rounds, self.settings, self.environment, self.model_sha256, self.model_path, self.source)


@dataclass
class ArtifactFacts:
    """From the manifest: the artifact's hash and size, and accuracies by split."""

    sha256: str | None = None
    size_bytes: int | None = None
    fp32_sha256: str | None = None  # the fp32 model the artifact came from, when the manifest records it
    accuracy: dict[str, dict[str, float | None]] = field(default_factory=dict)  # split -> {"artifact": x, "fp32": y}
    source: str | None = None


def read_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    refuse_special_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: {what} is not readable JSON ({exc})") from exc
    except RecursionError as exc:  # json gives up on very deep nesting this way
        raise ConfigError(f"{path}: {what} is not readable JSON (nested too deeply)") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a JSON object")
    return data


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


def _check_schema(data: dict, source: str, accepted, what: str) -> None:
    """Refuse a file edgeport did not write (no schema_version) or wrote in a format this version cannot read."""
    known = ", ".join(str(v) for v in sorted(set(accepted)))
    if "schema_version" not in data:
        raise ConfigError(
            f"{source}: not an edgeport {what} (no schema_version; this edgeport reads schema_version {known})"
        )
    version = data["schema_version"]
    if type(version) is not int or version not in accepted:  # type(): True == 1 in Python
        raise ConfigError(f"{source}: schema_version {version!r} is not one this edgeport reads ({known})")


def _entry(entry, source: str) -> _Entry:
    if isinstance(entry, dict):
        _check_schema(entry, source, RESULT_SCHEMA_VERSIONS, "benchmark result")
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
    )


def read_result(path: str | Path, batch: int, threads: int) -> tuple[Measurement, Measurement | None]:
    """The artifact's measurement at ``batch`` and ``threads``, and the fp32 reference's when the file has one."""
    source = str(path)
    data = read_json(path, "result file")
    if "samples_ms" in data:
        candidates = [("artifact", data)]
    elif isinstance(data.get("results"), list):
        _check_schema(data, source, RESULT_SCHEMA_VERSIONS, "benchmark result")  # `edgeport bench -o`
        candidates = [
            ("artifact" if isinstance(e, dict) and e.get("model") == "a" else "reference", e) for e in data["results"]
        ]
    elif isinstance(data.get("int8"), dict) and isinstance(data.get("fp32"), dict):
        candidates = [("artifact", data["int8"]), ("reference", data["fp32"])]
    else:
        raise ConfigError(f"{source}: not an edgeport benchmark result (expected samples_ms, results, or int8/fp32)")
    entries = [(role, _entry(e, source)) for role, e in candidates]
    found = {role: e for role, e in entries if (e.settings.batch, e.settings.threads) == (batch, threads)}
    if "artifact" not in found:
        have = sorted({(e.settings.batch, e.settings.threads) for _, e in entries})
        raise ConfigError(
            f"{source}: no measurement at batch {batch}, {threads} thread(s), which the target's budget "
            f"is for; the file has (batch, threads) {have}"
        )
    reference = _measurement(found["reference"], source) if "reference" in found else None
    return _measurement(found["artifact"], source), reference


def _number(value, what: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{source}: {what} must be a number, got {value!r}")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ConfigError(f"{source}: {what} must be a percentage from 0 to 100, got {value!r}")
    return float(value)


def _sha(value, what: str, source: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"{source}: {what} must be a sha256 hex digest, got {value!r}")
    return value


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def read_manifest(path: str | Path) -> ArtifactFacts:
    source = str(path)
    data = read_json(path, "manifest")
    _check_schema(data, source, set(MANIFEST_SCHEMA_VERSIONS.values()), "manifest")
    facts = ArtifactFacts(source=source)

    def accuracy(split: str, artifact, fp32) -> None:
        facts.accuracy[split] = {
            "artifact": _number(artifact, f"{split} accuracy", source),
            "fp32": _number(fp32, f"{split} fp32 accuracy", source),
        }

    artifacts = _dict(data.get("artifacts"))
    if "int8_onnx" in artifacts:  # edgeport run
        art = _dict(artifacts["int8_onnx"])
        sha, size = art.get("sha256"), art.get("size_bytes")
        facts.fp32_sha256 = _sha(_dict(artifacts.get("fp32_onnx")).get("sha256"), "fp32_onnx sha256", source)
        acc = _dict(_dict(data.get("metrics")).get("accuracy"))
        int8, fp32 = _dict(acc.get("int8_onnx")), _dict(acc.get("fp32_onnx"))
        for split in ("test", "val"):
            if split in int8 and split in fp32:
                accuracy(split, int8[split], fp32[split])
    elif isinstance(data.get("artifact"), dict):  # edgeport quantize
        sha, size = data["artifact"].get("sha256"), data["artifact"].get("size_bytes")
        lineage = _dict(data.get("lineage"))
        facts.fp32_sha256 = _sha(
            lineage.get("onnx_sha256") or lineage.get("exported_fp32_sha256"), "fp32 sha256", source
        )
        acc = _dict(_dict(data.get("verification")).get("accuracy"))
        if "int8" in acc:
            accuracy("validation file", acc["int8"], acc.get("fp32"))
    elif "sha256" in data and "trial" in data:  # edgeport search: best/manifest.json
        sha, size = data["sha256"], data.get("size_bytes")
        facts.fp32_sha256 = _sha(_dict(data.get("lineage")).get("fp32_onnx_sha256"), "fp32_onnx_sha256", source)
        metrics = _dict(data.get("metrics"))
        accuracy("val", metrics.get("val_accuracy"), metrics.get("fp32_val_accuracy"))
        if metrics.get("test_accuracy") is not None:
            accuracy("test", metrics["test_accuracy"], None)
    else:
        raise ConfigError(f"{source}: not an edgeport manifest (from run, quantize or search)")
    facts.sha256 = _sha(sha, "artifact sha256", source)
    if not facts.sha256:
        raise ConfigError(f"{source}: the manifest records no artifact sha256")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ConfigError(f"{source}: artifact size_bytes must be a non-negative integer, got {size!r}")
    facts.size_bytes = size
    return facts


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
