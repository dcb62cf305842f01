"""torch.ao FX graph-mode post-training quantization, exported to QDQ ONNX (TorchScript exporter).

torch.ao.quantization is deprecated in favour of torchao but still works in torch 2.14 and is the
only route to the x86/fbgemm/qnnpack/onednn engines' kernels; FX-quantized models export to
QuantizeLinear/DequantizeLinear graphs only through the TorchScript exporter (dynamo=False).
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeport.core.progress import SILENT, Progress
from edgeport.errors import QuantizationError
from edgeport.quantize.backends.torch_common import calibrate, export_int8, torch_inputs
from edgeport.quantize.config import TorchConfig
from edgeport.quantize.inputs.graph import op_summary
from edgeport.quantize.registry import QuantResult, register_backend


class TorchFxConfig(TorchConfig):
    """FX graph-mode post-training quantization: histogram-observed activations, min/max weights."""

    backend: Literal["torch-fx"] = "torch-fx"
    per_channel: bool = True


class TorchFxQatConfig(TorchConfig):
    """FX quantization-aware fine-tuning: ``qat_epochs`` of training with fake-quantized ranges."""

    backend: Literal["torch-fx-qat"] = "torch-fx-qat"
    per_channel: bool = True
    qat_epochs: int = Field(2, gt=0)  # fine-tuning epochs (the KD loss kept)
    qat_lr: float = Field(5e-4, gt=0)


def qconfig_mapping(config: TorchFxConfig | TorchFxQatConfig, qat: bool = False):
    """The engine's default mapping with its global qconfig rebuilt for our per_channel/reduce_range.

    Post-training: histogram-observed activations, min/max-observed weights. QAT: the same ranges
    learned through fake-quantize modules.
    """
    import torch
    from torch.ao.quantization import (
        QConfig,
        default_fused_per_channel_wt_fake_quant,
        default_fused_wt_fake_quant,
        get_default_qat_qconfig_mapping,
        get_default_qconfig_mapping,
    )
    from torch.ao.quantization.fake_quantize import FusedMovingAvgObsFakeQuantize
    from torch.ao.quantization.observer import (
        HistogramObserver,
        MinMaxObserver,
        MovingAverageMinMaxObserver,
        PerChannelMinMaxObserver,
    )

    if qat:
        mapping = get_default_qat_qconfig_mapping(config.engine)
        weight = default_fused_per_channel_wt_fake_quant if config.per_channel else default_fused_wt_fake_quant
        activation = FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAverageMinMaxObserver,
            quant_min=0,
            quant_max=127 if config.reduce_range else 255,
            dtype=torch.quint8,
        )
    else:
        mapping = get_default_qconfig_mapping(config.engine)
        weight = (
            PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
            if config.per_channel
            else MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
        )
        activation = HistogramObserver.with_args(reduce_range=config.reduce_range)
    mapping.set_global(QConfig(activation=activation, weight=weight))
    for name in config.exclude_nodes:
        mapping.set_module_name(name, None)
    return mapping


@register_backend("torch-fx")
class TorchFxBackend:
    name: str  # set by @register_backend
    needs = "torch"
    config_type = TorchFxConfig

    def quantize(
        self, source, calibration, config: TorchFxConfig, output_path, progress: Progress = SILENT
    ) -> QuantResult:
        import torch
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        model, input_name, samples = torch_inputs(source, calibration, config.calibration_samples, self.name)
        select_engine(config.engine)
        started = time.perf_counter()
        example = (torch.from_numpy(samples[:1].copy()),)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notice, on every call
                prepared = prepare_fx(copy.deepcopy(model), qconfig_mapping(config), example)
                calibrate(prepared, samples, progress)
                quantized = convert_fx(prepared).eval()
        except Exception as exc:  # FX tracing raises many types for untraceable models
            raise QuantizationError(f"backend {self.name!r} could not quantize the model ({exc})") from exc
        export_int8(quantized, samples, Path(output_path), "torchscript", input_name, self.name)
        report = {"calibration_samples": len(samples), "engine": config.engine, **op_summary(output_path)}
        return QuantResult(Path(output_path), self.name, time.perf_counter() - started, report, quantized)


def select_engine(engine: str) -> None:
    import torch

    if engine not in torch.backends.quantized.supported_engines:
        raise QuantizationError(
            f"engine {engine!r} is not available in this torch build "
            f"(available: {', '.join(torch.backends.quantized.supported_engines)})"
        )
    torch.backends.quantized.engine = engine


@register_backend("torch-fx-qat")
class TorchFxQatBackend:
    """Quantization-aware fine-tuning: fake-quantize the model, train it for ``qat_epochs`` (with the
    KD loss when teacher logits are given), then convert and export like torch-fx."""

    name: str  # set by @register_backend
    needs = "torch"
    config_type = TorchFxQatConfig

    def quantize(
        self, source, calibration, config: TorchFxQatConfig, output_path, progress: Progress = SILENT
    ) -> QuantResult:
        import torch
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

        from edgeport.distill import KDConfig, TrainConfig, TrainData, train  # imports torch, as this method does

        model, input_name, samples = torch_inputs(source, calibration, config.calibration_samples, self.name)
        data = source.training
        if data is None:
            raise QuantizationError(
                f"backend {self.name!r} fine-tunes the model and needs labelled training data "
                "(a 'y' array in the --calib file)"
            )
        select_engine(config.engine)
        started = time.perf_counter()
        example = (torch.from_numpy(samples[:1].copy()),)
        kd = KDConfig(data.temperature, data.alpha, data.kd_loss) if data.teacher_logits is not None else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepared = prepare_qat_fx(copy.deepcopy(model).train(), qconfig_mapping(config, qat=True), example)
                history = train(
                    prepared,
                    TrainData(data.x, data.y, data.val_x, data.val_y),
                    TrainConfig(epochs=config.qat_epochs, lr=config.qat_lr),
                    kd=kd,
                    teacher_logits=data.teacher_logits,
                    progress=progress,
                    description="quantization-aware training",
                ).history
                quantized = convert_fx(prepared.eval()).eval()
        except QuantizationError:
            raise
        except Exception as exc:  # FX tracing and training raise many types
            raise QuantizationError(f"backend {self.name!r} could not quantize the model ({exc})") from exc
        export_int8(quantized, samples, Path(output_path), "torchscript", input_name, self.name)
        report = {
            "engine": config.engine,
            "qat_epochs": config.qat_epochs,
            "kd": kd is not None,
            "history": history,
            **op_summary(output_path),
        }
        return QuantResult(Path(output_path), self.name, time.perf_counter() - started, report, quantized)
