"""ONNX Runtime static int8 quantization: quant_pre_process, calibration, quantize_static."""

from __future__ import annotations

import io
import os
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgeport.core.progress import SILENT, Progress
from edgeport.data.feeds import BATCH_FIRST, feed_layout, model_inputs
from edgeport.errors import QuantizationError
from edgeport.quantize.backends.ort_calibrate import (
    BatchRules,
    CalibrationPlan,
    measure_sample_bytes,
    plan_calibration,
    write_entropy_ranges,
)
from edgeport.quantize.backends.ort_prepare import working_folder
from edgeport.quantize.backends.ort_reuse import active as reuse_active
from edgeport.quantize.backends.ort_reuse import arrays_digest, model_digest, prepare, ranges_file, remembered
from edgeport.quantize.config import OrtConfig, TensorType
from edgeport.quantize.inputs.calibration import (
    ArrayCalibrationReader,
    check_calibration,
    declared_batch,
    input_shapes,
    load_fp32_onnx,
)
from edgeport.quantize.inputs.graph import op_summary
from edgeport.quantize.inputs.model_check import failure_reason
from edgeport.quantize.registry import QuantResult, register_backend
from edgeport.quantize.transforms.layernorm_unfused import keep_layernorm_unfused
from edgeport.quantize.transforms.subgraphs import finish_file, keep_shared_activations, shield_file


class OrtStaticConfig(OrtConfig):
    """Calibrated int8. Defaults suit x86 with VNNI: U8 activations, S8 per-channel weights, QDQ.

    On this machine ORT's own default (S8 activations) left most convolutions unfused and ran at
    0.80 of fp32 on resnet18, while U8S8 ran at 0.31 (AMD EPYC Zen5 with AVX-512 VNNI, batch 1, one thread).
    """

    backend: Literal["ort-static"] = "ort-static"
    format: Literal["qdq", "qoperator"] = "qdq"
    activation_type: TensorType = "uint8"
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    # ORT's fourth method, "distribution", computes float8 scales; used for int8 it ruined accuracy here
    # (45% top-1 agreement on the digits CNN), so it is not offered.
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    percentile: float = Field(99.999, gt=50, le=100)

    def int8_types(self) -> tuple[str, str]:
        return self.activation_type, self.weight_type


_CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


