"""The inputs of ``edgeport quantize``: the request the command line builds, its arguments, data files,
the output path and the fp32 model, each checked before anything is written; the records they give are
built once, frozen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks import cpu_fingerprint
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.core.artifacts import check_output_file, sha256_file
from edgeport.data.model_inputs import check_labels_fit, load_model_inputs
from edgeport.errors import ConfigError, QuantizationError
from edgeport.quantize.backends import get_backend
from edgeport.quantize.config import AutoConfig, QuantConfig
from edgeport.quantize.guard.held_out import hold_back
from edgeport.quantize.guard.judge import Validation, graph_sequence_outputs
from edgeport.quantize.inputs.model_check import ModelFacts, check_fp32_model, check_inputs_fit
from edgeport.quantize.inputs.run import ort_session, run_outputs
from edgeport.quantize.options import build_quant_config
from edgeport.quantize.source import ModelSource, TrainingData
from edgeport.quantize.tolerance import ToleranceSettings


@dataclass(frozen=True)
class QuantizeFileRequest:
    """One ``edgeport quantize``, as the command line gives it: a fp32 ONNX file (``model``) or a torch
    model (``torch_spec`` with ``weights``), the data files, the settings and the output."""

    calib: str
    model: str | None = None
    torch_spec: str | None = None
    weights: str | None = None
    val: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)  # the quantization settings the command line set
    output: str | None = None  # default: MODEL.int8.onnx
    num_classes: int | None = None  # --torch factories (default: from the labels)
    exporter: str = "dynamo"  # the fp32 ONNX of a --torch model
    tolerance: ToleranceSettings = ToleranceSettings()
    fallback_layers: tuple[str, ...] | None = None
    runtime: RuntimeChoice = ONNXRUNTIME  # the runtime the int8 model ships with
    choose_runtime: bool = False  # --runtime not given: ship on the installed runtime that runs it best
    speed_check: bool = True  # int8 ships only when faster than fp32 on ``runtime``, measured here
    debug: bool = False  # third-party warnings as they happen
    explain: bool = False  # every quantized tensor's SQNR in the manifest


def manifest_path_for(output: Path) -> Path:
    name = output.name[:-5] if output.name.endswith(".onnx") else output.name
    return output.with_name(f"{name}.manifest.json")


def rejected_path_for(output: Path) -> Path:
    """Where an int8 model that does not ship is written, to be inspected: a name no one ships by mistake
    (``det.int8.onnx`` -> ``det.int8.rejected.onnx``)."""
    name = output.name[:-5] if output.name.endswith(".onnx") else output.name
    return output.with_name(f"{name}.rejected.onnx")


def _torch_source(
    request: QuantizeFileRequest, x: np.ndarray, labels: np.ndarray | None, staging: Path
) -> tuple[ModelSource, dict]:
    """Build the torch model (input shape from the calibration images ``x``) and export its fp32 ONNX."""
    # --torch only: these import torch, which quantizing an ONNX file never loads
    from edgeport.exporter import write_onnx
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import load_weights

    spec, weights, num_classes, exporter = request.torch_spec, request.weights, request.num_classes, request.exporter
    if spec is None or weights is None:
        raise ConfigError("--torch needs --weights W.safetensors")
    if num_classes is None and labels is not None:
        num_classes = int(labels.max()) + 1
    model_spec = ModelSpec.parse(spec)
    model = build_model(
        model_spec, x.shape[1] if x.ndim == 4 else None, num_classes, x.shape[2] if x.ndim == 4 else None
    )
    load_weights(model, weights)
    model.eval()
    fp32 = write_onnx(model, x, staging / "fp32.onnx", exporter)
    lineage = {
        "torch_model": model_spec.describe(),
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "exported_fp32_sha256": sha256_file(fp32),
        "exporter": exporter,
    }
    return ModelSource(fp32, model), lineage


def _first_output_shape(onnx_path: Path, inputs: dict[str, np.ndarray]) -> tuple:
    # v[:1] is one sample in either layout (feeds.py): the first axis indexes samples in both, and
    # run_outputs tells them apart by rank, stacking per-sample outputs into (1, ...)
    one = {k: v[:1] for k, v in inputs.items()}
    try:
        return run_outputs(ort_session(onnx_path), one).shape
    except Exception as exc:  # ORT's own types: the inputs do not fit the model
        text = " ".join(str(exc).split())[:300]
        raise QuantizationError(f"{onnx_path}: the fp32 model does not run on the given inputs ({text})") from exc


@dataclass(frozen=True)
class QuantizeJob:
    """One `edgeport quantize`, its inputs checked: the settings (``reduce_range`` decided for ``cpu``),
    the calibration inputs, and what the int8 model is judged on."""

    request: QuantizeFileRequest
    output: Path
    config: QuantConfig
    range_reason: str
    cpu: dict
    names: list[str]
    calib_path: Path
    calibration: dict[str, np.ndarray]
    calib_labels: np.ndarray | None
    validation: Validation  # the --val file or held-back samples, their labels, the tolerance


@dataclass(frozen=True)
class LoadedModel:
    """The fp32 model to quantize (exported first for --torch), and where it came from."""

    source: ModelSource
    lineage: dict


def _check_arguments(onnx_path: str | None, torch_spec: str | None, weights: str | None) -> None:
    if (onnx_path is None) == (torch_spec is None):
        raise ConfigError("give either MODEL.onnx or --torch package.module:factory (not both)")
    if torch_spec is not None and weights is None:
        raise ConfigError("--torch needs --weights W.safetensors")
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"{weights}: weights file not found")


def _output_for(onnx_path: str | None, torch_spec: str | None, output: str | None) -> Path:
    if onnx_path is not None:
        stem = Path(onnx_path).name.removesuffix(".onnx").removesuffix(".fp32")
        default_output = Path(onnx_path).with_name(stem + ".int8.onnx")
    else:
        assert torch_spec is not None
        default_output = Path(torch_spec.split(":")[-1].split("=")[0] + ".int8.onnx")
    path = Path(output) if output else default_output
    if path.suffix != ".onnx":
        raise ConfigError(f"{path}: the output must be an .onnx file")
    return path


def check_sequence_option(model_path: Path, sequences: float | None) -> None:
    """``--min-sequence-agreement`` judges sequence outputs only: on a model without one it would be
    silently ignored, and the user would believe a check was made."""
    if sequences is not None and not graph_sequence_outputs(model_path):
        raise ConfigError(
            f"--min-sequence-agreement: {model_path} has no sequence output (class scores per step, "
            "[samples, T, C]: a Softmax, LogSoftmax or linear head over the last axis, as a CTC recognizer's), "
            "so there is nothing for it to judge; leave it out"
        )


def prepare_job(request: QuantizeFileRequest) -> tuple[QuantizeJob, ModelFacts | None]:
    """Every check of the user's inputs, before anything is written."""
    onnx_path, torch_spec = request.model, request.torch_spec
    _check_arguments(onnx_path, torch_spec, request.weights)
    cpu = cpu_fingerprint()
    quant_config, range_reason = build_quant_config(request.config, cpu)
    needs = "onnx" if isinstance(quant_config, AutoConfig) else get_backend(quant_config.backend).needs
    sequences = request.tolerance.min_sequence_agreement
    facts = None
    if onnx_path is not None:
        if needs == "torch":
            raise ConfigError(
                f"backend {quant_config.backend!r} quantizes torch models: use --torch package.module:factory "
                "--weights W.safetensors"
            )
        facts = check_fp32_model(onnx_path)
        check_sequence_option(Path(onnx_path), sequences)
    out = _output_for(onnx_path, torch_spec, request.output)
    inputs = (onnx_path, request.calib, request.val, request.weights)
    check_output_file(out, inputs, "output model")
    check_output_file(manifest_path_for(out), inputs, "output manifest")

    calib_path, val = Path(request.calib), request.val
    names = facts.input_names if facts is not None else ["input"]
    calibration, calib_labels = load_model_inputs(calib_path, names, "calibration")
    if facts is not None:
        check_inputs_fit(facts, calibration, calib_path, "calibration")
    if val:
        val_inputs, val_labels = load_model_inputs(Path(val), names, "validation")
        if facts is not None:
            check_inputs_fit(facts, val_inputs, val, "validation")
        judged_on = f"{val} (--val)"
    else:  # never judge on the samples the ranges came from
        held = hold_back(calibration, calib_labels, str(calib_path))
        calibration, calib_labels = held.calibration, held.calibration_labels
        val_inputs, val_labels, judged_on = held.validation, held.validation_labels, held.judged_on
    tolerance = request.tolerance.tolerance(labelled=val_labels is not None)
    validation = Validation(val_inputs, val_labels, tolerance, judged_on)
    job = QuantizeJob(
        request, out, quant_config, range_reason, cpu, names, calib_path, calibration, calib_labels, validation
    )
    return job, facts


