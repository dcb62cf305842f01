"""How closely an int8 model's outputs follow the fp32 model's, judged on what each output means.

Every output is compared as a vector (cosine, SQNR on each sample's flattened output). The arrays are
samples-first (``inputs/run.py`` moves a time-major output's samples axis to the front). Beside the
cosine:

- class scores ([samples, classes]): the argmax, as top-1 agreement;
- a sequence of class scores ([samples, T, C], T > 1, C > 1), as a CTC recognizer's: the greedily
  decoded sequence (argmax per step, repeats collapsed, the blank dropped), as the share of samples
  whose decoded sequence is identical. Cosine alone cannot see it: an int8 CTC recognizer kept a mean
  cosine near 0.99 while its decoded text agreed with fp32 on 9% of lines, because one step whose argmax
  flips changes the line. Which outputs are sequences needs the graph and the values together
  (``heads.sequence_outputs``, ``heads.sequence_heads``, ``ctc_blank``): the shape alone cannot tell
  [samples, T, C] scores from a [samples, tokens, hidden] hidden state.

An output whose parts differ in scale is also judged part by part: ``slices.slice_fidelity``.
"""

from __future__ import annotations

import numpy as np

CTC_BLANK = 0  # greedy decoding's default; the blank of a judged output is found in its values (ctc_blank)
# A sequence of class scores has a CTC blank: class 0 or C - 1 is the most frequent per-step argmax of the
# fp32 outputs, on at least this share of the steps (and twice what chance would give with C classes).
BLANK_MIN_SHARE = 0.3


def is_classifier(output: np.ndarray) -> bool:
    """Scores per class ([samples, classes]): the only outputs whose argmax means a prediction."""
    return output.ndim == 2 and output.shape[1] > 1


def is_sequence(output: np.ndarray) -> bool:
    """Shaped as a sequence of class scores: [samples, T, C] with T > 1 and C > 1."""
    return output.ndim == 3 and output.shape[1] > 1 and output.shape[2] > 1


def ctc_blank(scores: np.ndarray) -> int | None:
    """The CTC blank of [samples, T, C] scores (probabilities, log-probabilities or logits): class 0 or
    C - 1 when it is the most frequent per-step argmax on at least ``BLANK_MIN_SHARE`` of the steps (and
    twice the 1 / C that chance gives); None otherwise (no blank: not a CTC output). Steps whose scores are
    all equal decide nothing and are not counted."""
    if not is_sequence(scores):
        return None
    classes = scores.shape[-1]
    decided = scores.max(-1) > scores.min(-1)
    best = scores.argmax(-1)[decided]
    if best.size == 0:
        return None
    counts = np.bincount(best.ravel(), minlength=classes)
    top = int(counts.argmax())
    share = counts[top] / best.size
    return top if top in (0, classes - 1) and share >= max(BLANK_MIN_SHARE, 2.0 / classes) else None


def ctc_greedy_decode(scores: np.ndarray, blank: int = CTC_BLANK) -> list[tuple[int, ...]]:
    """Greedy CTC decoding of [samples, T, C] scores (probabilities, log-probabilities or logits):
    the argmax of every step, repeats collapsed, ``blank`` dropped; one tuple of classes per sample."""
    best = scores.argmax(-1)
    repeat = np.zeros_like(best, dtype=bool)
    repeat[:, 1:] = best[:, 1:] == best[:, :-1]
    keep = ~repeat & (best != blank)
    return [tuple(int(c) for c in row[mask]) for row, mask in zip(best, keep, strict=True)]


def sequence_agreement(reference: np.ndarray, candidate: np.ndarray, blank: int = CTC_BLANK) -> float:
    """Share (0..1) of samples whose greedily decoded sequence is identical in both."""
    ref, cand = ctc_greedy_decode(reference, blank), ctc_greedy_decode(candidate, blank)
    return float(np.mean([a == b for a, b in zip(ref, cand, strict=True)])) if ref else 1.0


def fidelity(reference: np.ndarray, candidate: np.ndarray, sequence: bool = False, blank: int | None = None) -> dict:
    """How closely ``candidate`` outputs follow ``reference`` ones (rows are samples; cosine on each
    sample's flattened output). Top-1 agreement only for classifier-shaped outputs: the argmax of a
    hidden state or a feature map means nothing. With ``sequence`` (the graph says the output may be class
    scores per step) and a [samples, T, C] shape whose fp32 values have a CTC blank (``blank``, else
    ``ctc_blank(reference)``): ``sequence_agreement`` and ``step_agreement`` too, and the blank used."""
    classifier = is_classifier(reference)
    ref = reference.reshape(len(reference), -1)
    cand = candidate.reshape(len(candidate), -1)
    noise = float(np.mean((cand - ref) ** 2))
    signal = float(np.mean(ref**2))
    ref_norm, cand_norm = np.linalg.norm(ref, axis=1), np.linalg.norm(cand, axis=1)
    norms = ref_norm * cand_norm
    # two zero vectors agree; a zero beside a non-zero one does not (an int8 model whose activations all
    # rounded to zero outputs zeros: that is cosine 0, never a pass)
    cosine = np.where(
        norms > 0, (ref * cand).sum(1) / np.maximum(norms, 1e-30), np.where((ref_norm > 0) | (cand_norm > 0), 0.0, 1.0)
    )
    result = {
        "max_abs_diff": float(np.abs(cand - ref).max()),
        "mean_cosine": float(cosine.mean()),
        # the spread of the per-sample cosines: how well the mean is known (strategy/screening.py)
        "cosine_sd": float(cosine.std(ddof=1)) if len(cosine) > 1 else 0.0,
        "samples": len(cosine),
        # None: no error at all (the same file on a second runtime often matches bit for bit); an infinite
        # float would be written as `Infinity`, which strict JSON readers refuse
        "sqnr_db": float(10 * np.log10(signal / noise)) if noise > 0 else None,
    }
    if classifier:
        result["top1_agreement"] = float((cand.argmax(1) == ref.argmax(1)).mean() * 100.0)
    if (sequence or blank is not None) and is_sequence(reference) and candidate.shape == reference.shape:
        found = ctc_blank(reference) if blank is None else blank
        if found is not None:
            result["ctc_blank"] = found
            result["sequence_agreement"] = sequence_agreement(reference, candidate, found)
            result["step_agreement"] = float((reference.argmax(-1) == candidate.argmax(-1)).mean())
    return result
