"""Task-level judges of an int8 corpus model against its fp32 original, independent of edgeport's guard.

Each judge takes (fp32 path, int8 path, task context from ``inputs.corpus_case``, the int8 file's
runtime) and returns (value in [0, 1], detail dict); higher is more faithful. fp32 runs on onnxruntime
(the reference edgeport's guard compares with too), int8 on the runtime it ships on (``ort``, or
``openvino[/PRECISION]`` as the manifest's ``speed.deploy`` names it); CPU, one thread.

- ppocr_det: share of pixels with the same text-mask decision (p > 0.3) over all held-out pages;
- ppocr_rec: share of lines whose greedy CTC decoding (the model's own character list) is equal;
- ppocr_cls: top-1 agreement;
- silero_vad: share of equal speech decisions (p > 0.5) over every chunk of the held-out streams, each
  model replaying the streams with its own carried state;
- minilm: mean cosine of the mean-pooled (attention mask), L2-normalised sentence embeddings;
- the other kinds (kinds.py): the orientation classifier's top-1 agreement, the layout detector's
  detections (score > 0.3, same class), the speech and speaker embeddings' mean cosine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.records import RuntimeChoice
from tests.corpus import kinds
from tests.corpus.inputs import ort_session, run_batched, session, vad_replay

DET_THRESHOLD = 0.3
VAD_THRESHOLD = 0.5
Judgement = tuple[float, dict[str, Any]]
PathLike = str | Path


# --- detector ----------------------------------------------------------------------------------------


def det_masks(model: PathLike, x: np.ndarray, runtime: str = "ort") -> np.ndarray:
    """Text masks (N, H, W) bool: the detector's probability map above 0.3."""
    return run_batched(session(model, runtime), {"x": x}, batch=4)[:, 0] > DET_THRESHOLD