def load_source(job: QuantizeJob, staging: Path) -> LoadedModel:
    """The fp32 model to quantize (exported first for --torch), its labels checked against its output;
    --min-sequence-agreement against the exported graph, which only now exists."""
    request, validation = job.request, job.validation
    if request.model is not None:
        source = ModelSource(Path(request.model))
        lineage = {"onnx_model": str(request.model), "onnx_sha256": sha256_file(request.model)}
    else:
        source, lineage = _torch_source(request, job.calibration["input"], job.calib_labels, staging)
    if source.onnx_path is None:
        raise QuantizationError("nothing to quantize: no fp32 ONNX file was given or exported")
    if request.model is None:
        check_sequence_option(source.onnx_path, request.tolerance.min_sequence_agreement)
    output_shape = _first_output_shape(source.onnx_path, validation.inputs)
    for labels, where in ((validation.labels, request.val or job.calib_path), (job.calib_labels, job.calib_path)):
        if labels is not None:
            check_labels_fit(where, labels, output_shape)
    if source.torch_model is not None and job.calib_labels is not None and len(job.names) == 1:
        # Labelled calibration images double as fine-tuning data for quantization-aware training.
        name = job.names[0]
        labelled_val = validation.labels is not None
        fit_x = validation.inputs[name] if labelled_val else job.calibration[name]
        fit_y = validation.labels if labelled_val and validation.labels is not None else job.calib_labels
        training = TrainingData(job.calibration[name], job.calib_labels, fit_x, fit_y)
        source = ModelSource(source.onnx_path, source.torch_model, training)
    return LoadedModel(source, lineage)
