"""Quantization backends: each turns a fp32 ONNX model into an int8 ONNX artifact."""

from edgeport.quant_backends.config import QuantConfig
from edgeport.quant_backends.registry import (QuantBackend, QuantResult, get_backend, list_backends,
                                              register_backend)


def quantize(fp32_path, calibration, config: QuantConfig, output_path, progress=None) -> QuantResult:
    """Quantize with the backend named in ``config``."""
    from edgeport.progress import SILENT

    return get_backend(config.backend).quantize(fp32_path, calibration, config, output_path,
                                                progress or SILENT)


__all__ = ["QuantBackend", "QuantConfig", "QuantResult", "get_backend", "list_backends", "quantize",
           "register_backend"]
