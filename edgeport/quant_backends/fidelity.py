"""How closely an int8 model's outputs follow the fp32 model's, judged on what each output means."""

from __future__ import annotations

import numpy as np


def is_classifier(output: np.ndarray) -> bool:
    """Scores per class ([samples, classes]): the only outputs whose argmax means a prediction."""
    return output.ndim == 2 and output.shape[1] > 1


def fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """How closely ``candidate`` outputs follow ``reference`` ones (rows are samples; cosine on each
    sample's flattened output). Top-1 agreement only for classifier-shaped outputs: the argmax of a
    hidden state or a feature map means nothing."""
    classifier = is_classifier(reference)
    ref = reference.reshape(len(reference), -1)
    cand = candidate.reshape(len(candidate), -1)
    noise = float(np.mean((cand - ref) ** 2))
    signal = float(np.mean(ref**2))
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, (ref * cand).sum(1) / np.maximum(norms, 1e-30), 1.0)
    result = {
        "max_abs_diff": float(np.abs(cand - ref).max()),
        "mean_cosine": float(cosine.mean()),
        "sqnr_db": float(10 * np.log10(signal / noise)) if noise > 0 else float("inf"),
    }
    if classifier:
        result["top1_agreement"] = float((cand.argmax(1) == ref.argmax(1)).mean() * 100.0)
    return result
