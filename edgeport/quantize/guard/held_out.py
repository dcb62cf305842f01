"""Without a validation file, fidelity is judged on a held-back part of the calibration file: the int8
model is never judged on the samples it was calibrated on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeport.errors import ConfigError

# Without a validation file, this share of the calibration samples is held back to judge fidelity.
HOLD_BACK_FRACTION = 0.25


@dataclass(frozen=True)
class HeldOut:
    """Calibration inputs and the inputs fidelity is judged on, never the same samples."""

    calibration: dict[str, np.ndarray]
    calibration_labels: np.ndarray | None
    validation: dict[str, np.ndarray]
    validation_labels: np.ndarray | None
    judged_on: str


def hold_back(calibration: dict[str, np.ndarray], labels: np.ndarray | None, source: str) -> HeldOut:
    """Split the last ``HOLD_BACK_FRACTION`` of the calibration samples off for the fidelity check."""
    count = len(next(iter(calibration.values())))
    if count < 2:
        raise ConfigError(
            f"{source}: {count} calibration sample: give --val, or at least 2 samples so that some can "
            "be held back to check the int8 model on inputs it was not calibrated on"
        )
    held = max(1, int(round(count * HOLD_BACK_FRACTION)))
    keep = count - held
    return HeldOut(
        {k: v[:keep] for k, v in calibration.items()},
        labels[:keep] if labels is not None else None,
        {k: v[keep:] for k, v in calibration.items()},
        labels[keep:] if labels is not None else None,
        f"the last {held} of {count} samples of {source}, held back from calibration",
    )


__all__ = ["HOLD_BACK_FRACTION", "HeldOut", "hold_back"]
