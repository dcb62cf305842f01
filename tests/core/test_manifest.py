"""edgeport.core.manifest: the one artifact-manifest schema reads what `edgeport run`, `edgeport quantize` and
`edgeport search` write (and wrote before), refuses unknown versions and malformed fields in one line, and
lets a writer check its manifest unchanged; without torch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeport.core.manifest import (
    QuantizeManifest,
    RunManifest,
    SearchManifest,
    check_manifest,
    parse_manifest,
    read_manifest,
)
from edgeport.errors import ConfigError
from tests.benchmarks.no_torch import BLOCK_TORCH

ROOT = Path(__file__).resolve().parents[1]
INT8, FP32, TEACHER, STUDENT = "1" * 64, "f" * 64, "3" * 64, "4" * 64
VERSIONS = {"edgeport": "0.1.0", "python": "3.11.7", "platform": "Linux-x86_64", "torch": "not installed"}
ENVIRONMENT = {"cpu": {"model": "Some CPU", "machine": "x86_64", "logical_cores": 2, "isa": ["avx2"]}}
SETTINGS = {"batch": 1, "threads": 1, "warmup": 100, "iterations": 40, "rounds": 10}


def run_manifest() -> dict:
    """As edgeport.run.pipeline writes it (abridged where the schema does not look)."""

    def file(path, kind, sha, size, **meta):
        return {"path": path, "kind": kind, "sha256": sha, "size_bytes": size, **meta}

    return {
        "schema_version": 1,
        "run_id": "20261129-090223-fe1fd909",
        "created_utc": "2026-11-29T09:02:25+00:00",
        "seed": 0,
        "config": {"seed": 0, "bench": SETTINGS},
        "dataset": {"name": "digits", "splits": {"train": 1257, "val": 270, "test": 270}, "input_name": "input"},
        "artifacts": {
            "teacher": file("teacher.safetensors", "torch-state", TEACHER, 7248, parameters=1442),
            "student": file("student.safetensors", "torch-state", STUDENT, 7248, kd={"temperature": 4.0}),
            "fp32_onnx": file("student.fp32.onnx", "onnx-fp32", FP32, 17663, opset=18, parity={"max_abs": 1e-6}),
            "int8_onnx": file("student.int8.onnx", "onnx-int8", INT8, 15120, backend="ort-static"),
        },
        "lineage": {"student_no_kd": None, "quantization": {"backend": "ort-static", "reduce_range": False}},
        "metrics": {
            "accuracy": {
                "teacher": {"val": 97.0, "test": 96.3},
                "student": {"val": 95.2, "test": 95.9},
                "fp32_onnx": {"val": 95.2, "test": 95.9},
                "int8_onnx": {"val": 94.8, "test": 95.6},
            },
            "kd_gain_points": None,
            "parity": {"fp32_onnx_vs_torch": {}, "int8_vs_fp32": {}},
        },
        "verification": {"checker": "passed", "accuracy": {"fp32": 95.2, "int8": 94.8}},
        "fallback": None,
        "warnings": ["labels 1, 2 are not 0..1; they were mapped"],
        "latency": {"settings": SETTINGS, "fp32": {"p50_ms": 0.2}, "int8": {"p50_ms": 0.1}, "int8_faster": True},
        "environment": ENVIRONMENT,
        "versions": VERSIONS,
        "timings_s": {"data": 0.1},
    }


def quantize_manifest() -> dict:
    """As edgeport.quantize.job writes it, for a torch model exported here."""
    return {
        "schema_version": 1,
        "created_utc": "2026-11-29T09:02:26+00:00",
        "artifact": {"path": "out.onnx", "kind": "onnx-int8", "sha256": INT8, "size_bytes": 36498},
        "lineage": {
            "torch_model": {"name": "cnn"},
            "weights": "w.safetensors",
            "weights_sha256": STUDENT,
            "exported_fp32_sha256": FP32,
            "exporter": "dynamo",
            "calibration": {"file": "calib.npz", "sha256": TEACHER, "samples": 64},
            "validation": {"file": None, "note": "verified on the calibration inputs"},
            "quantization": {"backend": "ort-static"},
        },
        "verification": {"checker": "passed", "samples": 64, "accuracy": {"fp32": 91.0, "int8": 90.5}},
        "fallback": None,
        "warnings": [],
        "environment": {"cpu": ENVIRONMENT["cpu"]},
        "versions": VERSIONS,
    }


def search_manifest() -> dict:
    """As edgeport.search.finish writes best/manifest.json."""
    return {
        "schema_version": 1,
        "kind": "onnx-int8",
        "path": "model.onnx",
        "sha256": INT8,
        "size_bytes": 378741,
        "trial": "a24306fea22c",
        "params": {"quantize.backend": "ort-static", "student.model.depth": 3},
        "chosen_because": "highest validation accuracy among 10 feasible of 12 finished trials",
        "seed": 0,
        "config": {"seed": 0},
        "dataset": {"name": "digits"},
        "lineage": {"teacher": {"sha256": TEACHER}, "fp32_onnx_sha256": FP32, "quantization": None},
        "metrics": {
            "val_accuracy": 97.4,
            "fp32_val_accuracy": 97.8,
            "teacher_val_accuracy": 98.1,
            "kind": "onnx-int8",
            "within_tolerance": None,
            "test_accuracy": 98.5,
        },
        "latency": {"settings": SETTINGS, "stats": {"p50_ms": 0.3}, "environment": ENVIRONMENT},
        "versions": VERSIONS,
        "created_utc": "2026-11-29T11:03:55+00:00",
    }


SHAPES = {"run": run_manifest, "quantize": quantize_manifest, "search": search_manifest}


def write(tmp_path: Path, data: dict, name: str = "manifest.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    "command, schema, size, split, accuracy, fp32",
    [
        ("run", RunManifest, 15120, "test", 95.6, 95.9),
        ("quantize", QuantizeManifest, 36498, "validation file", 90.5, 91.0),
        ("search", SearchManifest, 378741, "val", 97.4, 97.8),
    ],
)
def test_each_commands_manifest_reads_as_one_typed_manifest(tmp_path, command, schema, size, split, accuracy, fp32):
    manifest = read_manifest(write(tmp_path, SHAPES[command]()))
    assert type(manifest) is schema and manifest.command == command
    artifact = manifest.artifact_file()
    assert artifact.sha256 == INT8 and artifact.size_bytes == size
    assert artifact.kind == "onnx-int8" and manifest.fp32_sha256() == FP32
    found = manifest.accuracies()[split]
    assert (found.artifact, found.fp32) == (accuracy, fp32)
    assert manifest.versions == VERSIONS and manifest.schema_version == 1


def test_the_common_part_is_typed_alike_for_every_command():
    run, quantize, search = (parse_manifest(SHAPES[c](), c) for c in ("run", "quantize", "search"))
    assert run.seed == search.seed == 0 and quantize.seed is None
    assert run.environment == ENVIRONMENT and quantize.environment == {"cpu": ENVIRONMENT["cpu"]}
    assert run.warnings == ["labels 1, 2 are not 0..1; they were mapped"] and quantize.warnings == []
    assert run.latency is not None and run.latency["int8_faster"] is True
    assert search.latency is not None and search.latency["environment"] == ENVIRONMENT
    assert set(run.accuracies()) == {"test", "val"} and set(search.accuracies()) == {"val", "test"}
    assert search.accuracies()["test"].fp32 is None  # the fp32 model's test accuracy is not measured


@pytest.mark.parametrize("command", ["run", "quantize", "search"])
def test_check_manifest_returns_the_writers_dict_unchanged(command):
    data = SHAPES[command]()
    before = copy.deepcopy(data)
    assert check_manifest(data, "out/manifest.json") is data
    assert data == before


def test_check_manifest_checks_the_json_the_writer_will_write():
    """atomic_write_json writes tuples as lists and other objects as strings: checked as they will read back."""
    data = {**quantize_manifest(), "warnings": ("a tuple of warnings",)}
    data["artifact"] = {**data["artifact"], "path": Path("out.onnx")}
    assert check_manifest(data, "out.manifest.json") is data and data["warnings"] == ("a tuple of warnings",)
    with pytest.raises(ConfigError, match="field 'verification.accuracy.fp32': accuracy must be a percentage"):
        check_manifest(_set(quantize_manifest(), "verification.accuracy.fp32", float("inf")), "out.manifest.json")


def test_manifests_written_before_with_only_the_gated_facts_still_read():
    """Files from earlier versions (and the gate's own tests) carry no versions, environment or paths."""
    minimal = {
        "run": {"schema_version": 1, "artifacts": {"int8_onnx": {"sha256": INT8}}},
        "quantize": {"schema_version": 1, "artifact": {"sha256": INT8, "size_bytes": 3}},
        "search": {"schema_version": 1, "sha256": INT8, "trial": "t1", "metrics": {"val_accuracy": 98.0}},
    }
    for command, data in minimal.items():
        manifest = parse_manifest(data, f"{command}.json")
        assert manifest.command == command and manifest.artifact_file().sha256 == INT8
        assert manifest.versions is None and manifest.fp32_sha256() is None
    assert parse_manifest(minimal["run"], "r").accuracies() == {}
    assert parse_manifest(minimal["quantize"], "q").accuracies() == {}
    assert parse_manifest(minimal["search"], "s").accuracies()["val"].artifact == 98.0


@pytest.mark.parametrize("command", ["run", "quantize", "search"])
def test_an_unknown_schema_version_is_refused_in_one_line_naming_file_and_version(tmp_path, command):
    path = write(tmp_path, {**SHAPES[command](), "schema_version": 99})
    with pytest.raises(ConfigError) as exc:
        read_manifest(path)
    assert one_line(exc) == f"{path}: schema_version 99 is not one this edgeport reads (1)"
    with pytest.raises(ConfigError, match="schema_version 99"):
        check_manifest({**SHAPES[command](), "schema_version": 99}, "out/manifest.json")


@pytest.mark.parametrize("version", [None, True, "1", 1.0])
def test_a_missing_or_mistyped_schema_version_is_refused(version):
    data = quantize_manifest()
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    with pytest.raises(ConfigError) as exc:
        parse_manifest(data, "m.json")
    assert one_line(exc).startswith("m.json: ") and "schema_version" in str(exc.value)


def _set(data: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


@pytest.mark.parametrize(
    "command, field, value, expected",
    [
        ("quantize", "artifact.size_bytes", "big", "size_bytes must be a non-negative integer"),
        ("quantize", "artifact.size_bytes", True, "size_bytes must be a non-negative integer"),
        ("quantize", "verification.accuracy.int8", float("nan"), "accuracy must be a percentage from 0 to 100"),
        ("quantize", "lineage.exported_fp32_sha256", "abc", "must be a sha256 hex digest"),
        ("run", "metrics.accuracy.int8_onnx.test", 150.0, "accuracy must be a percentage from 0 to 100"),
        ("run", "artifacts.fp32_onnx.sha256", FP32.upper(), "must be a sha256 hex digest"),
        ("run", "warnings", "one warning", "valid list"),
        ("search", "metrics.val_accuracy", "97.4", "accuracy must be a number"),
        ("search", "trial", 7, "valid string"),
        ("search", "versions.torch", 2, "valid string"),
    ],
)
def test_a_malformed_manifest_names_the_field(tmp_path, command, field, value, expected):
    path = write(tmp_path, _set(SHAPES[command](), field, value))
    with pytest.raises(ConfigError) as exc:
        read_manifest(path)
    message = one_line(exc)
    assert message.startswith(f"{path}: field '{field}': ") and expected in message, message


def test_no_artifact_hash_and_unknown_layouts_are_refused():
    with pytest.raises(ConfigError, match="records no artifact sha256"):
        parse_manifest({"schema_version": 1, "artifact": {"size_bytes": 3}}, "q.json")
    summary = {"schema_version": 1, "chosen": "a2", "trials_recorded": 12, "best": {"sha256": INT8}}
    with pytest.raises(ConfigError) as exc:  # a search folder's summary is not an artifact manifest
        check_manifest(summary, "search/manifest.json")
    assert one_line(exc) == "search/manifest.json: not an edgeport manifest (from run, quantize or search)"


def test_unreadable_files_are_one_line_errors(tmp_path):
    cases = {
        tmp_path / "missing.json": "manifest not found",
        write(tmp_path, {}, "x.json").with_name("x.json"): "no schema_version",
        tmp_path: "is a folder",
    }
    (tmp_path / "bad.json").write_text("{not json")
    cases[tmp_path / "bad.json"] = "not readable JSON"
    (tmp_path / "list.json").write_text("[1]")
    cases[tmp_path / "list.json"] = "must be a JSON object"
    for path, expected in cases.items():
        with pytest.raises(ConfigError) as exc:
            read_manifest(path)
        assert one_line(exc).startswith(f"{path}: ") and expected in str(exc.value), (path, exc.value)


def test_the_manifest_schema_imports_without_torch():
    code = (
        BLOCK_TORCH + "from edgeport.core.manifest import check_manifest, read_manifest\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
