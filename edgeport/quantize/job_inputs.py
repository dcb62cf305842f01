"""The inputs of ``edgeport quantize``: arguments, data files, the output path and the fp32 model,
each checked before anything is written; and the record a quantization fills in step by step."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from edgeport.benchmarks import cpu_fingerprint
from edgeport.benchmarks.records import RuntimeChoice
from edgeport.core.artifacts import check_output_file, sha256_file
from edgeport.data.model_inputs import check_labels_fit, load_model_inputs
from edgeport.errors import ConfigError, QuantizationError
from edgeport.quantize import ModelSource, QuantConfig, TrainingData, build_quant_config, get_backend
from edgeport.quantize.guard.judge import GuardReport, Tolerance, default_tolerance, graph_sequence_outputs, hold_back
from edgeport.quantize.inputs.model_check import ModelFacts, check_fp32_model, check_inputs_fit
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.strategy.auto import AutoOutcome
from edgeport.quantize.strategy.fallback import FallbackReport
from edgeport.quantize.strategy.recipes import AutoConfig


def manifest_path_for(output: Path) -> Path:
    name = output.name[:-5] if output.name.endswith(".onnx") else output.name
    return output.with_name(f"{name}.manifest.json")


def _torch_source(
    spec: str, weights: str, x, labels, num_classes: int | None, staging: Path, exporter: str
) -> tuple[ModelSource, dict]:
    """Build the torch model (input shape from the calibration images ``x``) and export its fp32 ONNX."""
    from edgeport.exporter import write_onnx
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import load_weights

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


def _first_output_shape(onnx_path: Path, inputs: dict) -> tuple:
    from edgeport.quantize.guard.verify import ort_session, run_outputs

    # v[:1] is one sample in either layout (feeds.py): the first axis indexes samples in both, and
    # run_outputs tells them apart by rank, stacking per-sample outputs into (1, ...)
    one = {k: v[:1] for k, v in inputs.items()}
    try:
        return run_outputs(ort_session(onnx_path), one).shape
    except Exception as exc:  # ORT's own types: the inputs do not fit the model
        text = " ".join(str(exc).split())[:300]
        raise QuantizationError(f"{onnx_path}: the fp32 model does not run on the given inputs ({text})") from exc


@dataclass
class QuantizeJob:
    """One `edgeport quantize`: its checked inputs, then what each step produced."""

    calib_path: Path
    val: str | None
    output: Path
    quant_config: QuantConfig
    range_reason: str
    cpu: dict
    names: list[str]
    calibration: dict
    calib_labels: object
    val_inputs: dict
    val_labels: object
    source: ModelSource | None = None
    lineage: dict | None = None
    judged_on: str = ""  # the inputs fidelity is judged on (the --val file or held-back samples)
    tolerance: Tolerance | None = None
    result: QuantResult | None = None
    fallback: FallbackReport | None = None
    verification: dict | None = None
    guard: GuardReport | None = None
    auto: AutoOutcome | None = None
    sensitivity: list[dict] | None = None  # with --explain: every quantized tensor's SQNR, worst first
    runtime: RuntimeChoice = field(default_factory=RuntimeChoice)  # the runtime the int8 model is judged on
    notes: list[str] = field(default_factory=list)  # edgeport's own warnings found on the way
    third_party: list[str] = field(default_factory=list)


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
            f"--min-sequence-agreement: {model_path} has no sequence output (Softmax or LogSoftmax over the last "
            "axis of [samples, T, C], as a CTC recognizer's), so there is nothing for it to judge; leave it out"
        )


def prepare_job(
    onnx_path, torch_spec, weights, calib, val, config, output, tolerance: Tolerance | None, sequences=None
) -> tuple[QuantizeJob, ModelFacts | None]:
    """Every check of the user's inputs, before anything is written."""
    _check_arguments(onnx_path, torch_spec, weights)
    cpu = cpu_fingerprint()
    quant_config, range_reason = build_quant_config(config, cpu)
    needs = "onnx" if isinstance(quant_config, AutoConfig) else get_backend(quant_config.backend).needs
    facts = None
    if onnx_path is not None:
        if needs == "torch":
            raise ConfigError(
                f"backend {quant_config.backend!r} quantizes torch models: use --torch package.module:factory "
                "--weights W.safetensors"
            )
        facts = check_fp32_model(onnx_path)
        check_sequence_option(Path(onnx_path), sequences)
    out = _output_for(onnx_path, torch_spec, output)
    inputs = (onnx_path, calib, val, weights)
    check_output_file(out, inputs, "output model")
    check_output_file(manifest_path_for(out), inputs, "output manifest")

    calib_path = Path(calib)
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
    job = QuantizeJob(
        calib_path, val, out, quant_config, range_reason, cpu, names, calibration, calib_labels, val_inputs, val_labels
    )
    job.judged_on = judged_on
    job.tolerance = tolerance or default_tolerance(val_labels)
    if sequences is not None:  # --min-sequence-agreement, beside the default or the given tolerance
        job.tolerance = dataclasses.replace(job.tolerance, min_sequence_agreement=sequences)
    return job, facts


def load_source(
    job: QuantizeJob, onnx_path, torch_spec, weights, num_classes, staging: Path, exporter: str, sequences=None
) -> None:
    """The fp32 model to quantize (exported first for --torch), its labels checked against its output;
    ``sequences`` (--min-sequence-agreement) against the exported graph, which only now exists."""
    if onnx_path is not None:
        source = ModelSource(Path(onnx_path))
        job.lineage = {"onnx_model": str(onnx_path), "onnx_sha256": sha256_file(onnx_path)}
    else:
        source, job.lineage = _torch_source(
            torch_spec, weights, job.calibration["input"], job.calib_labels, num_classes, staging, exporter
        )
        check_sequence_option(source.onnx_path, sequences)
    output_shape = _first_output_shape(source.onnx_path, job.val_inputs)
    for labels, where in ((job.val_labels, job.val or job.calib_path), (job.calib_labels, job.calib_path)):
        if labels is not None:
            check_labels_fit(where, labels, output_shape)
    if source.torch_model is not None and job.calib_labels is not None and len(job.names) == 1:
        # Labelled calibration images double as fine-tuning data for quantization-aware training.
        name = job.names[0]
        labelled_val = job.val_labels is not None
        fit_x = job.val_inputs[name] if labelled_val else job.calibration[name]
        fit_y = job.val_labels if labelled_val else job.calib_labels
        training = TrainingData(job.calibration[name], job.calib_labels, fit_x, fit_y)
        source = ModelSource(source.onnx_path, source.torch_model, training)
    job.source = source
