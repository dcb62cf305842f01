"""Reproducibility: shipped ONNX artifacts hold no path of the build machine and do not depend on where
edgeport was checked out (issue item 21).

torch.onnx's dynamo exporter writes stack traces with absolute paths into node metadata_props, and ONNX
Runtime's quantizer copies them into the int8 model: two same-seed runs from two checkouts gave
different sha256 although the weights were byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import edgeport
from edgeport.exporter import read_metadata
from edgeport.models import ModelSpec
from edgeport.models.checkpoint import save_checkpoint
from tests.bad_input.conftest import run_cli

# The smallest run that still goes through every stage: 8x8 digits, one epoch each, a short benchmark.
TINY_RUN = """\
[run]
seed = 0
[run.data]
image_size = 8
[run.teacher]
model = "cnn:width=1,depth=2"
epochs = 1
[run.student]
model = "cnn:width=1,depth=2"
epochs = 1
no_kd_baseline = false
[run.quantize]
calibration_samples = 32
[run.bench]
warmup = 5
iterations = 40
rounds = 4
"""
ARTIFACTS = ("student.fp32.onnx", "student.int8.onnx")
# auto ships the faithful recipe that ran fastest on this machine: a choice made by a clock, which two runs
# can only share when no recipe is clearly faster (its tie rule: tests/benchmarks/test_speedup.py). What
# must match byte for byte is everything else, so the two-checkout run names its backend.
ONE_BACKEND_RUN = TINY_RUN.replace("[run.quantize]\n", '[run.quantize]\nbackend = "ort-static"\n')
assert ONE_BACKEND_RUN != TINY_RUN


def machine_paths(*extra) -> list[str]:
    """Paths of this machine that must never appear in an artifact: virtualenv, torch, edgeport, cwd, ..."""
    import torch

    candidates = [
        sys.prefix,
        Path(torch.__file__).parent,
        Path(edgeport.__file__).parent,
        os.getcwd(),
        Path.home(),
        *extra,
    ]
    # "/" or "/usr" alone would match by chance; anything longer is a real leak.
    return sorted({str(Path(p)) for p in candidates if len(str(Path(p))) > 4})


def leaked(path: Path, needles: list[str]) -> list[str]:
    data = path.read_bytes()
    return [needle for needle in needles if needle.encode() in data]


def node_debug_keys(path: Path) -> set[str]:
    model = onnx.load(str(path))
    keys = {p.key for node in model.graph.node for p in node.metadata_props}
    keys |= {p.key for p in model.graph.metadata_props}
    keys |= {
        p.key for v in (*model.graph.input, *model.graph.output, *model.graph.value_info) for p in v.metadata_props
    }
    keys |= {"doc_string" for node in model.graph.node if node.doc_string}
    return keys


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(tmp folder, run folder) of one tiny `edgeport run` in this process."""
    from edgeport.cli import main

    tmp = tmp_path_factory.mktemp("reproducible-run")
    (tmp / "edgeport.toml").write_text(TINY_RUN)
    code = main(["run", "--config", str(tmp / "edgeport.toml"), "--out", str(tmp / "runs"), "--quiet"])
    assert code == 0
    (run,) = [p for p in (tmp / "runs").iterdir() if not p.name.startswith(".")]
    return tmp, run


def test_no_path_of_the_build_machine_in_run_artifacts(tiny_run):
    tmp, run = tiny_run
    needles = machine_paths(tmp, run, tmp / "runs")
    for name in ARTIFACTS:
        found = leaked(run / name, needles)
        assert not found, f"{name} contains {found}"
        assert node_debug_keys(run / name) == set(), name
        # edgeport's own lineage stays.
        assert read_metadata(run / name)["kind"] == ("onnx-fp32" if "fp32" in name else "onnx-int8")
    manifest = json.loads((run / "manifest.json").read_text())
    for name, key in zip(ARTIFACTS, ("fp32_onnx", "int8_onnx"), strict=True):
        assert manifest["artifacts"][key]["sha256"] == sha256(run / name)


@pytest.mark.parametrize("backend", ["torch-fx", "torch-pt2e"])
def test_no_path_of_the_build_machine_in_torch_backend_int8(tmp_path, capsys, trained_cnn, digits16, backend):
    save_checkpoint(trained_cnn, tmp_path / "w.safetensors", ModelSpec.parse("cnn:width=1,depth=3"), 1, 10, 16)
    np.savez(tmp_path / "calib.npz", x=digits16.train.x[:32], y=digits16.train.y[:32])
    out = tmp_path / f"{backend}.onnx"
    code, _, err = run_cli(
        capsys,
        "quantize",
        "--quiet",
        "--torch",
        "cnn:width=1,depth=3",
        "--weights",
        tmp_path / "w.safetensors",
        "--calib",
        tmp_path / "calib.npz",
        "--backend",
        backend,
        "-o",
        out,
    )
    assert code == 0, err
    found = leaked(out, machine_paths(tmp_path))
    assert not found, f"{out.name} contains {found}"
    assert node_debug_keys(out) == set()
    assert read_metadata(out)["backend"] == backend


_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); import edgeport; print(edgeport.__file__, flush=True); "
    "from edgeport.cli import main; sys.exit(main(sys.argv[2:]))"
)


def test_two_checkouts_give_byte_identical_artifacts(tmp_path):
    """The same seed from two copies of the package, each run from its own folder: same sha256."""
    source = Path(edgeport.__file__).parent
    checkouts = [tmp_path / "alice" / "checkout-a", tmp_path / "bob" / "projects" / "checkout-b"]
    # One thread each, both at once: two processes on a 2-core machine take about as long as one, and
    # neither oversubscribes the cores (the two runs share every setting, so their results must match).
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    children = []
    for checkout in checkouts:
        shutil.copytree(source, checkout / "edgeport", ignore=shutil.ignore_patterns("__pycache__"))
        (checkout / "edgeport.toml").write_text(ONE_BACKEND_RUN)
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(checkout),
                    "run",
                    "--config",
                    "edgeport.toml",
                    "--out",
                    "runs",
                    "--quiet",
                ],
                cwd=checkout,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    runs = []
    try:
        for checkout, child in zip(checkouts, children, strict=True):
            out, err = child.communicate(timeout=300)
            assert child.returncode == 0, err[-2000:]
            imported = out.splitlines()[0] if out else ""
            assert Path(imported) == checkout / "edgeport" / "__init__.py", out  # really this checkout's code
            (run,) = [p for p in (checkout / "runs").iterdir() if not p.name.startswith(".")]
            runs.append(run)
    finally:
        for child in children:  # a failed or timed-out run must not leave the other one running
            if child.poll() is None:
                child.kill()
                child.communicate()
    # Same weights (the premise), then the same ONNX bytes.
    assert sha256(runs[0] / "student.safetensors") == sha256(runs[1] / "student.safetensors")
    for name in ARTIFACTS:
        assert sha256(runs[0] / name) == sha256(runs[1] / name), name
    needles = machine_paths(tmp_path, *checkouts, *runs)
    for run in runs:
        for name in ARTIFACTS:
            found = leaked(run / name, needles)
            assert not found, f"{run / name} contains {found}"
