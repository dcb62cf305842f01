"""torchao PT2E post-training quantization, exported to QDQ ONNX with the dynamo exporter.

engine 'x86' uses X86InductorQuantizer (u8 activations, s8 per-channel weights); engine 'qnnpack'
(ARM targets) uses ArmInductorQuantizer, whose activations are symmetric-range int8.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Literal

from edgeport.core.progress import SILENT, Progress
from edgeport.errors import QuantizationError
from edgeport.quantize.backends.torch_common import calibrate, export_int8, torch_inputs
from edgeport.quantize.config import TorchConfig
from edgeport.quantize.inputs.graph import op_summary
from edgeport.quantize.registry import QuantResult, register_backend


class TorchPt2eConfig(TorchConfig):
    """torchao PT2E: the x86 Inductor quantizer (per-channel weights) or the Arm one (qnnpack)."""

    backend: Literal["torch-pt2e"] = "torch-pt2e"
    engine: Literal["x86", "qnnpack"] = "x86"  # torchao ships quantizers for these two only


def make_quantizer(config: TorchPt2eConfig):
    if config.engine == "x86":
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

        quantizer = X86InductorQuantizer()
        quantizer.set_global(get_default_x86_inductor_quantization_config(reduce_range=config.reduce_range))
    else:  # qnnpack: the config type admits no other engine
        from torchao.quantization.pt2e.quantizer.arm_inductor_quantizer import (
            ArmInductorQuantizer,
            get_default_arm_inductor_quantization_config,
        )

        quantizer = ArmInductorQuantizer()
        quantizer.set_global(get_default_arm_inductor_quantization_config())
    for name in config.exclude_nodes:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


@register_backend("torch-pt2e")
class TorchPt2eBackend:
    name: str  # set by @register_backend
    needs = "torch"
    config_type = TorchPt2eConfig

    def quantize(
        self, source, calibration, config: TorchPt2eConfig, output_path, progress: Progress = SILENT
    ) -> QuantResult:
        import torch

        try:
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        except ImportError as exc:
            raise QuantizationError("backend 'torch-pt2e' needs torchao (pip install torchao)") from exc

        model, input_name, samples = torch_inputs(source, calibration, config.calibration_samples, self.name)
        quantizer = make_quantizer(config)
        started = time.perf_counter()
        # torch.export specialises the batch size of its example: declare it dynamic so one
        # calibration batch size and any inference batch size both work.
        batch = torch.export.Dim("batch", min=1, max=65536)
        example = (torch.from_numpy(samples[:2].copy()),)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                captured = torch.export.export(model, example, dynamic_shapes=({0: batch},)).module()
                prepared = prepare_pt2e(captured, quantizer)
                calibrate(prepared, samples, progress)
                quantized = convert_pt2e(prepared)
        except Exception as exc:  # torch.export raises many types for unexportable models
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "more than one output node" in first:
                first += (
                    "; torchao's quantizer cannot annotate a module called at several places (for example "
                    "one ReLU reused in a block, as in torchvision's resnet); use torch-fx or ort-static"
                )
            raise QuantizationError(f"backend 'torch-pt2e' could not quantize the model ({first})") from exc
        export_int8(quantized, samples, Path(output_path), "dynamo", input_name, self.name)
        report = {"calibration_samples": len(samples), "engine": config.engine, **op_summary(output_path)}
        return QuantResult(Path(output_path), self.name, time.perf_counter() - started, report, quantized)