@register_backend("ort-static")
class OrtStaticBackend:
    """Static (calibrated) int8 in QDQ or QOperator format, per-tensor or per-channel."""

    name: str  # set by @register_backend
    needs = "onnx"
    config_type = OrtStaticConfig
    calibration_batch = 32

    def quantize(
        self, source, calibration, config: OrtStaticConfig, output_path, progress: Progress = SILENT
    ) -> QuantResult:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        fp32_path, output_path = source.onnx_path, Path(output_path)
        model = load_fp32_onnx(fp32_path)
        inputs = model_inputs(model)
        available = check_calibration(inputs, calibration, str(fp32_path))
        layout = feed_layout(input_shapes(inputs), calibration, str(fp32_path), "calibration input")
        samples = min(config.calibration_samples, available)
        calibration = {k: v[:samples] for k, v in calibration.items()}
        op_types = None
        if config.exclude_op_types:
            present = {n.op_type for n in model.graph.node}
            op_types = sorted(present - set(config.exclude_op_types))
        rules = BatchRules(layout, declared_batch(inputs), config.calibration_method, self.calibration_batch)
        del model  # the prepared copy is what onnxruntime reads from here on

        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".quant-") as tmp:
            folder = Path(tmp).resolve()  # absolute: onnxruntime works inside it (working_folder)
            prepared = folder / "prepared.onnx"
            staged = folder / "int8.onnx"
            # pre-processed and its attention fused once per model within auto (ort_reuse.py)
            notes = prepare(fp32_path, prepared, calibration)
            # what bodies of If/Loop/Scan read from outside becomes explicit; the bodies stay in float (no
            # calibration ranges exist inside them) and the report says so (transforms/subgraphs.py)
            shields = shield_file(prepared)
            keep = [shield.node for shield in shields]
            if config.format == "qoperator":  # a Relu/Clip whose input has other readers: see the function
                keep += keep_shared_activations(prepared)
            # onnxruntime's scratch folder (ort.quant.*: the augmented model) in ours, not in /tmp
            with working_folder(folder):
                digest = model_digest(prepared) if reuse_active() else ""  # what reuse finds it by
                plan = _plan(prepared, digest, calibration, rules, op_types)
                ranges = _ranges_file(digest, calibration, config, op_types, plan)
                passes = 2 if config.calibration_method == "entropy" else 1
                with progress.task("calibrate", total=samples * passes) as advance:
                    reader = ArrayCalibrationReader(
                        calibration, plan.batch, advance, pad=plan.pad, layout=layout, chunk=plan.chunk
                    )
                    reused = ranges is not None and ranges.exists()
                    if reused:  # the same model, samples and settings were calibrated earlier in this run
                        advance(samples * passes)
                    try:
                        if config.calibration_method == "entropy" and not reused:
                            ranges = ranges or folder / "ranges.json"
                            write_entropy_ranges(prepared, reader, op_types, ranges)
                        # the histogram collector prints a line per chunk: stdout stays clean for --json
                        with redirect_stdout(io.StringIO()):
                            quantize_static(
                                str(prepared),
                                str(staged),
                                reader,
                                quant_format=QuantFormat.QDQ if config.format == "qdq" else QuantFormat.QOperator,
                                op_types_to_quantize=op_types,
                                per_channel=config.per_channel,
                                reduce_range=config.reduce_range,
                                activation_type=getattr(QuantType, _TYPES[config.activation_type]),
                                weight_type=getattr(QuantType, _TYPES[config.weight_type]),
                                nodes_to_exclude=[*config.exclude_nodes, *keep] or None,
                                calibrate_method=getattr(CalibrationMethod, _CALIBRATION[config.calibration_method]),
                                extra_options={
                                    "ActivationSymmetric": config.symmetric_activations,
                                    "WeightSymmetric": config.symmetric_weights,
                                    "CalibPercentile": config.percentile,
                                    # one collect_data per chunk of the reader (ort_calibrate.py)
                                    "CalibStridedMinMax": 1,
                                },
                                # read when it exists, else written: ort_reuse.py
                                calibration_cache_path=str(ranges) if ranges is not None else None,
                            )
                    except Exception as exc:  # ORT, onnx and numpy raise their own types
                        raise QuantizationError(
                            f"{fp32_path}: backend {self.name!r} failed in onnxruntime's quantize_static "
                            f"({type(exc).__name__}: {failure_reason(exc)})"
                        ) from exc
            control_flow = finish_file(staged, shields, str(fp32_path))
            notes.update(keep_layernorm_unfused(staged))  # onnxruntime's slow fused kernel: see the module
            os.replace(staged, output_path)
        seconds = time.perf_counter() - started
        report = {
            "calibration_samples": samples,
            **plan.report(),
            **({"calibration_reused": True} if reused else {}),
            "calibration_layout": layout,
            **notes,
            **({"control_flow": control_flow} if control_flow else {}),
            **op_summary(output_path),
        }
        return QuantResult(output_path, self.name, seconds, report)


def _ranges_file(
    digest: str, calibration: dict, config: OrtStaticConfig, op_types: list[str] | None, plan: CalibrationPlan
) -> Path | None:
    """Where this calibration's ranges are kept within auto or a fallback (None outside them): keyed by
    everything the calibrator reads (ort_reuse.py)."""
    settings = {
        "method": config.calibration_method,
        "percentile": config.percentile,
        "op_types": op_types,
        "batch": plan.batch,
        "chunk": plan.chunk,
        "pad": plan.pad,
    }
    return ranges_file(digest, calibration, settings)


def _plan(
    prepared: Path, digest: str, calibration: dict, rules: BatchRules, op_types: list[str] | None
) -> CalibrationPlan:
    """The calibration batch and chunk for these samples, from the measured bytes of the intermediate
    tensors of the first sample (or the first batch a model fixes): ort_calibrate.py."""
    in_first = 1 if rules.layout != BATCH_FIRST else rules.fixed or 1
    first = ArrayCalibrationReader(calibration, in_first, pad=True, layout=rules.layout).get_next() or {}
    key = {"model": digest, "first": arrays_digest(first), "op_types": op_types}
    sample_bytes = remembered("sample-bytes", key, lambda: measure_sample_bytes(prepared, first, in_first, op_types))
    return plan_calibration(sample_bytes, len(next(iter(calibration.values()))), rules)
