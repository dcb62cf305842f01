"""torch.ao FX graph-mode post-training quantization, exported to QDQ ONNX (TorchScript exporter).

torch.ao.quantization is deprecated in favour of torchao but still works in torch 2.14 and is the
only route to the x86/fbgemm/qnnpack/onednn engines' kernels; FX-quantized models export to
QuantizeLinear/DequantizeLinear graphs only through the TorchScript exporter (dynamo=False).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from edgeport.errors import QuantizationError
from edgeport.progress import SILENT, Progress
from edgeport.quant_backends.config import QuantConfig
from edgeport.quant_backends.registry import QuantResult, op_summary, register_backend
from edgeport.quant_backends.torch_common import calibrate, export_int8, torch_inputs


def qconfig_mapping(config: QuantConfig):
    """The engine's default mapping with its global qconfig rebuilt for our per_channel/reduce_range."""
    import torch
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver, PerChannelMinMaxObserver)

    mapping = get_default_qconfig_mapping(config.engine)
    weight = (PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
              if config.per_channel else
              MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))
    activation = HistogramObserver.with_args(reduce_range=config.reduce_range)
    mapping.set_global(QConfig(activation=activation, weight=weight))
    for name in config.exclude_nodes:
        mapping.set_module_name(name, None)
    return mapping


@register_backend("torch-fx")
class TorchFxBackend:
    needs = "torch"
    options = frozenset({"engine", "per_channel", "reduce_range", "calibration_samples", "exclude_nodes"})

    def quantize(self, source, calibration, config: QuantConfig, output_path,
                 progress: Progress = SILENT) -> QuantResult:
        import torch
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        model, input_name, samples = torch_inputs(source, calibration, config.calibration_samples, self.name)
        if config.engine not in torch.backends.quantized.supported_engines:
            raise QuantizationError(f"engine {config.engine!r} is not available in this torch build "
                                    f"(available: {', '.join(torch.backends.quantized.supported_engines)})")
        started = time.perf_counter()
        torch.backends.quantized.engine = config.engine
        example = (torch.from_numpy(samples[:1].copy()),)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notice, on every call
                prepared = prepare_fx(_copy(model), qconfig_mapping(config), example)
                calibrate(prepared, samples, progress)
                quantized = convert_fx(prepared).eval()
        except Exception as exc:  # FX tracing raises many types for untraceable models
            raise QuantizationError(f"backend 'torch-fx' could not quantize the model ({exc})") from exc
        export_int8(quantized, samples, Path(output_path), "torchscript", input_name, self.name)
        report = {"calibration_samples": len(samples), "engine": config.engine, **op_summary(output_path)}
        return QuantResult(Path(output_path), self.name, time.perf_counter() - started, report, quantized)


def _copy(model):
    import copy

    return copy.deepcopy(model)
