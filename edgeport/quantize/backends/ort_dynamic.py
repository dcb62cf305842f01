"""ONNX Runtime dynamic int8 quantization: int8 weights, activations quantized at run time.

Suits MLPs and transformer-like models (MatMul-heavy, ranges that vary per input);
needs no calibration data. The bodies of If/Loop/Scan nodes are quantized too (onnxruntime's
EnableSubgraph), or kept in float when that fails; the report's ``control_flow`` says which.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Literal

from edgeport.core.progress import SILENT, Progress
from edgeport.errors import QuantizationError
from edgeport.quantize.backends.ort_reuse import prepare
from edgeport.quantize.config import OrtConfig
from edgeport.quantize.inputs.calibration import load_fp32_onnx
from edgeport.quantize.inputs.graph import iter_nodes, op_summary
from edgeport.quantize.inputs.model_check import failure_reason
from edgeport.quantize.registry import QuantResult, register_backend
from edgeport.quantize.transforms.layernorm_unfused import keep_layernorm_unfused
from edgeport.quantize.transforms.subgraphs import finish_file, has_subgraphs, shield_file

_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


class OrtDynamicConfig(OrtConfig):
    """int8 weights; activations are quantized at run time with ranges of each input (u8)."""

    backend: Literal["ort-dynamic"] = "ort-dynamic"

    def int8_types(self) -> tuple[str, str]:
        return "uint8", self.weight_type


@register_backend("ort-dynamic")
class OrtDynamicBackend:
    name: str  # set by @register_backend
    needs = "onnx"
    config_type = OrtDynamicConfig

    def quantize(
        self, source, calibration, config: OrtDynamicConfig, output_path, progress: Progress = SILENT
    ) -> QuantResult:
        fp32_path, output_path = source.onnx_path, Path(output_path)
        model = load_fp32_onnx(fp32_path)
        op_types = None
        if config.exclude_op_types:
            present = {n.op_type for n, _ in iter_nodes(model.graph)}
            op_types = sorted(present - set(config.exclude_op_types))
        control_flow = has_subgraphs(model.graph)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".quant-") as tmp:
            prepared, staged = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
            # pre-processed and its attention fused once per model within auto (ort_reuse.py)
            notes = prepare(fp32_path, prepared, calibration)
            # what bodies of If/Loop/Scan read from outside becomes explicit (transforms/subgraphs.py)
            shields = shield_file(prepared)
            excluded = [*config.exclude_nodes, *(shield.node for shield in shields)]
            bodies = None
            if control_flow:  # weights need no calibration: the bodies' MatMul/Conv/LSTM can be int8 too
                try:
                    self._run(prepared, staged, config, op_types, excluded, subgraphs=True)
                    bodies = finish_file(staged, shields, str(fp32_path))
                except Exception as exc:  # any failure inside the bodies: quantize the main graph alone
                    notes["control_flow_bodies"] = (
                        f"quantizing them failed ({type(exc).__name__}: {failure_reason(exc, 160)}); kept in float"
                    )
            if bodies is None:
                try:
                    self._run(prepared, staged, config, op_types, excluded, subgraphs=False)
                except Exception as exc:  # ORT raises plain Exceptions
                    raise QuantizationError(
                        f"{fp32_path}: backend {self.name!r} failed in onnxruntime's quantize_dynamic "
                        f"({type(exc).__name__}: {failure_reason(exc)})"
                    ) from exc
                bodies = finish_file(staged, shields, str(fp32_path))
            notes.update(keep_layernorm_unfused(staged))  # onnxruntime's slow fused kernel: see the module
            os.replace(staged, output_path)
        report = {**notes, **({"control_flow": bodies} if bodies else {}), **op_summary(output_path)}
        return QuantResult(output_path, self.name, time.perf_counter() - started, report)

    def _run(
        self,
        prepared: Path,
        staged: Path,
        config: OrtDynamicConfig,
        op_types: list[str] | None,
        excluded: list[str],
        subgraphs: bool,
    ) -> None:
        """onnxruntime's quantize_dynamic, the bodies of control flow included when ``subgraphs``."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(prepared),
            str(staged),
            op_types_to_quantize=op_types,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=getattr(QuantType, _TYPES[config.weight_type]),
            nodes_to_exclude=excluded or None,
            extra_options={"EnableSubgraph": True} if subgraphs else None,
        )
