"""ONNX Runtime dynamic int8 quantization: int8 weights, activations quantized at run time.

Suits MLPs and transformer-like models (MatMul-heavy, ranges that vary per input);
needs no calibration data.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Literal

from edgeport.core.progress import SILENT, Progress
from edgeport.errors import QuantizationError
from edgeport.quantize.backends.ort_prepare import pre_process
from edgeport.quantize.config import OrtConfig
from edgeport.quantize.inputs.calibration import load_fp32_onnx
from edgeport.quantize.inputs.graph import op_summary
from edgeport.quantize.registry import QuantResult, register_backend

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
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32_path, output_path = source.onnx_path, Path(output_path)
        model = load_fp32_onnx(fp32_path)
        op_types = None
        if config.exclude_op_types:
            op_types = sorted({n.op_type for n in model.graph.node} - set(config.exclude_op_types))
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".quant-") as tmp:
            prepared, staged = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
            notes = pre_process(fp32_path, prepared)
            try:
                quantize_dynamic(
                    str(prepared),
                    str(staged),
                    op_types_to_quantize=op_types,
                    per_channel=config.per_channel,
                    reduce_range=config.reduce_range,
                    weight_type=getattr(QuantType, _TYPES[config.weight_type]),
                    nodes_to_exclude=list(config.exclude_nodes) or None,
                )
            except Exception as exc:  # ORT raises plain Exceptions
                raise QuantizationError(f"{fp32_path}: ORT dynamic quantization failed ({exc})") from exc
            os.replace(staged, output_path)
        report = {**notes, **op_summary(output_path)}
        return QuantResult(output_path, self.name, time.perf_counter() - started, report)
