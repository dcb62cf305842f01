"""NNCF post-training int8 of an ONNX model (``--backend nncf``, the ``nncf`` extra).

``nncf.quantize`` on an ``onnx.ModelProto`` returns an ONNX model with QuantizeLinear/DequantizeLinear
pairs that onnxruntime and OpenVINO both run. It is the maintained quantizer of the runtime Intel and
AMD CPU users ship with: transformers get its own scheme (``ModelType.TRANSFORMER``: SmoothQuant, its
ignored patterns, mixed preset), other models its defaults (FastBiasCorrection). Those algorithms are
NNCF's, called here, not written again. On all-MiniLM-L6-v2 with 100 real sentences its int8 model
kept a pooled-embedding cosine of 0.996 to fp32 where every onnxruntime recipe missed 0.99 on
token-level cosine (AMD EPYC Zen 1, AVX2).

What edgeport decides around the call:

- the model type, from the same graph analysis auto uses (``inputs.graph.graph_profile``): a graph with
  attention MatMuls (both operands computed) is a transformer;
- the ignored scope, from ``--exclude-node`` and ``--exclude-op-type``;
- the calibration feeds, in the file's layout: per-sample slices one run each, batch-first samples several
  to a run where the batch axis is open (within a memory budget measured as ort-static's is), a batch
  size the model fixes met by padding. One run a sample spent most of NNCF's statistics collection in
  per-run overhead: all-MiniLM-L6-v2 with 100 sentences took 14.2 s in ``nncf.quantize``, 9.1 s in runs
  of 10, pooled-embedding cosine 0.9963 either way (Intel Xeon, 2 cores). NNCF then reduces each sample
  of a run on its own (its batchwise statistics: the statistics of one sample a run), except where NNCF
  itself says that is unreliable (``is_model_no_batchwise_support``: transformers, embedding lookups,
  ROIAlign), which reduce a run's samples together, as NNCF advises for them. Reduced together, the
  PP-OCRv4 detector's activation ranges widened (NNCF averages per-run maxima) and its guard cosine fell
  from 0.9919 to 0.9889;
- ``reduce_range`` as NNCF's overflow fix: 7-bit weights everywhere (True) or nowhere (False);
- graphs older than opset 13 are upgraded first (per-channel weights need it), as for onnxruntime;
- NNCF's usage telemetry stays off (``_nncf``);
- NNCF's int8 activations are rewritten as uint8, exactly (``transforms.unsigned_activations``):
  OpenVINO computes a convolution of concatenated int8 activations wrongly, and uint8 activations
  with int8 weights is what both runtimes' x86 kernels take.

The result is then checked and verified like every other backend's (quantize/apply.py, the guard).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Literal

from edgeport.core.progress import SILENT, Progress
from edgeport.data.feeds import BATCH_FIRST, feed_layout, model_inputs
from edgeport.errors import ConfigError, QuantizationError
from edgeport.quantize.backends.ort_calibrate import BatchRules, measure_sample_bytes, plan_calibration
from edgeport.quantize.backends.ort_prepare import has_external_data, upgraded
from edgeport.quantize.config import Names, QuantConfig
from edgeport.quantize.inputs.calibration import (
    ArrayCalibrationReader,
    check_calibration,
    declared_batch,
    input_shapes,
)
from edgeport.quantize.inputs.graph import graph_profile, op_summary
from edgeport.quantize.inputs.model_check import failure_reason
from edgeport.quantize.registry import QuantResult, register_backend
from edgeport.quantize.transforms.unsigned_activations import unsigned_activations

INSTALL = "pip install 'edgeport[nncf]'"
# onnx.save writes one protobuf of at most 2 GiB; a larger int8 model keeps its weights beside it.
_PROTOBUF_LIMIT = 2**31 - 1
MAX_CALIBRATION_BATCH = 16  # samples a run; runs of 25 took as long as runs of 10 on MiniLM


class NncfConfig(QuantConfig):
    """NNCF's post-training int8: its preset and model type, or edgeport's choice of them."""

    backend: Literal["nncf"] = "nncf"
    # "auto": transformer when the graph has attention MatMuls (inputs.graph.graph_profile), else NNCF's default
    model_type: Literal["auto", "transformer", "default"] = "auto"
    # None: NNCF's default for the model type (mixed for transformers, performance otherwise)
    preset: Literal["performance", "mixed"] | None = None
    target_device: Literal["any", "cpu", "gpu", "npu", "cpu_spr"] = "any"
    fast_bias_correction: bool = True
    exclude_op_types: Names = ()


def _nncf():
    # NNCF reports each call to Google Analytics unless its user opted out (openvino-telemetry's consent file):
    # edgeport's users did not opt in, and on an offline build machine every report forks a process that
    # waits for its timeout. NNCF's own switch turns it off; it is read when nncf is first imported.
    os.environ.setdefault("NNCF_CI", "1")
    try:
        import nncf
    except ImportError as exc:
        raise ConfigError(f"backend 'nncf' needs the nncf package: {INSTALL}") from exc
    nncf.set_log_level(logging.ERROR)  # its INFO lines would interleave with edgeport's progress
    return nncf


def nncf_installed() -> bool:
    """Whether the nncf extra is installed (finds the package, imports nothing: NNCF takes seconds to load)."""
    return importlib.util.find_spec("nncf") is not None


def is_transformer(model) -> bool:
    """Attention in the graph: a MatMul whose operands are both computed (auto's graph analysis)."""
    return bool(graph_profile(model).activation_matmuls)


def calibration_items(model, calibration: dict, fp32_path: str, batch: int = 1) -> tuple[list[dict], str]:
    """One feed per run, in the file's layout (per-sample slices as they are; batch-first ``batch`` samples a
    run, or the batch size the model fixes, padded), and the layout's name."""
    inputs = model_inputs(model)
    check_calibration(inputs, calibration, fp32_path)
    layout = feed_layout(input_shapes(inputs), calibration, fp32_path, "calibration input")
    fixed = declared_batch(inputs)
    # a per-sample layout feeds each slice whole whatever the batch given here
    reader = ArrayCalibrationReader(calibration, fixed or batch, pad=fixed is not None, layout=layout)
    return list(iter(reader.get_next, None)), layout


def batchwise_statistics(model, transformer: bool) -> bool | None:
    """Whether NNCF may reduce each sample of a run on its own (its own rule, on its own graph of the model);
    None where NNCF's rule cannot be read (its internals moved): then one sample a run."""
    try:
        from nncf.onnx.graph.metatypes.groups import OPERATIONS_OUTPUT_HAS_NO_BATCH_AXIS
        from nncf.onnx.graph.nncf_graph_builder import GraphConverter
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.quantize_model import is_model_no_batchwise_support
    except ImportError:
        return None
    unreliable = is_model_no_batchwise_support(
        GraphConverter.create_nncf_graph(model),
        AdvancedQuantizationParameters(batchwise_statistics=True),
        _nncf().ModelType.TRANSFORMER if transformer else None,
        OPERATIONS_OUTPUT_HAS_NO_BATCH_AXIS,
    )
    return not unreliable


def calibration_batch(model_path: Path, model, calibration: dict, scratch: Path) -> int:
    """Samples a run for NNCF's statistics: as ort-static plans its calibration runs (the bytes of every
    tensor one sample makes, measured, within its budget), at most ``MAX_CALIBRATION_BATCH``."""
    inputs = model_inputs(model)
    layout = feed_layout(input_shapes(inputs), calibration, str(model_path), "calibration input")
    samples = len(next(iter(calibration.values())))
    rules = BatchRules(layout, declared_batch(inputs), "minmax", MAX_CALIBRATION_BATCH)
    if layout != BATCH_FIRST or rules.fixed or samples < 2:
        return 1
    one = {name: value[:1] for name, value in calibration.items()}
    return plan_calibration(measure_sample_bytes(model_path, one, 1, None, scratch), samples, rules).batch


@register_backend("nncf")
class NncfBackend:
    name: str  # set by @register_backend
    needs = "onnx"
    config_type = NncfConfig

    def quantize(
        self, source, calibration, config: NncfConfig, output_path, progress: Progress = SILENT
    ) -> QuantResult:
        import onnx

        nncf = _nncf()
        fp32_path, output_path = source.onnx_path, Path(output_path)
        samples = min(config.calibration_samples, len(next(iter(calibration.values()))))
        calibration = {k: v[:samples] for k, v in calibration.items()}
        started = time.perf_counter()
        notes: dict = {}
        with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".nncf-") as tmp:
            external = has_external_data(fp32_path)
            model_path = upgraded(Path(fp32_path).resolve(), Path(tmp), notes, external)
            model = onnx.load(str(model_path))
            transformer = is_transformer(model) if config.model_type == "auto" else config.model_type == "transformer"
            batch = calibration_batch(model_path, model, calibration, Path(tmp))  # 1 where the feeds allow no more
            # NNCF's rule builds its graph of the model: asked only where runs hold several samples
            batchwise = batchwise_statistics(model, transformer) if batch > 1 else None
            batch = batch if batchwise is not None else 1
            items, layout = calibration_items(model, calibration, str(fp32_path), batch)
            options = {
                "subset_size": len(items),
                "fast_bias_correction": config.fast_bias_correction,
                "target_device": nncf.TargetDevice[config.target_device.upper()],
                "model_type": nncf.ModelType.TRANSFORMER if transformer else None,
                "preset": nncf.QuantizationPreset(config.preset) if config.preset else None,
                "ignored_scope": nncf.IgnoredScope(
                    names=list(config.exclude_nodes), types=list(config.exclude_op_types), validate=False
                ),
                "advanced_parameters": _advanced(config, batchwise if batch > 1 else None),
            }
            with progress.task("nncf: calibrate and quantize", total=1) as advance:
                try:
                    # NNCF draws its own progress bars and prints: stdout stays clean for --json
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        quantized = nncf.quantize(model, nncf.Dataset(items), **options)
                except Exception as exc:  # NNCF, onnx and onnxruntime raise their own types
                    raise QuantizationError(
                        f"{fp32_path}: backend 'nncf' failed in nncf.quantize "
                        f"({type(exc).__name__}: {failure_reason(exc)})"
                    ) from exc
                advance(1)
            del model
            notes["activations_to_uint8"] = unsigned_activations(quantized)
            staged = Path(tmp) / "int8.onnx"
            if quantized.ByteSize() < _PROTOBUF_LIMIT:
                onnx.save(quantized, str(staged))
                os.replace(staged, output_path)
            else:  # its weights beside the output, under the output's name
                onnx.save(quantized, str(output_path), save_as_external_data=True, location=output_path.name + ".data")
        report = {
            "calibration_samples": samples,
            "calibration_runs": len(items),
            "calibration_batch": batch,
            **({"batchwise_statistics": batchwise} if batch > 1 else {}),
            "calibration_layout": layout,
            "model_type": "transformer" if transformer else "default",
            "preset": config.preset or ("mixed" if transformer else "performance"),
            "nncf_version": str(nncf.__version__),
            **notes,
            **op_summary(output_path),
        }
        return QuantResult(output_path, self.name, time.perf_counter() - started, report)


def _advanced(config: NncfConfig, batchwise: bool | None = None):
    """``reduce_range`` as NNCF's overflow fix (7-bit weights where 8-bit ones saturate: x86 without VNNI);
    ``batchwise``: NNCF's batchwise statistics for runs of several samples (None: one sample a run)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    return AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.ENABLE if config.reduce_range else OverflowFix.DISABLE,
        batchwise_statistics=batchwise,
    )


__all__ = ["INSTALL", "NncfBackend", "NncfConfig", "calibration_items", "is_transformer", "nncf_installed"]
