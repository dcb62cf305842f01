"""The guard's tolerance: how close to the fp32 model an int8 model must stay, as the user gives it and
as the guard applies it.

The user's keys (``[run.quantize] max_accuracy_drop`` in edgeport.toml, ``--max-accuracy-drop``,
``--min-cosine`` and ``--min-sequence-agreement`` on the command line (``min_slice_agreement``: no option
yet; ``ToleranceSettings`` takes it), the search parameter
``quantize.max_accuracy_drop``) are read into ``ToleranceSettings``; its ``tolerance()`` is the one
place a ``Tolerance`` is built. No backend sees them: they judge a backend's output, they do not
configure it. Kept free of numpy and onnx: ``edgeport.config`` imports this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeport.errors import ConfigError

DEFAULT_MAX_DROP = 1.0  # top-1 points
DEFAULT_MIN_COSINE = 0.99
# A sequence output passes when at least this share of samples decode to exactly the fp32 sequence.
# Only samples on which the two disagree can change from right to wrong, so 0.95 bounds the loss of
# line accuracy by 5 points (the classifier tolerance bounds a single argmax's by 1; a line is tens
# of argmaxes, and a 25-character line misses as soon as one flips, so 0.95 of lines is already a
# per-step flip rate near 0.2%). Stricter would refuse on the judged sample count alone: with the
# usual 10 to 20 held-back lines, 0.95 already means no line may differ (0.99 would need 100 lines
# before one difference is allowed). The int8 recognizer that prompted this agreed on 9% of lines.
DEFAULT_MIN_SEQUENCE_AGREEMENT = 0.95
# Every output whose parts differ in scale is also judged slice by slice along its feature axis
# (guard/slices.py, ``slice_fidelity``): a slice holds when RMS(int8 - fp32) over it is at most
# SLICE_MAX_ERROR of the fp32 slice's RMS (a per-slice SQNR above ~10 dB). At its own int8 scale a slice
# measures 0.005-0.05, a faithful model's noisier slices 0.05-0.15 (a mean cosine of 0.99 is ~0.14
# overall); a slice below ~1% of one shared per-tensor range measures 0.5-1 (a YOLO head's class scores
# beside box coordinates of 0-320 became exactly 0 or 1.255: 0.7, at a mean cosine of 0.9994), however
# sparse its signal is.
SLICE_MAX_ERROR = 0.3
# The share of (non-constant) slices that must hold: a few near-silent slices (a class never present in
# the judged inputs) do not fail a faithful model; a destroyed block of slices (the scores) does.
DEFAULT_MIN_SLICE_AGREEMENT = 0.9
# The keys of a quantize table ([run.quantize], the search's quantize.*) that set the tolerance.
TOLERANCE_KEYS: tuple[str, ...] = ("max_accuracy_drop",)


@dataclass(frozen=True)
class Tolerance:
    """``max_drop`` (needs labels): the labelled classifier output at most this many top-1 points below
    fp32; None: no top-1 check. ``min_cosine``: mean cosine of every output top-1 does not judge (all of
    them without ``max_drop``); left out beside ``max_drop``, ``DEFAULT_MIN_COSINE``, so that no output
    goes unjudged. Every sequence output: decoded-sequence agreement >= ``min_sequence_agreement``. Every
    output judged slice by slice (not one top-1 or a sequence judges): the share of its slices that hold
    >= ``min_slice_agreement``."""

    max_drop: float | None = None
    min_cosine: float | None = None  # None only as given: __post_init__ fills in the default
    min_sequence_agreement: float = DEFAULT_MIN_SEQUENCE_AGREEMENT
    min_slice_agreement: float = DEFAULT_MIN_SLICE_AGREEMENT

    def __post_init__(self) -> None:
        if self.max_drop is None and self.min_cosine is None:
            raise ConfigError("a tolerance needs at least one of max_accuracy_drop (with labels) or min_cosine")
        cosine = DEFAULT_MIN_COSINE if self.min_cosine is None else self.min_cosine
        object.__setattr__(self, "min_cosine", cosine)  # frozen: set once, so the outputs top-1 skips stay judged
        if self.max_drop is not None and not 0 <= self.max_drop <= 100:  # also refuses NaN
            raise ConfigError(f"max_accuracy_drop must be between 0 and 100 points, got {self.max_drop!r}")
        if not -1.0 <= cosine <= 1.0:
            raise ConfigError(f"min_cosine must be in [-1, 1], got {cosine!r}")
        if not 0.0 <= self.min_sequence_agreement <= 1.0:
            raise ConfigError(f"min_sequence_agreement must be in [0, 1], got {self.min_sequence_agreement!r}")
        if not 0.0 <= self.min_slice_agreement <= 1.0:
            raise ConfigError(f"min_slice_agreement must be in [0, 1], got {self.min_slice_agreement!r}")


def default_tolerance(labels: object | None) -> Tolerance:
    """The tolerance when none is given: top-1 with labels, else the cosine of every output."""
    return Tolerance(max_drop=DEFAULT_MAX_DROP) if labels is not None else Tolerance(min_cosine=DEFAULT_MIN_COSINE)


@dataclass(frozen=True)
class ToleranceSettings:
    """The tolerance as the user gave it (None: not given), checked at once.

    An explicit tolerance (``max_accuracy_drop`` or ``min_cosine``) also turns on the accuracy-aware
    fallback (``fallback``): sensitive layers kept in float until the int8 model is within it. Without
    one, the default tolerance still judges the int8 model, with nothing kept in float."""

    max_accuracy_drop: float | None = None
    min_cosine: float | None = None
    min_sequence_agreement: float | None = None
    min_slice_agreement: float | None = None

    def __post_init__(self) -> None:
        self.tolerance(labelled=True)  # a value out of range is refused before any work

    @property
    def fallback(self) -> bool:
        return self.max_accuracy_drop is not None or self.min_cosine is not None

    def tolerance(self, labelled: bool) -> Tolerance:
        """The one place a ``Tolerance`` is built: the given keys, else the default for outputs with
        (``labelled``) or without labels; ``min_sequence_agreement`` and ``min_slice_agreement`` beside
        either, once."""
        if self.fallback:
            tolerance = Tolerance(max_drop=self.max_accuracy_drop, min_cosine=self.min_cosine)
        else:
            tolerance = default_tolerance(True if labelled else None)
        given = {
            key: value
            for key, value in (
                ("min_sequence_agreement", self.min_sequence_agreement),
                ("min_slice_agreement", self.min_slice_agreement),
            )
            if value is not None
        }
        return dataclasses.replace(tolerance, **given) if given else tolerance


def backend_table(table: Mapping[str, Any]) -> dict[str, Any]:
    """A quantize table without the tolerance's keys, which ``edgeport.config`` splits off: what the
    backend's config type is validated against. ``none`` (the fp32 model, which nothing judges) keeps
    one that is set, to be refused as an option it does not have."""
    if table.get("backend") == "none":
        return {k: v for k, v in table.items() if k not in TOLERANCE_KEYS or v is not None}
    return {k: v for k, v in table.items() if k not in TOLERANCE_KEYS}


__all__ = [
    "DEFAULT_MAX_DROP",
    "DEFAULT_MIN_COSINE",
    "DEFAULT_MIN_SEQUENCE_AGREEMENT",
    "DEFAULT_MIN_SLICE_AGREEMENT",
    "SLICE_MAX_ERROR",
    "TOLERANCE_KEYS",
    "Tolerance",
    "ToleranceSettings",
    "backend_table",
    "default_tolerance",
]
