"""What every recipe auto tries is judged against: the fp32 outputs on the validation inputs, computed
once (onnxruntime: the reference), and the verdict on an int8 model as the runtime it ships with runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.session import create_session
from edgeport.errors import EdgeportError
from edgeport.quantize.guard.heads import sequence_outputs
from edgeport.quantize.guard.judge import GuardReport, Validation, judge
from edgeport.quantize.guard.padding import padding_mask
from edgeport.quantize.inputs.run import ort_session, run_all_outputs
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy.timing import CHECK


@dataclass(frozen=True)
class Judging:
    """What every attempt is quantized from and judged on (``judging_for``)."""

    source: ModelSource
    calibration: dict[str, np.ndarray]
    validation: Validation
    fp32_out: dict[str, np.ndarray]
    sequences: set[str]  # outputs judged by their decoded sequence too (heads.sequence_outputs)
    runtime: RuntimeChoice = ONNXRUNTIME  # the runtime the artifact ships with: judged as it runs there

    def judge(self, int8_path: Path) -> GuardReport:
        validation = self.validation
        if self.runtime.name == ONNXRUNTIME.name:
            session, judged_on = ort_session(int8_path), validation.judged_on
        else:
            session = create_session(int8_path, CHECK, self.runtime)
            judged_on = f"{validation.judged_on} ({compiled_precision(session)})"
        return self.judge_outputs(run_all_outputs(session, validation.inputs), judged_on)

    def judge_outputs(self, outputs: dict[str, np.ndarray], judged_on: str | None = None) -> GuardReport:
        """The verdict on any model's ``outputs`` on the validation inputs, against the fp32 ones."""
        validation = self.validation
        where = judged_on or validation.judged_on
        padding = padding_mask(validation.inputs)
        return judge(self.fp32_out, outputs, validation.labels, validation.tolerance, where, self.sequences, padding)


def judging_for(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    validation: Validation,
    runtime: RuntimeChoice = ONNXRUNTIME,
) -> Judging:
    """The fp32 outputs on the validation inputs (onnxruntime: the reference), once, with the graph's
    sequence heads: every verdict on ``source`` compares against these."""
    model = fp32_onnx(source)
    graph = onnx.load(str(model), load_external_data=False)
    fp32_out = run_all_outputs(ort_session(model), validation.inputs)
    return Judging(source, calibration, validation, fp32_out, sequence_outputs(graph), runtime)


def fp32_onnx(source: ModelSource) -> Path:
    """The fp32 ONNX file auto reads (every recipe quantizes it, every verdict runs it)."""
    if source.onnx_path is None:
        raise EdgeportError("backend auto reads a fp32 ONNX file; none was given")
    return source.onnx_path


def compiled_precision(session: object) -> str:
    """What the judged run really computed in: a precision hint is only a hint (OpenVINO compiles --precision
    f16 as f32 on a CPU without f16 arithmetic), so the record says what the compiled model reports."""
    return f"OpenVINO compiled it as {getattr(session, 'precision', None) or 'an unreported precision'}"


__all__ = ["Judging", "compiled_precision", "fp32_onnx", "judging_for"]
