"""What hardware and software a measurement was taken on, computed by the same lines on the host and on a
device: remote.py sends this file beside the runner (remote_runner.py), which imports it. Standard library
and numpy only, nothing from edgeport.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# /proc/cpuinfo flag -> name in the fingerprint (x86 and ARM spell them differently).
ISA_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "asimd": "neon",
    "asimddp": "dotprod",
    "i8mm": "i8mm",
    "sve": "sve",
}


def _cpuinfo() -> tuple[str, set[str], str | None]:
    """The CPU's name, its feature flags and, on x86, its family and model numbers: a virtual machine's
    name is often just "AMD EPYC", which covers a Zen 1 and a Zen 3 whose int8 speeds differ threefold."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    numbers: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
        elif key in ("cpu family", "model") and value.strip().isdigit():
            numbers.setdefault(key, value.strip())
    family = f"family {numbers['cpu family']} model {numbers['model']}" if len(numbers) == 2 else None
    return model, flags, family


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


# The kernel's CPU type (/sys/devices/system/cpu/modalias) -> the interpreter architectures it runs natively.
_NATIVE = {"x86": {"x86_64", "amd64", "i386", "i686"}, "aarch64": {"aarch64", "arm64"}, "arm": {"armv7l", "armv6l"}}


def emulated() -> bool | None:
    """True when this Python runs under user-mode emulation (qemu-user: an aarch64 Python on an x86 kernel):
    the kernel's CPU type, which the emulator does not rewrite, is not the interpreter's architecture. Its
    timings are the emulator's, not the board's. None where the kernel does not say."""
    try:
        modalias = Path("/sys/devices/system/cpu/modalias").read_text()
    except OSError:
        return None
    kernel = modalias.partition("type:")[2].split(",", 1)[0].split(":", 1)[0]
    if kernel not in _NATIVE:
        return None
    return platform.machine().lower() not in _NATIVE[kernel]


def cpu_fingerprint() -> dict:
    model, flags, family = _cpuinfo()
    return {
        "model": model,
        "family": family,  # x86 only: "family 25 model 1" (None elsewhere)
        "machine": platform.machine(),
        "emulated": emulated(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "isa": sorted({name for flag, name in ISA_FLAGS.items() if flag in flags}),
    }


def _version(package: str):
    try:
        return __import__(package).__version__
    except ImportError:
        return None


def environment_fingerprint() -> dict:
    import numpy

    try:  # a device may carry only the runtime it ships with
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        providers = []
    return {
        "cpu": cpu_fingerprint(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "onnxruntime": _version("onnxruntime"),
        "providers": providers,
        "openvino": _version("openvino"),  # the second runtime, where installed (edgeport[openvino])
    }
