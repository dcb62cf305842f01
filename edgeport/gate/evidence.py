"""What the gate judges: latency samples from a result file, accuracy and size from a manifest.

Result files: a single BenchResult (`edgeport search`'s benchmark entries), an `edgeport bench -o`
report (A is the artifact; B, when measured with --vs, is the fp32 reference for min_speedup),
or a run folder's latency.json (int8 is the artifact, fp32 the reference). Manifests: a run
folder's manifest.json, `edgeport quantize`'s X.manifest.json, or a search's best/manifest.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport.errors import ConfigError
from edgeport.gate.rounds import rounds_of


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

    def extended(self, more: "Measurement") -> "Measurement":
        """This measurement followed by ``more`` (another measurement of the same model, same round size)."""
        width, extra = self.rounds.shape[1], more.samples_ms
        rounds = np.vstack([self.rounds, extra[:extra.size - extra.size % width].reshape(-1, width)])
        return Measurement(rounds, self.settings, self.environment, self.model_sha256, self.model_path, self.source)


@dataclass
class ArtifactFacts:
    """From the manifest: the artifact's hash and size, and accuracies by split."""

    sha256: str | None = None
    size_bytes: int | None = None
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> {"artifact": x, "fp32": y}
    source: str | None = None


def read_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: {what} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a JSON object")
    return data


def _measurement(entry: dict, source: str) -> Measurement:
    try:
        samples = np.asarray(entry["samples_ms"], dtype=np.float64)
        settings = dict(entry["settings"])
        measurement = (settings, dict(entry["environment"]), str(entry["model_sha256"]), str(entry.get("model_path", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: not an edgeport benchmark result (missing or bad {exc})") from exc
    if samples.ndim != 1 or samples.size == 0 or not np.all(np.isfinite(samples)) or np.any(samples <= 0):
        raise ConfigError(f"{source}: samples_ms must be a non-empty list of positive latencies")
    return Measurement(rounds_of(samples, settings), *measurement, source)


def _matches(entry: dict, batch: int, threads: int) -> bool:
    settings = entry.get("settings", {})
    return settings.get("batch") == batch and settings.get("threads") == threads


def read_result(path: str | Path, batch: int, threads: int) -> tuple[Measurement, Measurement | None]:
    """The artifact's measurement at ``batch`` and ``threads``, and the fp32 reference's when the file has one."""
    source = str(path)
    data = read_json(path, "result file")
    if "samples_ms" in data:
        candidates = [("artifact", data)]
    elif isinstance(data.get("results"), list):
        candidates = [("artifact" if e.get("model") == "a" else "reference", e) for e in data["results"]]
    elif isinstance(data.get("int8"), dict) and isinstance(data.get("fp32"), dict):
        candidates = [("artifact", data["int8"]), ("reference", data["fp32"])]
    else:
        raise ConfigError(f"{source}: not an edgeport benchmark result (expected samples_ms, results, or int8/fp32)")
    found = {role: entry for role, entry in candidates if _matches(entry, batch, threads)}
    if "artifact" not in found:
        have = sorted({(e.get("settings", {}).get("batch"), e.get("settings", {}).get("threads"))
                       for _, e in candidates if isinstance(e, dict)})
        raise ConfigError(f"{source}: no measurement at batch {batch}, {threads} thread(s), which the target's budget "
                          f"is for; the file has (batch, threads) {have}")
    reference = _measurement(found["reference"], source) if "reference" in found else None
    return _measurement(found["artifact"], source), reference


def read_manifest(path: str | Path) -> ArtifactFacts:
    source = str(path)
    data = read_json(path, "manifest")
    facts = ArtifactFacts(source=source)
    if isinstance(data.get("artifacts"), dict) and "int8_onnx" in data["artifacts"]:  # edgeport run
        art = data["artifacts"]["int8_onnx"]
        facts.sha256, facts.size_bytes = art.get("sha256"), art.get("size_bytes")
        acc = data.get("metrics", {}).get("accuracy", {})
        for split in ("test", "val"):
            if split in acc.get("int8_onnx", {}) and split in acc.get("fp32_onnx", {}):
                facts.accuracy[split] = {"artifact": acc["int8_onnx"][split], "fp32": acc["fp32_onnx"][split]}
    elif isinstance(data.get("artifact"), dict):  # edgeport quantize
        facts.sha256, facts.size_bytes = data["artifact"].get("sha256"), data["artifact"].get("size_bytes")
        acc = (data.get("verification") or {}).get("accuracy")
        if acc:
            facts.accuracy["validation file"] = {"artifact": acc["int8"], "fp32": acc["fp32"]}
    elif "sha256" in data and "trial" in data:  # edgeport search: best/manifest.json
        facts.sha256, facts.size_bytes = data["sha256"], data.get("size_bytes")
        metrics = data.get("metrics", {})
        facts.accuracy["val"] = {"artifact": metrics.get("val_accuracy"), "fp32": metrics.get("fp32_val_accuracy")}
        if metrics.get("test_accuracy") is not None:
            facts.accuracy["test"] = {"artifact": metrics["test_accuracy"], "fp32": None}
    else:
        raise ConfigError(f"{source}: not an edgeport manifest (from run, quantize or search)")
    if not facts.sha256:
        raise ConfigError(f"{source}: the manifest records no artifact sha256")
    return facts


def find_manifest(result_path: Path | None, model_path: str | None) -> Path | None:
    """The manifest that belongs with a result or an artifact, by edgeport's file conventions."""
    places = []
    if result_path is not None:
        places.append(Path(result_path).parent / "manifest.json")  # run folder: latency.json beside it
    if model_path:
        model = Path(model_path)
        places += [model.with_suffix(".manifest.json"), model.parent / f"{model.stem}.manifest.json",
                   model.parent / "manifest.json"]
    return next((p for p in places if p.is_file()), None)
