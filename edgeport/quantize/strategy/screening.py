"""Screening a calibrated recipe on a calibration subset before calibrating it in full.

Calibration is most of a static recipe's cost (a transformer's weights-only static recipe: 16 s of
MiniLM's quantization on 100 sentences, AMD EPYC Zen 1), and a recipe far outside the tolerance is
no better with more samples. So, where the calibration set is large, a static recipe is first
quantized on ``SUBSET`` samples spread evenly through the set (a file ordered by class or source is
common) and judged; it is dropped when its fidelity is clearly outside the tolerance, and calibrated
in full otherwise.

"Clearly" is an interval, not one number: the 95% interval of the worst output's mean cosine over the
validation samples, whose best end still misses the requirement by ``MARGIN`` times the error the
tolerance allows (cosine 0.98 where 0.99 is required: twice the allowed 0.01). The margin covers what
the interval cannot: a subset's ranges differ from the full set's (NNCF's int8 of MiniLM kept 0.9866
on 32 sentences and 0.9912 on 100). Only the cosine check screens: top-1 points and decoded
sequences are judged on the full calibration always.
"""

from __future__ import annotations

import math

from edgeport.quantize.guard.judge import GuardReport

SUBSET = 24  # calibration samples of the screening run
MIN_SAMPLES = 2 * SUBSET  # below this, screening would save less than it costs
MARGIN = 2.0  # clearly outside: even the interval's best end errs MARGIN times the allowed error
Z95 = 1.96


def worth_screening(backend: str, calibration_samples: int) -> bool:
    """A static onnxruntime recipe on a calibration set large enough that a subset saves time (a dynamic
    one calibrates nothing; NNCF's fixed cost, its graph matching, would be paid twice)."""
    return backend == "ort-static" and calibration_samples >= MIN_SAMPLES


def clearly_outside(report: GuardReport) -> str | None:
    """Why a model judged after subset calibration is dropped, or None when it may still pass: its
    worst mean cosine's 95% interval over the validation samples errs ``MARGIN`` times the allowed error
    even at its best end."""
    check = next((c for c in report.checks if c["metric"] == "mean_cosine" and not c["passed"]), None)
    if check is None:
        return None
    output = next((o for o in report.outputs if o["name"] == check["output"]), None)
    if output is None or "cosine_sd" not in output:
        return None
    samples = _samples(output)
    best = min(1.0, check["value"] + Z95 * output["cosine_sd"] / math.sqrt(samples)) if samples > 1 else 1.0
    allowed = 1.0 - check["required"]
    if allowed <= 0 or 1.0 - best <= MARGIN * allowed:
        return None
    return (
        f"on a {SUBSET}-sample calibration subset, mean_cosine {check['value']:.4g} (95% interval up to "
        f"{best:.4g}) on output {check['output']!r}: even its best end errs more than {MARGIN:g}x the "
        f"{allowed:.2g} the tolerance allows, so it was not calibrated in full"
    )


def _samples(output: dict) -> int:
    """The samples the output's cosines were averaged over (one per run when it holds no samples axis)."""
    return 1 if output.get("per_sample") is False else int(output.get("samples", 0))


__all__ = ["MIN_SAMPLES", "SUBSET", "clearly_outside", "worth_screening"]
