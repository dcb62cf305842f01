"""What hardware and software a measurement was taken on."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# /proc/cpuinfo flag -> name in the fingerprint (x86 and ARM spell them differently).
ISA_FLAGS = {"avx2": "avx2", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
             "avx512_bf16": "avx512_bf16", "amx_tile": "amx_tile", "amx_int8": "amx_int8",
             "asimd": "neon", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve"}


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return model, flags


def _physical_cores() -> int | None:
    try:
        pairs = set()
        text = Path("/proc/cpuinfo").read_text()
        for block in text.split("\n\n"):
            fields = dict((k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in block.splitlines()))
            if "core id" in fields:
                pairs.add((fields.get("physical id", "0"), fields["core id"]))
        return len(pairs) or None
    except OSError:
        return None


def cpu_fingerprint() -> dict:
    model, flags = _cpuinfo()
    return {"model": model, "machine": platform.machine(), "logical_cores": os.cpu_count(),
            "physical_cores": _physical_cores(),
            "isa": sorted({name for flag, name in ISA_FLAGS.items() if flag in flags})}


def environment_fingerprint() -> dict:
    import numpy
    import onnxruntime

    return {"cpu": cpu_fingerprint(), "os": f"{platform.system()} {platform.release()}",
            "python": sys.version.split()[0], "numpy": numpy.__version__,
            "onnxruntime": onnxruntime.__version__,
            "providers": onnxruntime.get_available_providers()}
