"""Quantization defaults that depend on the CPU the int8 model will run on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeport.quantize.config import QuantConfig

X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
INT8_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "amx_int8")


def needs_reduce_range(cpu: dict) -> bool:
    """True on x86 CPUs without a VNNI/AMX int8 dot product.

    There onnxruntime multiplies u8 activations by s8 weights with vpmaddubsw,
    whose pairwise int16 sums saturate when weights use the full 8-bit range.
    Measured here (AVX2-only EPYC, ORT 1.32, digits CNN 32-64-128-256, U8S8 QDQ
    per-channel): 88.9% top-1 with 8-bit weights versus 99.3% with 7-bit weights
    (reduce_range) and 99.3% for fp32; with the int kernels disabled the same
    file scored 99.3%, so the loss is the kernel's saturation, not calibration.
    """
    machine = str(cpu.get("machine", "")).lower()
    return machine in X86_MACHINES and not set(cpu.get("isa", ())) & set(INT8_DOT_PRODUCT)


def resolve_reduce_range(value: bool | str, cpu: dict) -> tuple[bool, str]:
    """Turn the configured reduce_range (true, false or "auto") into a value and the reason for it."""
    if value != "auto":
        return bool(value), "set in the configuration"
    if needs_reduce_range(cpu):
        return True, "auto: this x86 CPU has no VNNI, where 8-bit weights saturate int16 sums"
    return False, "auto: this CPU multiplies int8 without saturation"


def saturation_warning(config: QuantConfig, cpu: dict) -> str | None:
    """A warning when a U8S8 model with full-range weights is built on an x86 CPU without VNNI."""
    saturating = config.int8_types() == ("uint8", "int8") and config.reduce_range is False
    if saturating and needs_reduce_range(cpu):
        return (
            "this x86 CPU has no VNNI: u8 x s8 products are summed in saturating int16, which can cost "
            "accuracy; set reduce_range = true (7-bit weights) or use uint8 weights (U8U8)"
        )
    return None