def judge_det(fp32: PathLike, int8: PathLike, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    x = context["val"]["x"]
    a, b = det_masks(fp32, x), det_masks(int8, x, runtime)
    union = np.logical_or(a, b).sum()
    return float((a == b).mean()), {
        "mask_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0,
        "fp32_mask_share": float(a.mean()),
        "int8_mask_share": float(b.mean()),
    }


# --- recogniser --------------------------------------------------------------------------------------


def characters(model: PathLike) -> list[str]:
    """The recogniser's classes: blank (class 0), its metadata's ``character`` list, then a space."""
    table = ort_session(model).get_modelmeta().custom_metadata_map.get("character")
    if table is None:
        raise ValueError(f"{model}: no 'character' in the model's metadata_props")
    return ["", *table.split("\n"), " "]


def ctc_greedy(probs: np.ndarray, classes: list[str]) -> list[str]:
    """Greedy CTC decoding of (N, T, C): best class per step, repeats merged, blanks (class 0) dropped."""
    best = probs.argmax(-1)
    texts = []
    for row in best:
        keep = np.ones(len(row), bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != 0
        texts.append("".join(classes[i] for i in row[keep]))
    return texts


def read_lines(model: PathLike, x: np.ndarray, classes: list[str] | None = None, runtime: str = "ort") -> list[str]:
    return ctc_greedy(run_batched(session(model, runtime), {"x": x}), classes or characters(model))


def _same_text(a: str, b: str) -> bool:
    return a.replace(" ", "") == b.replace(" ", "")


def judge_rec(fp32: PathLike, int8: PathLike, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    classes = characters(fp32)  # the int8 file's metadata may not have survived: fp32's list decodes both
    x = context["val"]["x"]
    a, b = read_lines(fp32, x, classes), read_lines(int8, x, classes, runtime)
    detail: dict[str, Any] = {"differing": [(p, q) for p, q in zip(a, b, strict=True) if p != q][:5]}
    truth = context.get("truth")
    if truth is not None:  # for information: how well each reads the rendered strings (spaces ignored)
        detail["fp32_accuracy"] = float(np.mean([_same_text(p, t) for p, t in zip(a, truth, strict=True)]))
        detail["int8_accuracy"] = float(np.mean([_same_text(q, t) for q, t in zip(b, truth, strict=True)]))
    return float(np.mean([p == q for p, q in zip(a, b, strict=True)])), detail


# --- direction classifier ----------------------------------------------------------------------------


def cls_top1(model: PathLike, x: np.ndarray, runtime: str = "ort") -> np.ndarray:
    return run_batched(session(model, runtime), {"x": x}).argmax(-1)


def judge_cls(fp32: PathLike, int8: PathLike, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    x = context["val"]["x"]
    a, b = cls_top1(fp32, x), cls_top1(int8, x, runtime)
    detail: dict[str, Any] = {}
    labels = context.get("labels")
    if labels is not None:
        detail["fp32_accuracy"] = float((a == labels).mean())
        detail["int8_accuracy"] = float((b == labels).mean())
    return float((a == b).mean()), detail


# --- VAD ---------------------------------------------------------------------------------------------


def vad_probs(model: PathLike, streams: list[Any], runtime: str = "ort") -> np.ndarray:
    """Speech probability of every chunk of ``streams``, each replayed with the model's own state."""
    return np.concatenate([probs for probs, _ in vad_replay(session(model, runtime), streams)])


def judge_vad(fp32: PathLike, int8: PathLike, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    a, b = vad_probs(fp32, context["streams"]), vad_probs(int8, context["streams"], runtime)
    return float(((a > VAD_THRESHOLD) == (b > VAD_THRESHOLD)).mean()), {
        "chunks": len(a),
        "fp32_speech_share": float((a > VAD_THRESHOLD).mean()),
        "int8_speech_share": float((b > VAD_THRESHOLD).mean()),
        "max_abs_prob_diff": float(np.abs(a - b).max()),
    }


# --- MiniLM ------------------------------------------------------------------------------------------


def embeddings(model: PathLike, feeds: dict[str, np.ndarray], runtime: str = "ort") -> np.ndarray:
    """Sentence embeddings: last_hidden_state mean-pooled over the attention mask, L2-normalised."""
    hidden = run_batched(session(model, runtime), feeds, batch=16)
    mask = feeds["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def judge_minilm(fp32: PathLike, int8: PathLike, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    a, b = embeddings(fp32, context["val"]), embeddings(int8, context["val"], runtime)
    cosine = (a * b).sum(1)
    return float(np.clip(cosine.mean(), 0.0, 1.0)), {"min_cosine": float(cosine.min())}


JUDGES: dict[str, Callable[[PathLike, PathLike, dict[str, Any], str], Judgement]] = {
    "ppocr_det": judge_det,
    "ppocr_rec": judge_rec,
    "ppocr_cls": judge_cls,
    "silero_vad": judge_vad,
    "minilm": judge_minilm,
    **kinds.JUDGES,
}
# What each judge value means, for tables
MEASURES = {
    "ppocr_det": "mask agreement (p>0.3)",
    "ppocr_rec": "equal decoded lines",
    "ppocr_cls": "top-1 agreement",
    "silero_vad": "equal speech decisions (p>0.5, own state)",
    "minilm": "mean embedding cosine",
    **kinds.MEASURES,
}


def deploy_runtime(manifest: dict[str, Any] | None) -> str:
    """Where a manifest's ``speed.deploy`` ships the file, as a judge's runtime: ``ort`` or
    ``openvino[/PRECISION]`` (onnxruntime when it names none)."""
    deploy = ((manifest or {}).get("speed") or {}).get("deploy") or {"runtime": "ort"}
    return RuntimeChoice(deploy["runtime"], deploy.get("precision")).label()


def judge(name: str, fp32: PathLike, int8: PathLike, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    """The task judge of corpus model ``name``, the int8 file run on ``runtime``."""
    return JUDGES[name](fp32, int8, context, runtime)
