"""Third-party warnings during quantization: captured, de-duplicated, kept in the manifest.

onnxruntime's quantizer logs through the root logger ("Axis 1 is out-of-range for weight ..." once
per LayerNorm), numpy warns about the NaN zero point of a zero-range tensor, onnx's reference
runtime warns about its own limits, and onnxruntime's C++ sessions print through their own logger.
None of that is for the user to read line by line: the lines are collected (each distinct text
once, with a count), recorded in the manifest's warnings, and summarised in one line. ``debug``
lets everything through unchanged.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

THIRD_PARTY = "third-party: "  # how the manifest's warnings tell these from edgeport's own


@dataclass
class CapturedWarnings:
    counts: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """Each distinct warning once, with how often it came."""
        return [f"{THIRD_PARTY}{text}" + (f" (x{n})" if n > 1 else "") for text, n in self.counts.items()]


def third_party_summary(warnings: list[str]) -> str | None:
    """One line for the third-party warnings among a manifest's ``warnings``."""
    distinct = [w for w in warnings if w.startswith(THIRD_PARTY)]
    if not distinct:
        return None
    return (
        f"note: {len(distinct)} distinct third-party warning(s) during quantization were kept in the "
        "manifest's warnings; --debug shows them as they happen"
    )


# The capture open in this context (None: none, or --debug): work done in a child process captures its own
# warnings when this one is open, and hands them over (``add_captured``).
_OPEN: ContextVar[CapturedWarnings | None] = ContextVar("edgeport_captured_warnings", default=None)


def capturing() -> bool:
    """Whether third-party warnings are being captured here (not --debug, inside ``captured_warnings``)."""
    return _OPEN.get() is not None


def add_captured(counts: Mapping[str, int]) -> None:
    """Warnings captured elsewhere (a child process), by text and count, into the capture open here."""
    captured = _OPEN.get()
    if captured is not None:
        captured.counts.update(counts)


class _Collect(logging.Handler):
    def __init__(self, captured: CapturedWarnings) -> None:
        super().__init__(logging.WARNING)
        self.captured = captured

    def emit(self, record: logging.LogRecord) -> None:
        self.captured.counts[f"{record.name}: {record.getMessage()}"] += 1


@contextmanager
def captured_warnings(debug: bool = False) -> Iterator[CapturedWarnings]:
    captured = CapturedWarnings()
    if debug:
        yield captured
        return
    import onnxruntime as ort

    root = logging.getLogger()
    handler = _Collect(captured)
    saved_handlers = root.handlers[:]
    root.handlers = [handler]  # onnxruntime.quantization calls logging.warning(): the root logger
    ort.set_default_logger_severity(3)  # sessions the quantizer creates: errors only
    token = _OPEN.set(captured)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield captured
        for item in caught:
            captured.counts[f"{item.category.__name__}: {item.message}"] += 1
    finally:
        _OPEN.reset(token)
        root.handlers = saved_handlers
        ort.set_default_logger_severity(2)  # onnxruntime's default (warnings)
