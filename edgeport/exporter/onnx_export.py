"""Export a PyTorch model to fp32 ONNX with a dynamic batch axis, then prove the file.

Proof: ``onnx.checker`` passes, onnxruntime loads it, and its outputs on real
inputs match PyTorch's (max abs difference and top-1 agreement are recorded).

Every file written here is scrubbed of the exporters' debug metadata (stack traces with absolute
paths, FX node text, ...) right after export; see :mod:`edgeport.exporter.scrub` for the rule.
"""

from __future__ import annotations

import io
import os
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeport.distill.evaluate import predict_logits
from edgeport.errors import ExportError
from edgeport.exporter.scrub import scrub_onnx

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EXPORTERS = ("dynamo", "torchscript")
OPSET = 18
# fp32 ONNX vs PyTorch: kernels differ (fused Conv+BN, other GEMM order), so allow float noise
# but nothing that looks like a wrong graph.
PARITY_ATOL = 1e-3


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exporter: str
    opset: int
    max_abs_diff: float
    top1_agreement: float
    parity_samples: int

    def describe(self) -> dict:
        return {
            "exporter": self.exporter,
            "opset": self.opset,
            "parity": {
                "max_abs_diff": self.max_abs_diff,
                "top1_agreement": self.top1_agreement,
                "samples": self.parity_samples,
            },
        }


def onnx_predict(path: str | os.PathLike, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Outputs of a single-input ONNX model on ``x`` with onnxruntime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)])


def _torch_export(model: nn.Module, example: torch.Tensor, path: Path, exporter: str, input_name: str) -> None:
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        # The exporters print and warn about internals (deprecations, fallbacks) that a user
        # cannot act on; real failures still raise.
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=65536)
            program = torch.onnx.export(
                model,
                (example,),
                None,
                dynamo=True,
                opset_version=OPSET,
                input_names=[input_name],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
            if program is None:  # torch returns None only with the legacy exporter
                raise ExportError(f"{path}: the dynamo exporter returned no ONNX program")
            program.save(str(path))
        else:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=[input_name],
                output_names=[OUTPUT_NAME],
                dynamic_axes={input_name: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )


def write_onnx(
    model: nn.Module,
    example_inputs: np.ndarray,
    path: str | os.PathLike,
    exporter: str = "dynamo",
    input_name: str = INPUT_NAME,
) -> Path:
    """Export ``model`` to ``path`` with a dynamic batch axis, scrub it and run ``onnx.checker`` on the file.

    Scrubbing (:func:`edgeport.exporter.scrub.scrub_onnx`) removes the exporter's debug annotations,
    which hold absolute paths of this machine and make same-seed builds differ byte for byte.
    """
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter {exporter!r} is not one of {', '.join(EXPORTERS)}")
    path = Path(path)
    # Batch 2 so that no exporter can mistake the batch axis for a constant 1.
    example = torch.from_numpy(np.ascontiguousarray(example_inputs[:2]))
    try:
        _torch_export(model, example, path, exporter, input_name)
        scrub_onnx(path)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # the exporters raise many unrelated types; wrap them all once, here
        path.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: ONNX export with the {exporter} exporter failed: {first}") from exc
    return path


def export_onnx(
    model: nn.Module,
    example_inputs: np.ndarray,
    path: str | os.PathLike,
    exporter: str = "dynamo",
    parity_inputs: np.ndarray | None = None,
) -> ExportResult:
    """Export ``model`` (in eval mode) to ``path`` and validate it against PyTorch on ``parity_inputs``."""
    path = write_onnx(model.eval(), example_inputs, path, exporter)

    check = parity_inputs if parity_inputs is not None else example_inputs
    try:
        onnx_logits = onnx_predict(path, check)
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise ExportError(f"{path}: onnxruntime cannot run the exported model: {exc}") from exc
    torch_logits = predict_logits(model, check)
    max_abs = float(np.abs(onnx_logits - torch_logits).max())
    agreement = float((onnx_logits.argmax(1) == torch_logits.argmax(1)).mean() * 100.0)
    if not np.isfinite(max_abs) or max_abs > PARITY_ATOL * max(1.0, float(np.abs(torch_logits).max())):
        path.unlink(missing_ok=True)
        raise ExportError(
            f"{path}: ONNX outputs differ from PyTorch by {max_abs:.3g} (tolerance "
            f"{PARITY_ATOL:g} relative to the largest logit); the export is wrong"
        )
    return ExportResult(path, exporter, OPSET, max_abs, agreement, len(check))
