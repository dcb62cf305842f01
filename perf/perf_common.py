"""What the perf scripts share: a torchvision network exported to ONNX, the pass/FAIL word, a line
naming the CPU, a section appended to perf/RESULTS.md (also printed), and the repository root on the
import path (for the model builders of tests/models/)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "RESULTS.md"
# The test models' builders (tests/models/) serve the perf scripts too: importing this module, which
# every perf script does first, puts the repository root on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def cpu_line(cpu: dict) -> str:
    """``CPU <model> (<n> logical cores, ISA <flags>)``: every figure names the CPU it was measured on."""
    family = f", {cpu['family']}" if cpu.get("family") else ""
    cores, isa = cpu.get("logical_cores"), ", ".join(cpu.get("isa", []))
    return f"CPU {cpu.get('model')} ({cores} logical cores{family}, ISA {isa})"


def export_torchvision(name: str, num_classes: int, x: np.ndarray, path: Path) -> Path:
    """torchvision's ``name`` with seeded random weights (latency and int8 routes do not depend on
    them), exported to ONNX at opset default with a dynamic batch axis, input ``input``."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=num_classes).eval()
    torch.onnx.export(
        model,
        torch.from_numpy(x[:1]),
        str(path),
        dynamo=False,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
    )
    return path


def append_results(title: str, script: str, intro: str, table: list[str], after: list[str] = ()) -> str:
    """``## title (`python perf/script`, <UTC time>)``, the intro paragraph, the table and what follows
    it, appended to RESULTS.md and printed."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(["", f"## {title} (`python perf/{script}`, {stamp})", "", intro, "", *table, "", *after])
    print(text)
    with open(RESULTS, "a") as handle:
        handle.write(text)
    return text


CLI_TIMEOUT_S = 3600


def run_cli(args: list[str], folder: Path, timeout_s: float = CLI_TIMEOUT_S) -> dict[str, Any]:
    """``edgeport ARGS`` in a child process: exit code, wall seconds, the child's peak RSS (MiB, from
    wait4's rusage of that child alone), stdout and stderr."""
    out, err = folder / "cli.stdout", folder / "cli.stderr"
    command = [sys.executable, "-m", "edgeport.cli", *args]
    start = time.perf_counter()
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=Path(__file__).resolve().parents[1])
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped by wait4: Popen must not wait for it again
    return {
        "code": code,
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "stdout": out.read_text(errors="replace"),
        "stderr": err.read_text(errors="replace"),
    }
