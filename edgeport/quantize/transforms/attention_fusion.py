"""A transformer's attention fused into onnxruntime's MultiHeadAttention before onnxruntime quantizes it.

torch's dynamo exporter writes each scaled-dot-product attention as a dozen ops (Reshape and Transpose of
Q, K and V, the score MatMul and its scale, the mask's Where and Add, Softmax, the MatMul with V, the
Transpose back). onnxruntime's session fuses none of them, and its transformer optimizer
(``onnxruntime.transformers``) fused no attention in all-MiniLM-L6-v2, neither in its dynamo export nor in
a TorchScript export with this ``transformers`` version. In int8 those float ops are what is left after the
weight MatMuls get 3x faster, so they decide the ratio. onnxscript (torch's ONNX exporter, already installed
with it) keeps Microsoft's rewrite rules for dynamo exports (``onnxscript.rewriter.ort_fusions``); its SDPA
and MultiHeadAttention rules, and its erf-GELU one (one Gelu node for the five ops of GELU), are applied
here. Not all of ``optimize_for_ort``:

- its Attention rule packs Q, K and V into one node with ``qkv_hidden_sizes`` and an attention bias, which
  onnxruntime's quantizers leave in float (QAttention takes neither): MiniLM's dynamic int8 ran at 0.62x
  fp32 with it against 0.55x without any fusion;
- its SkipLayerNormalization is the slow CPU kernel that layernorm_unfused.py keeps onnxruntime from using;
- its BiasGelu takes the feed-forward's bias Add that onnxruntime otherwise folds into the int8 MatMul
  before it, and its kernel is slower than Gelu alone: 0.36 ms against 0.22 ms a run of MiniLM, whose
  dynamic int8 ran at 0.45x fp32 with it and 0.43x without.

The weight MatMuls keep their names, so exclusions and the accuracy fallback's layers still apply, and the
quantizers leave MultiHeadAttention in float (it is in none of their registries). MiniLM, seq 32, batch 1,
one thread, Intel Xeon (AVX-512 VNNI, no AMX): dynamic int8 with Add + LayerNormalization kept apart ran at
0.47x fp32's p50 unfused and 0.43x fused.

A rewrite rule that matched wrongly would cost every onnxruntime recipe its accuracy, so the fused model is
checked against the unfused one (both fp32, in onnxruntime) on the first calibration samples, and dropped,
with the reason in the backend's report, when any output moves beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from edgeport.quantize.inputs.model_check import failure_reason
from edgeport.quantize.inputs.run import ort_session, run_all_outputs

CHECK_SAMPLES = 4  # calibration samples the fused model is compared on
# beyond float rounding: MultiHeadAttention sums in another order than the MatMuls and Softmax it replaces
# (about 1e-6 of the output's range on MiniLM); a rule that matched wrongly moves outputs by far more
RELATIVE_TOLERANCE = 1e-3
NOTE = "attention_fusion"


def _has_attention_ops(path: Path) -> bool:
    """Softmax beside MatMul: what every attention the rules match has (no CNN is loaded into onnxscript)."""
    ops = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    return {"Softmax", "MatMul"} <= ops


def _fuse(source: Path, target: Path, external: bool) -> dict[str, int]:
    """onnxscript's attention and erf-GELU rules on ``source``, written to ``target`` (with ``external``, its
    weights in one file beside it, named after it); the count of each rule's matches."""
    import onnx_ir as ir
    import onnx_ir.passes.common as common_passes
    from onnxscript.optimizer import optimize
    from onnxscript.rewriter.ort_fusions import shape_optimization
    from onnxscript.rewriter.ort_fusions.erfgelu import fuse_erfgelu
    from onnxscript.rewriter.ort_fusions.mha import fuse_mha1, fuse_mha2
    from onnxscript.rewriter.ort_fusions.sdpa import fuse_sdpa

    model = ir.load(str(source))
    # the clean-up optimize_for_ort does first: shapes known, constants folded, shape arithmetic simplified
    common_passes.ShapeInferencePass()(model)
    optimize(model)
    shape_optimization.rules.apply_to_model(model)
    optimize(model)
    counts = {"erf_gelu": fuse_erfgelu(model), "sdpa": fuse_sdpa(model, apply_shape_inference=True)}
    counts["multi_head_attention"] = fuse_mha1(model) + fuse_mha2(model)
    optimize(model)  # what a rule matched part of and left unused goes
    ir.save(model, str(target), external_data=target.name + ".data" if external else None)
    return counts


def _outputs_apart(reference: Path, fused: Path, samples: Mapping[str, np.ndarray], where: str) -> str | None:
    """Which output of ``fused`` differs from ``reference``'s beyond float rounding, or None."""
    feeds = {name: value[:CHECK_SAMPLES] for name, value in samples.items()}
    expected = run_all_outputs(ort_session(reference), feeds, source=where)
    actual = run_all_outputs(ort_session(fused), feeds, source=where)
    for name, value in expected.items():
        got = actual.get(name)
        if got is None or got.shape != value.shape:
            return f"output {name!r} changed shape"
        scale = float(np.max(np.abs(value))) if value.size else 0.0
        worst = float(np.max(np.abs(got - value))) if value.size else 0.0
        if not np.isfinite(worst) or worst > RELATIVE_TOLERANCE * max(scale, 1e-6):
            return f"output {name!r} moved by {worst:.3g} (largest value {scale:.3g})"
    return None


def fused_model(
    fp32_path: Path, folder: Path, samples: Mapping[str, np.ndarray] | None, external: bool
) -> tuple[Path | None, dict]:
    """The model at ``fp32_path`` with its attention fused, written into ``folder`` (under the same name; with
    ``external``, the model keeps tensors in external data files, of whatever name: the fused one keeps them in
    one beside it), when it has any and the fused model computes the same on ``samples``, else None; and what
    was done, for the backend's report ({} for a graph without attention). Fused before onnxruntime's
    pre-processing, whose shape inference leaves the rules' Reshape pairs around MultiHeadAttention in place
    (24 more nodes on MiniLM, 0.08 ms a run)."""
    fp32_path = Path(fp32_path)
    if not _has_attention_ops(fp32_path):
        return None, {}
    if not samples:
        return None, {NOTE: "not tried: no calibration samples to check the fused model on"}
    target = Path(folder) / fp32_path.name  # the same name: the model names its external data file after it
    try:
        counts = _fuse(fp32_path, target, external)
    except ImportError as exc:
        return None, {NOTE: f"not tried: onnxscript's ort_fusions are not importable ({failure_reason(exc, 160)})"}
    except Exception as exc:  # onnxscript's passes raise their own types
        return None, {NOTE: f"not applied: onnxscript failed ({type(exc).__name__}: {failure_reason(exc, 160)})"}
    if not counts["multi_head_attention"]:
        return None, {NOTE: "not applied: no attention matched onnxscript's rules"}
    try:
        apart = _outputs_apart(fp32_path, target, samples, str(fp32_path))
    except Exception as exc:  # onnxruntime cannot load or run what the rules wrote
        apart = f"{type(exc).__name__}: {failure_reason(exc, 160)}"
    if apart:
        return None, {NOTE: f"not applied: the fused fp32 model did not compute the same ({apart})"}
    return target, {NOTE: {k: v for k, v in counts.items() if v}}


__all__ = ["CHECK_SAMPLES", "NOTE", "fused_model"]
